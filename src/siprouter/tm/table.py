"""The transaction table: matching, RFC 3261 section 17 timers and proxy reply
aggregation (section 16.7), the way Kamailio 5.6's tm does them. Sans-IO.

Every entry point takes the current monotonic time ``now`` (seconds) and appends
the datagrams to send to an ``out`` list; :meth:`TransactionTable.on_deadline`
runs the timers that are due. The table is the :class:`~siprouter.routing.router.
TimerSource` the worker loop serves.

Timers per transaction (all in one heap entry, the earliest due):

* a branch: retransmission (A/E: T1 doubling up to T2; a non-INVITE branch goes
  to T2 after a provisional reply, an INVITE branch stops), final response
  timer (B/F: ``fr_timer``, ``fr_inv_timer`` once an INVITE branch got a
  provisional reply), retransmission of our CANCEL on it;
* the server side: retransmission of a negative INVITE reply (G, T1 doubling up
  to T2) until the ACK comes or ``fr_timer`` (H) passes;
* the wait timer: ``wt_timer`` after the transaction completed it is deleted;
  meanwhile it absorbs retransmissions.

The script side (failure_route) is reached through :class:`TmHooks`.
"""

from __future__ import annotations

import heapq
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..routing.context import Address, Outgoing
from ..routing.forward import strip_top_via
from ..sip.errors import SipError
from ..sip.message import SipMessage
from . import messages
from .messages import MAGIC, error_reply, error_text, hop_request, local_reply, local_totag
from .transaction import (
    CANCEL_NONE,
    CANCEL_SENT,
    CANCEL_WAIT,
    FAKED_REPLY,
    INF,
    NO_REPLY,
    REAL_REPLY,
    ClientBranch,
    FinalCallback,
    Transaction,
)

log: Final = logging.getLogger("siprouter.tm")

PENDING: Final = -2   # pick(): some branch has no final reply yet

# how to cancel a branch (Kamailio's F_CANCEL_B_* flags)
KILL: Final = 1          # stop the branch's timers; no CANCEL without a provisional reply
FAKE_REPLY: Final = 2    # no provisional reply yet: fake a 487 on it
FORCE_CANCEL: Final = 4  # send a CANCEL even without a provisional reply
FORCE_RETR: Final = 8    # no provisional reply yet: keep retransmitting until one comes
CANCEL_B_METHODS: Final = {0: FAKE_REPLY, 1: FORCE_RETR, 2: FORCE_CANCEL}

CANCELING: Final = "canceling"
CANCEL_DONE: Final = "ok -- no more pending branches"
CANCELED: Final = "Request canceled"

STAT_NAMES: Final = ("UAS_transactions", "UAC_transactions", "2xx_transactions", "3xx_transactions",
                     "4xx_transactions", "5xx_transactions", "6xx_transactions",
                     "inuse_transactions", "active_transactions", "received_replies",
                     "relayed_replies", "local_replies", "rpl_received", "rpl_generated",
                     "rpl_sent", "created", "freed")

# Kamailio's reply priorities for picking the best final reply (lower wins)
_CLASS_PRIO: Final = (32000, 11000, 0, 3000, 4000, 5000, 1000)
_PREFERRED_4XX: Final = frozenset((1, 7, 15, 20, 84))   # 401, 407, 415, 420, 484


@dataclass
class TmConfig:
    """tm's timer and behaviour parameters (milliseconds, as the modparams)."""

    fr_timer: int = 30000
    fr_inv_timer: int = 120000
    wt_timer: int = 5000
    retr_timer1: int = 500
    retr_timer2: int = 4000
    max_inv_lifetime: int = 180000
    max_noninv_lifetime: int = 32000
    auto_inv_100: bool = True
    auto_inv_100_reason: str = "trying -- your call is important to us"
    restart_fr_on_each_reply: bool = True
    cancel_b_method: int = 1
    remap_503_500: bool = True
    failure_reply_mode: int = 3
    faked_reply_prio: int = 0
    local_cancel_reason: bool = True
    e2e_cancel_reason: bool = True
    disable_6xx_block: bool = False
    server_header: str | None = None
    user_agent_header: str | None = None


class TmHooks(Protocol):
    """What the table needs from the script side."""

    def run_failure(self, tx: Transaction, picked: int, now: float,
                    out: list[Outgoing]) -> None:
        """Run the failure_route armed on branch ``picked`` (it may add branches)."""


OnReply = Callable[[Transaction, ClientBranch, SipMessage], bool]


def reply_prio(code: int, faked: bool, faked_prio: int = 0) -> int:
    """Kamailio's get_prio(): 6xx first, then 2xx, 3xx, 4xx (401/407/415/420/484
    before the other 4xx), 5xx; lower is better."""
    cls = code // 100
    if cls < 7:
        xx = code % 100
        prio = _CLASS_PRIO[cls] + ((xx if xx in _PREFERRED_4XX else 100 + xx)
                                   if cls == 4 else xx)
    else:
        prio = 10000 + code
    return prio + faked_prio if faked else prio


def server_key(msg: SipMessage) -> tuple[str, ...]:
    """The key matching a request to its server transaction (RFC 3261 17.2.3).

    With a magic-cookie branch: branch, sent-by and method (ACK matches INVITE);
    otherwise (RFC 2543) Call-ID, CSeq number, From tag and the top Via.
    """
    via = msg.via1
    method = "INVITE" if msg.method == "ACK" else msg.method
    branch = via.branch
    if branch and branch.startswith(MAGIC):
        return branch, via.host, via.port_str, method
    from_ = msg.from_
    return ("", msg.callid, msg.cseq.number, (from_.tag or "") if from_ else "",
            via.host, via.port_str, branch or "", method)


class TransactionTable:
    """All transactions of one process, their timers and statistics."""

    def __init__(self, config: TmConfig, rank: int = 0, tag_prefix: str = "",
                 hooks: TmHooks | None = None, label: int | None = None) -> None:
        self.config = config
        self.rank = rank
        self.tag_prefix = tag_prefix or messages.tag_prefix("127.0.0.1", 5060)
        self.hooks = hooks
        self.server: dict[tuple[str, ...], Transaction] = {}
        self.client: dict[str, Transaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = 0
        self._stale = 0     # heap entries superseded by an earlier one (lazy deletion)
        # labels start at a random point so that branches differ across restarts
        self._label = random.getrandbits(32) if label is None else label
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        self._waiting = 0   # transactions on the wait timer
        # failure_reply_mode of the failure route running now (t_drop_replies())
        self.drop_replies = config.failure_reply_mode
        self.configure(config)

    def configure(self, config: TmConfig) -> None:
        """Take (new) parameter values; running timers keep their deadlines."""
        self.config = config
        self.t1 = config.retr_timer1 / 1000.0
        self.t2 = config.retr_timer2 / 1000.0
        self.fr = config.fr_timer / 1000.0
        self.fr_inv = config.fr_inv_timer / 1000.0
        self.wait = config.wt_timer / 1000.0
        self.max_inv = config.max_inv_lifetime / 1000.0
        self.max_noninv = config.max_noninv_lifetime / 1000.0
        self.cancel_flags = CANCEL_B_METHODS.get(config.cancel_b_method, FAKE_REPLY)

    def __len__(self) -> int:
        return len(self.client)

    def reseed(self) -> None:
        """New random label start (after a fork: each process gets its own)."""
        self._label = int.from_bytes(os.urandom(4), "big")

    def receive(self, msg: SipMessage, now: float) -> list[Outgoing] | None:
        """What the transaction layer does by itself with a received message.

        A reply of one of our transactions is processed (relayed, ACKed,
        aggregated); a request retransmission gets the last reply again; the
        ACK of a negative reply stops its retransmissions. Returns the
        datagrams to send, or None when no transaction takes the message (a
        new request, an ACK to a 2xx, a stray reply: the caller routes it).
        """
        out: list[Outgoing] = []
        if not msg.is_request:
            found = self.match_reply(msg)
            if found is None:
                return None
            self.receive_reply(found[0], found[1], msg, now, out)
            return out
        tx = self.match_request(msg)
        if tx is None:
            return None
        if msg.method == "ACK":
            if not (tx.is_invite and tx.status >= 300):
                return None
            self.release(tx, now)
            return out
        self.retransmit_reply(tx, out)
        return out

    # ------------------------------------------------------------ matching
    def match_request(self, msg: SipMessage) -> Transaction | None:
        """The server transaction of a request (an ACK matches its INVITE), or None."""
        try:
            key = server_key(msg)
        except SipError:
            return None
        return self.server.get(key)

    def match_cancel(self, msg: SipMessage) -> Transaction | None:
        """The INVITE transaction a CANCEL cancels (Kamailio's t_lookupOriginalT)."""
        try:
            key = server_key(msg)
        except SipError:
            return None
        key = key[:-1] + ("INVITE",)
        tx = self.server.get(key)
        return tx if tx is not None and tx.is_invite else None

    def match_reply(self, msg: SipMessage) -> tuple[Transaction, int] | None:
        """The transaction and branch index of a reply, from our branch in its top Via."""
        try:
            branch = msg.via1.branch
            method = msg.cseq.method
        except SipError:
            return None
        if branch is None or not branch.startswith(messages.BRANCH_PREFIX):
            return None
        key, dot, index = branch.rpartition(".")
        tx = self.client.get(key)
        if tx is None or not index.isdigit() or not index.isascii():
            return None
        i = int(index)
        if i >= len(tx.branches):
            return None
        if method != tx.method and not (method == "CANCEL" and tx.is_invite):
            return None
        return tx, i

    @staticmethod
    def reply_owner(msg: SipMessage) -> int | None:
        """The worker rank owning a reply's transaction (from our Via branch)."""
        try:
            return messages.branch_owner(msg.via1.branch)
        except SipError:
            return None

    # ------------------------------------------------------------ creation
    def _next_label(self) -> int:
        self._label = (self._label + 1) & 0xFFFFFFFF
        return self._label

    def new_server(self, msg: SipMessage, src: Address, sock: Address, proto: str,
                   now: float, force_rport: bool = False) -> Transaction:
        """A server transaction for a new request (Kamailio's t_newtran()).

        Until a branch is sent or a final reply is, the transaction is due for
        deletion after the wait time (Kamailio releases it at the script's end).
        """
        label = self._next_label()
        tx = Transaction(label, messages.transaction_key(self.rank, label), msg.method, now)
        tx.request = msg
        tx.src = src
        tx.sock = sock
        tx.proto = proto
        tx.force_rport = force_rport
        via = msg.via1
        port = src[1] if force_rport or via.has_param("rport") else (via.port or 5060)
        tx.reply_dst = (src[0], port)
        tx.fr_timeout = self.fr
        tx.fr_inv_timeout = self.fr_inv
        tx.end_of_life = now + (self.max_inv if tx.is_invite else self.max_noninv)
        tx.server_key = key = server_key(msg)
        self.server[key] = tx
        self.client[tx.key] = tx
        tx.delete_at = now + self.wait
        self._schedule(tx)
        self.stats["UAS_transactions"] += 1
        self.stats["created"] += 1
        return tx

    def new_local(self, method: str, now: float, on_final: FinalCallback) -> Transaction:
        """A transaction for a request tm originates itself (no server side)."""
        label = self._next_label()
        tx = Transaction(label, messages.transaction_key(self.rank, label), method, now)
        tx.local = True
        tx.on_final = on_final
        tx.fr_timeout = self.fr
        tx.fr_inv_timeout = self.fr_inv
        tx.end_of_life = now + (self.max_inv if tx.is_invite else self.max_noninv)
        self.client[tx.key] = tx
        self.stats["UAC_transactions"] += 1
        self.stats["created"] += 1
        return tx

    @staticmethod
    def next_branch(tx: Transaction) -> str:
        """The Via branch the next branch of ``tx`` will carry."""
        return f"{tx.key}.{len(tx.branches)}"

    def add_branch(self, tx: Transaction, uri: str, data: bytes, dst: Address,
                   local: Address, proto: str, now: float, out: list[Outgoing],
                   on_failure: str | None = None, on_reply: str | None = None) -> ClientBranch:
        """Send a new branch (built with :meth:`next_branch`) and start its timers."""
        branch = ClientBranch(len(tx.branches), uri, data, dst, local, proto)
        branch.on_failure = on_failure
        branch.on_reply = on_reply
        tx.branches.append(branch)
        if not tx.on_wait:
            tx.delete_at = INF
        out.append(Outgoing(data, dst, local, proto))
        if proto == "udp":
            branch.retr_interval = self.t1
            branch.retr_at = now + self.t1
        branch.fr_at = min(now + tx.fr_timeout, tx.end_of_life)
        self._schedule(tx)
        return branch

    # ------------------------------------------------------------ server side
    def reply(self, tx: Transaction, code: int, reason: str, now: float,
              out: list[Outgoing], extra: list[str] | tuple[str, ...] = (),
              request: SipMessage | None = None) -> int:
        """Send a reply of our own to the transaction's request (t_reply()).

        Returns 1, or -1 when a final reply was already sent.
        """
        if tx.status >= 200 or tx.request is None:
            log.error("can't generate %d reply when a final %d was sent out", code, tx.status)
            return -1
        req = request or tx.request
        to_tag = None
        if code >= 180:
            to = req.to
            if to is not None and not to.tag:
                to_tag = local_totag(self.tag_prefix, req.via1, req.callid)
        data = local_reply(req, tx.src[0], tx.src[1], tx.force_rport, code, reason, to_tag,
                           extra, self.config.server_header).encode("latin-1")
        tx.status = code
        tx.reply_data = data
        tx.relayed_branch = -2
        self._count_reply(code, generated=True)
        out.append(Outgoing(data, tx.reply_dst, tx.sock, tx.proto))
        if code >= 200:
            reason_text = "Call completed elsewhere" if code == 200 else None
            self._completed(tx, code, now, out, KILL, messages.reason_header(code, reason_text))
        return 1

    def retransmit_reply(self, tx: Transaction, out: list[Outgoing]) -> int:
        """Send the last reply again (a request retransmission came)."""
        if not tx.reply_data:
            return -1
        out.append(Outgoing(tx.reply_data, tx.reply_dst, tx.sock, tx.proto))
        return 1

    def release(self, tx: Transaction, now: float) -> None:
        """The ACK of a negative reply came (or t_release()): stop and wait."""
        tx.reply_retr_at = tx.reply_end_at = INF
        for branch in tx.branches:
            branch.retr_at = branch.fr_at = INF
        self._put_on_wait(tx, now)
        self._schedule(tx)

    def cancel_invite(self, inv: Transaction, cancel: Transaction, cancel_msg: SipMessage,
                      now: float, out: list[Outgoing]) -> None:
        """A CANCEL came for ``inv``: cancel its pending branches and answer the
        CANCEL's own transaction (200 canceling) (Kamailio's e2e_cancel())."""
        inv.canceled = True
        if not inv.branches:
            self.reply(inv, 487, CANCELED, now, out)
            self.reply(cancel, 200, CANCEL_DONE, now, out)
            return
        if self.config.e2e_cancel_reason and not inv.cancel_reason:
            text = cancel_msg.text
            inv.cancel_reason = "".join(text[hdr.start:hdr.end]
                                        for hdr in cancel_msg.headers_named("reason"))
        pending = [b for b in inv.branches if b.pending and b.cancel != CANCEL_SENT]
        for branch in pending:
            self._cancel_branch(inv, branch, inv.cancel_reason, self.cancel_flags, now, out)
        self._schedule(inv)
        self.reply(cancel, 200, CANCELING if pending else CANCEL_DONE, now, out)

    # ------------------------------------------------------------ client side
    def receive_reply(self, tx: Transaction, index: int, msg: SipMessage, now: float,
                      out: list[Outgoing], onreply: OnReply | None = None) -> None:
        """A reply for branch ``index`` of ``tx`` (Kamailio's reply_received()).

        ``onreply`` runs the branch's onreply_route; False = dropped (only
        provisional replies can be dropped).
        """
        self.stats["rpl_received"] += 1
        branch = tx.branches[index]
        code = msg.status
        if tx.is_invite and msg.cseq.method == "CANCEL":
            # the reply to our own CANCEL on this branch
            branch.cancel_retr_at = INF
            if code >= 200:
                branch.cancel_end_at = INF
            return
        last = branch.last_received
        if code >= 200:
            branch.retr_at = branch.fr_at = INF
            if tx.is_invite and code >= 300:
                self._send_ack(branch, msg, out)
        else:
            if branch.cancel != CANCEL_NONE:
                # canceled before it answered: the CANCEL can go now
                if branch.cancel == CANCEL_SENT:
                    out.append(Outgoing(branch.cancel_data, branch.dst, branch.local,
                                        branch.proto))
                else:
                    reason = tx.cancel_reason or (messages.reason_header(tx.status)
                                                  if tx.status >= 200 else "")
                    self._send_cancel(tx, branch, reason, now, out)
                self._schedule(tx)
                return
            if tx.is_invite:
                branch.retr_at = INF
            elif branch.retr_at < INF:
                branch.retr_interval = self.t2
                branch.retr_at = now + self.t2
        if onreply is not None and branch.on_reply is not None and not tx.local:
            if not onreply(tx, branch, msg) and code < 200:
                self._schedule(tx)
                return
        if tx.local:
            self._local_reply(tx, branch, code, msg, now, out)
        else:
            self._branch_reply(tx, branch, code, msg, now, out)
        branch.replied = True
        if tx.is_invite and code < 200 and branch.pending and (
                self.config.restart_fr_on_each_reply
                or (last < code and (code >= 180 or last == 0))):
            branch.fr_at = min(now + tx.fr_inv_timeout, tx.end_of_life)
        if not tx.dead:
            self._schedule(tx)

    def pick(self, tx: Transaction) -> int:
        """The branch whose final reply is best (t_pick_branch()), PENDING while
        some branch has none, -1 when no kept reply is left."""
        best = -1
        best_prio = _CLASS_PRIO[0]
        faked_prio = self.config.faked_reply_prio
        for branch in tx.branches:
            if branch.last_received < 200:
                return PENDING
            if branch.reply_kind != NO_REPLY:
                prio = reply_prio(branch.last_received, branch.reply_kind == FAKED_REPLY,
                                  faked_prio)
                if prio < best_prio:
                    best = branch.index
                    best_prio = prio
        return best

    def _branch_reply(self, tx: Transaction, branch: ClientBranch, code: int,
                      msg: SipMessage | None, now: float, out: list[Outgoing]) -> None:
        """Decide what a branch's reply (``msg`` None: faked) does to the transaction
        (Kamailio's t_should_relay_response() and relay_reply())."""
        inv_through = tx.is_invite and 200 <= code < 300
        if tx.status >= 200:
            if inv_through:
                # a 2xx after the final reply: proxies relay every 2xx
                branch.last_received = code
                self._relay(tx, branch, code, msg, now, out, completed=False)
            return
        if branch.last_received >= 200 and not (inv_through and branch.last_received < 300):
            return   # retransmission or late reply on a finished branch
        if code >= 300:
            branch.last_received = code
            if msg is None:
                branch.reply_kind = FAKED_REPLY
            else:
                branch.reply_kind = REAL_REPLY
                branch.reply = msg
            picked = self.pick(tx)
            if picked == PENDING:
                if code >= 600 and not tx.six_xx and not self.config.disable_6xx_block:
                    tx.six_xx = True
                    reason = messages.reason_header(code)
                    for other in tx.branches:
                        if other.pending and other.cancel != CANCEL_SENT:
                            self._cancel_branch(tx, other, reason, self.cancel_flags, now, out)
                return
            self._all_final(tx, picked, now, out)
            return
        branch.last_received = code
        if code >= 200:
            self._relay(tx, branch, code, msg, now, out, completed=True)
        elif code > 100:
            self._relay(tx, branch, code, msg, now, out, completed=False)

    def _all_final(self, tx: Transaction, picked: int, now: float,
                   out: list[Outgoing]) -> None:
        """Every branch has a final reply, the best being >= 300: failure_route,
        then relay the best reply unless the route forked again or replied."""
        count = len(tx.branches)
        tx.six_xx = False
        if tx.branches[picked].on_failure is not None and self.hooks is not None:
            tx.picked = picked
            tx.tm_error = 0
            self.drop_replies = self.config.failure_reply_mode
            self.hooks.run_failure(tx, picked, now, out)
            mode = self.drop_replies
            if (mode == 3 and count < len(tx.branches)) or mode not in (0, 3):
                for old in tx.branches[:count]:
                    old.reply_kind = NO_REPLY
                    old.reply = None
                picked = -1   # a dropped reply is never relayed
        if tx.status >= 200 or tx.dead:
            return   # the failure route replied
        if count < len(tx.branches):
            new = self.pick(tx)
            if new == PENDING:
                return
            if new >= 0:
                picked = new
        if picked < 0:
            code, reason = error_reply(tx.tm_error or -1)
            self.reply(tx, code, reason, now, out)
            return
        best = tx.branches[picked]
        self._relay(tx, best, best.last_received,
                    best.reply if best.reply_kind == REAL_REPLY else None, now, out,
                    completed=True)

    def _relay(self, tx: Transaction, branch: ClientBranch, code: int,
               msg: SipMessage | None, now: float, out: list[Outgoing],
               completed: bool) -> None:
        """Send a branch's reply upstream; a faked one becomes a local reply
        (487 if the transaction was canceled), a 503 becomes a local 500."""
        generated = msg is None
        relayed_code = code
        if msg is None or (code == 503 and self.config.remap_503_500):
            if msg is None:
                if tx.canceled:
                    relayed_code = 487
                reason = error_text(relayed_code)
            else:
                reason = error_text(503)
                relayed_code = 500
                generated = True
            assert tx.request is not None
            req = tx.request
            to_tag = None
            to = req.to
            if relayed_code >= 180 and to is not None and not to.tag:
                to_tag = local_totag(self.tag_prefix, req.via1, req.callid)
            text = local_reply(req, tx.src[0], tx.src[1], tx.force_rport, relayed_code,
                               reason, to_tag, (), self.config.server_header)
        else:
            stripped = strip_top_via(msg)
            if stripped is None:
                log.error("cannot relay a %d reply without a second Via", code)
                return
            text = msg.render([stripped[0]])
        data = text.encode("latin-1")
        tx.reply_data = data
        tx.status = relayed_code
        tx.relayed_branch = branch.index
        self._count_reply(relayed_code, generated)
        out.append(Outgoing(data, tx.reply_dst, tx.sock, tx.proto))
        if completed:
            reason = (messages.reason_header(200, "Call completed elsewhere")
                      if 200 <= relayed_code < 300 else "")
            self._completed(tx, relayed_code, now, out, KILL, reason)

    def _completed(self, tx: Transaction, code: int, now: float, out: list[Outgoing],
                   cancel_flags: int, reason: str) -> None:
        """The first final reply went upstream: stop the branches (canceling the
        pending ones of an INVITE), retransmit a negative INVITE reply, wait."""
        for branch in tx.branches:
            branch.retr_at = branch.fr_at = INF
        if tx.is_invite:
            if not self.config.local_cancel_reason:
                reason = ""
            for branch in tx.branches:
                if branch.pending and branch.cancel != CANCEL_SENT:
                    self._cancel_branch(tx, branch, reason, cancel_flags, now, out)
            if code >= 300 and not tx.local and tx.proto == "udp":
                tx.reply_interval = self.t1
                tx.reply_retr_at = now + self.t1
                tx.reply_end_at = now + tx.fr_timeout
        self._put_on_wait(tx, now)
        self._schedule(tx)

    def _local_reply(self, tx: Transaction, branch: ClientBranch, code: int,
                     msg: SipMessage | None, now: float, out: list[Outgoing]) -> None:
        """A reply (``msg`` None: timeout) to a request tm originated."""
        if code < 200:
            if branch.last_received < code:
                branch.last_received = code
            return
        if tx.status >= 200 or branch.last_received >= 200:
            return
        branch.last_received = code
        tx.status = code
        self._count_reply(code, generated=msg is None)
        for other in tx.branches:
            other.retr_at = other.fr_at = INF
        self._put_on_wait(tx, now)
        callback = tx.on_final
        tx.on_final = None
        if callback is not None:
            try:
                callback(code, msg.reason if msg is not None else None, msg)
            except Exception:  # noqa: BLE001 - a callback must not break the table
                log.exception("error in the final-reply callback of a local request")

    def _count_reply(self, code: int, generated: bool, delta: int = 1) -> None:
        stats = self.stats
        stats["rpl_sent"] += delta
        if generated:
            stats["rpl_generated"] += delta
        if code >= 200:
            name = "6xx_transactions" if code >= 600 else f"{code // 100}xx_transactions"
            if name in stats:
                stats[name] += delta

    def withdraw_reply(self, tx: Transaction, status: int, data: bytes) -> None:
        """Take back the local reply just sent (the caller removes its datagram):
        the transaction's reply state goes back to ``status`` / ``data``."""
        self._count_reply(tx.status, True, -1)
        tx.status = status
        tx.reply_data = data
        tx.reply_retr_at = tx.reply_end_at = INF

    # ------------------------------------------------------------ canceling branches
    def _cancel_branch(self, tx: Transaction, branch: ClientBranch, reason: str, flags: int,
                       now: float, out: list[Outgoing]) -> None:
        """Kamailio's cancel_branch(): CANCEL a branch that got a provisional reply;
        otherwise stop it, keep retransmitting or fake a 487, as ``flags`` say."""
        if branch.cancel == CANCEL_NONE:
            branch.cancel = CANCEL_WAIT
        if flags & KILL:
            branch.retr_at = branch.fr_at = INF
            if branch.last_received < 100 and not flags & FORCE_CANCEL:
                return
        else:
            if branch.last_received < 100 and not flags & FORCE_CANCEL:
                if not flags & FORCE_RETR:
                    branch.retr_at = INF
                if flags & FAKE_REPLY:
                    branch.retr_at = branch.fr_at = INF
                    self._branch_reply(tx, branch, 487, None, now, out)
                return
            branch.retr_at = INF
        self._send_cancel(tx, branch, reason, now, out)

    def _send_cancel(self, tx: Transaction, branch: ClientBranch, reason: str, now: float,
                     out: list[Outgoing]) -> None:
        invite = branch.data.decode("latin-1")
        data = hop_request(invite, "CANCEL", None, reason).encode("latin-1")
        branch.cancel = CANCEL_SENT
        branch.cancel_data = data
        out.append(Outgoing(data, branch.dst, branch.local, branch.proto))
        if branch.proto == "udp":
            branch.cancel_interval = self.t1
            branch.cancel_retr_at = now + self.t1
        branch.cancel_end_at = now + tx.fr_timeout

    @staticmethod
    def _send_ack(branch: ClientBranch, reply: SipMessage, out: list[Outgoing]) -> None:
        """The hop-by-hop ACK of a negative final reply on an INVITE branch."""
        to = reply.header("to")
        to_line = reply.text[to.start:to.end] if to is not None else None
        data = hop_request(branch.data.decode("latin-1"), "ACK", to_line)
        out.append(Outgoing(data.encode("latin-1"), branch.dst, branch.local, branch.proto))

    def _branch_timeout(self, tx: Transaction, branch: ClientBranch, now: float,
                        out: list[Outgoing]) -> None:
        """No final reply within the fr timer: a faked 408 on the branch (Kamailio's
        fake_reply()); an INVITE branch that got a provisional reply is canceled."""
        branch.timed_out = True
        branch.retr_at = branch.fr_at = INF
        do_cancel = (tx.is_invite and 100 <= branch.last_received < 200
                     and branch.cancel != CANCEL_SENT)
        if branch.cancel == CANCEL_NONE:
            branch.cancel = CANCEL_WAIT
        if tx.local:
            self._local_reply(tx, branch, 408, None, now, out)
        else:
            self._branch_reply(tx, branch, 408, None, now, out)
        if do_cancel and not tx.dead:
            self._send_cancel(tx, branch, "", now, out)

    # ------------------------------------------------------------ timers
    def _put_on_wait(self, tx: Transaction, now: float) -> None:
        if not tx.on_wait:
            tx.on_wait = True
            tx.delete_at = now + self.wait
            self._waiting += 1

    def change_fr(self, tx: Transaction, fr_inv: float, fr: float, now: float) -> None:
        """New final-response timeouts (seconds; 0 = unchanged) for ``tx`` and its running branches.

        Kamailio's change_fr(): a pending branch restarts its timer from ``now``:
        with ``fr_inv`` when it is an INVITE branch past a provisional reply (its
        timer is the fr_inv one), with ``fr`` otherwise.
        """
        if fr_inv:
            tx.fr_inv_timeout = fr_inv
        if fr:
            tx.fr_timeout = fr
        for branch in tx.branches:
            if not branch.pending or branch.fr_at == INF:
                continue
            if tx.is_invite and branch.last_received >= 100:
                if fr_inv:
                    branch.fr_at = min(now + fr_inv, tx.end_of_life)
            elif fr:
                branch.fr_at = min(now + fr, tx.end_of_life)
        if not tx.dead:
            self._schedule(tx)

    def _schedule(self, tx: Transaction) -> None:
        """Make sure the heap has an entry for the transaction's earliest timer.

        A later deadline keeps the existing (earlier) entry, which re-schedules
        when it fires; an earlier one supersedes it, and the stale entry stays
        in the heap until its time (or a compaction) comes.
        """
        due = tx.next_due()
        if due < tx.timer_at:
            if tx.timer_seq >= 0:
                self._stale += 1
                if self._stale > 4096 and self._stale * 2 > len(self._heap):
                    self._compact()
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, tx))
            tx.timer_at = due
            tx.timer_seq = self._seq

    def _compact(self) -> None:
        """Drop the stale heap entries (they would keep finished transactions alive)."""
        heap = self._heap
        heap[:] = [entry for entry in heap if entry[1] == entry[2].timer_seq
                   and not entry[2].dead]   # in place: on_deadline() holds the list
        heapq.heapify(heap)
        self._stale = 0

    def next_deadline(self) -> float | None:
        """When on_deadline() must run next (possibly early), or None."""
        heap = self._heap
        return heap[0][0] if heap else None

    def on_deadline(self, now: float) -> list[Outgoing]:
        """Run every timer due at ``now``; return the datagrams to send."""
        out: list[Outgoing] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _when, seq, tx = heapq.heappop(heap)
            if seq != tx.timer_seq or tx.dead:
                if self._stale:
                    self._stale -= 1
                continue   # superseded by an earlier entry
            tx.timer_at = INF
            tx.timer_seq = -1
            try:
                self._fire(tx, now, out)
            except Exception:  # noqa: BLE001 - one transaction must not stop the others
                log.exception("error in a timer of transaction %s", tx.key)
            if not tx.dead:
                self._schedule(tx)
        return out

    def _fire(self, tx: Transaction, now: float, out: list[Outgoing]) -> None:
        if tx.delete_at <= now:
            self._delete(tx)
            return
        if tx.reply_end_at <= now:
            tx.reply_retr_at = tx.reply_end_at = INF
            self._put_on_wait(tx, now)
        elif tx.reply_retr_at <= now:
            out.append(Outgoing(tx.reply_data, tx.reply_dst, tx.sock, tx.proto))
            tx.reply_interval = min(tx.reply_interval * 2, self.t2)
            tx.reply_retr_at = now + tx.reply_interval
        for branch in list(tx.branches):
            if branch.cancel_end_at <= now:
                branch.cancel_retr_at = branch.cancel_end_at = INF
            elif branch.cancel_retr_at <= now:
                out.append(Outgoing(branch.cancel_data, branch.dst, branch.local, branch.proto))
                branch.cancel_interval = min(branch.cancel_interval * 2, self.t2)
                branch.cancel_retr_at = now + branch.cancel_interval
            if branch.fr_at <= now:
                self._branch_timeout(tx, branch, now, out)
            elif branch.retr_at <= now:
                out.append(Outgoing(branch.data, branch.dst, branch.local, branch.proto))
                branch.retr_interval = min(branch.retr_interval * 2, self.t2)
                branch.retr_at = now + branch.retr_interval
            if tx.dead:
                return

    def _delete(self, tx: Transaction) -> None:
        tx.dead = True
        key = tx.server_key
        if key is not None and self.server.get(key) is tx:
            del self.server[key]
        if self.client.get(tx.key) is tx:
            del self.client[tx.key]
        self.stats["freed"] += 1
        if tx.on_wait:
            self._waiting -= 1
        # drop references early: a deleted transaction may still sit in the heap
        tx.branches = []
        tx.request = None
        tx.routing = None
        tx.on_final = None
        tx.error_reply = None

    def stat_values(self) -> dict[str, int]:
        """tm statistics of this process, with Kamailio's (tmx) names."""
        stats = dict(self.stats)
        stats["inuse_transactions"] = len(self.client)
        stats["active_transactions"] = len(self.client) - self._waiting
        stats["received_replies"] = stats["rpl_received"]
        stats["local_replies"] = stats["rpl_generated"]
        stats["relayed_replies"] = stats["rpl_sent"] - stats["rpl_generated"]
        return stats

    def snapshot(self) -> dict[str, Any]:
        """Sizes of the internal structures (leak checks)."""
        return {"server": len(self.server), "client": len(self.client), "heap": len(self._heap)}
