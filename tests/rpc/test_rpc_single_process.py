"""``fork=no``: the control plane is served from a thread of the only process.

Also the siprouter way to give the HTTP port: ``modparam("xhttp", "listen", ...)``
with no ``listen=tcp`` socket. Ports: 58530-58539 (SIP 58530, HTTP 58531).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.rpc.rpc_procs import HOST, Router, ctl, ctl_ok, options

SIP, HTTP = 58530, 58531

CFG = """\
fork=no
listen=udp:{host}:{sip}
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "ctl.so"
loadmodule "xhttp.so"
loadmodule "cfg_rpc.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("xhttp", "listen", "tcp:{host}:{http}")
request_route {{
    sl_send_reply("200", "OK");
}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    tmp = tmp_path_factory.mktemp("single")
    ctl_path = tmp / "ctl.sock"
    cfg = tmp / "single.cfg"
    cfg.write_text(CFG.format(host=HOST, sip=SIP, http=HTTP, ctl=ctl_path))
    proc = Router(cfg, f"unix:{ctl_path}")
    yield proc
    assert proc.stop() == 0, proc.output()
    assert not ctl_path.exists(), "the ctl socket file was left behind"


def test_one_process(router: Router) -> None:
    psx = ctl_ok(router, "core.psx")
    assert len(psx) == 1 and psx[0]["PID"] == router.proc.pid
    assert psx[0]["DSC"] == f"main process - udp receiver sock={HOST}:{SIP}"


def test_statistics_and_runtime_cfg(router: Router) -> None:
    assert ctl_ok(router, "stats.reset_statistics", "all") == {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(5)
        for _ in range(3):
            sock.sendto(options(sock, SIP), (HOST, SIP))
            assert sock.recv(65535).startswith(b"SIP/2.0 200 OK")
    assert ctl_ok(router, "stats.get_statistics", "rcv_requests", "sl:200_replies") == \
        ["core:rcv_requests = 3", "sl:200_replies = 3"]
    assert ctl_ok(router, "cfg.set", "maxfwd", "max_limit", "9") == {}
    assert ctl_ok(router, "cfg.get", "maxfwd", "max_limit") == 9
    out = ctl(router, "cfg.set", "maxfwd", "max_limit", "-3")
    assert out.returncode == 1


def test_http_listener_from_the_xhttp_modparam(router: Router) -> None:
    with urllib.request.urlopen(f"http://{HOST}:{HTTP}/metrics", timeout=30) as response:
        text = response.read().decode()
    assert "kamailio_core_rcv_requests " in text
    # jsonrpcs is not loaded: no /RPC on the HTTP listener (the ctl socket has it)
    request = urllib.request.Request(f"http://{HOST}:{HTTP}/RPC", method="POST", data=json.dumps(
        {"jsonrpc": "2.0", "method": "core.version", "id": 1}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 404
    assert os.path.exists(router.ctl.removeprefix("unix:"))
