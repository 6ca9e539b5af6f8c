"""The control plane of a running ``siprouter run`` (2 workers), end to end.

Both workers read the socket all the time (``SIPROUTER_OVERFLOW_QUEUE=0``), so
statistics and runtime cfg changes are seen from both.

Real processes and sockets: the router serves SIP on udp, the ctl socket on a
unix path and on udp, JSON-RPC + /metrics over HTTP on its ``listen=tcp``
socket (xhttp + jsonrpcs). Every method goes through ``siprouter ctl`` and over
HTTP; SIP requests are real datagrams from this test.

Ports: 58520-58529 (SIP 58520, HTTP 58521, udp ctl 58522, forward sink 58523,
dispatcher destinations 58528/58529, never contacted).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.rpc.rpc_procs import HOST, Router, ctl, ctl_ok, options

SIP, HTTP, UDP_CTL, SINK = 58520, 58521, 58522, 58523
DESTS = (58528, 58529)
STATS_WAIT = 10.0       # s: workers publish statistics every ~200 ms

CFG = """\
debug=2
children=2
listen=udp:{host}:{sip}
listen=tcp:{host}:{http}
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "dispatcher.so"
loadmodule "ctl.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
loadmodule "cfg_rpc.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("ctl", "binrpc", "udp:{host}:{udp_ctl}")
modparam("dispatcher", "list_file", "{dlist}")
request_route {{
    if (!maxfwd_process("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if ($rU == "fwd") {{
        append_hf("X-Pid: $pp\\r\\n");
        $du = "sip:{host}:{sink}";
        forward();
        exit;
    }}
    sl_send_reply("200", "OK $pp");
}}
event_route[xhttp:request] {{
    if ($hu =~ "^/RPC") {{
        jsonrpc_dispatch();
        exit;
    }}
    xhttp_reply("404", "Not Found", "text/plain", "not here");
}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    tmp = tmp_path_factory.mktemp("control")
    dlist = tmp / "dispatcher.list"
    dlist.write_text("".join(f"1 sip:{HOST}:{port}\n" for port in DESTS))
    ctl = f"unix:{tmp}/ctl.sock"
    cfg = tmp / "control.cfg"
    cfg.write_text(CFG.format(host=HOST, sip=SIP, http=HTTP, ctl=ctl.removeprefix("unix:"),
                              udp_ctl=UDP_CTL, sink=SINK, dlist=dlist))
    # every worker reads all the time (Kamailio's model), so that both answer requests
    proc = Router(cfg, ctl, env={**os.environ, "SIPROUTER_OVERFLOW_QUEUE": "0"})
    yield proc
    assert proc.stop() == 0, proc.output()
    assert not os.path.exists(ctl.removeprefix("unix:")), "the ctl socket file was left behind"


# ------------------------------------------------------------------ clients
def http(path: str, body: bytes | None = None, method: str = "POST") -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{HOST}:{HTTP}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_rpc(method: str, *params: Any, request_id: Any = 1) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params),
                       "id": request_id}).encode()
    status, data = http("/RPC", body)
    assert status == 200, data
    answer: dict[str, Any] = json.loads(data)
    return answer


def metrics() -> dict[str, float]:
    status, data = http("/metrics", method="GET")
    assert status == 200
    values = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


# ------------------------------------------------------------------ SIP
def until_both_workers(send_one: Any, limit: int = 400) -> int:
    """Call ``send_one() -> worker pid`` until two workers answered; returns how many were sent."""
    pids: set[str] = set()
    sent = 0
    while len(pids) < 2:
        assert sent < limit, f"only worker(s) {pids} answered {sent} requests"
        pids.add(send_one())
        sent += 1
    return sent


def wait_for_stats(router: Router, expected: dict[str, int]) -> list[str]:
    """stats.get_statistics all, polled until it shows ``expected`` ("group:name" -> value)."""
    deadline = time.monotonic() + STATS_WAIT
    while True:
        lines = ctl_ok(router, "stats.get_statistics", "all")
        values = dict(line.split(" = ") for line in lines)
        if all(values.get(name) == str(value) for name, value in expected.items()):
            return list(lines)
        if time.monotonic() > deadline:
            pytest.fail(f"statistics never reached {expected}: {values} -- do the workers "
                        "publish() (siprouter.rpc.control.worker_hooks) from their loop?")
        time.sleep(0.1)


# ------------------------------------------------------------------ tests
def test_core_methods_through_ctl(router: Router) -> None:
    assert ctl_ok(router, "core.version").startswith("siprouter ")
    uptime = ctl_ok(router, "core.uptime")
    assert set(uptime) == {"now", "up_since", "uptime"} and uptime["uptime"] >= 0
    psx = ctl_ok(router, "core.psx")
    assert [p["IDX"] for p in psx] == [0, 1, 2, 3]
    assert [p["DSC"] for p in psx] == [
        "main process - attendant", f"udp receiver child=0 sock={HOST}:{SIP}",
        f"udp receiver child=1 sock={HOST}:{SIP}", "ctl handler"]
    assert psx[0]["PID"] == router.proc.pid
    assert len({p["PID"] for p in psx}) == 4
    assert ctl_ok(router, "core.ps") == [x for p in psx for x in (p["PID"], p["DSC"])]
    methods = ctl_ok(router, "system.listMethods")
    for name in ("core.version", "core.uptime", "core.ps", "core.psx", "stats.get_statistics",
                 "stats.reset_statistics", "sl.stats", "cfg.get", "cfg.set", "cfg.set_now_int",
                 "cfg.list", "dispatcher.list", "dispatcher.set_state", "system.listMethods"):
        assert name in methods
    assert methods == sorted(methods)


def test_statistics_shapes(router: Router) -> None:
    lines = ctl_ok(router, "stats.get_statistics", "all")
    assert all(" = " in line and ":" in line.split(" = ")[0] for line in lines)
    names = [line.split(" = ")[0] for line in lines]
    assert names == sorted(names)
    for name in ("core:rcv_requests", "core:fwd_requests", "sl:200_replies", "sl:sent_replies",
                 "shmem:total_size"):
        assert name in names
    group = ctl_ok(router, "stats.get_statistics", "sl:")
    assert group and all(line.startswith("sl:") for line in group)
    assert [x.split(" = ")[0] for x in ctl_ok(router, "stats.get_statistics", "rcv_requests")] \
        == ["core:rcv_requests"]
    assert ctl_ok(router, "stats.get_statistics", "no_such_stat") == []
    assert ctl_ok(router, "stats.reset_statistics", "sl:") == {}
    out = ctl(router, "stats.get_statistics")
    assert (out.returncode, out.stderr) == (1, "error: 400 - Please provide which stats to "
                                               "retrieve\n")
    assert list(ctl_ok(router, "sl.stats")) == [
        "200", "202", "2xx", "300", "301", "302", "3xx", "400", "401", "403", "404", "407",
        "408", "483", "4xx", "500", "5xx", "6xx", "xxx"]


def test_statistics_are_summed_over_both_workers(router: Router) -> None:
    assert ctl_ok(router, "stats.reset_statistics", "all") == {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(5)

        def send_one() -> str:
            sock.sendto(options(sock, SIP), (HOST, SIP))
            reply = sock.recv(65535).decode()
            status = reply.split("\r\n", 1)[0]
            assert status.startswith("SIP/2.0 200 OK "), reply
            return status.rsplit(" ", 1)[1]        # the answering worker's pid

        sent = until_both_workers(send_one)
    wait_for_stats(router, {"core:rcv_requests": sent, "sl:200_replies": sent,
                            "sl:sent_replies": sent, "core:fwd_requests": 0})
    assert ctl_ok(router, "sl.stats")["200"] == sent
    values = metrics()
    assert values["kamailio_core_rcv_requests"] == sent
    assert values["kamailio_sl_200_replies"] == sent
    assert ctl_ok(router, "stats.reset_statistics", "sl:200_replies") == {}
    wait_for_stats(router, {"sl:200_replies": 0, "core:rcv_requests": sent})


def test_cfg_set_reaches_every_worker_at_once(router: Router) -> None:
    assert ctl_ok(router, "cfg.get", "maxfwd", "max_limit") == 70
    assert "maxfwd: max_limit" in ctl_ok(router, "cfg.list")
    assert ctl_ok(router, "cfg.set", "maxfwd", "max_limit", "5") == {}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as uac:
            sink.bind((HOST, SINK))
            sink.settimeout(5)
            uac.bind((HOST, 0))

            def send_one() -> str:
                uac.sendto(options(uac, SIP, user="fwd", max_forwards=70), (HOST, SIP))
                forwarded = sink.recv(65535).decode()
                headers = dict(line.split(": ", 1) for line in forwarded.split("\r\n")[1:]
                               if ": " in line)
                assert headers["Max-Forwards"].strip() == "5", forwarded   # width kept: " 5"
                return headers["X-Pid"]

            until_both_workers(send_one)
        out = ctl(router, "cfg.set", "maxfwd", "max_limit", "300")
        assert (out.returncode, out.stderr) == (1, "error: 400 - Failed to set the variable\n")
        assert ctl_ok(router, "cfg.get", "maxfwd", "max_limit") == 5
        assert ctl_ok(router, "cfg.set_now_int", "maxfwd", "max_limit", "i:6") == {}
        assert ctl_ok(router, "cfg.get", "maxfwd", "max_limit") == 6
    finally:
        ctl_ok(router, "cfg.set", "maxfwd", "max_limit", "70")


def test_rpc_errors_through_ctl(router: Router) -> None:
    out = ctl(router, "no.such_method")
    assert (out.returncode, out.stdout, out.stderr) == (1, "", "error: -32601 - Method not found\n")
    out = ctl(router, "cfg.get", "maxfwd", "no_such_var")
    assert (out.returncode, out.stderr) == (1, "error: 400 - Failed to get the variable\n")


def test_udp_ctl_socket(router: Router) -> None:
    out = ctl(router, "core.version", address=f"udp:{HOST}:{UDP_CTL}")
    assert out.returncode == 0 and json.loads(out.stdout).startswith("siprouter ")


def test_json_rpc_over_http(router: Router) -> None:
    answer = http_rpc("core.uptime", request_id="a1")
    assert answer["jsonrpc"] == "2.0" and answer["id"] == "a1"
    assert set(answer["result"]) == {"now", "up_since", "uptime"}
    assert http_rpc("cfg.get", "maxfwd", "max_limit")["result"] == 70
    assert http_rpc("core.psx")["result"][3]["DSC"] == "ctl handler"
    assert http_rpc("no.such")["error"] == {"code": -32601, "message": "Method not found"}
    assert http_rpc("cfg.set", "maxfwd", "max_limit", 256)["error"] == \
        {"code": 400, "message": "Failed to set the variable"}
    status, data = http("/RPC", b"{not json")
    assert status == 200 and json.loads(data)["error"]["code"] == -32700
    status, data = http("/RPC", b'{"jsonrpc": "2.0", "id": 5}')
    assert json.loads(data)["error"]["code"] == -32600
    status, _ = http("/RPC", json.dumps({"jsonrpc": "2.0", "method": "core.version"}).encode())
    assert status == 204                               # a notification has no answer
    assert http("/nothing-here", method="GET")[0] == 404
    assert http("/RPC", method="GET")[0] == 405


def test_dispatcher_state_in_metrics(router: Router) -> None:
    down, up = (f"sip:{HOST}:{port}" for port in DESTS)
    values = metrics()
    for uri in (down, up):
        assert values[f'kamailio_dispatcher_destination_active{{setid="1",uri="{uri}"}}'] == 1
        assert values[f'kamailio_dispatcher_destination_probing{{setid="1",uri="{uri}"}}'] == 0
    assert ctl_ok(router, "dispatcher.set_state", "i", "1", down) == \
        "Ok. Dispatcher state updated."
    try:
        values = metrics()
        assert values[f'kamailio_dispatcher_destination_active{{setid="1",uri="{down}"}}'] == 0
        assert values[f'kamailio_dispatcher_destination_active{{setid="1",uri="{up}"}}'] == 1
    finally:
        ctl_ok(router, "dispatcher.set_state", "a", "1", down)
