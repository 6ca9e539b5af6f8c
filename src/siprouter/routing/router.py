"""The sans-IO routing engine: datagram in, datagrams out.

:meth:`Router.handle` takes the bytes of one datagram with its addresses and
returns the datagrams to send. It runs Kamailio's receive path: parse, drop
what Kamailio drops, pre-script hooks (the sl ACK filter), then the request
route, or for a reply the reply route and the stateless relay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from ..sip.errors import SipError
from ..sip.headers import is_digits
from ..sip.message import SipMessage, parse_message
from .context import Address, Context, Outgoing, RouteReturn, ScriptExit
from .forward import forward_reply
from .owners import DEFAULT_LEASE, CallOwners
from .settings import CoreSettings

if TYPE_CHECKING:
    from ..modules.base import Module

log: Final = logging.getLogger("siprouter.core")

RouteFn = Callable[[Context], None]
MIN_DATAGRAM: Final = 32


class TimerSource(Protocol):
    """Something with deadlines that the worker loop must serve (tm, dispatcher pings)."""

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which on_deadline() must run, or None."""

    def on_deadline(self, now: float) -> list[Outgoing]:
        """Run what is due at ``now``; return the datagrams to send."""

# Headers that the 5.6 strict parser refuses to see twice before any route runs.
# (A duplicate Max-Forwards only breaks the full parse: see has_broken_headers().)
_SINGLE_HEADERS: Final[tuple[str, ...]] = ("from", "to", "call-id", "cseq", "content-length")
_REQUIRED: Final[tuple[str, ...]] = ("from", "to", "call-id", "cseq", "via")


@dataclass
class Script:
    """Compiled routing logic: callables per route kind and name."""

    request: RouteFn | None = None
    reply: RouteFn | None = None
    onsend: RouteFn | None = None
    named: dict[str, RouteFn] = field(default_factory=dict)
    failure: dict[str, RouteFn] = field(default_factory=dict)
    onreply: dict[str, RouteFn] = field(default_factory=dict)
    branch: dict[str, RouteFn] = field(default_factory=dict)
    event: dict[str, RouteFn] = field(default_factory=dict)


class CoreStats:
    """Kamailio's core statistics group (per process)."""

    NAMES = ("rcv_requests", "rcv_replies", "fwd_requests", "fwd_replies", "drop_requests",
             "drop_replies", "err_requests", "err_replies", "bad_URIs_rcvd",
             "unsupported_methods", "bad_msg_hdr")

    def __init__(self) -> None:
        self.values = dict.fromkeys(self.NAMES, 0)


def _drop_check(msg: SipMessage) -> str | None:
    """Why Kamailio 5.6's core would drop this message before any route, or None."""
    missing = msg.missing(_REQUIRED)
    if missing is not None:
        return "missing Via header" if missing == "via" else f"missing {missing} header"
    repeated = msg.first_repeated(_SINGLE_HEADERS)
    if repeated is not None:
        return f"duplicate {repeated} header"
    try:
        msg.via1  # noqa: B018 - parse the top Via
        msg.cseq  # noqa: B018
        msg.to  # noqa: B018 - the core parses To while reading headers
    except SipError as err:
        return err.reason
    hdr = msg.header("content-length")
    if hdr is not None:
        value = hdr.value
        if not is_digits(value) or len(value) > 10:
            return f"bad Content-Length {value!r}"
    return None


def has_broken_headers(msg: SipMessage) -> bool:
    """True when parsing *all* headers fails in Kamailio 5.6 (no reply can be built)."""
    return "max-forwards" in msg.repeated()


class Router:
    """The routing engine of one worker: settings, modules and compiled script."""

    def __init__(self, settings: CoreSettings, modules: dict[str, Module] | None = None,
                 script: Script | None = None) -> None:
        self.settings = settings
        self.modules: dict[str, Module] = modules or {}
        self.script = script or Script()
        self.stats = CoreStats()
        self.pre_script: list[Callable[[Context], bool]] = []
        self.reply_hooks: list[Callable[[Context], bool]] = []
        self.var_store: dict[str, object] = {}   # $var(): per worker process
        self.rank = 0          # 0: single process; workers 1..children; -1: control process
        self.children = 1
        # deadline sources served by the worker loop (modules add them in child_init)
        self.timers: list[TimerSource] = []
        # tm: keep all requests of a call (retransmissions, ACK, CANCEL) in the worker
        # that received its first one (see owners.py); the supervisor shares the table
        self.steer_requests = False
        self.call_owners: CallOwners | None = None
        self.call_lease = DEFAULT_LEASE   # seconds; tm sets it from its lifetimes
        # tm: the rank owning the transaction of a reply (from our Via branch), or None
        self.reply_owner: Callable[[SipMessage], int | None] | None = None
        self._myself: set[tuple[str, int]] = set()
        self._myself_hosts: set[str] = set()
        self.shared: dict[str, object] = {}
        self.module_positions: dict[str, Any] = {}   # module name -> cfg position
        self.param_positions: dict[tuple[str, str], Any] = {}   # (module, param) -> position
        self.resolve: Callable[[str], str] = _resolve
        self.refresh_myself()

    # ------------------------------------------------------------- myself
    def refresh_myself(self) -> None:
        """Recompute the host:port pairs that count as "myself"."""
        pairs: set[tuple[str, int]] = set()
        for sock in self.settings.listen:
            pairs.add((sock.host.strip("[]").lower(), sock.port))
            if sock.advertise:
                host, _, port = sock.advertise.partition(":")
                pairs.add((host.lower(), int(port) if port else sock.port))
        for alias in self.settings.aliases:
            text = alias.split(":", 1)[-1] if alias.count(":") >= 2 else alias
            host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
            if port.isdigit():
                pairs.add((host.strip("[]").lower(), int(port)))
            else:
                for sock in self.settings.listen:
                    pairs.add((text.strip("[]").lower(), sock.port))
        self._myself = pairs
        self._myself_hosts = {host for host, _ in pairs}

    def is_myself(self, host: str, port: int | None, scheme: str = "sip") -> bool:
        """True when host[:port] is one of our sockets or aliases (port defaults to 5060)."""
        if port is None:
            port = 5061 if scheme == "sips" else 5060
        return (host.strip("[]").lower(), port) in self._myself

    @property
    def first_socket(self) -> Address:
        udp = [s for s in self.settings.listen if s.proto == "udp"]
        sock = (udp or self.settings.listen)[0]
        return sock.address

    def module(self, name: str) -> Module | None:
        return self.modules.get(name)

    # ------------------------------------------------------------- receive path
    def handle(self, data: bytes, src: Address, local: Address, now: float,
               proto: str = "udp", steered: bool = False) -> list[Outgoing]:
        """Process one received datagram; return what must be sent.

        With several workers and tm loaded, a message whose transaction belongs to
        another worker comes back as one :class:`Outgoing` with ``steer`` set to that
        worker's rank (``steered`` = it was already handed over: keep it here).
        """
        if len(data) < MIN_DATAGRAM:
            log.debug("dropping %d-byte datagram from %s:%d", len(data), *src)
            return []
        try:
            msg = parse_message(data)
        except SipError as err:
            log.info("dropping unparsable message from %s:%d: %s", src[0], src[1], err.reason)
            return []
        reason = _drop_check(msg)
        if reason is not None:
            if msg.is_request:
                self.stats.values["err_requests"] += 1
            else:
                self.stats.values["err_replies"] += 1
            log.info("dropping %s from %s:%d: %s", "request" if msg.is_request else "reply",
                     src[0], src[1], reason, extra={"callid": msg.header_value("call-id")})
            return []
        if self.rank > 0 and self.children > 1:
            owner = self._owner(msg, now)   # (renews this worker's lease on the call)
            if owner and owner != self.rank and not steered:
                return [Outgoing(data, src, local, proto, owner)]
        ctx = Context(self, msg, src, local, proto, now,
                      "request" if msg.is_request else "reply")
        try:
            if msg.is_request:
                self._handle_request(ctx)
            else:
                self._handle_reply(ctx)
        except Exception:  # noqa: BLE001 - nothing a peer sends may kill a worker
            log.exception("error processing message from %s:%d (Call-ID %s)",
                          src[0], src[1], msg.callid)
        return ctx.out

    def _owner(self, msg: SipMessage, now: float) -> int:
        """The worker that must process ``msg`` (0: any, e.g. this one)."""
        if msg.is_request:
            if self.steer_requests:
                owners = self.call_owners
                if owners is None:   # one process (tests): a private table
                    owners = self.call_owners = CallOwners(bytearray(8 << 16), self.call_lease)
                return owners.owner(msg.callid, self.rank, now)
            return 0
        if self.reply_owner is not None:
            return self.reply_owner(msg) or 0
        return 0

    def _handle_request(self, ctx: Context) -> None:
        self.stats.values["rcv_requests"] += 1
        for hook in self.pre_script:
            if not hook(ctx):
                return
        route = self.script.request
        if route is not None:
            self.run_route(route, ctx)

    def _handle_reply(self, ctx: Context) -> None:
        self.stats.values["rcv_replies"] += 1
        route = self.script.reply
        if route is not None:
            code = self.run_route(route, ctx)
            if ctx.dropped or code == 0:
                self.stats.values["drop_replies"] += 1
                return
        for hook in self.reply_hooks:
            if hook(ctx):
                return
        if forward_reply(ctx):
            self.stats.values["fwd_replies"] += 1
        else:
            self.stats.values["drop_replies"] += 1

    def run_route(self, route: RouteFn, ctx: Context) -> int:
        """Run a top-level route; returns its exit code (0 for exit/drop)."""
        try:
            route(ctx)
        except ScriptExit as stop:
            return stop.code
        except RouteReturn as ret:
            return ret.code
        if ctx.stop:    # exit/drop (see Context.stop)
            return ctx.exit_code
        return 1

    def run_event(self, name: str, ctx: Context) -> bool:
        """Run ``event_route[name]`` if the script defines it."""
        route = self.script.event.get(name)
        if route is None:
            return False
        saved = ctx.route_type, ctx.stop, ctx.exit_code
        ctx.route_type = "event"
        ctx.stop = False
        try:
            self.run_route(route, ctx)
        finally:
            ctx.route_type, ctx.stop, ctx.exit_code = saved
        return True


def _resolve(host: str) -> str:
    """Resolve a host name to an IPv4 address (IP literals pass through)."""
    import socket

    stripped = host.strip("[]")
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in stripped else socket.AF_INET, stripped)
        return stripped
    except OSError:
        pass
    return socket.gethostbyname(stripped)
