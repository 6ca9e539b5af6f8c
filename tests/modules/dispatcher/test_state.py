"""SharedState: the list and the destination states shared by all processes.

Two processes (os.fork) share one SharedArea, as the workers and the control
process do: a reload, a state change or a pointer move made in one is seen by
the other on its next sync().
"""

from __future__ import annotations

import pytest

from siprouter.modules.dispatcher.destinations import (
    DISABLED,
    INACTIVE,
    NODNS,
    PROBING,
    TRYING,
    DispatcherList,
    parse_list_text,
)
from siprouter.modules.dispatcher.selection import RR_POINTER, counter_index, select
from siprouter.modules.dispatcher.state import (
    CapacityError,
    Latency,
    SharedState,
    capacity_for,
    decode_list,
    encode_list,
    next_state,
)
from siprouter.transport.shared import SharedArea
from tests.modules.dispatcher.support import in_child

THREE = "".join(f"1 sip:127.0.0.1:{p} 0 0\n" for p in (58221, 58222, 58223))
TWO_SETS = THREE + "2 sip:127.0.0.1:58231 4 5 weight=50;duid=x\n2 sip:127.0.0.1:58232 8 0\n"


def new_state(text: str = TWO_SETS, area: SharedArea | None = None,
              clock: float = 1000.0) -> SharedState:
    dlist = parse_list_text(text, seed=3)
    sets, dests, blob = capacity_for(dlist)
    state = SharedState(area if area is not None else SharedArea(), max_sets=sets,
                        max_destinations=dests, blob_bytes=blob, clock=lambda: clock)
    state.publish(dlist)
    return state


def ports(state: SharedState, setid: int = 1) -> list[int]:
    return [d.port for d in state.dlist.sets[setid]]


# --------------------------------------------------------------------------- blob


def test_blob_round_trip_keeps_order_seed_and_resolved_fields() -> None:
    dlist = parse_list_text(TWO_SETS + "3 sip:[::1]:5070;transport=tcp 16 -1 a=b;latency=7\n",
                            seed=42)
    dlist.sets[1][0].ip = "127.0.0.1"
    dlist.sets[2][0].send_socket = ("udp", "127.0.0.1", 58200)
    copy = decode_list(encode_list(dlist))
    assert copy.seed == 42
    assert [(d.setid, d.uri, d.flags, d.priority, d.attrs.body, d.ip, d.send_socket, d.slot)
            for d in copy.all] == \
        [(d.setid, d.uri, d.flags, d.priority, d.attrs.body, d.ip, d.send_socket, d.slot)
         for d in dlist.all]
    assert copy.sets[2].kamailio_weight_slots == dlist.sets[2].kamailio_weight_slots


def test_slots_follow_set_order_then_internal_order() -> None:
    dlist = parse_list_text(TWO_SETS)
    assert [(d.setid, d.port, d.slot) for d in dlist.all] == [
        (1, 58223, 0), (1, 58222, 1), (1, 58221, 2), (2, 58231, 3), (2, 58232, 4)]


# --------------------------------------------------------------------------- state machine

# (old flags, requested, counter, probing thr, inactive thr) -> (new flags, counter)
STATE_TABLE = [
    # failures count toward INACTIVE
    ((0, TRYING | PROBING, 0, 2, 1), (TRYING | PROBING, 1)),
    ((TRYING | PROBING, TRYING | PROBING, 1, 2, 1), (INACTIVE | PROBING, 0)),
    ((0, TRYING, 0, 1, 1), (INACTIVE, 0)),
    # an inactive destination does not go back to trying
    ((INACTIVE | PROBING, TRYING | PROBING, 2, 3, 1), (INACTIVE | PROBING, 0)),
    # successes while inactive count toward active
    ((INACTIVE | PROBING, PROBING, 0, 1, 2), (INACTIVE | PROBING, 1)),
    ((INACTIVE | PROBING, PROBING, 1, 1, 2), (PROBING, 0)),
    ((INACTIVE, 0, 0, 1, 2), (INACTIVE, 1)),  # no PROBING to keep
    ((INACTIVE | PROBING, 0, 0, 1, 1), (0, 0)),  # mode 0/2: success clears PROBING
    # disabled: only the DISABLED bit; any other change resets the counter
    ((PROBING, DISABLED | PROBING, 5, 1, 1), (DISABLED, 0)),
    ((TRYING, 0, 1, 3, 1), (0, 0)),
    ((0, INACTIVE | PROBING, 0, 2, 2), (INACTIVE | PROBING, 0)),  # ds_mark_dst("ip")
    ((NODNS | 32, PROBING, 0, 1, 1), (PROBING | 32, 0)),  # NODNS (16) cleared too
]


@pytest.mark.parametrize(("args", "expected"), STATE_TABLE)
def test_next_state_follows_kamailio(args: tuple[int, int, int, int, int],
                                     expected: tuple[int, int]) -> None:
    assert next_state(*args) == expected


def test_spec_probing_timeline() -> None:
    """§11.3: thresholds 2/2: AX -> TP -> IP (one down), then IP -> IP -> AP (one up)."""
    state = new_state(THREE)
    seen = []
    for requested in (TRYING | PROBING, TRYING | PROBING, PROBING, PROBING):
        change = state.update_state(1, "sip:127.0.0.1:58221", requested, 2, 2)
        assert change is not None
        seen.append((change.new, change.went_down, change.came_up))
    assert seen == [(TRYING | PROBING, False, False), (INACTIVE | PROBING, True, False),
                    (INACTIVE | PROBING, False, False), (PROBING, False, True)]


def test_update_state_unknown_destination_is_none() -> None:
    state = new_state()
    assert state.update_state(1, "sip:127.0.0.1:9", INACTIVE, 1, 1) is None
    assert state.update_state(7, "sip:127.0.0.1:58221", INACTIVE, 1, 1) is None
    assert state.update_state(1, "SIP:127.0.0.1:58221", INACTIVE, 1, 1) is not None


def test_reinit_state_is_administrative() -> None:
    state = new_state()
    state.update_state(1, "sip:127.0.0.1:58221", TRYING, 3, 1)  # counter 1
    dest = state.dlist.find(1, "sip:127.0.0.1:58221")
    assert dest is not None
    assert state.reinit_state(1, INACTIVE | PROBING, lambda d: d.port == 58221) == 1
    assert dest.flags == INACTIVE | PROBING
    assert state.count_of(dest) == 1  # the counter is not reset
    assert state.reinit_state(1, DISABLED) == 3
    assert {d.flags for d in state.dlist.sets[1]} == {DISABLED}
    assert state.reinit_state(9, 0) == -1
    assert state.reinit_state(1, 0, lambda d: False) == 0


# --------------------------------------------------------------------------- two processes


def test_state_change_in_one_process_is_seen_by_the_other() -> None:
    state = new_state()

    def child() -> int:
        change = state.update_state(1, "sip:127.0.0.1:58222", INACTIVE, 1, 1)
        assert change is not None
        return change.new

    assert in_child(child) == INACTIVE
    dest = state.dlist.find(1, "sip:127.0.0.1:58222")
    assert dest is not None and dest.flags == 0  # not synced yet
    state.sync()
    assert dest.flags == INACTIVE
    # and selection in this process avoids it at once
    picks = [select(state.dlist.sets[1], 4, None, state.counters)[0].port for _ in range(4)]  # type: ignore[index]
    assert picks == [58223, 58221, 58223, 58221]


def test_reload_in_one_process_swaps_the_list_in_the_other() -> None:
    state = new_state()
    before = state.list_gen

    def child() -> list[int]:
        state.publish(parse_list_text("1 sip:127.0.0.1:58241 0 0\n1 sip:127.0.0.1:58242 1 0\n"
                                      "5 sip:127.0.0.1:58251 0 0\n"))
        return ports(state)

    assert in_child(child) == [58242, 58241]
    assert ports(state) == [58223, 58222, 58221]
    state.sync()
    assert state.list_gen == before + 1
    assert ports(state) == [58242, 58241]
    assert sorted(state.dlist.sets) == [1, 5]
    assert [d.flags for d in state.dlist.sets[1]] == [INACTIVE, 0]  # flags from the new list


def test_two_reloads_in_a_row_use_both_banks() -> None:
    state = new_state()
    def child() -> int:
        state.publish(parse_list_text("1 sip:127.0.0.1:58241\n"))
        state.publish(parse_list_text("1 sip:127.0.0.1:58242\n"))
        return state.bank

    other = in_child(child)
    state.sync()
    assert state.bank == other
    assert ports(state) == [58242]


def test_round_robin_pointer_is_shared_across_processes() -> None:
    state = new_state()
    dset = state.dlist.sets[1]

    def pick() -> int:
        chosen = select(state.dlist.sets[1], 4, None, state.counters)
        assert chosen is not None
        return chosen[0].port

    assert pick() == 58223
    assert in_child(pick) == 58222
    assert pick() == 58221
    assert state.counters.get(counter_index(dset, RR_POINTER)) == 0


def test_reload_resets_counters_and_states() -> None:
    state = new_state()
    select(state.dlist.sets[1], 4, None, state.counters)
    state.update_state(1, "sip:127.0.0.1:58221", INACTIVE, 1, 1)
    state.publish(parse_list_text(THREE))
    assert state.counters.get(counter_index(state.dlist.sets[1], RR_POINTER)) == 0
    assert [d.flags for d in state.dlist.sets[1]] == [0, 0, 0]


def test_rebuild_keeps_flags_and_loads_of_remaining_destinations() -> None:
    state = new_state()
    state.update_state(1, "sip:127.0.0.1:58222", INACTIVE | PROBING, 1, 1)
    dest = state.dlist.find(2, "sip:127.0.0.1:58231")
    assert dest is not None
    state.add_load(dest, 3)

    def drop_58221(current: DispatcherList) -> DispatcherList:
        return DispatcherList.build(d for d in current.all if d.port != 58221)

    assert state.rebuild(drop_58221)
    assert ports(state) == [58222, 58223]  # equal priorities flip, as in Kamailio
    kept = state.dlist.find(1, "sip:127.0.0.1:58222")
    moved = state.dlist.find(2, "sip:127.0.0.1:58231")
    assert kept is not None and kept.flags == INACTIVE | PROBING
    assert moved is not None and moved.flags == DISABLED and state.load_of(moved) == 3
    assert not state.rebuild(lambda current: None)


def test_capacity_is_checked_before_anything_changes() -> None:
    dlist = parse_list_text(THREE)
    state = SharedState(SharedArea(), max_sets=1, max_destinations=3, blob_bytes=512)
    state.publish(dlist)
    with pytest.raises(CapacityError, match="destinations"):
        state.publish(parse_list_text(THREE + "1 sip:127.0.0.1:58224\n"))
    with pytest.raises(CapacityError, match="sets"):
        state.publish(parse_list_text("1 sip:a.example\n2 sip:b.example\n"))
    with pytest.raises(CapacityError, match="bytes"):
        state.publish(parse_list_text(THREE.replace("0 0\n", f"0 0 a={'x' * 200}\n")))
    assert ports(state) == [58223, 58222, 58221]


def test_small_area_falls_back_to_a_private_mapping() -> None:
    area = SharedArea(16)
    state = new_state(area=area)
    assert area.next_slot == 0
    assert ports(state) == [58223, 58222, 58221]


# --------------------------------------------------------------------------- switches


def test_reload_delta_is_shared_and_counts_wall_seconds() -> None:
    now = [1000.0]
    state = SharedState(SharedArea(), clock=lambda: now[0])
    assert state.begin_reload(5)
    assert not in_child(lambda: state.begin_reload(5))
    now[0] = 1004.9
    assert not state.begin_reload(5)
    now[0] = 1005.0
    assert state.begin_reload(5)
    assert state.begin_reload(0)


def test_ping_active_is_shared() -> None:
    state = new_state()
    assert state.ping_active == 1

    def child() -> None:
        state.ping_active = 0

    in_child(child)
    assert state.ping_active == 0


# --------------------------------------------------------------------------- latency


def test_latency_statistics_average_and_ewma() -> None:
    lat = Latency()
    for sample in (10, 20, 30):
        lat.update(sample, 0.9)
    assert (lat.count, lat.average, lat.min, lat.max) == (3, 20.0, 10, 30)
    assert lat.stdev == pytest.approx(10.0)
    assert lat.estimate == 20.0  # below 10 samples the estimate is the average
    for _ in range(7):
        lat.update(20, 0.9)
    assert lat.count == 10
    lat.update(120, 0.9)  # EWMA from now on
    assert lat.estimate == pytest.approx(0.9 * 20.0 + 0.1 * 120)


def test_latency_attr_primes_a_trained_estimator() -> None:
    lat = Latency.initial(40)
    assert (lat.count, lat.estimate, lat.average, lat.max, lat.min) == (10000, 40.0, 40.0, 40, 40)
    lat.update(140, 0.5)
    assert lat.estimate == pytest.approx(90.0)


def test_record_latency_only_for_probing_destinations() -> None:
    state = new_state()
    probing = state.dlist.find(2, "sip:127.0.0.1:58232")
    plain = state.dlist.find(1, "sip:127.0.0.1:58221")
    assert probing is not None and plain is not None
    state.record_latency(2, probing.uri, 200, 12, 0.9)
    state.record_latency(2, probing.uri, 408, None, 0.9)
    state.record_latency(1, plain.uri, 200, 12, 0.9)
    assert in_child(lambda: (state.latency_of(probing).count,
                             state.latency_of(probing).timeout)) == (1, 1)
    assert state.latency_of(plain).count == 0
