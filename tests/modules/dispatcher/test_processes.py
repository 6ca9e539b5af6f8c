"""Real processes: ``siprouter run`` (2 workers + control process) with tm, probing, ctl.

Ports 58300-58349: router 58300, backends 58301 (answers) and 58302 (silent
until told), client 58310. Shows that keepalives sent by worker 1 through tm
change the state every worker selects with, that the dst-down/dst-up events
run, and that RPC commands served by the control process apply at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import siprouter_cmd, udp_port_bound

HOST = "127.0.0.1"
ROUTER, GOOD, QUIET, CLIENT = 58300, 58301, 58302, 58310

CFG = """\
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:58300
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "dispatcher.so"
loadmodule "ctl.so"
modparam("tm", "fr_timer", 400)
modparam("dispatcher", "list_file", "dispatcher.list")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_ping_from", "sip:pinger@127.0.0.1")
modparam("ctl", "binrpc", "unix:{ctl}")
request_route {{
  if (!ds_select_dst("1", "4")) {{ sl_send_reply("503", "No backend"); exit; }}
  t_relay();
}}
event_route[dispatcher:dst-down] {{ xlog("L_ERR", "DSEVENT down $ru $dsv(code)\\n"); }}
event_route[dispatcher:dst-up] {{ xlog("L_ERR", "DSEVENT up $ru $dsv(code) $dsv(reason)\\n"); }}
"""


class Backend:
    """A UDP socket answering every request with ``200 Alive`` (when ``answering``)."""

    def __init__(self, port: int, answering: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.1)
        self.answering = answering
        self.received: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode("latin-1")
            self.received.append(text.split(" ", 1)[0])
            if not self.answering or text.startswith("SIP/2.0") or text.startswith("ACK"):
                continue
            keep = [line for line in text.split("\r\n")
                    if line.split(":", 1)[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
            to_tag = ";tag=be" if not any(";tag=" in k for k in keep if k.startswith("To")) else ""
            keep = [k + to_tag if k.startswith("To:") else k for k in keep]
            self.sock.sendto(("SIP/2.0 200 Alive\r\n" + "\r\n".join(keep)
                              + "\r\nContent-Length: 0\r\n\r\n").encode(), addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def bed(tmp_path: Path) -> Any:
    for port in (ROUTER, GOOD, QUIET, CLIENT):
        if udp_port_bound(port):
            pytest.fail(f"UDP port {port} is in use")
    ctl = tmp_path / "ctl.sock"
    (tmp_path / "r.cfg").write_text(CFG.format(ctl=ctl))
    (tmp_path / "dispatcher.list").write_text(
        f"1 sip:{HOST}:{GOOD} 0 0\n1 sip:{HOST}:{QUIET} 0 0\n")
    good, quiet = Backend(GOOD, True), Backend(QUIET, False)
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(siprouter_cmd() + ["run", "-f", "r.cfg"], cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ctl_call(*args: str) -> Any:
        out = subprocess.run(siprouter_cmd() + ["ctl", "-s", f"unix:{ctl}", *args],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    def flags() -> dict[int, str]:
        try:
            listing = ctl_call("dispatcher.list")
        except AssertionError:
            return {}
        return {int(t["DEST"]["URI"].rsplit(":", 1)[1]): t["DEST"]["FLAGS"]
                for r in listing["RECORDS"] for t in r["SET"]["TARGETS"]}

    def events() -> list[str]:
        text = (tmp_path / "run.log").read_text(errors="replace")
        return [line.split("DSEVENT ", 1)[1].split(" [callid=", 1)[0]
                for line in text.splitlines() if "DSEVENT" in line]

    try:
        wait_for("the control socket", lambda: ctl.exists() and bool(flags()))
        yield {"ctl": ctl_call, "flags": flags, "events": events, "good": good, "quiet": quiet}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        good.close()
        quiet.close()


def invite(client: socket.socket, n: int) -> str:
    """Send an INVITE to the router; the first line of the final answer."""
    callid = f"proc-{n}-{time.monotonic_ns()}"
    client.sendto((f"INVITE sip:u@{HOST}:{ROUTER} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{CLIENT};branch=z9hG4bK-{callid}\r\n"
                   "From: <sip:a@example.com>;tag=a\r\nTo: <sip:u@example.com>\r\n"
                   f"Call-ID: {callid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n").encode(), (HOST, ROUTER))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            data = client.recv(65535).decode("latin-1")
        except TimeoutError:
            continue
        first = data.split("\r\n", 1)[0]
        if not first.startswith("SIP/2.0 1"):
            return first
    return "no answer"


def test_probing_events_and_rpc_across_processes(bed: Any) -> None:
    flags, ctl, events = bed["flags"], bed["ctl"], bed["events"]
    wait_for("the silent backend to go down", lambda: flags().get(QUIET) == "IP")
    assert flags()[GOOD] == "AP"
    assert f"down sip:{HOST}:{QUIET} 408" in events()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((HOST, CLIENT))
    client.settimeout(0.2)
    try:
        invites_before = bed["quiet"].received.count("INVITE")
        assert [invite(client, n) for n in range(4)] == ["SIP/2.0 200 Alive"] * 4
        assert bed["good"].received.count("INVITE") == 4
        assert bed["quiet"].received.count("INVITE") == invites_before
        # the control process disables the good one: every worker stops using it at once
        assert ctl("dispatcher.set_state", "d", "1", f"sip:{HOST}:{GOOD}") == \
            "Ok. Dispatcher state updated."
        assert [invite(client, n) for n in range(4, 6)] == ["SIP/2.0 503 No backend"] * 2
        # the silent one starts answering: probing brings it back
        bed["quiet"].answering = True
        wait_for("the backend to come up", lambda: flags().get(QUIET) == "AP")
        assert f"up sip:{HOST}:{QUIET} 200 Alive" in events()
        assert invite(client, 6) == "SIP/2.0 200 Alive"
        assert bed["quiet"].received.count("INVITE") == invites_before + 1
        assert ctl("dispatcher.ping_active", "0") == {"NewPingState": 0, "OldPingState": 1}
    finally:
        client.close()
