"""Keepalives at fake time: probing modes, thresholds, events with $dsv, latency, D1.

tm's local_request() is replaced by a recording fake: each test decides when
and how each keepalive transaction ends by calling its ``on_final``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from siprouter.modules.base import Exports, Module
from siprouter.modules.dispatcher.destinations import (
    INACTIVE,
    PROBING,
    TRYING,
    parse_list_text,
)
from siprouter.modules.dispatcher.hashing import hash_callid
from siprouter.modules.dispatcher.keepalive import (
    PROBE_ALL,
    PROBE_INACTIVE,
    PROBE_NONE,
    PROBE_ONLYFLAGGED,
    Pinger,
    PingSettings,
    ReplyContext,
    parse_reply_codes,
    reply_accepted,
    wants_ping,
)
from siprouter.modules.dispatcher.module import DispatcherModule
from siprouter.modules.dispatcher.state import SharedState, capacity_for
from siprouter.routing.context import Outgoing
from siprouter.routing.router import Router
from siprouter.sip.message import SipMessage, parse_message
from siprouter.transport.shared import SharedArea
from tests.modules.dispatcher.support import (
    dispatcher,
    flags_by_uri,
    in_child,
    make_router,
    request,
    send,
)

A, B, C = "sip:127.0.0.1:58221", "sip:127.0.0.1:58222", "sip:127.0.0.1:58223"

EVENTS = r'''
request_route {
  if (!ds_select_dst("1", "0")) { send_reply("503", "none"); exit; }
  forward();
}
event_route[dispatcher:dst-down] {
  $var(events) = $var(events) + "down:" + $ru + ":" + $dsv(code) + ":" + $(dsv(reason){s.len}) + ":" + $dsv(flags) + ";";
}
event_route[dispatcher:dst-up] {
  $var(events) = $var(events) + "up:" + $ru + ":" + $dsv(code) + ":" + $dsv(reason) + ":" + $dsv(flags) + ";";
}
'''


@dataclass
class Sent:
    method: str
    ruri: str
    from_uri: str
    dst_uri: str | None
    on_final: Any


class FakeTm(Module):
    """Records local requests like tm's ``local_request`` would send them.

    A Module (the router's module table holds Modules only), without a router.
    """

    exports = Exports(name="tm")

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Sent] = []
        self.fail = fail

    def local_request(self, method: str, ruri: str, *, from_uri: str, now: float,
                      on_final: Any, dst_uri: str | None = None,
                      headers: str = "") -> list[Outgoing]:
        if self.fail:
            raise OSError("no route")
        self.sent.append(Sent(method, ruri, from_uri, dst_uri, on_final))
        return [Outgoing(f"{method} {ruri}".encode(), ("127.0.0.1", 58221), ("127.0.0.1", 58200))]

    def take(self) -> dict[str, Sent]:
        out = {s.ruri: s for s in self.sent}
        self.sent.clear()
        return out


def ok_reply(code: int = 200, reason: str = "X") -> SipMessage:
    return parse_message(f"SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/UDP 127.0.0.1:58200\r\n"
                         "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: k\r\n"
                         "CSeq: 10 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def answer(sent: Sent, code: int, reason: str = "X") -> None:
    if code == 408:
        sent.on_final(408, None, None)  # tm's local timeout: no reply
    else:
        sent.on_final(code, reason, ok_reply(code, reason))


def pinged_router(tmp_path: Path, list_text: str, mode: int, *, probing: int = 1,
                  inactive: int = 1, extra: str = "", interval: int = 1,
                  tm: FakeTm | None = None) -> tuple[Router, DispatcherModule, Pinger, FakeTm]:
    router = make_router(tmp_path, EVENTS, list_text, "\n".join([
        f'modparam("dispatcher", "ds_probing_mode", {mode})',
        f'modparam("dispatcher", "ds_probing_threshold", {probing})',
        f'modparam("dispatcher", "ds_inactive_threshold", {inactive})',
        'modparam("dispatcher", "ds_ping_from", "sip:pinger@127.0.0.1")', extra]))
    router.var_store["events"] = ""  # $var(events) collects the event routes' lines
    module = dispatcher(router)
    module.params["ds_ping_interval"] = interval
    fake = tm or FakeTm()
    pinger = module.make_pinger(fake.local_request)
    return router, module, pinger, fake


def events(router: Router) -> list[str]:
    text = router.var_store.get("events") or ""
    return [e for e in str(text).split(";") if e]


def run_round(pinger: Pinger, now: float) -> list[Outgoing]:
    """Serve the pinger like the worker loop at time ``now``."""
    out: list[Outgoing] = []
    deadline = pinger.next_deadline()
    while deadline is not None and deadline <= now:
        out.extend(pinger.on_deadline(now))
        deadline = pinger.next_deadline()
    return out


# --------------------------------------------------------------------------- pure rules


def test_reply_codes_parameter() -> None:
    codes = parse_reply_codes("class=2;code=403;code=488;class=7;code=99;code=700;x=1")
    assert codes == (2, 403, 488)
    assert reply_accepted(200, ()) and reply_accepted(299, ())
    assert not reply_accepted(404, codes) and reply_accepted(403, codes)
    assert reply_accepted(408, parse_reply_codes("class=4"))  # a timeout counts as success
    assert parse_reply_codes("") == ()


@pytest.mark.parametrize(("flags", "mode", "pinged"), [
    (0, PROBE_NONE, False), (PROBING, PROBE_NONE, True),
    (0, PROBE_ALL, True), (INACTIVE, PROBE_ALL, True),
    (PROBING, PROBE_INACTIVE, False), (INACTIVE, PROBE_INACTIVE, False),
    (INACTIVE | PROBING, PROBE_INACTIVE, True),
    (0, PROBE_ONLYFLAGGED, False), (PROBING | TRYING, PROBE_ONLYFLAGGED, True),
])
def test_which_destinations_are_pinged(flags: int, mode: int, pinged: bool) -> None:
    assert wants_ping(flags, mode) is pinged


# --------------------------------------------------------------------------- the timer


def test_rounds_every_interval_starting_one_interval_in(tmp_path: Path) -> None:
    _router, _module, pinger, tm = pinged_router(tmp_path, f"1 {A} 0 0\n", PROBE_ALL,
                                                 interval=2)
    assert pinger.next_deadline() == 0.0
    assert run_round(pinger, 100.0) == []  # schedules the first round
    assert pinger.next_deadline() == 102.0
    assert run_round(pinger, 101.9) == []
    out = run_round(pinger, 102.0)
    assert [o.data for o in out] == [f"OPTIONS {A}".encode()]
    assert pinger.next_deadline() == 104.0
    run_round(pinger, 110.5)  # late: one round, next one an interval later
    assert pinger.next_deadline() == 112.5
    assert pinger.rounds == 2 and len(tm.sent) == 2


def test_keepalive_request_fields(tmp_path: Path) -> None:
    lst = (f"1 {A} 0 0\n1 {B} 0 0 ping_from=sip:special@example.com;obproxy=sip:127.0.0.1:58230\n")
    _router, _module, pinger, tm = pinged_router(
        tmp_path, lst, PROBE_ALL, extra='modparam("dispatcher", "ds_ping_method", "INFO")\n'
        'modparam("dispatcher", "outbound_proxy", "sip:127.0.0.1:58239")')
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    assert {uri: (s.method, s.from_uri, s.dst_uri) for uri, s in sent.items()} == {
        A: ("INFO", "sip:pinger@127.0.0.1", "sip:127.0.0.1:58239"),
        B: ("INFO", "sip:special@example.com", "sip:127.0.0.1:58230"),
    }


# --------------------------------------------------------------------------- spec timeline


def test_spec_timeline_mode_1(tmp_path: Path) -> None:
    """§11.3 verified run: thresholds 2/2, an unanswered, an answering, a disabled dst."""
    lst = f"1 {A} 0 0\n1 {B} 0 0\n1 {C} 4 0\n"
    router, module, pinger, tm = pinged_router(tmp_path, lst, PROBE_ALL, probing=2, inactive=2)
    run_round(pinger, 0.0)
    history = []
    for second in (1, 2):  # A times out twice, B answers
        run_round(pinger, float(second))
        sent = tm.take()
        assert set(sent) == {A, B}  # the disabled one is never pinged
        answer(sent[A], 408)
        answer(sent[B], 200)
        history.append(flags_by_uri(module)[A])
    assert history == ["TP", "IP"]
    assert flags_by_uri(module) == {A: "IP", B: "AP", C: "DX"}
    assert events(router) == [f"down:{A}:408:0:0"]  # reason <null>, no real reply
    for second in (3, 4):  # A answers again
        run_round(pinger, float(second))
        sent = tm.take()
        answer(sent[A], 200, "X")
        answer(sent[B], 200)
        history.append(flags_by_uri(module)[A])
    assert history == ["TP", "IP", "IP", "AP"]
    assert events(router) == [f"down:{A}:408:0:0", f"up:{A}:200:X:1"]


def test_mode_0_probes_flagged_destinations_and_any_result_clears_probing(tmp_path: Path) -> None:
    lst = f"1 {A} 8 0\n1 {B} 8 0\n1 {C} 0 0\n"
    _router, module, pinger, tm = pinged_router(tmp_path, lst, PROBE_NONE)
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    assert set(sent) == {A, B}
    answer(sent[A], 200)
    answer(sent[B], 503)
    assert flags_by_uri(module) == {A: "AX", B: "IX", C: "AX"}
    run_round(pinger, 2.0)
    assert tm.take() == {}  # probed only once after load


def test_mode_2_probes_only_inactive_probing_destinations(tmp_path: Path) -> None:
    lst = f"1 {A} 9 0\n1 {B} 8 0\n1 {C} 1 0\n"
    _router, module, pinger, tm = pinged_router(tmp_path, lst, PROBE_INACTIVE)
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    assert set(sent) == {A}
    answer(sent[A], 200)
    assert flags_by_uri(module)[A] == "AX"  # success clears PROBING in mode 2


def test_mode_3_keeps_probing_and_ignores_results_once_unflagged(tmp_path: Path) -> None:
    lst = f"1 {A} 8 0\n1 {B} 8 0\n1 {C} 0 0\n"
    _router, module, pinger, tm = pinged_router(tmp_path, lst, PROBE_ONLYFLAGGED)
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    assert set(sent) == {A, B}
    module.rpc_set_state(["a", 1, B])  # probing switched off meanwhile
    answer(sent[A], 200)
    answer(sent[B], 500)
    assert flags_by_uri(module) == {A: "AP", B: "AX", C: "AX"}


def test_result_for_a_destination_disabled_meanwhile_is_ignored(tmp_path: Path) -> None:
    _router, module, pinger, tm = pinged_router(tmp_path, f"1 {A} 0 0\n", PROBE_ALL)
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    module.rpc_set_state(["d", 1, A])
    answer(sent[A], 408)
    assert flags_by_uri(module) == {A: "DX"}


def test_ping_reply_codes_count_as_success(tmp_path: Path) -> None:
    _router, module, pinger, tm = pinged_router(
        tmp_path, f"1 {A} 0 0\n1 {B} 0 0\n", PROBE_ALL,
        extra='modparam("dispatcher", "ds_ping_reply_codes", "class=4;code=501")')
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    answer(sent[A], 404)
    answer(sent[B], 502)
    assert flags_by_uri(module) == {A: "AP", B: "IP"}
    module.params["ds_ping_reply_codes"] = "code=502"  # cfg.set at run time
    run_round(pinger, 2.0)
    sent = tm.take()
    answer(sent[A], 404)
    answer(sent[B], 502)
    assert flags_by_uri(module) == {A: "IP", B: "AP"}


def test_send_failure_counts_as_failure_with_code_500(tmp_path: Path) -> None:
    router, module, pinger, tm = pinged_router(tmp_path, f"1 {A} 0 0\n", PROBE_ALL,
                                               tm=FakeTm(fail=True))
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    assert flags_by_uri(module) == {A: "IP"}
    assert events(router) == [f"down:{A}:500:24:0"]  # "Sending keepalive failed"


def test_ping_active_switch_from_another_process(tmp_path: Path) -> None:
    _router, module, pinger, tm = pinged_router(tmp_path, f"1 {A} 0 0\n", PROBE_ALL)
    assert in_child(lambda: module.rpc_ping_active([0])) == {
        "NewPingState": 0, "OldPingState": 1}
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    assert tm.take() == {}
    module.rpc_ping_active(["1"])
    run_round(pinger, 2.0)
    assert set(tm.take()) == {A}


def test_results_after_a_reload_apply_to_the_new_list(tmp_path: Path) -> None:
    router, module, pinger, tm = pinged_router(tmp_path, f"1 {A} 0 0\n1 {B} 0 0\n", PROBE_ALL)
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    sent = tm.take()
    (tmp_path / "dispatcher.list").write_text(f"1 {B} 0 0\n")
    assert module.rpc_reload([]) == "Ok. Dispatcher successfully reloaded."
    answer(sent[A], 408)  # gone: nothing happens
    answer(sent[B], 408)
    assert flags_by_uri(module) == {B: "IP"}


def test_latency_statistics_from_round_trip_times(tmp_path: Path) -> None:
    router, module, pinger, tm = pinged_router(
        tmp_path, f"1 {A} 8 0\n1 {B} 0 0\n", PROBE_ALL,
        extra='modparam("dispatcher", "ds_ping_latency_stats", 1)\n'
              'modparam("dispatcher", "ds_latency_estimator_alpha", 500)')
    clock = [50.0]
    pinger.clock = lambda: clock[0]
    run_round(pinger, 0.0)
    for second, rtt in ((1, 0.010), (2, 0.030), (3, None)):
        run_round(pinger, float(second))
        clock[0] += rtt or 1.0
        sent = tm.take()
        answer(sent[A], 200 if rtt else 408)
    dest = module.shared_state().dlist.find(1, A)
    assert dest is not None
    lat = module.shared_state().latency_of(dest)
    assert (lat.count, lat.average, lat.max, lat.min, lat.timeout) == (2, 20.0, 30, 10, 1)
    listed = {t["DEST"]["URI"]: t["DEST"]["LATENCY"]
              for r in module.rpc_list([])["RECORDS"] for t in r["SET"]["TARGETS"]}
    assert listed[A] == {"AVG": 20.0, "STD": pytest.approx(14.142, abs=1e-3), "EST": 20.0,
                         "MAX": 30, "TIMEOUT": 1}
    assert listed[B] == {"AVG": 0.0, "STD": 0.0, "EST": 0.0, "MAX": 0, "TIMEOUT": 0}


# --------------------------------------------------------------------------- D1 with probing


def test_d1_holds_for_destinations_taken_down_by_probing(tmp_path: Path) -> None:
    lst = "".join(f"1 sip:127.0.0.1:{p} 0 0\n" for p in (58221, 58222, 58223, 58224))
    router, module, pinger, tm = pinged_router(tmp_path, lst, PROBE_ALL)
    internal = [d.port for d in module.shared_state().dlist.sets[1]]
    run_round(pinger, 0.0)
    run_round(pinger, 1.0)
    for uri, sent in tm.take().items():
        answer(sent, 408 if uri.endswith("58222") else 200)
    assert flags_by_uri(module)["sip:127.0.0.1:58222"] == "IP"
    down = internal.index(58222)
    usable = [p for p in internal if p != 58222]
    got: Counter[int] = Counter()
    for k in range(400):
        callid = f"probe-{k}"
        outs = send(router, request(callid=callid))
        port = outs[0].dst[1]
        h = hash_callid(callid)
        expected = internal[h % 4] if h % 4 != down else usable[h % 3]
        assert port == expected
        got[port] += 1
    assert 58222 not in got
    assert min(got.values()) > 100  # its share is spread, not handed to one neighbour


# --------------------------------------------------------------------------- wiring


def test_pinger_runs_in_rank_1_only_and_uses_tm(tmp_path: Path) -> None:
    router = make_router(tmp_path, EVENTS, f"1 {A} 0 0\n", 'modparam("dispatcher", "ds_probing_mode", 1)')
    module = dispatcher(router)
    module.params["ds_ping_interval"] = 1
    fake = FakeTm()
    router.modules["tm"] = fake  # type: ignore[assignment]
    module.child_init(2)
    assert router.timers == [] and module.pinger is None
    module.child_init(-1)
    assert router.timers == []
    module.child_init(1)
    assert router.timers == [module.pinger]
    run_round(module.pinger, 0.0)  # type: ignore[arg-type]
    run_round(module.pinger, 1.0)  # type: ignore[arg-type]
    assert set(fake.take()) == {A}


def test_pinger_unit_without_a_router() -> None:
    dlist = parse_list_text(f"1 {A} 0 0\n1 {B} 4 0\n")
    sets, dests, blob = capacity_for(dlist)
    state = SharedState(SharedArea(), max_sets=sets, max_destinations=dests, blob_bytes=blob)
    state.publish(dlist)
    applied: list[tuple[int, str, int, ReplyContext]] = []

    def apply(setid: int, uri: str, requested: int, rctx: ReplyContext) -> list[Outgoing]:
        applied.append((setid, uri, requested, rctx))
        return [Outgoing(b"event", ("127.0.0.1", 1), ("127.0.0.1", 2))]

    tm = FakeTm()
    pinger = Pinger(state, PingSettings(interval=5, mode=PROBE_ALL), tm.local_request, apply,
                    lambda: (), lambda: 0.0)
    run_round(pinger, 10.0)
    run_round(pinger, 15.0)
    sent = tm.take()
    assert set(sent) == {A}  # B (flags 4, disabled) is never pinged
    answer(sent[A], 486, "Busy Here")
    assert applied == [(1, A, TRYING | PROBING, ReplyContext(486, "Busy Here", 1, 1, A))]
    assert pinger.next_deadline() == 0.0  # the event output is flushed at once
    assert [o.data for o in pinger.on_deadline(15.1)] == [b"event"]
    assert pinger.next_deadline() == 20.0


# --------------------------------------------------------------------------- with tm


def tm_reply(request_bytes: bytes, code: int, reason: str) -> bytes:
    keep = [line for line in request_bytes.decode().split("\r\n")
            if line.split(":", 1)[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
    return (f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(keep)
            + "\r\nContent-Length: 0\r\n\r\n").encode()


def test_keepalives_through_tm_local_requests(tmp_path: Path) -> None:
    """tm loaded: the pinger sends its OPTIONS as tm local requests; replies and
    tm's fr timeout (local 408) come back through Router.handle / tm's timer."""
    router = make_router(tmp_path, EVENTS, f"1 {A} 0 0\n1 {B} 0 0\n", "\n".join([
        'modparam("dispatcher", "ds_ping_interval", 1)',
        'modparam("dispatcher", "ds_probing_mode", 1)',
        'modparam("dispatcher", "ds_ping_from", "sip:pinger@127.0.0.1")',
        'modparam("tm", "fr_timer", 500)']), modules='loadmodule "tm.so"')
    router.var_store["events"] = ""
    module = dispatcher(router)
    for mod in router.modules.values():
        mod.child_init(0)
    assert module.pinger in router.timers

    def serve(now: float) -> list[Outgoing]:
        out: list[Outgoing] = []
        for timer in list(router.timers):
            deadline = timer.next_deadline()
            while deadline is not None and deadline <= now:
                out.extend(timer.on_deadline(now))
                deadline = timer.next_deadline()
        return out

    serve(0.0)
    sent = {o.dst[1]: o for o in serve(1.0)}
    assert set(sent) == {58221, 58222}
    text = sent[58221].data.decode()
    assert text.startswith(f"OPTIONS {A} SIP/2.0\r\n")
    assert f"To: <{A}>" in text and "From: <sip:pinger@127.0.0.1>;tag=" in text
    router.handle(tm_reply(sent[58221].data, 200, "Fine"), ("127.0.0.1", 58221),
                  ("127.0.0.1", 58200), 1.1)
    serve(1.2)
    serve(1.6)  # B's transaction times out (fr_timer 0.5 s)
    assert flags_by_uri(module) == {B: "IP", A: "AP"}
    assert events(router) == [f"down:{B}:408:0:0"]
