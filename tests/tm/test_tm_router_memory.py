"""100,000 transactions through the whole router leave nothing in memory.

The benchmark's stateful cfg (../shared/bench/kam-lb-tm.cfg: maxfwd, sanity,
record_route, ds_select_dst, t_relay, failure route) runs in one Router at fake
time. Each transaction is an OPTIONS relayed to a backend that answers 200;
every tenth backend stays silent so the fr timer, the failure route and
ds_next_dst run too. After the timers have run, the transaction table is
empty, and Python's allocated memory blocks after 100,000 transactions are as
many as after the first 20,000 (flat: nothing grows per transaction).
"""

from __future__ import annotations

import gc
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import shared_dir

from siprouter.config.loader import load
from siprouter.modules.tm import TmModule
from siprouter.routing.router import Router
from siprouter.sip.message import clear_parse_caches

COUNT = 100_000
CALLER = ("127.0.0.1", 5080)
LOCAL = ("127.0.0.1", 5060)


def make_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Router:
    bench = shared_dir() / "bench"
    monkeypatch.chdir(tmp_path)   # list_file "dispatcher.list" is relative to the cwd
    shutil.copy(bench / "kam-lb-tm.cfg", tmp_path / "kam-lb-tm.cfg")
    shutil.copy(bench / "dispatcher.list", tmp_path / "dispatcher.list")
    router = load(tmp_path / "kam-lb-tm.cfg")
    for module in router.modules.values():
        module.child_init(0)
    return router


def options(i: int) -> bytes:
    return (f"OPTIONS sip:service@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{i}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:sipp@127.0.0.1:5080>;tag={i}\r\n"
            "To: <sip:service@127.0.0.1:5060>\r\n"
            f"Call-ID: mem-{i}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


_VIAS = re.compile(rb"^(Via|From|To|Call-ID|CSeq): .*$", re.MULTILINE)


def answer(forwarded: bytes) -> bytes:
    """The backend's 200 to a request the proxy forwarded."""
    head = forwarded.split(b"\r\n\r\n", 1)[0]
    lines = [m.group(0).rstrip(b"\r") for m in _VIAS.finditer(head)]
    lines = [line + b";tag=uas" if line.startswith(b"To:") else line for line in lines]
    return b"\r\n".join([b"SIP/2.0 200 OK", *lines, b"Content-Length: 0", b"", b""])


def run(router: Router, start: int, stop: int, now: float) -> float:
    """Transactions start..stop at 1000/s of fake time; returns the time reached."""
    for i in range(start, stop):
        now += 0.001
        out = router.handle(options(i), CALLER, LOCAL, now)
        assert len(out) == 1 and out[0].dst != CALLER, out
        if i % 10 != 9:                       # every tenth backend stays silent
            backend = out[0].dst
            replies = router.handle(answer(out[0].data), backend, LOCAL, now)
            assert [r.dst for r in replies] == [CALLER]
        if i % 50 == 0:
            for timer in router.timers:
                if (due := timer.next_deadline()) is not None and due <= now:
                    timer.on_deadline(now)
    return now


def drain(router: Router, now: float) -> float:
    while True:
        deadlines = [d for t in router.timers if (d := t.next_deadline()) is not None]
        if not deadlines:
            return now
        now = max(now, min(deadlines))
        for timer in router.timers:
            timer.on_deadline(now)


def settled_blocks(router: Router, now: float) -> tuple[int, float]:
    """Allocated memory blocks once every timer has run and the bounded caches are empty."""
    now = drain(router, now + 60)
    clear_parse_caches()
    gc.collect()
    return sys.getallocatedblocks(), now


def test_100k_transactions_through_the_router_leave_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    router = make_router(tmp_path, monkeypatch)
    tm = router.modules["tm"]
    assert isinstance(tm, TmModule)
    now = run(router, 0, 20_000, 1000.0)
    base, now = settled_blocks(router, now)
    assert len(tm.table) == 0
    now = run(router, 20_000, COUNT, now)
    during = len(tm.table)
    after, now = settled_blocks(router, now)
    assert during > 1000                      # transactions did pile up in wt/fr timers
    assert len(tm.table) == 0
    assert tm.table.snapshot() == {"server": 0, "client": 0, "heap": 0}
    stats = tm.stat_values()
    assert stats["inuse_transactions"] == 0
    assert stats["created"] == stats["freed"] >= COUNT
    # flat: 80,000 more transactions left (next to) nothing behind
    assert after - base < 200, f"{after - base} more memory blocks after {COUNT - 20_000} more"
