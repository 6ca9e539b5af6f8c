"""/metrics rendering: Kamailio names for statistics, dispatcher gauges from dispatcher.list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from siprouter.config.loader import load
from siprouter.rpc.control import close_control, prepare_control
from siprouter.rpc.errors import RpcError
from siprouter.rpc.jsonrpc import RpcDispatcher
from siprouter.rpc.metrics import metric_name, metrics_registry, render

CFG = """
loadmodule "sl.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
request_route {{ sl_send_reply("200", "OK"); }}
"""

LISTING = {"NRSETS": 1, "RECORDS": [{"SET": {"ID": 3, "TARGETS": [
    {"DEST": {"URI": "sip:10.0.0.1:5060", "FLAGS": "AP", "PRIORITY": 0,
              "LATENCY": {"AVG": 12.5, "STD": 1.5, "EST": 11.0, "MAX": 30, "TIMEOUT": 2}}},
    {"DEST": {"URI": "sip:10.0.0.2:5060", "FLAGS": "IP", "PRIORITY": 0}},
    {"DEST": {"URI": "sip:10.0.0.3:5060", "FLAGS": "TX", "PRIORITY": 0}},
]}}]}


def scrape(tmp_path: Path, listing: Any) -> dict[str, float]:
    cfg = tmp_path / "m.cfg"
    cfg.write_text(CFG.format(ctl=tmp_path / "ctl.sock"))
    router = load(cfg)
    prepare_control(router, 0)
    router.stats.values["rcv_requests"] = 7
    router.modules["sl"].stats["1xx_replies"] = 2           # type: ignore[attr-defined]

    def dispatcher_list(params: list[Any]) -> Any:
        if listing is None:
            raise RpcError(500, "No Destination Sets")
        return listing

    try:
        text = render(metrics_registry(router, RpcDispatcher({"dispatcher.list": dispatcher_list})))
    finally:
        close_control(router)
    values = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_statistics_names(tmp_path: Path) -> None:
    values = scrape(tmp_path, None)
    assert values["kamailio_core_rcv_requests"] == 7
    assert values["kamailio_sl_1xx_replies"] == 2
    assert values["kamailio_core_bad_URIs_rcvd"] == 0
    assert values["kamailio_shmem_total_size"] > 0
    assert not any("dispatcher" in name for name in values)   # "No Destination Sets"


def test_metric_name_sanitising() -> None:
    assert metric_name("tm", "UAS_transactions") == "kamailio_tm_UAS_transactions"
    assert metric_name("my-group", "a.b") == "kamailio_my_group_a_b"


def test_dispatcher_gauges(tmp_path: Path) -> None:
    values = scrape(tmp_path, LISTING)

    def gauge(name: str, host: str) -> float:
        return values[f'kamailio_dispatcher_destination_{name}{{setid="3",uri="sip:{host}:5060"}}']

    assert [gauge("active", h) for h in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == [1, 0, 1]
    assert [gauge("probing", h) for h in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == [1, 1, 0]
    assert gauge("latency_avg_ms", "10.0.0.1") == 12.5
    assert gauge("latency_std_ms", "10.0.0.1") == 1.5
    assert gauge("latency_est_ms", "10.0.0.1") == 11.0
    assert gauge("latency_max_ms", "10.0.0.1") == 30
    assert gauge("ping_timeouts", "10.0.0.1") == 2
    assert 'kamailio_dispatcher_destination_latency_avg_ms{setid="3",uri="sip:10.0.0.2:5060"}' \
        not in values
