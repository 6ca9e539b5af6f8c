"""Real processes: ``siprouter run`` with tm (children=1), a SIPp UAC and UAS.

SIPp UAC (58105) -> siprouter (58100) -> first destination 58101, a UDP
socket that swallows everything (the callee that does not answer) -> after
fr_timer (1 s) the failure_route fails over to the SIPp UAS on 58102, which
answers. Every call shows tm at work: the UAC requires the 100 Trying, the
silent callee sees the INVITE retransmitted (timer A), the call completes
through the second callee, ACK and BYE follow the Record-Route.

Ports: 58100-58160 (router 58100, silent callee 58101, UAS 58102, UAC 58105,
SIPp control 58106/58107, media 58110-58113 and 58120-58123).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.procs import siprouter_cmd, udp_port_bound

HOST = "127.0.0.1"
ROUTER, SILENT, UAS, UAC = 58100, 58101, 58102, 58105
CONTROL = (58106, 58107)
MEDIA = (58110, 58120)
CALLS = 3
HERE = Path(__file__).resolve().parent
UAS_SCENARIO = HERE.parent / "e2e" / "scenarios" / "uas-call.xml"
UAC_SCENARIO = HERE / "scenarios" / "uac-tm.xml"

CFG = f"""
debug=2
fork=yes
children=1
auto_aliases=no
listen=udp:{HOST}:{ROUTER}

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"

modparam("tm", "fr_timer", 1000)

request_route {{
  if (is_method("OPTIONS") && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
  if (!maxfwd_process("10") && $retcode == -1) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
  if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
  if (has_totag()) {{
    if (loose_route()) {{ t_relay(); exit; }}
    if (is_method("ACK") && t_check_trans()) {{ t_relay(); }}
    exit;
  }}
  if (is_method("INVITE")) {{ record_route(); }}
  $du = "sip:{HOST}:{SILENT}";
  t_on_failure("FAILOVER");
  if (!t_relay()) {{ sl_reply_error(); }}
  exit;
}}

failure_route[FAILOVER] {{
  if (t_is_canceled()) {{ exit; }}
  if (t_branch_timeout() && !t_branch_replied()) {{
    $du = "sip:{HOST}:{UAS}";
    t_relay();
  }}
}}
"""


class Sink(threading.Thread):
    """The callee that never answers: records what it receives."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.2)
        self.received: list[bytes] = []
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append(data)

    def stop(self) -> None:
        self.stopping = True
        self.join(2)
        self.sock.close()


def options_ok(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(0.3)
        local = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK-tm-{time.monotonic_ns()}\r\n"
                  f"From: <sip:probe@{HOST}>;tag=p\r\nTo: <sip:{HOST}:{port}>\r\n"
                  f"Call-ID: tm-probe-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\n"
                  "Content-Length: 0\r\n\r\n").encode(), (HOST, port))
        try:
            data, _ = s.recvfrom(65535)
        except (TimeoutError, ConnectionRefusedError):
            return False
        return data.startswith(b"SIP/2.0 200 ")


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def test_calls_fail_over_statefully(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("SIPp is not installed (Debian package sip-tester)")
    ports = [ROUTER, SILENT, UAS, UAC, *CONTROL, *range(MEDIA[0], MEDIA[0] + 4),
             *range(MEDIA[1], MEDIA[1] + 4)]
    busy = [p for p in ports if udp_port_bound(p)]
    assert not busy, f"UDP ports {busy} are in use"
    cfg = tmp_path / "tm.cfg"
    cfg.write_text(CFG)
    log = tmp_path / "router.log"
    sink = Sink(SILENT)
    sink.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(log, "wb") as out:
            router = subprocess.Popen(siprouter_cmd() + ["run", "-f", str(cfg)], cwd=tmp_path,
                                      stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(router)
        deadline = time.monotonic() + 20
        while not options_ok(ROUTER):
            assert router.poll() is None, f"siprouter exited:\n{tail(log)}"
            assert time.monotonic() < deadline, f"siprouter does not answer:\n{tail(log)}"
            time.sleep(0.1)
        common = ["-i", HOST, "-nostdin", "-recv_timeout", "10000"]
        with open(tmp_path / "uas.out", "wb") as out:
            uas = subprocess.Popen(
                [sipp, "-sf", str(UAS_SCENARIO), "-p", str(UAS), "-mp", str(MEDIA[1]),
                 "-cp", str(CONTROL[0]), "-trace_stat", "-stf", str(tmp_path / "uas.csv"),
                 *common], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(uas)
        deadline = time.monotonic() + 10
        while not udp_port_bound(UAS):
            assert uas.poll() is None, f"SIPp UAS exited:\n{tail(tmp_path / 'uas.out')}"
            assert time.monotonic() < deadline, "SIPp UAS did not bind its port"
            time.sleep(0.05)
        with open(tmp_path / "uac.out", "wb") as out:
            uac = subprocess.Popen(
                [sipp, f"{HOST}:{ROUTER}", "-sf", str(UAC_SCENARIO), "-p", str(UAC),
                 "-mp", str(MEDIA[0]), "-cp", str(CONTROL[1]), "-m", str(CALLS), "-l", "1",
                 "-r", "1", "-timeout", "60s", "-timeout_error", "-trace_stat",
                 "-stf", str(tmp_path / "uac.csv"), *common],
                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        procs.append(uac)
        rc = uac.wait(timeout=90)
        assert rc == 0, (f"SIPp UAC failed ({rc}):\n{tail(tmp_path / 'uac.out')}\n"
                         f"router log:\n{tail(log)}")
        # every call went to the silent callee first, whose INVITE was retransmitted
        invites = [d for d in sink.received if d.startswith(b"INVITE ")]
        calls = {d.split(b"Call-ID: ")[1].split(b"\r\n")[0] for d in invites}
        assert len(calls) == CALLS
        assert len(invites) >= 2 * CALLS
        assert all(b";branch=z9hG4bKsr1." in d for d in invites)
        stop_group(uas, signal.SIGUSR1)
        stop_group(router)
        assert router.returncode == 0, tail(log)
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_group(proc, signal.SIGKILL)
        sink.stop()
