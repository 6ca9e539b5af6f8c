"""Per-message log lines carry the Call-ID, as text and as JSON lines (``--log-json``).

Ports: 58540-58549 (SIP 58540).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.rpc.rpc_procs import HOST, Router, options

SIP = 58540

CFG = """\
fork=no
debug=2
listen=udp:{host}:{sip}
loadmodule "sl.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
request_route {{
    xlog("L_INFO", "got $rm from $si\\n");
    if ($rU == "bad") {{
        $du = "tel:+15551234";
        forward();
    }}
    sl_send_reply("200", "OK");
}}
"""


def run_and_log(tmp_path: Path, json_lines: bool) -> tuple[str, list[str]]:
    """Start the router, send one OPTIONS to ``bad``; returns (Call-ID, log lines)."""
    ctl = tmp_path / "ctl.sock"
    cfg = tmp_path / "logs.cfg"
    cfg.write_text(CFG.format(host=HOST, sip=SIP, ctl=ctl))
    router = Router(cfg, f"unix:{ctl}", ["--log-json"] if json_lines else [])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            sock.settimeout(5)
            request = options(sock, SIP, user="bad")
            sock.sendto(request, (HOST, SIP))
            assert sock.recv(65535).startswith(b"SIP/2.0 200 OK")
        callid = next(line.split(": ", 1)[1] for line in request.decode().split("\r\n")
                      if line.startswith("Call-ID: "))
        deadline = time.monotonic() + 10
        while "non-SIP destination" not in router.output() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assert router.stop() == 0
    return callid, router.output().splitlines()


def test_text_lines_end_with_the_callid(tmp_path: Path) -> None:
    callid, lines = run_and_log(tmp_path, json_lines=False)
    got = [line for line in lines if f"got OPTIONS from {HOST}" in line]
    assert got and got[0].endswith(f"[callid={callid}]"), lines
    error = [line for line in lines if "non-SIP destination" in line]
    assert error and error[0].endswith(f"[callid={callid}]"), lines


def test_json_lines_have_a_callid_member(tmp_path: Path) -> None:
    callid, lines = run_and_log(tmp_path, json_lines=True)
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    got = [e for e in entries if e["message"] == f"got OPTIONS from {HOST}"]
    assert got and got[0]["callid"] == callid and got[0]["level"] == "INFO", entries
    error = [e for e in entries if "non-SIP destination" in e["message"]]
    assert error and error[0]["callid"] == callid and error[0]["level"] == "ERROR", entries
    if not any(e["logger"] == "siprouter.rpc" for e in entries):
        pytest.fail(f"the control plane did not log its start: {entries}")
