"""The control plane's entry points for the process supervisor and the worker loop.

``siprouter run`` calls :func:`install_control` once, before forking; it does
all of the following:

1. ``prepare_control(router, children)``: creates the shared statistics blocks
   and binds the control sockets (OSError on failure). None when the cfg loads
   none of ctl / jsonrpcs / xhttp.
2. Each worker (and the single process of ``fork=no``), after ``child_init``:
   ``sync, publish = worker_hooks(router)``; ``sync()`` once per received datagram
   (applies ``cfg.set`` changes: one shared read when nothing changed),
   ``publish()`` at least every ~200 ms, also when idle (copies the process's
   counters to shared memory).
3. The supervisor forks one more process after the workers and calls
   ``run_control(router)`` in it (rank -1; returns on SIGTERM/SIGINT). With
   ``fork=no``, ``start_control_thread(router)`` serves from a thread instead.
4. At exit ``close_control(router)`` removes the unix socket files.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .addresses import DEFAULT_CTL, ControlAddress, bind_address, parse_address
from .stats import SharedStats, StatKey, StatsPublisher, stat_sources

if TYPE_CHECKING:
    from ..routing.router import Router
    from .runtime import RuntimeCfg
    from .server import ControlThread

log = logging.getLogger("siprouter.rpc")

CONTROL_MODULES = ("ctl", "jsonrpcs", "xhttp")


@dataclass
class Endpoint:
    """A bound control socket: ``http`` endpoints are xhttp listeners (``/RPC``, ``/metrics``)."""

    address: ControlAddress
    sock: socket.socket
    http: bool = False


@dataclass
class ControlState:
    """What the control plane shares between the supervisor, workers and control process."""

    endpoints: list[Endpoint]
    stats: SharedStats
    children: int
    main_pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    publishers: dict[int, StatsPublisher] = field(default_factory=dict)   # this process's

    def publisher(self, router: Router) -> StatsPublisher:
        """This process's publisher (one per process: it carries a predecessor's counts)."""
        key = os.getpid()
        found = self.publishers.get(key)
        if found is None:
            found = self.stats.publisher(router, router.rank)
            self.publishers = {key: found}
        return found


# ---------------------------------------------------------------- configuration
def ctl_addresses(router: Router) -> list[ControlAddress]:
    """The ctl module's ``binrpc`` addresses (its default when none is given)."""
    module = router.modules.get("ctl")
    if module is None:
        return []
    return [parse_address(text) for text in (module.params["binrpc"] or [DEFAULT_CTL])]


def http_addresses(router: Router) -> list[ControlAddress]:
    """HTTP listeners: xhttp's ``listen`` modparams, else every ``listen=tcp:`` socket."""
    module = router.modules.get("xhttp")
    if module is None:
        return []
    given = [parse_address(text if text.lower().startswith(("tcp:", "udp:", "unix:"))
                           else f"tcp:{text}") for text in module.params["listen"]]
    if given or router.settings.disable_tcp:
        return given
    return [ControlAddress("tcp", host=sock.host.strip("[]"), port=sock.port)
            for sock in router.settings.listen if sock.proto == "tcp"]


def control_configured(router: Router) -> bool:
    return any(name in router.modules for name in CONTROL_MODULES)


def prepare_control(router: Router, children: int) -> ControlState | None:
    """Before forking: shared statistics and bound control sockets (OSError on failure).

    ``children`` is the number of worker processes (0 for ``fork=no``).
    """
    if not control_configured(router):
        return None
    module = router.modules.get("ctl")
    mode = int(module.params["mode"]) if module is not None else 0o600
    user, group = (module.params["user"], module.params["group"]) if module else ("", "")
    endpoints: list[Endpoint] = []
    try:
        for address in ctl_addresses(router):
            endpoints.append(Endpoint(address, bind_address(address, mode)))
            if address.kind == "unix":
                _chown(address.path, user, group)
        for address in http_addresses(router):
            if address.kind == "udp":
                raise OSError(f"xhttp listener {address} must be tcp")
            endpoints.append(Endpoint(address, bind_address(address, mode), http=True))
    except OSError as err:
        for endpoint in endpoints:
            endpoint.sock.close()
        raise OSError(f"cannot bind control socket: {err}") from err
    state = ControlState(endpoints, SharedStats.create(router, children), children)
    router.shared["control"] = state
    return state


def _chown(path: str, user: str, group: str) -> None:
    """ctl's ``user``/``group`` modparams: the owner of a unix socket file (OSError)."""
    try:
        if user and group:
            shutil.chown(path, user, group)
        elif user:
            shutil.chown(path, user=user)
        elif group:
            shutil.chown(path, group=group)
    except LookupError as err:           # unknown user or group name
        raise OSError(f"{path}: {err}") from None


def control_state(router: Router) -> ControlState | None:
    state = router.shared.get("control")
    return state if isinstance(state, ControlState) else None


def runtime_cfg(router: Router) -> RuntimeCfg | None:
    """The shared runtime parameters (created by cfg_rpc's init), or None."""
    module = router.modules.get("cfg_rpc")
    runtime: RuntimeCfg | None = getattr(module, "runtime", None)
    return runtime


def close_control(router: Router) -> None:
    """Close the control sockets and remove unix socket files (supervisor, at exit)."""
    state = control_state(router)
    if state is None:
        return
    for endpoint in state.endpoints:
        endpoint.sock.close()
        if endpoint.address.kind == "unix":
            try:
                os.unlink(endpoint.address.path)
            except OSError:
                pass


# ---------------------------------------------------------------- supervisor glue
def install_control(router: Router, children: int) -> list[tuple[str, Callable[[Router], None]]]:
    """Everything ``siprouter run`` needs, in one call before the fork.

    Prepares the control plane (``children`` = 0 for ``fork=no``), hooks
    :func:`worker_hooks` into every worker (``transport.supervisor.WORKER_SETUP``;
    with ``fork=no`` the worker also starts the control thread) and returns the
    extra process for ``supervise(router, children, extra)``: ``[("control",
    run_control)]``, or ``[]`` when the cfg has no control plane. Raises OSError
    when a control socket cannot be bound.
    """
    import atexit

    from ..transport.supervisor import WORKER_SETUP

    if prepare_control(router, children) is None:
        return []
    atexit.register(close_control, router)
    if _setup_worker not in WORKER_SETUP:
        WORKER_SETUP.append(_setup_worker)
    return [] if children <= 0 else [("control", run_control)]


def _setup_worker(worker: Any) -> None:
    """WORKER_SETUP hook: runtime-cfg sync per datagram, statistics every housekeeping run."""
    router = worker.router
    sync, publish = worker_hooks(router)
    before = worker.before_message
    if sync is _noop:
        pass
    elif before is None:
        worker.before_message = sync
    else:
        def both() -> None:
            before()
            sync()
        worker.before_message = both
    worker.housekeeping.append(lambda now: publish())
    if router.rank == 0:
        start_control_thread(router)


# ---------------------------------------------------------------- worker side
def _noop() -> None:
    """Nothing to do (no control plane configured)."""


def worker_hooks(router: Router) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(sync, publish)`` for this process; call after ``router.rank`` is set.

    ``sync()``: per received datagram, applies runtime cfg changes.
    ``publish()``: every ~200 ms (and when idle), copies this process's statistics
    to shared memory. Both are no-ops when the cfg has no control plane.
    """
    runtime = runtime_cfg(router)
    state = control_state(router)
    sync = runtime.sync if runtime is not None else _noop
    publish = state.publisher(router).publish if state is not None else _noop
    return sync, publish


def sync(router: Router) -> None:
    """Apply runtime cfg changes in this process (prefer the bound ``worker_hooks`` one)."""
    runtime = runtime_cfg(router)
    if runtime is not None:
        runtime.sync()


def publish(router: Router) -> None:
    """Copy this process's statistics to shared memory."""
    state = control_state(router)
    if state is not None:
        state.publisher(router).publish()


# ---------------------------------------------------------------- reading statistics
def local_totals(router: Router) -> dict[StatKey, int]:
    """This process's own statistics (no control plane prepared)."""
    totals: dict[StatKey, int] = {}
    for group, getter in stat_sources(router):
        for name, value in getter().items():
            totals[(group, name)] = value
    return totals


def all_totals(router: Router) -> dict[StatKey, int]:
    """Every statistic summed over all processes (this one published first)."""
    state = control_state(router)
    if state is None:
        return local_totals(router)
    state.publisher(router).publish()
    return state.stats.totals()


def group_totals(router: Router, group: str) -> dict[str, int]:
    """One group's statistics summed over all processes, e.g. ``group_totals(r, "sl")``."""
    return {name: value for (g, name), value in all_totals(router).items() if g == group}


# ---------------------------------------------------------------- control process
def run_control(router: Router) -> None:
    """Body of the control process (rank -1): serve until SIGTERM/SIGINT."""
    import signal

    from .server import serve_forked

    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # until the event loop handles it
    router.rank = -1
    for module in router.modules.values():
        module.child_init(-1)
    serve_forked(router)


def start_control_thread(router: Router) -> ControlThread | None:
    """``fork=no``: serve the control plane from a thread of this process.

    Returns a handle with ``stop()``, or None when no control plane is configured
    (call ``prepare_control(router, 0)`` first).
    """
    if control_state(router) is None:
        return None
    from .server import ControlThread

    thread = ControlThread(router)
    thread.start()
    return thread
