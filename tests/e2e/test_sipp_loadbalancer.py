"""End to end: examples/loadbalancer.cfg with real SIPp UAC/UAS processes.

Everything runs on 127.0.0.1 in the 57xx port range, away from the benchmark's
5060/5070/5071/5080 (and its SIPp sockets 5100-5152) and from the conformance
corpus' 6050-6106:

    block base B (one per test): B router, B+1..B+3 UAS, B+5 UAC,
    B+6..B+9 SIPp control ports, B+10, B+14, B+18, B+22 SIPp media ports
    (each SIPp binds mp..mp+3)

The calls are INVITE/180/200/ACK/BYE/200. The proxy record-routes the
INVITE, so the ACK and the BYE come back through siprouter (loose_route) on
their way to the UAS. The SIPp scenarios in scenarios/ are the benchmark's
reorder-tolerant ones (see /work/shared/bench/README.md, pitfalls 3-6).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.procs import group_members, siprouter_cmd, udp_port_bound

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
EXAMPLE_CFG = ROOT / "examples" / "loadbalancer.cfg"
HOST = "127.0.0.1"

CALLS = 1000
RATE = 200  # calls per second: about 5 s of traffic
RECV_TIMEOUT_MS = 10_000
SIPP_TIMEOUT = 120  # seconds, hard limit for the UAC process
UAS_STOP_TIMEOUT = 20  # seconds for a UAS to finish after SIGUSR1 (soft exit)
ROUTER_READY_TIMEOUT = 20
ROUTER_STOP_TIMEOUT = 3


# --------------------------------------------------------------------------
# helpers



def require_sipp() -> str:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("SIPp is not installed (`sipp` not on PATH): the end-to-end load balancer "
                    "tests need it. Install the Debian package sip-tester "
                    "(scripts/test.sh does that).")
    return sipp



def assert_ports_free(ports: list[int]) -> None:
    busy = [p for p in ports if udp_port_bound(p)]
    if busy:
        # a previous run may still be winding down: give it a moment
        deadline = time.monotonic() + 10
        while busy and time.monotonic() < deadline:
            time.sleep(0.2)
            busy = [p for p in ports if udp_port_bound(p)]
    assert not busy, f"UDP ports {busy} on {HOST} are already in use (another test run?)"


def options_request(port: int, local_port: int, n: int) -> bytes:
    return (f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK-lbtest-{os.getpid()}-{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{HOST}:{local_port}>;tag=probe{n}\r\n"
            f"To: <sip:{HOST}:{port}>\r\n"
            f"Call-ID: lbtest-probe-{os.getpid()}-{n}@{HOST}\r\n"
            f"CSeq: {n} OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def options_ok(port: int, timeout: float = 0.3) -> bool:
    """Send one OPTIONS to the router; True on a 200 reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(timeout)
        s.sendto(options_request(port, s.getsockname()[1], int(time.monotonic() * 1000)),
                 (HOST, port))
        try:
            data, _ = s.recvfrom(65535)
        except (TimeoutError, ConnectionRefusedError):
            return False
        return data.startswith(b"SIP/2.0 200 ")


def group_alive(pgid: int, zombies: bool = True) -> bool:
    """Whether process group ``pgid`` has members (zombies count unless ``zombies`` is false)."""
    if zombies:
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    return bool(group_members(pgid, zombies=False))


def kill_group(proc: subprocess.Popen) -> None:
    """Last resort cleanup: SIGKILL our own process group, wait until it is gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    # orphaned zombies may never be reaped (PID 1 may not reap): only wait
    # for live processes, which could still hold ports
    deadline = time.monotonic() + 5
    while group_alive(proc.pid, zombies=False) and time.monotonic() < deadline:
        time.sleep(0.02)


class Router:
    """``siprouter run -f CFG`` in its own process group, cwd = the cfg's directory."""

    def __init__(self, cfg: Path, port: int):
        self.cfg = cfg
        self.port = port
        self.log_path = cfg.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        assert_ports_free([self.port])
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                siprouter_cmd() + ["run", "-f", str(self.cfg)], cwd=self.cfg.parent,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + ROUTER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"siprouter exited with {self.proc.returncode} during start-up:\n"
                            f"{self.log()}")
            if options_ok(self.port):
                return
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"siprouter did not answer OPTIONS on {HOST}:{self.port} within "
                    f"{ROUTER_READY_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> float:
        """SIGTERM to the group; assert that everything is gone within 3 s."""
        assert self.proc is not None
        proc = self.proc
        t0 = time.monotonic()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=ROUTER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"siprouter did not exit within {ROUTER_STOP_TIMEOUT} s of SIGTERM:\n"
                        f"{self.log()}")
        while group_alive(proc.pid) and time.monotonic() - t0 < ROUTER_STOP_TIMEOUT:
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        leftover = group_alive(proc.pid)
        self.kill()
        assert not leftover, f"siprouter workers outlived the supervisor:\n{self.log()}"
        assert proc.returncode == 0, (f"siprouter exited with {proc.returncode}:\n"
                                      f"{self.log()}")
        return elapsed

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)


@dataclass
class SippStats:
    created: int
    incoming: int
    success: int
    failed: int
    retrans: int
    dead_msgs: int
    out_of_call: int
    current: int
    fail_detail: dict[str, int]


def read_stat_csv(path: Path) -> SippStats:
    """The last row of a SIPp -trace_stat file (cumulative counters)."""
    assert path.exists(), f"SIPp wrote no statistics file {path}"
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    assert len(rows) >= 2, f"SIPp statistics file {path} has no data row"
    d = dict(zip(rows[0], rows[-1], strict=False))

    def num(key: str) -> int:
        try:
            return int(float(d.get(key, "0") or 0))
        except ValueError:
            return 0

    return SippStats(
        created=num("TotalCallCreated"), incoming=num("IncomingCall(C)"),
        success=num("SuccessfulCall(C)"), failed=num("FailedCall(C)"),
        retrans=num("Retransmissions(C)"), dead_msgs=num("DeadCallMsgs(C)"),
        out_of_call=num("OutOfCallMsgs(C)"), current=num("CurrentCall"),
        fail_detail={k[6:-3]: num(k) for k in d
                     if k.startswith("Failed") and k.endswith("(C)")
                     and k != "FailedCall(C)" and num(k)})


def read_counts(directory: Path, pid: int) -> dict[str, int]:
    """Last row of ``<scenario>_<pid>_counts.csv`` (-trace_counts)."""
    files = list(directory.glob(f"*_{pid}_counts.csv"))
    assert files, f"SIPp (pid {pid}) wrote no -trace_counts file in {directory}"
    with open(files[0], newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    assert len(rows) >= 2, f"{files[0]} has no data row"
    result = {}
    for key, value in zip(rows[0], rows[-1], strict=False):
        try:
            result[key] = int(value)
        except ValueError:
            pass
    return result


def count_of(counts: dict[str, int], suffix: str) -> int:
    return sum(v for k, v in counts.items() if re.fullmatch(r"\d+_" + suffix, k))


def tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"({path} missing)"


# --------------------------------------------------------------------------
# the scenario runner


@dataclass
class UasResult:
    port: int
    stats: SippStats
    invites: int
    acks: int
    byes: int
    returncode: int


@dataclass
class RunResult:
    uac: SippStats
    uac_returncode: int
    uas: list[UasResult]
    router_stop_s: float
    traffic_s: float


def make_cfg(tmp_path: Path, base: int, algorithm: str,
             destinations: list[tuple[int, int]]) -> Path:
    """Copy the example cfg and a dispatcher.list into tmp_path.

    ``destinations`` is a list of (UAS port, flags). Only the listen= line,
    the list_file path and (for the hash variant) the ds_select_dst algorithm
    differ from examples/loadbalancer.cfg.
    """
    text = EXAMPLE_CFG.read_text()
    text, n = re.subn(r"(?m)^listen=udp:127\.0\.0\.1:5060$", f"listen=udp:{HOST}:{base}", text)
    assert n == 1, "examples/loadbalancer.cfg no longer has listen=udp:127.0.0.1:5060"
    text, n = re.subn(r'"list_file", "examples/dispatcher\.list"', '"list_file", "dispatcher.list"',
                      text)
    assert n == 1, "examples/loadbalancer.cfg no longer names examples/dispatcher.list"
    if algorithm != "4":
        text, n = re.subn(r'ds_select_dst\("1", "4"\)', f'ds_select_dst("1", "{algorithm}")', text)
        assert n == 1, 'examples/loadbalancer.cfg no longer calls ds_select_dst("1", "4")'
    cfg = tmp_path / "loadbalancer.cfg"
    cfg.write_text(text)
    lines = ["# setid destination flags priority attrs"]
    lines += [f"1 sip:{HOST}:{port} {flags} 0 weight=50" for port, flags in destinations]
    (tmp_path / "dispatcher.list").write_text("\n".join(lines) + "\n")
    return cfg


def run_calls(tmp_path: Path, base: int, algorithm: str,
              destinations: list[tuple[int, int]]) -> RunResult:
    sipp = require_sipp()
    cfg = make_cfg(tmp_path, base, algorithm, destinations)
    uas_ports = [port for port, _flags in destinations]
    uac_port = base + 5
    control = [base + 6 + i for i in range(len(uas_ports) + 1)]
    media = [base + 10 + 4 * i for i in range(len(uas_ports) + 1)]
    all_ports = [base, uac_port, *uas_ports, *control]
    for mp in media:
        all_ports += range(mp, mp + 4)
    assert len(set(all_ports)) == len(all_ports), "port plan overlaps"
    assert_ports_free(all_ports)

    common = ["-i", HOST, "-nostdin", "-trace_stat", "-fd", "1",
              "-recv_timeout", str(RECV_TIMEOUT_MS)]
    router = Router(cfg, base)
    uases: list[subprocess.Popen] = []
    uac: subprocess.Popen | None = None
    try:
        router.start()
        for i, port in enumerate(uas_ports):
            argv = [sipp, "-sf", str(SCENARIOS / "uas-call.xml"), "-p", str(port),
                    "-mp", str(media[i + 1]), "-cp", str(control[i]), "-trace_counts",
                    "-stf", str(tmp_path / f"uas{i}.csv"), *common]
            with open(tmp_path / f"uas{i}.out", "wb") as out:
                uases.append(subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + 10
        while not all(udp_port_bound(p) for p in uas_ports):
            for i, p in enumerate(uases):
                if p.poll() is not None:
                    pytest.fail(f"SIPp UAS on {uas_ports[i]} exited with {p.returncode}:\n"
                                f"{tail(tmp_path / f'uas{i}.out')}")
            if time.monotonic() > deadline:
                pytest.fail(f"SIPp UAS did not bind {uas_ports}")
            time.sleep(0.05)

        argv = [sipp, f"{HOST}:{base}", "-sf", str(SCENARIOS / "uac-call.xml"),
                "-p", str(uac_port), "-mp", str(media[0]), "-cp", str(control[-1]),
                "-r", str(RATE), "-m", str(CALLS), "-timeout", f"{SIPP_TIMEOUT - 10}s",
                "-timeout_error", "-stf", str(tmp_path / "uac.csv"), *common]
        t0 = time.monotonic()
        with open(tmp_path / "uac.out", "wb") as out:
            uac = subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            uac_rc = uac.wait(timeout=SIPP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"SIPp UAC still running after {SIPP_TIMEOUT} s:\n"
                        f"{tail(tmp_path / 'uac.out')}")
        traffic_s = time.monotonic() - t0

        # SIGUSR1 = soft exit: the UAS finish their calls (timewait) and write
        # their final statistics
        for p in uases:
            try:
                os.kill(p.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        uas_rcs = []
        for i, p in enumerate(uases):
            try:
                uas_rcs.append(p.wait(timeout=UAS_STOP_TIMEOUT))
            except subprocess.TimeoutExpired:
                pytest.fail(f"SIPp UAS on {uas_ports[i]} did not exit after SIGUSR1:\n"
                            f"{tail(tmp_path / f'uas{i}.out')}")
        router_stop_s = router.stop()
    finally:
        for p in [*uases, *([uac] if uac else [])]:
            if p.poll() is None:
                kill_group(p)
        router.kill()

    uas_results = []
    for i, p in enumerate(uases):
        counts = read_counts(tmp_path, p.pid)
        uas_results.append(UasResult(
            port=uas_ports[i], stats=read_stat_csv(tmp_path / f"uas{i}.csv"),
            invites=count_of(counts, "INVITE_Recv"), acks=count_of(counts, "ACK_Recv"),
            byes=count_of(counts, "BYE_Recv"), returncode=uas_rcs[i]))
    return RunResult(uac=read_stat_csv(tmp_path / "uac.csv"), uac_returncode=uac_rc,
                     uas=uas_results, router_stop_s=router_stop_s, traffic_s=traffic_s)


def describe(tmp_path: Path, result: RunResult) -> str:
    lines = [f"UAC rc={result.uac_returncode} {result.uac}"]
    for u in result.uas:
        lines.append(f"UAS :{u.port} rc={u.returncode} invites={u.invites} acks={u.acks} "
                     f"byes={u.byes} {u.stats}")
    lines.append("--- uac.out ---\n" + tail(tmp_path / "uac.out", 2500))
    lines.append("--- router log ---\n" + tail(tmp_path / "loadbalancer.log", 2500))
    return "\n".join(lines)


def assert_all_calls_ok(tmp_path: Path, result: RunResult) -> None:
    info = describe(tmp_path, result)
    print(info)
    uac = result.uac
    assert result.uac_returncode == 0, f"SIPp UAC exit code {result.uac_returncode}\n{info}"
    assert uac.created == CALLS, info
    assert uac.success == CALLS and uac.failed == 0, info
    assert sum(u.stats.success for u in result.uas) == CALLS, info
    for u in result.uas:
        assert u.returncode == 0, f"SIPp UAS :{u.port} exit code {u.returncode}\n{info}"
        assert u.stats.failed == 0, info
        assert u.stats.incoming == u.stats.success == u.invites == u.byes, info
        # the ACK is optional in the UAS scenario (it may be overtaken by the
        # BYE): check here that every call's ACK did arrive
        assert u.acks == u.stats.success, f"ACKs missing at UAS :{u.port}\n{info}"
    assert result.router_stop_s < ROUTER_STOP_TIMEOUT, info


# --------------------------------------------------------------------------
# tests


def test_round_robin_two_backends(tmp_path: Path) -> None:
    base = 5700
    result = run_calls(tmp_path, base, "4", [(base + 1, 0), (base + 2, 0)])
    assert_all_calls_ok(tmp_path, result)
    a, b = (u.stats.success for u in result.uas)
    # one round-robin pointer shared by all workers: an exact alternation,
    # give or take a few retransmitted INVITEs (re-dispatched statelessly)
    assert abs(a - CALLS / 2) <= 10 and abs(b - CALLS / 2) <= 10, (
        f"round robin split {a}/{b}, expected 500/500\n{describe(tmp_path, result)}")


def test_round_robin_one_backend_disabled(tmp_path: Path) -> None:
    base = 5730
    result = run_calls(tmp_path, base, "4", [(base + 1, 0), (base + 2, 4)])
    assert_all_calls_ok(tmp_path, result)
    enabled, disabled = result.uas
    assert enabled.stats.success == CALLS, describe(tmp_path, result)
    assert disabled.stats.incoming == 0 and disabled.invites == 0, (
        f"the disabled destination (flag 4) got calls\n{describe(tmp_path, result)}")


def test_hash_three_backends_one_disabled_spreads_fairly(tmp_path: Path) -> None:
    """alg 0 (hash over Call-ID), middle destination disabled.

    Kamailio 4.4.7/5.x hands the disabled destination's whole hash share to
    the next destination in the set (about 2/3 : 1/3). siprouter (divergence
    D1-fair-dispatch) spreads it, so both usable destinations get about half.
    """
    base = 5760
    result = run_calls(tmp_path, base, "0", [(base + 1, 0), (base + 2, 4), (base + 3, 0)])
    assert_all_calls_ok(tmp_path, result)
    first, disabled, last = result.uas
    info = describe(tmp_path, result)
    assert disabled.stats.incoming == 0 and disabled.invites == 0, (
        f"the disabled destination (flag 4) got calls\n{info}")
    assert first.stats.success + last.stats.success == CALLS, info
    for u in (first, last):
        share = u.stats.success / CALLS
        assert abs(share - 0.5) <= 0.05, (
            f"UAS :{u.port} got {u.stats.success} of {CALLS} calls ({share:.1%}); the two "
            f"usable destinations should each get 50% +/- 5%\n{info}")
