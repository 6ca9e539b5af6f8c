"""The sans-IO transaction table at fake time: timers, retransmissions, ACK,
CANCEL, 408, reply aggregation and the failure hook.

Expected bytes and timelines were taken from Kamailio 5.6.3 (tm, default
parameters unless the test sets fr_timer/fr_inv_timer) with the same
messages; Kamailio's branches differ from ours, so Via branches are compared
normalised (``norm``).
"""

from __future__ import annotations

import pytest
from tmsupport import (
    CALLEE,
    CALLEE2,
    CALLER,
    PROXY,
    SERVER,
    T0,
    Hooks,
    branch_request,
    first_lines,
    make_table,
    norm,
    relay,
    reply,
    request,
    run_until,
    texts,
)

from siprouter.routing.context import Outgoing
from siprouter.tm import messages
from siprouter.tm.table import PENDING, reply_prio, server_key
from siprouter.tm.transaction import CANCEL_SENT, CANCEL_WAIT

TAG = "7fd5c3bcbacef65dcb1f020d25288a87-14ac8815"   # Kamailio's tm To-tag for request()


def test_tm_to_tag_matches_kamailio() -> None:
    msg = request()
    prefix = messages.tag_prefix("127.0.0.1", 58000)
    assert messages.local_totag(prefix, msg.via1, msg.callid) == TAG


def test_branch_format_carries_the_rank() -> None:
    table = make_table()
    tx, out = relay(table, request())
    branch = table.next_branch(tx)
    assert branch == "z9hG4bKsr1.1001.1"
    assert messages.branch_owner(branch) == 1
    assert messages.branch_owner("z9hG4bKsrx.1.0") is None
    assert messages.branch_owner("z9hG4bK0cc7.e7f2f8d39934f0fcd972ad2dcc0da224.0") is None
    assert messages.branch_owner(None) is None
    rep = reply(out[1].data, 200, "OK")
    assert table.reply_owner(rep) == 1


def test_100_trying_and_forwarded_branch() -> None:
    table = make_table()
    tx, out = relay(table, request())
    assert out[0].dst == CALLER and out[0].local == PROXY
    assert texts(out)[0] == (
        "SIP/2.0 100 trying -- your call is important to us\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n")
    assert out[1].dst == CALLEE
    assert tx.status == 100


def test_invite_without_answer_retransmits_then_408() -> None:
    table = make_table(fr_timer=1500)
    tx, _ = relay(table, request())
    sent = run_until(table, T0 + 20)
    assert sent == [
        (0.5, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0"),
        (1.5, "SIP/2.0 408 Request Timeout"),       # fr_timer wins over the retransmission
        (2.0, "SIP/2.0 408 Request Timeout"),       # timer G until H (fr_timer)
    ]
    assert tx.dead and len(table) == 0              # wait timer: 1.5 + 5 s


def test_local_408_bytes() -> None:
    table = make_table(fr_timer=1500)
    relay(table, request())
    table.on_deadline(T0 + 0.5)
    out = table.on_deadline(T0 + 1.5)
    assert texts(out) == [
        "SIP/2.0 408 Request Timeout\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n"]
    assert out[0].dst == CALLER


def test_invite_retransmission_interval_is_capped_at_t2() -> None:
    table = make_table()
    relay(table, request())
    times = [t for t, line in run_until(table, T0 + 29.9)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5]
    assert first_lines(table.on_deadline(T0 + 30)) == ["SIP/2.0 408 Request Timeout"]


def test_non_invite_timer_e_goes_to_t2_after_a_provisional() -> None:
    table = make_table()
    req = request("MESSAGE")
    tx, out = relay(table, req)
    assert first_lines(out) == ["MESSAGE sip:bob@127.0.0.1:58000 SIP/2.0"]   # no 100
    assert [t for t, _ in run_until(table, T0 + 4)] == [0.5, 1.5, 3.5]
    relayed: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[0].data, 180, "Ringing"), T0 + 4, relayed)
    assert first_lines(relayed) == ["SIP/2.0 180 Ringing"]
    assert [t for t, _ in run_until(table, T0 + 12.5)] == [8.0, 12.0]
    final: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[0].data, 200, "OK"), T0 + 12.5, final)
    assert first_lines(final) == ["SIP/2.0 200 OK"] and final[0].dst == CALLER
    # a retransmission of the request gets the reply again while the transaction waits
    again = table.match_request(request("MESSAGE"))
    assert again is tx
    resent: list[Outgoing] = []
    assert table.retransmit_reply(tx, resent) == 1
    assert resent[0].data == final[0].data
    assert run_until(table, T0 + 17.4) == []
    assert not tx.dead
    run_until(table, T0 + 17.5)
    assert tx.dead


def test_non_invite_timeout_408_is_not_retransmitted() -> None:
    table = make_table(fr_timer=1500)
    relay(table, request("OPTIONS"))
    assert run_until(table, T0 + 10) == [
        (0.5, "OPTIONS sip:bob@127.0.0.1:58000 SIP/2.0"),
        (1.5, "SIP/2.0 408 Request Timeout")]


def test_provisional_stops_invite_retransmissions_and_arms_fr_inv() -> None:
    table = make_table(fr_timer=1000, fr_inv_timer=1500)
    tx, out = relay(table, request())
    relayed: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing"), T0 + 0.2, relayed)
    assert texts(relayed)[0].startswith("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:58010")
    assert tx.status == 180
    sent = run_until(table, T0 + 3)
    # no retransmission; fr_inv_timer after the 180: 408 upstream and CANCEL on the branch
    assert sent == [(1.7, "SIP/2.0 408 Request Timeout"),
                    (1.7, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"),
                    (2.2, "SIP/2.0 408 Request Timeout"),
                    (2.2, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0")]


def test_100_from_the_branch_is_not_relayed() -> None:
    table = make_table()
    tx, out = relay(table, request())
    relayed: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 100, "Trying", None), T0 + 0.1, relayed)
    assert relayed == []
    assert tx.branches[0].replied and tx.branches[0].retr_at == float("inf")


def test_negative_reply_is_acked_relayed_and_retransmitted_until_ack() -> None:
    table = make_table()
    tx, out = relay(table, request())
    sent: list[Outgoing] = []
    busy = reply(out[1].data, 486, "Busy Here", "uastag")
    table.receive_reply(tx, 0, busy, T0 + 0.2, sent)
    assert norm(texts(sent)[0]) == (
        "ACK sip:bob@127.0.0.1:58000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.0\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>;tag=uastag\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n")
    assert sent[0].dst == CALLEE
    assert texts(sent)[1] == (
        "SIP/2.0 486 Busy Here\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>;tag=uastag\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n")
    assert sent[1].dst == CALLER
    # the callee retransmits its 486: ACK again, nothing upstream
    again: list[Outgoing] = []
    table.receive_reply(tx, 0, busy, T0 + 0.3, again)
    assert first_lines(again) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0"]
    assert run_until(table, T0 + 1.6) == [(0.7, "SIP/2.0 486 Busy Here")]
    # the caller's ACK matches the INVITE transaction and stops the retransmissions
    ack = request("ACK", to_tag="uastag")
    assert table.match_request(ack) is tx
    table.release(tx, T0 + 1.6)
    assert run_until(table, T0 + 5.1) == []
    run_until(table, T0 + 5.2)
    assert tx.dead


def test_2xx_is_relayed_with_its_retransmissions_and_not_acked() -> None:
    table = make_table()
    tx, out = relay(table, request())
    ok = reply(out[1].data, 200, "OK")
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, ok, T0 + 0.1, sent)
    table.receive_reply(tx, 0, ok, T0 + 0.6, sent)
    assert first_lines(sent) == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    assert all(item.dst == CALLER for item in sent)
    assert run_until(table, T0 + 5.0) == []          # no retransmission, no timeout
    assert not tx.dead
    run_until(table, T0 + 5.1)                        # wt_timer after the 200
    assert tx.dead
    assert table.stat_values()["2xx_transactions"] == 2


def test_e2e_cancel_of_a_ringing_branch() -> None:
    table = make_table()
    tx, out = relay(table, request(extra="Route: <sip:127.0.0.1:58000;lr>\r\n"))
    table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing", "uastag"), T0 + 0.1, [])
    cancel_req = request("CANCEL", extra="Route: <sip:127.0.0.1:58000;lr>\r\n")
    assert table.match_cancel(cancel_req) is tx
    assert table.match_request(cancel_req) is None
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0 + 0.2)
    sent: list[Outgoing] = []
    table.cancel_invite(tx, cancel_tx, cancel_req, T0 + 0.2, sent)
    assert norm(texts(sent)[0]) == (
        "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.0\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 CANCEL\r\n"
        "Route: <sip:127.0.0.1:58000;lr>\r\n"
        "Content-Length: 0\r\n\r\n")
    assert sent[0].dst == CALLEE
    assert texts(sent)[1] == (
        "SIP/2.0 200 canceling\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 CANCEL\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n")
    assert tx.canceled and tx.branches[0].cancel == CANCEL_SENT
    # the callee answers the CANCEL (absorbed) and the INVITE (487: ACK and relay)
    done: list[Outgoing] = []
    found = table.match_reply(reply(sent[0].data, 200, "OK"))
    assert found == (tx, 0)
    table.receive_reply(tx, 0, reply(sent[0].data, 200, "OK"), T0 + 0.3, done)
    assert done == []
    table.receive_reply(tx, 0, reply(out[1].data, 487, "Request Terminated", "uastag"),
                        T0 + 0.3, done)
    assert first_lines(done) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0",
                                 "SIP/2.0 487 Request Terminated"]
    assert "Route: <sip:127.0.0.1:58000;lr>\r\n" in texts(done)[0]
    # a retransmitted CANCEL gets its 200 again
    resent: list[Outgoing] = []
    assert table.match_request(cancel_req) is cancel_tx
    table.retransmit_reply(cancel_tx, resent)
    assert resent[0].data == sent[1].data


def test_cancel_is_retransmitted_until_answered_or_fr_timer() -> None:
    table = make_table(fr_timer=2000, fr_inv_timer=60000)
    tx, out = relay(table, request())
    table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing"), T0, [])
    cancel_req = request("CANCEL")
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0)
    table.cancel_invite(tx, cancel_tx, cancel_req, T0, [])
    sent = [(t, line) for t, line in run_until(table, T0 + 3) if line.startswith("CANCEL")]
    assert sent == [(0.5, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"),
                    (1.5, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0")]


def test_cancel_before_any_provisional_waits_for_one() -> None:
    """cancel_b_method=1: no CANCEL without a provisional reply; the INVITE is still
    retransmitted; a late provisional triggers the CANCEL and is not relayed; the
    branch's timeout answers 487 since the transaction was canceled."""
    table = make_table(fr_timer=1500)
    tx, out = relay(table, request())
    cancel_req = request("CANCEL")
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0 + 0.1)
    sent: list[Outgoing] = []
    table.cancel_invite(tx, cancel_tx, cancel_req, T0 + 0.1, sent)
    assert first_lines(sent) == ["SIP/2.0 200 canceling"]
    assert tx.branches[0].cancel == CANCEL_WAIT
    assert run_until(table, T0 + 1.0) == [(0.5, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    late: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing"), T0 + 1.0, late)
    assert first_lines(late) == ["CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"]


def test_canceled_branch_without_reply_times_out_with_487() -> None:
    table = make_table(fr_timer=1500)
    tx, _ = relay(table, request())
    cancel_req = request("CANCEL")
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0)
    table.cancel_invite(tx, cancel_tx, cancel_req, T0, [])
    assert run_until(table, T0 + 2.1) == [
        (0.5, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0"),
        (1.5, "SIP/2.0 487 Request Terminated"),
        (2.0, "SIP/2.0 487 Request Terminated")]


def test_cancel_of_a_transaction_without_branches() -> None:
    table = make_table()
    tx = table.new_server(request(), CALLER, PROXY, "udp", T0)
    cancel_req = request("CANCEL")
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0)
    sent: list[Outgoing] = []
    table.cancel_invite(tx, cancel_tx, cancel_req, T0, sent)
    assert first_lines(sent) == ["SIP/2.0 487 Request canceled",
                                 "SIP/2.0 200 ok -- no more pending branches"]


def test_fork_picks_the_best_final_reply() -> None:
    table = make_table()
    tx, out = relay(table, request(), dsts=(CALLEE, CALLEE2))
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 486, "Busy Here", "t1"), T0 + 0.1, sent)
    assert first_lines(sent) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0"]   # stored
    assert table.pick(tx) == PENDING
    table.receive_reply(tx, 1, reply(out[2].data, 404, "Not Found", "t2"), T0 + 0.2, sent)
    assert first_lines(sent)[1:] == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0",
                                     "SIP/2.0 404 Not Found"]
    assert sent[2].dst == CALLER


@pytest.mark.parametrize(("codes", "best"), [
    ((486, 404), 1), ((404, 486), 0), ((500, 486), 1), ((486, 401), 1), ((408, 480), 0),
    ((302, 486), 0), ((486, 603), 1), ((503, 504), 0),
])
def test_reply_priorities(codes: tuple[int, int], best: int) -> None:
    prios = [reply_prio(code, False) for code in codes]
    assert prios.index(min(prios)) == best


def test_6xx_cancels_the_other_branches_with_a_reason() -> None:
    table = make_table()
    tx, out = relay(table, request(), dsts=(CALLEE, CALLEE2))
    table.receive_reply(tx, 1, reply(out[2].data, 180, "Ringing", "t2"), T0 + 0.1, [])
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 603, "Decline", "t1"), T0 + 0.2, sent)
    assert first_lines(sent) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0",
                                 "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"]
    assert texts(sent)[1].endswith("Content-Length: 0\r\nReason: SIP;cause=603\r\n\r\n")
    assert sent[1].dst == CALLEE2
    table.receive_reply(tx, 1, reply(out[2].data, 487, "Request Terminated", "t2"),
                        T0 + 0.3, sent)
    assert first_lines(sent)[2:] == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0",
                                     "SIP/2.0 603 Decline"]


def test_2xx_cancels_the_other_pending_branches() -> None:
    table = make_table()
    tx, out = relay(table, request(), dsts=(CALLEE, CALLEE2))
    table.receive_reply(tx, 1, reply(out[2].data, 180, "Ringing", "t2"), T0 + 0.1, [])
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 200, "OK", "t1"), T0 + 0.2, sent)
    assert first_lines(sent) == ["SIP/2.0 200 OK", "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"]
    assert texts(sent)[1].endswith(
        'Content-Length: 0\r\nReason: SIP;cause=200;text="Call completed elsewhere"\r\n\r\n')
    # a 2xx from the other branch after the final reply is relayed too
    late: list[Outgoing] = []
    table.receive_reply(tx, 1, reply(out[2].data, 200, "OK", "t2"), T0 + 0.3, late)
    assert first_lines(late) == ["SIP/2.0 200 OK"]


def test_503_is_relayed_as_500() -> None:
    table = make_table()
    tx, out = relay(table, request())
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 503, "Service Unavailable"), T0, sent)
    assert texts(sent)[1] == (
        "SIP/2.0 500 Service Unavailable\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n")


def test_failure_hook_forks_again_and_the_new_branch_answers() -> None:
    hooks = Hooks()
    table = make_table(hooks, fr_timer=1000)
    req = request()

    def reroute(tx: object, picked: int, now: float, out: list[Outgoing]) -> None:
        assert picked == 0
        data = branch_request(req, table.next_branch(tx))  # type: ignore[arg-type]
        table.add_branch(tx, req.ruri, data, CALLEE2, PROXY, "udp", now, out)  # type: ignore[arg-type]

    hooks.action = reroute
    tx, out = relay(table, req, on_failure="F")
    sent = run_until(table, T0 + 1.0)
    assert sent == [(0.5, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0"),
                    (1.0, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert len(hooks.calls) == 1 and tx.branches[0].timed_out and not tx.branches[0].replied
    assert tx.branches[1].dst == CALLEE2 and tx.branches[1].on_failure is None
    final: list[Outgoing] = []
    ok = reply(tx.branches[1].data, 200, "OK")
    table.receive_reply(tx, 1, ok, T0 + 1.2, final)
    assert first_lines(final) == ["SIP/2.0 200 OK"]


@pytest.mark.parametrize(("mode", "relayed"), [(3, "SIP/2.0 500 Server Error"),
                                               (0, "SIP/2.0 404 Not Found")])
def test_failure_reply_mode(mode: int, relayed: str) -> None:
    """Mode 3 (default): the replies before a failure_route that forked again are
    dropped; mode 0 keeps them in the race."""
    hooks = Hooks()
    table = make_table(hooks, failure_reply_mode=mode)
    req = request()

    def reroute(tx: object, picked: int, now: float, out: list[Outgoing]) -> None:
        if len(tx.branches) == 1:  # type: ignore[attr-defined]
            data = branch_request(req, table.next_branch(tx))  # type: ignore[arg-type]
            table.add_branch(tx, req.ruri, data, CALLEE2, PROXY, "udp", now, out)  # type: ignore[arg-type]

    hooks.action = reroute
    tx, out = relay(table, req, on_failure="F")
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 404, "Not Found"), T0 + 0.1, sent)
    assert first_lines(sent) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0",
                                 "INVITE sip:bob@127.0.0.1:58000 SIP/2.0"]
    sent.clear()
    table.receive_reply(tx, 1, reply(tx.branches[1].data, 500, "Server Error"), T0 + 0.2, sent)
    assert first_lines(sent)[-1] == relayed


def test_failure_hook_that_replies_itself() -> None:
    hooks = Hooks()
    table = make_table(hooks)

    def answer(tx: object, picked: int, now: float, out: list[Outgoing]) -> None:
        table.reply(tx, 403, "Go Away", now, out)  # type: ignore[arg-type]

    hooks.action = answer
    tx, out = relay(table, request(), on_failure="F")
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, reply(out[1].data, 486, "Busy Here"), T0, sent)
    assert first_lines(sent) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0", "SIP/2.0 403 Go Away"]


def test_local_request_reports_its_final_reply_once() -> None:
    table = make_table()
    results: list[tuple[int, str | None, object]] = []
    tx = table.new_local("OPTIONS", T0, lambda c, r, m: results.append((c, r, m)))
    data = messages.local_request("OPTIONS", "sip:127.0.0.1:58011", "sip:127.0.0.1:58011",
                                  "sip:pinger@localhost", "tag1", "cid@127.0.0.1", 10, PROXY,
                                  table.next_branch(tx))
    out: list[Outgoing] = []
    table.add_branch(tx, "sip:127.0.0.1:58011", data.encode(), CALLEE, PROXY, "udp", T0, out)
    assert texts(out)[0] == (
        "OPTIONS sip:127.0.0.1:58011 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bKsr1.1001.0\r\n"
        "To: <sip:127.0.0.1:58011>\r\n"
        "From: <sip:pinger@localhost>;tag=tag1\r\n"
        "CSeq: 10 OPTIONS\r\n"
        "Call-ID: cid@127.0.0.1\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n")
    ok = reply(out[0].data, 200, "OK")
    assert table.match_reply(ok) == (tx, 0)
    sent: list[Outgoing] = []
    table.receive_reply(tx, 0, ok, T0 + 0.1, sent)
    table.receive_reply(tx, 0, ok, T0 + 0.2, sent)
    assert sent == []                                    # nothing relayed, no ACK
    assert [(c, r) for c, r, _m in results] == [(200, "OK")]
    assert table.stat_values()["UAC_transactions"] == 1


def test_local_request_timeout() -> None:
    table = make_table(fr_timer=1000)
    results: list[tuple[int, str | None, object]] = []
    tx = table.new_local("OPTIONS", T0, lambda c, r, m: results.append((c, r, m)))
    table.add_branch(tx, "sip:127.0.0.1:58011", b"OPTIONS x SIP/2.0\r\n\r\n", CALLEE, PROXY,
                     "udp", T0, [])
    assert run_until(table, T0 + 10) == [(0.5, "OPTIONS x SIP/2.0")]
    assert results == [(408, None, None)]
    assert len(table) == 0


def test_matching_rules() -> None:
    table = make_table()
    tx, out = relay(table, request())
    assert table.match_request(request()) is tx
    assert table.match_request(request(branch="z9hG4bKother")) is None
    assert table.match_request(request("BYE")) is None
    # an ACK matches the INVITE transaction (the module decides what that means)
    assert table.match_request(request("ACK", to_tag="x")) is tx
    assert server_key(request("ACK", to_tag="x")) == server_key(request())
    assert table.match_cancel(request("CANCEL")) is tx
    assert table.match_cancel(request("CANCEL", branch="z9hG4bKzz")) is None
    rep = reply(out[1].data, 180, "Ringing")
    assert table.match_reply(rep) == (tx, 0)
    assert table.match_reply(reply(out[1].data, 200, "OK", method="BYE")) is None
    bad_index = reply(out[1].data.replace(b".1001.0\r\n", b".1001.5\r\n"), 200, "OK")
    assert table.match_reply(bad_index) is None
    foreign = reply(out[1].data.replace(b"z9hG4bKsr1.1001.0", b"z9hG4bKdeadbeef.0"), 200, "OK")
    assert table.match_reply(foreign) is None


def test_rfc2543_requests_match_by_call_id_cseq_and_from_tag() -> None:
    table = make_table()
    old = request(branch="1234")
    tx = table.new_server(old, CALLER, PROXY, "udp", T0)
    assert table.match_request(request(branch="1234")) is tx
    assert table.match_request(request("ACK", branch="1234", to_tag="x")) is tx
    assert table.match_request(request(branch="1234", callid="c2")) is None
    assert table.match_request(request(branch="1234", cseq=2)) is None


def test_a_transaction_without_branch_or_final_reply_is_released() -> None:
    """t_newtran() without relay or final reply: gone after the wait time."""
    table = make_table()
    tx = table.new_server(request("MESSAGE"), CALLER, PROXY, "udp", T0)
    table.reply(tx, 100, "Trying", T0, [])
    run_until(table, T0 + 4.9)
    assert not tx.dead
    run_until(table, T0 + 5.0)
    assert tx.dead and table.snapshot() == {"server": 0, "client": 0, "heap": 0}


def test_reply_after_final_fails() -> None:
    table = make_table()
    tx = table.new_server(request("MESSAGE"), CALLER, PROXY, "udp", T0)
    assert table.reply(tx, 404, "Not here", T0, []) == 1
    assert table.reply(tx, 200, "OK", T0, []) == -1


def test_statistics() -> None:
    table = make_table()
    tx, out = relay(table, request())
    table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing"), T0, [])
    table.receive_reply(tx, 0, reply(out[1].data, 486, "Busy Here"), T0, [])
    stats = table.stat_values()
    assert stats["UAS_transactions"] == 1
    assert stats["4xx_transactions"] == 1
    assert stats["rpl_received"] == stats["received_replies"] == 2
    assert stats["rpl_sent"] == 3 and stats["local_replies"] == 1
    assert stats["relayed_replies"] == 2
    assert stats["inuse_transactions"] == 1 and stats["active_transactions"] == 0


def test_receive_handles_what_needs_no_script() -> None:
    table = make_table()
    tx, out = relay(table, request())
    assert table.receive(request("BYE", branch="z9hG4bKnew"), T0) is None      # new request
    assert [o.data for o in table.receive(request(), T0 + 0.1) or []] == [out[0].data]
    sent = table.receive(reply(out[1].data, 486, "Busy Here"), T0 + 0.2)
    assert sent is not None and first_lines(sent) == ["ACK sip:bob@127.0.0.1:58000 SIP/2.0",
                                                      "SIP/2.0 486 Busy Here"]
    assert table.receive(request("ACK", to_tag="t1"), T0 + 0.3) == []          # absorbed
    assert tx.reply_retr_at == float("inf")
    stray = reply(out[1].data.replace(b"z9hG4bKsr1.1001.0", b"z9hG4bKsr1.77.0"), 200, "OK")
    assert table.receive(stray, T0) is None


def test_an_ack_to_a_2xx_is_not_taken() -> None:
    table = make_table()
    tx, out = relay(table, request())
    table.receive_reply(tx, 0, reply(out[1].data, 200, "OK"), T0, [])
    assert table.receive(request("ACK", to_tag="t1"), T0 + 0.1) is None


def test_reseed_changes_the_labels() -> None:
    table = make_table()
    table.reseed()
    tx, _ = relay(table, request())
    assert tx.key != "z9hG4bKsr1.1001"


def test_stale_timer_entries_are_compacted() -> None:
    """An INVITE answered after a provisional leaves an early-superseded fr_inv
    entry per call; the heap does not keep them (nor their transactions) long."""
    table = make_table(fr_inv_timer=120000)
    now = T0
    for i in range(12000):
        now = T0 + i * 0.001
        tx, out = relay(table, request(callid=f"c{i}", branch=f"z9hG4bK{i}"), now)
        table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing"), now, [])
        table.on_deadline(now + 0.5)       # the retransmission entry fires: fr_inv entry
        table.receive_reply(tx, 0, reply(out[1].data, 200, "OK"), now + 0.5, [])
    table.on_deadline(now + 6)
    assert len(table) == 0
    assert table.snapshot()["heap"] < 6000


def test_cancel_goes_to_every_ringing_branch() -> None:
    table = make_table()
    tx, out = relay(table, request(), dsts=(CALLEE, CALLEE2))
    table.receive_reply(tx, 0, reply(out[1].data, 180, "Ringing", "t1"), T0, [])
    table.receive_reply(tx, 1, reply(out[2].data, 183, "Progress", "t2"), T0, [])
    cancel_req = request("CANCEL", extra="Reason: SIP;cause=480;text=\"gone\"\r\n")
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0)
    sent: list[Outgoing] = []
    table.cancel_invite(tx, cancel_tx, cancel_req, T0, sent)
    assert [(item.dst, line) for item, line in zip(sent, first_lines(sent), strict=True)] == [
        (CALLEE, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"),
        (CALLEE2, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"),
        (CALLER, "SIP/2.0 200 canceling")]
    # the Reason of the caller's CANCEL is copied (e2e_cancel_reason)
    assert texts(sent)[0].endswith('Content-Length: 0\r\nReason: SIP;cause=480;text="gone"\r\n\r\n')


def test_cancel_b_method_0_fakes_a_487() -> None:
    table = make_table(cancel_b_method=0)
    tx, out = relay(table, request())
    cancel_req = request("CANCEL")
    cancel_tx = table.new_server(cancel_req, CALLER, PROXY, "udp", T0)
    sent: list[Outgoing] = []
    table.cancel_invite(tx, cancel_tx, cancel_req, T0, sent)
    # the branch gets a faked 487 at once (relayed); the CANCEL canceled a branch
    assert first_lines(sent) == ["SIP/2.0 487 Request Terminated", "SIP/2.0 200 canceling"]
    assert run_until(table, T0 + 0.9) == [(0.5, "SIP/2.0 487 Request Terminated")]
