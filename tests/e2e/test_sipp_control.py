"""End to end: steering a running router with ``siprouter ctl`` under SIPp load.

examples/loadbalancer-failover.cfg (2 workers), SIPp UAC -> siprouter -> SIPp UAS:

* ``dispatcher.set_state ip 1 sip:...`` stops traffic to that destination at
  once: its INVITE count does not move after the command returned;
* ``dispatcher.reload`` after editing the list file (and, with ``db_url``,
  after changing the PostgreSQL table) takes effect under load: the added
  destination gets calls, the removed one none, and no call fails.

Ports: block 58760-58799 (router 58760, UAS 58761-58763, UAC 58765,
SIPp control 58770-58774, media 58780+).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from pg import PostgresServer

from tests.e2e.procs import udp_port_bound
from tests.e2e.test_sipp_failover import EXAMPLE_CFG, Sipp, ctl
from tests.e2e.test_sipp_loadbalancer import (
    HOST,
    SCENARIOS,
    Router,
    assert_ports_free,
    count_of,
    read_counts,
    require_sipp,
)

BASE = 58760
UAS_PORTS = [BASE + 1, BASE + 2, BASE + 3]


def make_cfg(tmp_path: Path, source: str, ping_interval: int = 1) -> tuple[Path, str]:
    """The failover example on test ports; ``source`` = the dispatcher modparam lines."""
    address = f"unix:{tmp_path}/ctl.sock"
    text = EXAMPLE_CFG.read_text()
    for pattern, value in [
        (r"(?m)^listen=udp:127\.0\.0\.1:5060$", f"listen=udp:{HOST}:{BASE}"),
        (r"(?m)^listen=tcp:127\.0\.0\.1:5090$", f"listen=tcp:{HOST}:{BASE + 39}"),
        (r'(?m)^modparam\("dispatcher", "list_file", "examples/dispatcher-failover\.list"\)$',
         source),
        (r'"binrpc", "unix:/tmp/siprouter_ctl"\)', f'"binrpc", "{address}")'),
        (r'"ds_ping_interval", 2\)', f'"ds_ping_interval", {ping_interval})'),
    ]:
        text, n = re.subn(pattern, value, text)
        assert n == 1, f"examples/loadbalancer-failover.cfg no longer matches {pattern}"
    cfg = tmp_path / "loadbalancer.cfg"
    cfg.write_text(text + '\nmodparam("dispatcher", "reload_delta", 1)\n')
    return cfg, address


def write_list(path: Path, ports: list[int]) -> None:
    path.write_text("".join(f"1 sip:{HOST}:{port} 0 0\n" for port in ports))


class Bed:
    """Router + three UAS + one UAC sending ``calls`` calls at ``rate``."""

    def __init__(self, tmp_path: Path, cfg: Path, address: str) -> None:
        self.tmp_path = tmp_path
        self.address = address
        self.sipp = require_sipp()
        self.control = list(range(BASE + 10, BASE + 15))
        self.media = [BASE + 20 + 4 * i for i in range(5)]
        ports = [BASE, *UAS_PORTS, BASE + 5, *self.control]
        ports += [p + k for p in self.media for k in range(4)]
        assert_ports_free(ports)
        self.common = ["-i", HOST, "-nostdin", "-trace_stat", "-fd", "1",
                       "-recv_timeout", "15000"]
        self.router = Router(cfg, BASE)
        self.procs: list[Sipp] = []

    def start_uas(self) -> list[Sipp]:
        uases = []
        for i, port in enumerate(UAS_PORTS):
            uases.append(Sipp(self.tmp_path, f"uas{i}", [
                self.sipp, "-sf", str(SCENARIOS / "uas-call.xml"), "-p", str(port),
                "-mp", str(self.media[i]), "-cp", str(self.control[i]), "-aa",
                "-trace_counts", "-stf", str(self.tmp_path / f"uas{i}.csv"), *self.common]))
        self.procs += uases
        deadline = time.monotonic() + 10
        while not all(udp_port_bound(p) for p in UAS_PORTS):
            assert time.monotonic() < deadline, "SIPp UAS did not bind"
            time.sleep(0.05)
        return uases

    def start_uac(self, rate: int, calls: int) -> Sipp:
        uac = Sipp(self.tmp_path, "uac", [
            self.sipp, f"{HOST}:{BASE}", "-sf", str(SCENARIOS / "uac-call.xml"),
            "-p", str(BASE + 5), "-mp", str(self.media[4]), "-cp", str(self.control[4]),
            "-r", str(rate), "-m", str(calls), "-timeout", "100s", "-timeout_error",
            "-stf", str(self.tmp_path / "uac.csv"), *self.common])
        self.procs.append(uac)
        return uac

    def invites(self, uas: Sipp) -> int:
        """INVITEs received so far (SIPp rewrites -trace_counts every second)."""
        return count_of(read_counts(self.tmp_path, uas.proc.pid), "INVITE_Recv")

    def close(self) -> None:
        for p in self.procs:
            p.kill()
        self.router.kill()


def run_reload(tmp_path: Path, cfg: Path, address: str,
               change_source: Callable[[list[int]], None]) -> None:
    """Under load: swap UAS 3 for UAS 2 in the source, reload, check the effect."""
    bed = Bed(tmp_path, cfg, address)
    try:
        bed.router.start()
        uases = bed.start_uas()
        uac = bed.start_uac(40, 480)            # 12 s of calls
        time.sleep(4)
        change_source([UAS_PORTS[0], UAS_PORTS[2]])
        assert ctl(address, "dispatcher.reload") == "Ok. Dispatcher successfully reloaded."
        time.sleep(1.5)
        before = bed.invites(uases[1])
        assert uac.wait(60) == 0, uac.output()
        stats = uac.stats()
        assert stats.success == 480 and stats.failed == 0, (stats, bed.router.log())
        for p in uases:
            assert p.soft_stop() in (0, 1), p.output()   # 1: probes count as failed calls
        assert bed.invites(uases[1]) == before, "the removed destination still got calls"
        assert bed.invites(uases[2]) > 0
        listing = ctl(address, "dispatcher.list")
        uris = [t["DEST"]["URI"] for r in listing["RECORDS"]  # type: ignore[index]
                for t in r["SET"]["TARGETS"]]
        assert sorted(uris) == [f"sip:{HOST}:{UAS_PORTS[0]}", f"sip:{HOST}:{UAS_PORTS[2]}"]
        bed.router.stop()
    finally:
        bed.close()


def test_set_state_stops_traffic_to_a_destination_at_once(tmp_path: Path) -> None:
    list_file = tmp_path / "dispatcher.list"
    write_list(list_file, UAS_PORTS)
    # no probing here: the destination answers, so probes would bring it back
    cfg, address = make_cfg(tmp_path, f'modparam("dispatcher", "list_file", "{list_file}")',
                            ping_interval=0)
    bed = Bed(tmp_path, cfg, address)
    try:
        bed.router.start()
        uases = bed.start_uas()
        uac = bed.start_uac(40, 400)            # 10 s of calls
        time.sleep(3)
        reply = ctl(address, "dispatcher.set_state", "ip", "1", f"sip:{HOST}:{UAS_PORTS[2]}")
        assert reply == "Ok. Dispatcher state updated."
        assert ctl_flags(address, UAS_PORTS[2]) == "IP"
        time.sleep(1.5)                          # one -trace_counts period
        frozen = bed.invites(uases[2])
        assert frozen > 0
        assert uac.wait(60) == 0, uac.output()
        stats = uac.stats()
        assert stats.success == 400 and stats.failed == 0, stats
        for p in uases:
            assert p.soft_stop() in (0, 1), p.output()   # 1: probes count as failed calls
        assert bed.invites(uases[2]) == frozen, "traffic went on to the inactive destination"
        assert bed.invites(uases[0]) + bed.invites(uases[1]) + frozen == 400
        # the operator brings it back: probing keeps it active (it answers OPTIONS)
        bed.router.stop()
    finally:
        bed.close()


def ctl_flags(address: str, port: int) -> str:
    from tests.e2e.test_sipp_failover import flags_of

    return flags_of(address, port)


def test_reload_from_the_list_file_under_load(tmp_path: Path) -> None:
    list_file = tmp_path / "dispatcher.list"
    write_list(list_file, UAS_PORTS[:2])
    cfg, address = make_cfg(tmp_path, f'modparam("dispatcher", "list_file", "{list_file}")')
    run_reload(tmp_path, cfg, address, lambda ports: write_list(list_file, ports))


def test_reload_from_postgresql_under_load(tmp_path: Path, postgres: PostgresServer) -> None:
    from siprouter.modules.dispatcher.db import create_schema

    dbname = "dispatcher_e2e"
    url = postgres.create_database(dbname)
    create_schema(url, [(1, f"sip:{HOST}:{p}", 0, 0, "") for p in UAS_PORTS[:2]])
    cfg, address = make_cfg(tmp_path, f'modparam("dispatcher", "db_url", "{url}")')

    def change(ports: list[int]) -> None:
        with postgres.connect(dbname) as conn:
            with conn.transaction():
                conn.execute("DELETE FROM dispatcher")
                for port in ports:
                    conn.execute("INSERT INTO dispatcher (setid, destination, flags, priority, "
                                 "attrs) VALUES (1, %s, 0, 0, '')", (f"sip:{HOST}:{port}",))

    run_reload(tmp_path, cfg, address, change)
