"""SharedStats: per-process blocks in shared memory, summed by another process."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from siprouter.config.loader import load
from siprouter.modules.base import Exports, Module
from siprouter.routing.router import Router
from siprouter.rpc.stats import SharedStats

CFG = """
loadmodule "sl.so"
request_route { sl_send_reply("200", "OK"); }
"""


class GaugeModule(Module):
    """A module with one counter and one gauge (like tm's transactions in memory)."""

    exports = Exports(name="gm", stats=("created", "inuse"))
    stat_gauges = ("inuse",)

    def __init__(self, router: Router) -> None:
        super().__init__(router)
        self.values = {"created": 0, "inuse": 0}

    def stat_values(self) -> dict[str, int]:
        return dict(self.values)


@pytest.fixture
def router(tmp_path: Path) -> Router:
    cfg = tmp_path / "stats.cfg"
    cfg.write_text(CFG)
    router = load(cfg)
    router.modules["gm"] = GaugeModule(router)
    return router


def in_child(router: Router, rank: int, body: Callable[[Router], None]) -> None:
    """Fork, run ``body`` as process ``rank``, wait; fail when the child failed."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            router.rank = rank
            body(router)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child rank {rank} failed"


def count(requests: int, replies: int, created: int = 0, inuse: int = 0
          ) -> Callable[[Router], None]:
    def body(router: Router) -> None:
        router.stats.values["rcv_requests"] += requests
        router.modules["sl"].stats["200_replies"] += replies   # type: ignore[attr-defined]
        gm = router.modules["gm"]
        assert isinstance(gm, GaugeModule)
        gm.values["created"] += created
        gm.values["inuse"] += inuse
        stats = router.shared["stats"]
        assert isinstance(stats, SharedStats)
        stats.publisher(router, router.rank).publish()
    return body


def test_names_are_kamailio_groups(router: Router) -> None:
    keys = SharedStats.create(router, 2).keys
    assert ("core", "rcv_requests") in keys
    assert ("sl", "200_replies") in keys and ("sl", "received_ACKs") in keys
    assert ("gm", "inuse") in keys


def test_blocks_of_two_processes_are_summed(router: Router) -> None:
    stats = SharedStats.create(router, 2)
    router.shared["stats"] = stats
    in_child(router, 1, count(10, 7))
    in_child(router, 2, count(5, 4))
    totals = stats.totals()
    assert totals[("core", "rcv_requests")] == 15
    assert totals[("sl", "200_replies")] == 11
    assert totals[("core", "fwd_requests")] == 0
    pids = {stats.pid(stats.block(1)), stats.pid(stats.block(2))}
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_restarted_process_continues_its_predecessors_counts(router: Router) -> None:
    stats = SharedStats.create(router, 2)
    router.shared["stats"] = stats
    in_child(router, 1, count(10, 0, created=3, inuse=3))
    in_child(router, 1, count(2, 0, created=1, inuse=1))      # worker 1 restarted
    totals = stats.totals()
    assert totals[("core", "rcv_requests")] == 12
    assert totals[("gm", "created")] == 4
    assert totals[("gm", "inuse")] == 1       # a gauge: the dead process's value is gone


def test_reset_is_seen_by_every_process_and_spares_gauges(router: Router) -> None:
    stats = SharedStats.create(router, 2)
    router.shared["stats"] = stats
    in_child(router, 1, count(10, 10, created=2, inuse=2))
    stats.reset(stats.keys)
    assert stats.totals()[("core", "rcv_requests")] == 0
    assert stats.totals()[("gm", "inuse")] == 2
    in_child(router, 2, count(3, 1))
    totals = stats.totals()
    assert totals[("core", "rcv_requests")] == 3
    assert totals[("sl", "200_replies")] == 1


def test_reset_of_one_group_only(router: Router) -> None:
    stats = SharedStats.create(router, 1)
    router.shared["stats"] = stats
    in_child(router, 1, count(4, 4))
    stats.reset([key for key in stats.keys if key[0] == "sl"])
    totals = stats.totals()
    assert totals[("sl", "200_replies")] == 0
    assert totals[("core", "rcv_requests")] == 4


def test_control_block_is_the_last(router: Router) -> None:
    stats = SharedStats.create(router, 3)
    assert [stats.block(rank) for rank in (0, 1, 3, -1)] == [0, 1, 3, 4]
    assert stats.rank_of(4) == -1
