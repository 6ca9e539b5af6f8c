"""Prometheus ``/metrics``: the shared statistics and dispatcher destination state.

Statistic ``group:name`` is exported as ``kamailio_<group>_<name>`` (untyped, the
names of Kamailio's xhttp_prom module), read from shared memory at scrape time,
so every worker is counted. Dispatcher destinations (read through the
dispatcher's own ``dispatcher.list`` RPC, i.e. the state every worker uses):

* ``kamailio_dispatcher_destination_active{setid,uri}``: 1 when selectable
  (FLAGS ``A*`` or ``T*``), 0 when inactive or disabled;
* ``kamailio_dispatcher_destination_probing{setid,uri}``: 1 when probed (``*P``);
* with ``ds_ping_latency_stats``: ``..._latency_avg_ms``, ``..._latency_std_ms``,
  ``..._latency_est_ms``, ``..._latency_max_ms`` and ``..._ping_timeouts``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from .errors import RpcError
from .jsonrpc import RpcDispatcher

if TYPE_CHECKING:
    from ..routing.router import Router

log = logging.getLogger("siprouter.rpc")

_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_LATENCY = (("AVG", "latency_avg_ms", "average OPTIONS probe latency (ms)"),
            ("STD", "latency_std_ms", "standard deviation of the probe latency (ms)"),
            ("EST", "latency_est_ms", "estimated probe latency (ms)"),
            ("MAX", "latency_max_ms", "highest probe latency (ms)"),
            ("TIMEOUT", "ping_timeouts", "probes that timed out"))


def metric_name(group: str, name: str) -> str:
    return _BAD_CHARS.sub("_", f"kamailio_{group}_{name}")


def destinations(router: Router, dispatcher: RpcDispatcher) -> list[dict[str, Any]]:
    """``{"setid", "uri", "flags", "latency"}`` per destination, from ``dispatcher.list``."""
    method = dispatcher.methods.get("dispatcher.list")
    found: list[dict[str, Any]] = []
    if method is None:
        module = router.modules.get("dispatcher")
        dlist = getattr(module, "dlist", None)
        if dlist is None:
            return found
        from ..modules.dispatcher.destinations import flags_letters

        for dset in dlist:
            for dest in dset:
                found.append({"setid": dset.setid, "uri": dest.uri,
                              "flags": flags_letters(dest.flags), "latency": None})
        return found
    try:
        listing = method([])
    except RpcError:            # "No Destination Sets"
        return found
    for record in listing.get("RECORDS", []):
        dset = record.get("SET", {})
        for target in dset.get("TARGETS", []):
            dest = target.get("DEST", {})
            found.append({"setid": dset.get("ID"), "uri": dest.get("URI"),
                          "flags": str(dest.get("FLAGS", "")), "latency": dest.get("LATENCY")})
    return found


class ControlCollector(Collector):
    """Reads the statistics and the dispatcher state at every scrape."""

    def __init__(self, router: Router, dispatcher: RpcDispatcher) -> None:
        self.router = router
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        from .control import all_totals
        from .methods import shmem_stats

        totals = all_totals(self.router)
        totals.update(shmem_stats(self.router))
        for (group, name), value in sorted(totals.items()):
            yield UnknownMetricFamily(metric_name(group, name), f"{group}:{name}", value=value)
        try:
            dests = destinations(self.router, self.dispatcher)
        except Exception:  # noqa: BLE001 - a scrape must not fail on one source
            log.exception("cannot read the dispatcher state for /metrics")
            dests = []
        if not dests:
            return
        labels = ["setid", "uri"]
        active = GaugeMetricFamily("kamailio_dispatcher_destination_active",
                                   "1 when the destination is selectable (FLAGS A* or T*)",
                                   labels=labels)
        probing = GaugeMetricFamily("kamailio_dispatcher_destination_probing",
                                    "1 when the destination is probed (FLAGS *P)", labels=labels)
        latency = {key: GaugeMetricFamily(f"kamailio_dispatcher_destination_{suffix}", text,
                                          labels=labels)
                   for key, suffix, text in _LATENCY}
        for dest in dests:
            values = [str(dest["setid"]), str(dest["uri"])]
            flags = dest["flags"]
            active.add_metric(values, 1 if flags[:1] in ("A", "T") else 0)
            probing.add_metric(values, 1 if flags[1:2] == "P" else 0)
            stats = dest.get("latency")
            if isinstance(stats, dict):
                for key, _, _ in _LATENCY:
                    if key in stats:
                        latency[key].add_metric(values, float(stats[key]))
        yield active
        yield probing
        for family in latency.values():
            if family.samples:
                yield family


def metrics_registry(router: Router, dispatcher: RpcDispatcher) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlCollector(router, dispatcher))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
