"""End to end: examples/loadbalancer-failover.cfg with SIPp, a backend killed mid-run.

SIPp UAC -> siprouter (tm + dispatcher failover + OPTIONS probing, 2 workers)
-> three SIPp UAS. The middle UAS is SIGKILLed while calls flow:

* calls lost at the moment of the kill (established calls whose BYE can no
  longer reach the dead UAS) are counted and bounded by the calls in progress;
* every call started after the kill completes through failover;
* probing marks the dead UAS inactive (``IP`` in ``dispatcher.list``) and,
  once it is restarted, active again (``AP``); the dst-down and dst-up event
  routes ran (their xlog lines are in the log);
* after that, new calls reach all three UAS again.

Ports: block 58720-58759 (router 58720, UAS 58721-58723, UACs 58725-58727,
SIPp control 58730-58736, media 58740+).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.procs import siprouter_cmd, udp_port_bound
from tests.e2e.test_sipp_loadbalancer import (
    HOST,
    SCENARIOS,
    Router,
    SippStats,
    assert_ports_free,
    count_of,
    kill_group,
    read_counts,
    read_stat_csv,
    require_sipp,
    tail,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CFG = ROOT / "examples" / "loadbalancer-failover.cfg"

BASE = 58720
UAS_PORTS = [BASE + 1, BASE + 2, BASE + 3]
KILLED = 1                      # index of the UAS that dies
PING_INTERVAL = 1               # s
PROBING_THRESHOLD = 2
INACTIVE_THRESHOLD = 2
FR_TIMER_MS = 1000


def make_cfg(tmp_path: Path) -> tuple[Path, str]:
    """The example cfg with test ports, faster probing and a private ctl socket."""
    ctl = f"unix:{tmp_path}/ctl.sock"
    text = EXAMPLE_CFG.read_text()
    replacements = [
        (r"(?m)^listen=udp:127\.0\.0\.1:5060$", f"listen=udp:{HOST}:{BASE}"),
        (r"(?m)^listen=tcp:127\.0\.0\.1:5090$", f"listen=tcp:{HOST}:{BASE + 39}"),
        (r'"list_file", "examples/dispatcher-failover\.list"', '"list_file", "dispatcher.list"'),
        (r'"ds_ping_interval", 2\)', f'"ds_ping_interval", {PING_INTERVAL})'),
        (r'"fr_timer", 2000\)', f'"fr_timer", {FR_TIMER_MS})'),
        (r'"binrpc", "unix:/tmp/siprouter_ctl"\)', f'"binrpc", "{ctl}")'),
    ]
    for pattern, value in replacements:
        text, n = re.subn(pattern, value, text)
        assert n == 1, f"examples/loadbalancer-failover.cfg no longer matches {pattern}"
    assert f'"ds_probing_threshold", {PROBING_THRESHOLD})' in text
    assert f'"ds_inactive_threshold", {INACTIVE_THRESHOLD})' in text
    cfg = tmp_path / "loadbalancer.cfg"
    cfg.write_text(text)
    lines = ["# setid destination flags priority attrs"]
    lines += [f"1 sip:{HOST}:{port} 0 0" for port in UAS_PORTS]
    (tmp_path / "dispatcher.list").write_text("\n".join(lines) + "\n")
    return cfg, ctl


def ctl(address: str, *args: str) -> object:
    out = subprocess.run(siprouter_cmd() + ["ctl", "-s", address, *args], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, f"siprouter ctl {args} failed: {out.stdout}{out.stderr}"
    return json.loads(out.stdout)


def flags_of(address: str, port: int) -> str:
    listing = ctl(address, "dispatcher.list")
    assert isinstance(listing, dict)
    for record in listing["RECORDS"]:
        for target in record["SET"]["TARGETS"]:
            if target["DEST"]["URI"] == f"sip:{HOST}:{port}":
                return str(target["DEST"]["FLAGS"])
    raise AssertionError(f"sip:{HOST}:{port} not in dispatcher.list: {listing}")


def wait_for_flags(address: str, port: int, first_letter: str, timeout: float) -> float:
    """Seconds until the destination's FLAGS start with ``first_letter``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if flags_of(address, port).startswith(first_letter):
            return time.monotonic() - t0
        time.sleep(0.1)
    pytest.fail(f"sip:{HOST}:{port} did not become {first_letter}* within {timeout} s "
                f"(now {flags_of(address, port)})")


class Sipp:
    """One SIPp process in its own process group, with its output files in tmp_path."""

    def __init__(self, tmp_path: Path, name: str, argv: list[str]) -> None:
        self.name = name
        self.tmp_path = tmp_path
        with open(tmp_path / f"{name}.out", "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return tail(self.tmp_path / f"{self.name}.out")

    def stats(self) -> SippStats:
        return read_stat_csv(self.tmp_path / f"{self.name}.csv")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"SIPp {self.name} still running after {timeout} s:\n{self.output()}")

    def soft_stop(self) -> int:
        os.kill(self.proc.pid, signal.SIGUSR1)
        return self.wait(20)

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_group(self.proc)


def max_current_calls(path: Path) -> int:
    """The largest CurrentCall value in a SIPp -trace_stat file (calls in progress)."""
    rows = [line.split(";") for line in path.read_text().splitlines() if line]
    column = rows[0].index("CurrentCall")
    return max(int(row[column]) for row in rows[1:] if len(row) > column)


def test_backend_killed_mid_run_calls_fail_over_and_probing_follows(tmp_path: Path) -> None:
    sipp = require_sipp()
    cfg, address = make_cfg(tmp_path)
    uac_ports = [BASE + 5, BASE + 6, BASE + 7]
    control = list(range(BASE + 10, BASE + 17))
    media = [BASE + 20 + 4 * i for i in range(7)]
    ports = [BASE, *UAS_PORTS, *uac_ports, *control] + [p + k for p in media for k in range(4)]
    assert len(set(ports)) == len(ports)
    assert_ports_free(ports)
    common = ["-i", HOST, "-nostdin", "-trace_stat", "-fd", "1"]
    # a UAS "call" that is only a probe (OPTIONS, answered by -aa) ends by this timeout
    uas_timeout = ["-recv_timeout", "4000"]
    uac_timeout = ["-recv_timeout", "15000"]

    def uas(i: int, tag: str) -> Sipp:
        return Sipp(tmp_path, f"uas{i}{tag}", [
            sipp, "-sf", str(SCENARIOS / "uas-call.xml"), "-p", str(UAS_PORTS[i]),
            "-mp", str(media[i]), "-cp", str(control[i]), "-aa", "-trace_counts",
            "-stf", str(tmp_path / f"uas{i}{tag}.csv"), *common, *uas_timeout])

    def uac(n: int, scenario: str, rate: int, calls: int) -> Sipp:
        return Sipp(tmp_path, f"uac{n}", [
            sipp, f"{HOST}:{BASE}", "-sf", str(SCENARIOS / scenario), "-p", str(uac_ports[n]),
            "-mp", str(media[4 + n]), "-cp", str(control[4 + n]), "-r", str(rate),
            "-m", str(calls), "-timeout", "100s", "-timeout_error",
            "-stf", str(tmp_path / f"uac{n}.csv"), *common, *uac_timeout])

    router = Router(cfg, BASE)
    procs: list[Sipp] = []
    try:
        router.start()
        uases = [uas(i, "") for i in range(3)]
        procs += uases
        deadline = time.monotonic() + 10
        while not all(udp_port_bound(p) for p in UAS_PORTS):
            assert time.monotonic() < deadline, "SIPp UAS did not bind"
            time.sleep(0.05)
        for port in UAS_PORTS:
            wait_for_flags(address, port, "A", 10)

        # phase 1: calls held 1 s flow over all three UAS; kill the middle one
        first = uac(0, "uac-call-hold.xml", 30, 600)       # 20 s of calls
        procs.append(first)
        time.sleep(6)
        os.kill(uases[KILLED].proc.pid, signal.SIGKILL)
        uases[KILLED].proc.wait()
        # phase 2: calls started after the kill must all complete
        second = uac(1, "uac-call.xml", 20, 200)
        procs.append(second)
        # probing (and the failure route's ds_mark_dst) take it out
        down_after = wait_for_flags(address, UAS_PORTS[KILLED], "I",
                                    PING_INTERVAL * (PROBING_THRESHOLD + 1) + FR_TIMER_MS / 1000
                                    + 2)
        assert second.wait(60) == 0, second.output()
        assert first.wait(60) in (0, 1), first.output()   # 1: some calls failed (checked below)
        after, during = second.stats(), first.stats()
        assert after.created == 200 and after.success == 200 and after.failed == 0, (
            f"calls started after the kill: {after}\n{second.output()}\n{router.log()}")
        in_flight = max_current_calls(tmp_path / "uac0.csv")
        assert during.success + during.failed == 600, during
        assert during.failed <= in_flight, (during, in_flight)
        print(f"kill: {during.failed} calls lost, bound {in_flight} in progress; "
              f"inactive after {down_after:.1f} s")

        # the UAS comes back: two answered probes make it active again
        revived = uas(KILLED, "-restarted")
        procs.append(revived)
        up_after = wait_for_flags(address, UAS_PORTS[KILLED], "A",
                                  PING_INTERVAL * (INACTIVE_THRESHOLD + 2) + 3)
        print(f"active again {up_after:.1f} s after the restart")
        log = router.log_path.read_text(errors="replace")
        dead = f"sip:{HOST}:{UAS_PORTS[KILLED]}"
        assert re.search(rf"destination down: .*{dead}\b", log), log[-3000:]
        assert re.search(rf"destination up: {dead}\b", log), log[-3000:]

        # phase 3: new calls reach every UAS again
        third = uac(2, "uac-call.xml", 30, 90)
        procs.append(third)
        assert third.wait(60) == 0, third.output()
        assert third.stats().success == 90
        live = [uases[0], revived, uases[2]]
        for p in live:
            # exit status 1: SIPp also counts each probe (OPTIONS, answered by -aa) as a
            # call that then times out waiting for an INVITE
            assert p.soft_stop() in (0, 1), p.output()
        for p in live:
            counts = read_counts(tmp_path, p.proc.pid)
            assert count_of(counts, "INVITE_Recv") > 0, (p.name, counts)
        router.stop()
    finally:
        for p in procs:
            p.kill()
        router.kill()
