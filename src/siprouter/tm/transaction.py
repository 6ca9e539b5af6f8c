"""Transaction records: one server side (the request we received) and its client
branches (the copies we sent), Kamailio's ``struct cell`` with its ``uac[]``.

Times are monotonic seconds; ``INF`` means "timer not running".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..routing.context import Address
from ..sip.message import SipMessage

INF: Final = float("inf")

# what a branch keeps of its final reply (Kamailio's uac[].reply)
NO_REPLY: Final = 0      # none, or dropped when the failure route started new branches
REAL_REPLY: Final = 1    # a received reply (ClientBranch.reply)
FAKED_REPLY: Final = 2   # a reply tm made up: 408 on timeout, 487 on CANCEL

# ClientBranch.cancel: where canceling the branch stands
CANCEL_NONE: Final = 0
CANCEL_WAIT: Final = 1   # marked canceled, no CANCEL sent (no provisional reply yet)
CANCEL_SENT: Final = 2   # our CANCEL is out (retransmitted until a reply or fr_timer)

FinalCallback = Callable[[int, "str | None", "SipMessage | None"], None]


class ClientBranch:
    """One outgoing copy of the request (Kamailio's ``struct ua_client``)."""

    __slots__ = ("index", "uri", "data", "dst", "local", "proto", "last_received",
                 "reply", "reply_kind", "replied", "timed_out", "retr_at", "retr_interval",
                 "fr_at", "cancel", "cancel_data", "cancel_retr_at", "cancel_interval",
                 "cancel_end_at", "on_failure", "on_reply")

    def __init__(self, index: int, uri: str, data: bytes, dst: Address, local: Address,
                 proto: str) -> None:
        self.index = index
        self.uri = uri
        self.data = data              # the request as sent (retransmissions, ACK, CANCEL)
        self.dst = dst
        self.local = local
        self.proto = proto
        self.last_received = 0        # highest status received (or faked) on this branch
        self.reply: SipMessage | None = None
        self.reply_kind = NO_REPLY
        self.replied = False          # any reply was received (Kamailio's F_RB_REPLIED)
        self.timed_out = False        # ended by the fr timer (F_RB_TIMEOUT)
        self.retr_at = INF
        self.retr_interval = 0.0
        self.fr_at = INF
        self.cancel = CANCEL_NONE
        self.cancel_data = b""
        self.cancel_retr_at = INF
        self.cancel_interval = 0.0
        self.cancel_end_at = INF
        self.on_failure: str | None = None
        self.on_reply: str | None = None

    @property
    def pending(self) -> bool:
        """No final reply yet."""
        return self.last_received < 200

    def next_due(self) -> float:
        return min(self.retr_at, self.fr_at, self.cancel_retr_at, self.cancel_end_at)

    def __repr__(self) -> str:
        return f"<ClientBranch {self.index} {self.uri} last={self.last_received}>"


class Transaction:
    """A transaction: the server side and its client branches.

    ``local`` transactions (tm's own requests) have no server side: their final
    reply goes to ``on_final``.
    """

    __slots__ = ("label", "key", "method", "is_invite", "local", "request", "src", "sock",
                 "proto", "server_key", "status", "reply_data", "reply_dst",
                 "reply_retr_at", "reply_interval", "reply_end_at", "on_wait", "delete_at",
                 "branches", "canceled", "six_xx", "admin_reply", "fr_timeout",
                 "fr_inv_timeout", "end_of_life", "on_failure", "on_reply", "on_branch",
                 "routing", "on_final", "cancel_reason", "relayed_branch", "error_reply",
                 "force_rport", "timer_at", "timer_seq", "dead", "auto_100", "picked",
                 "created", "tm_error")

    def __init__(self, label: int, key: str, method: str, created: float) -> None:
        self.label = label
        self.key = key                    # our branch without ".<index>"
        self.method = method
        self.is_invite = method == "INVITE"
        self.local = False
        self.request: SipMessage | None = None   # the request we received
        self.src: Address = ("", 0)
        self.sock: Address = ("", 0)      # the local socket it came in on
        self.proto = "udp"
        self.server_key: Any = None       # key in the server index (None: not indexed)
        self.status = 0                   # last reply sent upstream (Kamailio's uas.status)
        self.reply_data = b""             # ... and its bytes, for retransmissions
        self.reply_dst: Address = ("", 0)
        self.reply_retr_at = INF          # timer G (negative INVITE reply)
        self.reply_interval = 0.0
        self.reply_end_at = INF           # timer H: stop retransmitting the reply
        self.on_wait = False
        self.delete_at = INF              # wait timer: remove from the table
        self.branches: list[ClientBranch] = []
        self.canceled = False             # a CANCEL came for it (T_CANCELED)
        self.six_xx = False
        self.admin_reply = False          # t_reply() was used (T_ADMIN_REPLY)
        self.fr_timeout = 0.0
        self.fr_inv_timeout = 0.0
        self.end_of_life = INF
        self.on_failure: str | None = None
        self.on_reply: str | None = None
        self.on_branch: str | None = None
        self.routing: Any = None          # routing state saved for tm's routes (module)
        self.on_final: FinalCallback | None = None
        self.cancel_reason = ""           # Reason header lines of the CANCEL we got
        self.relayed_branch = -1
        self.error_reply: Any = None      # delayed error reply of a failed t_relay()
        self.force_rport = False
        self.timer_at = INF               # time of the live timer-heap entry
        self.timer_seq = -1
        self.dead = False
        self.auto_100 = True
        self.picked = -1                  # branch picked for the failure route
        self.created = created
        self.tm_error = 0                 # error of the last failed t_relay() in a failure route

    def next_due(self) -> float:
        due = min(self.delete_at, self.reply_retr_at, self.reply_end_at)
        for branch in self.branches:
            when = branch.next_due()
            if when < due:
                due = when
        return due

    def __repr__(self) -> str:
        return f"<Transaction {self.key} {self.method} status={self.status}>"
