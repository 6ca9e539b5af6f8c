"""100,000 transactions through the sans-IO table at fake time leave nothing behind.

A mix at 1,000 new transactions per (fake) second: answered INVITEs (180, 200),
rejected INVITEs (486, ACK from the caller), MESSAGEs, and INVITEs nobody
answers (fr_timer, local 408). Once every timer has run, the table, its
indexes and its timer heap are empty and no transaction, branch or message
object is left alive.
"""

from __future__ import annotations

import gc

from tmsupport import T0, make_table, relay, reply, request

from siprouter.routing.context import Outgoing
from siprouter.sip.message import SipMessage
from siprouter.tm.transaction import ClientBranch, Transaction

COUNT = 100_000


def _alive(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


def test_100k_transactions_leave_no_state() -> None:
    table = make_table(fr_timer=1000, fr_inv_timer=2000)
    gc.collect()
    # objects other tests of the session may still hold are not ours to count
    before = {kind: _alive(kind) for kind in (Transaction, ClientBranch, SipMessage)}
    sink: list[Outgoing] = []
    peak = 0
    for i in range(COUNT):
        now = T0 + i * 0.001
        kind = i % 10
        method = "MESSAGE" if kind == 8 else "INVITE"
        req = request(method, callid=f"call-{i}", branch=f"z9hG4bK{i:x}")
        tx, out = relay(table, req, now)
        data = out[-1].data
        if kind < 6:
            table.receive_reply(tx, 0, reply(data, 180, "Ringing"), now, sink)
            table.receive_reply(tx, 0, reply(data, 200, "OK"), now, sink)
        elif kind < 8:
            table.receive_reply(tx, 0, reply(data, 486, "Busy Here"), now, sink)
            ack = request("ACK", callid=f"call-{i}", branch=f"z9hG4bK{i:x}", to_tag="t1")
            found = table.match_request(ack)
            assert found is tx
            table.release(found, now)
        elif kind == 8:
            table.receive_reply(tx, 0, reply(data, 200, "OK"), now, sink)
        # kind 9: nobody answers: retransmissions, then a local 408
        sink.clear()
        if i % 100 == 0:
            table.on_deadline(now)
            peak = max(peak, len(table))
    del tx, req, out, data, found, ack
    now = T0 + COUNT * 0.001
    while (due := table.next_deadline()) is not None:
        now = max(now, due)
        table.on_deadline(now)
    # about (wt_timer + call time) x 1000/s transactions existed at once
    assert 5000 <= peak <= 8000
    assert table.snapshot() == {"server": 0, "client": 0, "heap": 0}
    stats = table.stat_values()
    assert stats["created"] == stats["freed"] == COUNT
    assert stats["inuse_transactions"] == 0 and stats["active_transactions"] == 0
    assert stats["2xx_transactions"] == COUNT * 7 // 10
    assert stats["4xx_transactions"] == COUNT * 3 // 10      # 486s and timeouts (408)
    gc.collect()
    assert _alive(Transaction) <= before[Transaction]
    assert _alive(ClientBranch) <= before[ClientBranch]
    assert _alive(SipMessage) <= before[SipMessage]
