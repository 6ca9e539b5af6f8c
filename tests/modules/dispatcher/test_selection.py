"""Selection algorithms, failover order, D1 fair dispatch and shared counters."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import random
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from siprouter.modules.dispatcher.destinations import (
    DISABLED,
    INACTIVE,
    PROBING,
    TRYING,
    DestinationSet,
    DispatcherList,
    parse_list_text,
)
from siprouter.modules.dispatcher.hashing import (
    hash_auth_username,
    hash_callid,
    hash_pv_value,
    hash_uri,
)
from siprouter.modules.dispatcher.selection import (
    COUNTERS_PER_SET,
    RR_POINTER,
    LocalCounters,
    ProcessSharedCounters,
    SharedCounters,
    counter_index,
    failover_order,
    select,
)

# Copy of /work/shared/conformance/cfg/dispatcher.list.
CONFORMANCE_LIST = """\
1 sip:127.0.0.1:6101 0 20 weight=50
1 sip:127.0.0.1:6102 4 30 weight=20
1 sip:127.0.0.1:6103 0 10 weight=30
2 sip:127.0.0.1:6101 0 0 weight=20
2 sip:127.0.0.1:6102 0 0 weight=30
2 sip:127.0.0.1:6103 0 0 weight=50
3 sip:127.0.0.1:6103 4 0
4 sip:127.0.0.1:6101 0 5
4 sip:127.0.0.1:6102 0 5
4 sip:127.0.0.1:6103 0 1
"""

# Spec §1.1 set 1: internal order [7024, 7023, 7022, 7021].
FOUR = "".join(f"1 sip:127.0.0.1:{port} 0 0\n" for port in (7021, 7022, 7023, 7024))

# Hash keys for every hash algorithm, built with the same helpers the glue uses.
HASH_KEYS: dict[int, Callable[[int], int | None]] = {
    0: lambda k: hash_callid(f"{k:08x}-{k * 7919}@10.0.0.1"),
    1: lambda k: hash_uri(f"user{k}", "example.com"),
    2: lambda k: hash_uri(f"+4930{k:06d}", "pbx.example.net", "5070"),
    3: lambda k: hash_uri(str(1000 + k), "10.1.2.3"),
    5: lambda k: hash_auth_username(f"sub{k}@realm.example"),
    7: lambda k: hash_pv_value(f"tenant-{k}-{k % 7}"),
}


def conformance() -> DispatcherList:
    return parse_list_text(CONFORMANCE_LIST, "dispatcher.list", seed=11)


def three(disabled: int | None = None, weights: str = "") -> DestinationSet:
    """Internal order 7000, 7001, 7002 (equal priority); ``disabled`` is an index."""
    lines = [
        f"1 sip:127.0.0.1:{7000 + i} {4 if i == disabled else 0} 0 {weights}"
        for i in reversed(range(3))
    ]
    dset = parse_list_text("\n".join(lines), seed=5).sets[1]
    assert [d.port for d in dset] == [7000, 7001, 7002]
    return dset


def pick(dset: DestinationSet, alg: int, counters: SharedCounters, key: int | None = None) -> int:
    chosen = select(dset, alg, lambda: key, counters)
    assert chosen is not None
    return chosen[0].port


def picks(
    dset: DestinationSet, alg: int, calls: int, counters: SharedCounters | None = None
) -> list[int]:
    counters = counters or LocalCounters()
    return [pick(dset, alg, counters) for _ in range(calls)]


# --------------------------------------------------------------------------- round robin (4)


def test_round_robin_set1_alternates_6101_6103() -> None:
    assert picks(conformance().sets[1], 4, 6) == [6101, 6103] * 3


def test_round_robin_starts_at_index_0() -> None:
    assert picks(conformance().sets[2], 4, 4) == [6103, 6102, 6101, 6103]


def test_round_robin_spec_sequence_and_failover_lists() -> None:
    dset = parse_list_text(FOUR).sets[1]
    counters = LocalCounters()
    assert pick(dset, 4, counters) == 7024  # pointer starts at 0
    dset[1].set_state(DISABLED)  # 7023
    lists = [[d.port for d in select(dset, 4, None, counters) or []] for _ in range(2)]
    assert lists == [[7022, 7021, 7024], [7021, 7024, 7022]]  # spec §7, verified on 5.6.3
    assert picks(dset, 4, 6, counters) == [7024, 7022, 7021] * 2


def test_round_robin_window_property_r1() -> None:
    dset = parse_list_text(FOUR).sets[1]
    dset[1].set_state(DISABLED)
    seq = picks(dset, 4, 3 * 40)
    for start in range(0, len(seq) - 3 + 1):
        assert sorted(seq[start : start + 3]) == [7021, 7022, 7024]  # each once per window
    assert all(a != b for a, b in zip(seq, seq[1:], strict=False))


def test_runtime_disable_behaves_like_flag_4_and_reenable_restores_r3() -> None:
    from_file = parse_list_text(FOUR.replace("7023 0 0", "7023 4 0")).sets[1]
    at_runtime = parse_list_text(FOUR).sets[1]
    at_runtime[1].set_state(DISABLED)
    assert picks(from_file, 4, 9) == picks(at_runtime, 4, 9)
    counters = LocalCounters()
    assert picks(at_runtime, 4, 2, counters) == [7024, 7022]
    at_runtime[1].set_state(0)
    assert picks(at_runtime, 4, 8, counters) == [7021, 7024, 7023, 7022] * 2


def test_alg5_without_credentials_is_round_robin_on_the_same_pointer() -> None:
    dset = conformance().sets[2]
    counters = LocalCounters()
    seq = [pick(dset, alg, counters) for alg in (4, 5, 4, 5, 5, 4)]
    assert seq == [6103, 6102, 6101, 6103, 6102, 6101]


# --------------------------------------------------------------------------- serial (8), unknown


def test_priority_alg8_takes_first_usable() -> None:
    dlist = conformance()
    assert picks(dlist.sets[4], 8, 3) == [6102] * 3
    assert picks(dlist.sets[1], 8, 3) == [6101] * 3  # 6102 (prio 30) is disabled
    chosen = select(dlist.sets[1], 8, None, LocalCounters())
    assert [d.port for d in chosen or []] == [6101, 6103]


def test_unknown_algorithm_uses_index_0_and_runtime_algorithms_need_runtime() -> None:
    dset = conformance().sets[1]
    assert picks(dset, 99, 2) == [6101, 6101]
    assert picks(dset, 12, 2) == [6101, 6101]  # alg 12 selects the first usable one
    for alg in (10, 13):  # call loads / latency estimates come from the shared state
        with pytest.raises(ValueError, match="needs the run-time"):
            select(dset, alg, None, LocalCounters())


# --------------------------------------------------------------------------- hash (0,1,2,3,5,7)


def test_hash_index_is_hash_mod_n() -> None:
    dset = conformance().sets[2]  # [6103, 6102, 6101], all usable
    counters = LocalCounters()
    for k in range(50):
        h = hash_callid(f"call-{k}")
        assert pick(dset, 0, counters, h) == [6103, 6102, 6101][h % 3]


def test_missing_hash_key_fails_except_alg5() -> None:
    dset = conformance().sets[2]
    for alg in (0, 1, 2, 3, 7):
        assert select(dset, alg, lambda: None, LocalCounters()) is None
    assert pick(dset, 5, LocalCounters(), None) == 6103  # round-robin fallback


@pytest.mark.parametrize("alg", sorted(HASH_KEYS))
@pytest.mark.parametrize("disabled", [0, 1, 2])
def test_d1_hash_spreads_disabled_share_and_keeps_healthy_keys(alg: int, disabled: int) -> None:
    dset, healthy = three(disabled), three()
    counters = LocalCounters()
    counts: Counter[int] = Counter()
    for k in range(3000):
        h = HASH_KEYS[alg](k)
        got = pick(dset, alg, counters, h)
        before = pick(healthy, alg, counters, h)
        if before != 7000 + disabled:
            assert got == before  # stickiness (R4)
        counts[got] += 1
    assert counts[7000 + disabled] == 0
    for port in {7000, 7001, 7002} - {7000 + disabled}:
        assert abs(counts[port] - 1500) <= 75, counts  # fair share within 5%


def test_d1_hash_rule_on_conformance_set1() -> None:
    dset = conformance().sets[1]  # [6102 (disabled), 6101, 6103]
    for k in range(200):
        h = hash_callid(f"c{k}")
        expected = [6102, 6101, 6103][h % 3]
        if expected == 6102:
            expected = [6101, 6103][h % 2]  # usable[h % len(usable)]
        assert pick(dset, 0, LocalCounters(), h) == expected


def test_conformance_overlay_fair_hash_set1_300() -> None:
    """cases/divergences.json: 300 distinct Call-IDs over set 1 give 155/145 under D1."""
    dset = conformance().sets[1]
    counts = Counter(
        pick(dset, 0, LocalCounters(), hash_callid(f"fair-hash-set1-300-{n}@conformance.test"))
        for n in range(300)
    )
    assert counts == {6101: 155, 6103: 145}  # Kamailio: 217/83


@pytest.mark.parametrize(
    ("callid", "expected_hash"),
    [("mf-33@conformance.test", 3289781781), ("café-ü-4", 723355869)],
)
def test_conformance_overlay_single_calls(callid: str, expected_hash: int) -> None:
    h = hash_callid(callid)
    assert h == expected_hash and h % 3 == 0 and h % 2 == 1  # lands on 6102 (disabled)
    assert pick(conformance().sets[1], 0, LocalCounters(), h) == 6103  # Kamailio: 6101


# --------------------------------------------------------------------------- weight (9)


def test_weight_set1_is_63_37_per_100_calls() -> None:
    seq = picks(conformance().sets[1], 9, 300)
    for block in range(3):
        assert Counter(seq[block * 100 : (block + 1) * 100]) == {6101: 63, 6103: 37}
    assert Counter(seq) == {6101: 189, 6103: 111}


def test_weight_kamailio_would_give_70_30() -> None:
    """What D1 fixes: Kamailio's table hands 6102's 20 slots to the next entry."""
    dset = conformance().sets[1]
    resolved = Counter(
        dset[i if dset[i].usable else i + 1].port for i in dset.kamailio_weight_slots
    )
    assert resolved == {6101: 70, 6103: 30}


def test_weight_50_30disabled_20_gives_71_29() -> None:
    text = "1 sip:127.0.0.1:7000 0 9 weight=50\n1 sip:127.0.0.1:7001 4 8 weight=30\n"
    dset = parse_list_text(text + "1 sip:127.0.0.1:7002 0 7 weight=20\n").sets[1]
    assert Counter(picks(dset, 9, 100)) == {7000: 71, 7002: 29}
    assert Counter(picks(dset, 9, 3000)) == {7000: 2130, 7002: 870}


def test_weight_set2_all_usable_is_20_30_50() -> None:
    seq = picks(conformance().sets[2], 9, 300)
    assert Counter(seq) == {6101: 60, 6102: 90, 6103: 150}
    assert Counter(seq[100:200]) == {6101: 20, 6102: 30, 6103: 50}


def test_weight_set_without_weights_always_uses_first() -> None:
    assert picks(conformance().sets[4], 9, 150) == [6102] * 150
    dset = conformance().sets[4]
    dset[0].set_state(INACTIVE)
    assert set(picks(dset, 9, 50)) == {6101}  # no weights: Kamailio's skip-forward


@pytest.mark.parametrize("disabled", [0, 1, 2])
@pytest.mark.parametrize("weights", [(50, 30, 20), (1, 1, 1), (10, 60, 30)])
def test_d1_weight_fair_share_with_one_disabled(disabled: int, weights: tuple[int, ...]) -> None:
    dset = parse_list_text(
        "\n".join(
            f"1 sip:127.0.0.1:{7000 + i} 0 {10 - i} weight={w}" for i, w in enumerate(weights)
        )
    ).sets[1]
    dset[disabled].set_state(DISABLED)
    counts = Counter(picks(dset, 9, 3000))
    usable_total = sum(w for i, w in enumerate(weights) if i != disabled)
    assert counts[7000 + disabled] == 0
    for i, w in enumerate(weights):
        if i != disabled:
            fair = 3000 * w / usable_total
            assert abs(counts[7000 + i] - fair) <= 0.05 * fair, counts


def test_weight_table_rebuilt_when_usable_set_changes() -> None:
    dset = conformance().sets[2]  # 6103:50 6102:30 6101:20
    counters = LocalCounters()
    assert Counter(picks(dset, 9, 100, counters)) == {6103: 50, 6102: 30, 6101: 20}
    dest = dset.find("SIP:127.0.0.1:6102")  # URIs compare case-insensitively
    assert dest is not None
    dest.set_state(INACTIVE)
    assert Counter(picks(dset, 9, 100, counters)) == {6103: 71, 6101: 29}
    dest.set_state(0)
    assert Counter(picks(dset, 9, 100, counters)) == {6103: 50, 6102: 30, 6101: 20}


# --------------------------------------------------------------------------- random (6), rweight (11)


def test_random_never_picks_unusable() -> None:
    dset = conformance().sets[1]
    rng = random.Random(1)
    counters = LocalCounters()
    seen = Counter((select(dset, 6, None, counters, rng=rng) or [])[0].port for _ in range(600))
    assert set(seen) == {6101, 6103}


def test_relative_weight_redistributes_proportionally() -> None:
    text = "\n".join(
        f"1 sip:127.0.0.1:{7000 + i} 0 {10 - i} rweight={w}" for i, w in enumerate((1, 2, 1))
    )
    rset = parse_list_text(text, seed=9).sets[1]
    counters = LocalCounters()
    assert Counter(picks(rset, 11, 100, counters)) == {7000: 25, 7001: 50, 7002: 25}
    rset[2].set_state(INACTIVE | PROBING)
    assert Counter(picks(rset, 11, 300, counters)) == {7000: 99, 7001: 201}
    rset[2].set_state(0)
    assert Counter(picks(rset, 11, 100, counters)) == {7000: 25, 7001: 50, 7002: 25}


# --------------------------------------------------------------------------- failover, limits, states


def test_failover_order_and_limit() -> None:
    dset = parse_list_text(FOUR).sets[1]  # [7024, 7023, 7022, 7021]
    dset[0].set_state(INACTIVE)
    chosen = select(dset, 8, None, LocalCounters())
    assert [d.port for d in chosen or []] == [7023, 7022, 7021]
    limited = select(dset, 8, None, LocalCounters(), limit=2)
    assert [d.port for d in limited or []] == [7023, 7022]
    assert [d.port for d in failover_order(dset.destinations, 2)] == [7022, 7021, 7023]


def test_trying_and_probing_stay_selectable() -> None:
    dset = conformance().sets[4]
    dset[0].set_state(TRYING | PROBING)
    assert picks(dset, 8, 2) == [6102, 6102]


@pytest.mark.parametrize("alg", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11])
def test_nothing_usable_returns_none(alg: int) -> None:
    dlist = conformance()
    assert select(dlist.sets[3], alg, lambda: 12345, LocalCounters()) is None
    dset = dlist.sets[2]
    for d in dset:
        d.set_state(INACTIVE)
    assert select(dset, alg, lambda: 12345, LocalCounters()) is None


def test_use_default_keeps_last_entry_as_fallback() -> None:
    dset = three()  # [7000, 7001, 7002 (default)]
    counters = LocalCounters()
    rr = [select(dset, 4, None, counters, use_default=True) for _ in range(4)]
    assert [[d.port for d in r or []] for r in rr] == [
        [7000, 7001, 7002],
        [7001, 7000, 7002],
        [7000, 7001, 7002],
        [7001, 7000, 7002],
    ]
    dset[0].set_state(DISABLED)
    dset[1].set_state(INACTIVE)
    for alg in (0, 4, 9):
        chosen = select(dset, alg, lambda: 7, counters, use_default=True)
        assert [d.port for d in chosen or []] == [7002]
    dset[2].set_state(DISABLED)
    assert select(dset, 4, None, counters, use_default=True) is None


# --------------------------------------------------------------------------- the 4.4.7 report


@pytest.mark.parametrize(
    ("alg", "hashed"),
    [(4, False), (5, False), *((alg, True) for alg in sorted(HASH_KEYS))],
)
def test_kamailio_447_flag4_destination_does_not_break_balancing(alg: int, hashed: bool) -> None:
    """Kamailio 4.4.7 report: one destination with flag 4 broke balancing for its set.

    With [7024, 7023 (flag 4), 7022, 7021] every selection must still succeed,
    the disabled one never gets traffic and 7022 (right after it) must not get
    double traffic: each usable destination gets a third. Round robin (and alg 5
    without credentials, which 4.4.7 did not fix) gets exactly a third each.
    """
    dset = parse_list_text(FOUR.replace("7023 0 0", "7023 4 0")).sets[1]
    counters = LocalCounters()
    counts: Counter[int] = Counter(
        pick(dset, alg, counters, HASH_KEYS[alg](k) if hashed else None) for k in range(3000)
    )
    assert counts[7023] == 0
    for port in (7024, 7022, 7021):
        assert abs(counts[port] - 1000) <= 50, counts
    if not hashed:
        assert counts == {7024: 1000, 7022: 1000, 7021: 1000}


# --------------------------------------------------------------------------- shared counters


def test_counter_slots_per_set() -> None:
    dlist = conformance()
    assert [counter_index(s, RR_POINTER) for s in dlist] == [0, 3, 6, 9]
    assert COUNTERS_PER_SET == 3


def test_local_counters_threads_lose_no_turns_r2() -> None:
    dset = conformance().sets[2]
    counters = LocalCounters()
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = picks(dset, 4, 150, counters)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(results) == {6101: 400, 6102: 400, 6103: 400}


def _increment(counters: SharedCounters, times: int) -> None:
    for _ in range(times):
        counters.update(5, lambda v: (v + 1, None))


def _round_robin_worker(
    dlist: DispatcherList,
    counters: SharedCounters,
    calls: int,
    out: multiprocessing.queues.Queue[dict[int, int]],
) -> None:
    out.put(dict(Counter(picks(dlist.sets[1], 4, calls, counters))))


def test_process_shared_counters_across_forked_processes() -> None:
    ctx = multiprocessing.get_context("fork")
    counters = ProcessSharedCounters(4 * COUNTERS_PER_SET, ctx=ctx)
    procs = [ctx.Process(target=_increment, args=(counters, 3000)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert counters.get(5) == 6000  # no lost increments

    counters.reset()
    assert counters.get(5) == 0
    dlist = conformance()
    queue: multiprocessing.queues.Queue[dict[int, int]] = ctx.Queue()
    procs = [
        ctx.Process(target=_round_robin_worker, args=(dlist, counters, 301, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    totals: Counter[int] = Counter()
    for _ in procs:
        totals.update(queue.get(timeout=30))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert totals == {6101: 301, 6103: 301}  # one pointer for both workers


def test_process_shared_counters_bounds() -> None:
    counters = ProcessSharedCounters(3)
    assert counters.update(2, lambda v: (v + 7, "ok")) == "ok"
    assert counters.get(2) == 7
    with pytest.raises(IndexError):
        counters.get(3)
