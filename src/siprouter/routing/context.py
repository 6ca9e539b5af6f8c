"""Per-message processing state shared by the script, the core and the modules.

A :class:`Context` is what Kamailio calls ``struct sip_msg`` plus the routing
state around it: the rewritten R-URI, ``$du``, the destination set, flags,
reply lumps, ``$retcode`` and the datagrams the script decided to send.
Nothing here does I/O: outgoing datagrams are collected in ``out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sip.message import SipMessage
from ..sip.uri import Uri, parse_uri

if TYPE_CHECKING:
    from .router import Router

Address = tuple[str, int]


@dataclass(slots=True)
class Branch:
    """An entry of the destination set added by append_branch()."""

    uri: str
    q: str | None = None
    dst_uri: str | None = None
    flags: int = 0


class Outgoing:
    """A datagram to send: bytes, destination address, and the local socket to use.

    ``steer`` > 0 means: not for the network, hand ``data`` (as received from ``dst``
    on ``local``) to worker number ``steer``, which owns its transaction.

    (A plain class rather than a dataclass: one is made per message, and the
    dataclass ``__init__`` stays interpreted Python even in the compiled build.)
    """

    __slots__ = ("data", "dst", "local", "proto", "steer")

    def __init__(self, data: bytes, dst: Address, local: Address, proto: str = "udp",
                 steer: int = 0) -> None:
        self.data = data
        self.dst = dst
        self.local = local
        self.proto = proto
        self.steer = steer

    def _fields(self) -> tuple[bytes, Address, Address, str, int]:
        return self.data, self.dst, self.local, self.proto, self.steer

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outgoing):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Outgoing(data={self.data!r}, dst={self.dst!r}, local={self.local!r}, "
                f"proto={self.proto!r}, steer={self.steer!r})")


class ScriptExit(Exception):
    """Unwinds the whole script: exit, drop, return 0, or a function returning 0."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


class RouteReturn(Exception):
    """Leaves the current route block with ``code`` (``return N``)."""

    def __init__(self, code: int = 1) -> None:
        super().__init__(code)
        self.code = code


class Context:
    """Everything the routing logic knows about the message being processed."""

    __slots__ = ("router", "msg", "src", "local", "proto", "now", "new_ruri", "_new_uri",
                 "dst_uri", "branches", "flags", "force_rport", "reply_lumps", "retcode",
                 "dropped", "no_reply", "last_error", "avps", "xavps", "out", "route_type",
                 "event", "replied", "depth", "ruri_q", "rr_added", "stop", "exit_code", "tm")

    def __init__(self, router: Router, msg: SipMessage, src: Address, local: Address,
                 proto: str = "udp", now: float = 0.0, route_type: str = "request") -> None:
        self.router = router
        self.msg = msg
        self.src = src
        self.local = local
        self.proto = proto
        self.now = now
        self.new_ruri: str | None = None
        self._new_uri: Uri | None = None
        self.dst_uri: str | None = None
        self.branches: list[Branch] = []
        self.flags = 0
        self.force_rport = False
        self.reply_lumps: list[str] = []
        self.retcode = 0   # Kamailio starts every top-level route with $rc = 0
        self.dropped = False
        self.no_reply = False
        self.last_error = -1
        self.avps: dict[str, list[Any]] = {}
        # name -> items, newest first; an item is a dict field -> value (see pv.XavpValues)
        # or a plain value for $xavp(name) = v
        self.xavps: dict[str, list[Any]] = {}
        self.out: list[Outgoing] = []
        self.route_type = route_type
        self.event: dict[str, Any] = {}
        self.replied = False
        self.depth = 0
        self.ruri_q: str | None = None
        self.rr_added = False   # record_route() already done (Kamailio's FL_RR_ADDED)
        # ``exit``/``drop`` ran: every enclosing statement returns at once (cheaper
        # than unwinding with an exception); exit_code is the script's code
        self.stop = False
        self.exit_code = 0
        # tm's per-message state (armed routes, the transaction...): see modules/tm.py
        self.tm: Any = None

    # ----------------------------------------------------------------- R-URI
    @property
    def ruri(self) -> str:
        """The current Request-URI (after rewrites)."""
        return self.new_ruri if self.new_ruri is not None else self.msg.ruri

    @property
    def uri(self) -> Uri:
        """The current Request-URI, parsed (raises UriError)."""
        if self.new_ruri is None:
            return self.msg.uri
        if self._new_uri is None:
            self._new_uri = parse_uri(self.new_ruri)
        return self._new_uri

    def set_ruri(self, value: str | None) -> None:
        """Rewrite the R-URI (None reverts to the received one)."""
        self.new_ruri = value
        self._new_uri = None

    def send(self, data: bytes, dst: Address, local: Address | None = None) -> None:
        self.out.append(Outgoing(data, dst, local or self.local, self.proto))
