"""Keepalives (probing): a sans-IO timer source that pings destinations through tm.

Every ``ds_ping_interval`` seconds :class:`Pinger` walks the current list and
sends ``ds_ping_method`` to the destinations that ``ds_probing_mode`` selects
(spec/dispatcher.md §11.1), as tm local requests. When a transaction ends,
the result drives the state machine (§11.2-11.3) through the module's
``apply`` callback, which also runs the dst-down/dst-up events. Time comes in
as ``now`` (``on_deadline``) and from the injected ``clock`` (round-trip
times for the latency statistics), so it is tested at fake time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .destinations import DISABLED, INACTIVE, PROBING, TRYING, Destination

if TYPE_CHECKING:
    from ...routing.context import Outgoing
    from ...sip.message import SipMessage
    from .state import SharedState

log = logging.getLogger("siprouter.dispatcher")

PROBE_NONE = 0
PROBE_ALL = 1
PROBE_INACTIVE = 2
PROBE_ONLYFLAGGED = 3

SEND_FAILED_REASON = "Sending keepalive failed"

FinalCallback = Callable[[int, "str | None", "SipMessage | None"], None]


class LocalRequest(Protocol):
    """tm's ``TmModule.local_request`` (see notes/common.md §3)."""

    def __call__(self, method: str, ruri: str, *, from_uri: str, now: float,
                 on_final: FinalCallback, dst_uri: str | None = None,
                 headers: str = "") -> list[Outgoing]: ...


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What ``$dsv(...)`` shows in the dispatcher event routes."""

    code: int
    reason: str | None = None
    flags: int = 0  # 1: a real reply was received
    setid: int = 0
    uri: str = ""


def parse_reply_codes(text: str) -> tuple[int, ...]:
    """``ds_ping_reply_codes``: ``code=NNN`` (100-699) and ``class=N`` (1-6), ``;``-separated.

    Returns the list Kamailio keeps: codes as themselves, classes as 1..6.
    """
    accepted: list[int] = []
    for part in text.split(";"):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        digits = value.strip()
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("+-")
        number = ""
        for ch in digits:
            if not ch.isdigit():
                break
            number += ch
        code = sign * int(number or 0)
        if name == "code" and 100 <= code < 700:
            accepted.append(code)
        elif name == "class" and 1 <= code < 7:
            accepted.append(code)
    return tuple(accepted)


def reply_accepted(code: int, extra: tuple[int, ...]) -> bool:
    """A keepalive reply counts as success: 2xx or listed in ``ds_ping_reply_codes``."""
    if 200 <= code <= 299:
        return True
    for entry in extra:
        if entry // 10:
            if entry == code:
                return True
        elif entry == code // 100:
            return True
    return False


def wants_ping(flags: int, mode: int) -> bool:
    """Whether a (not disabled) destination is pinged in ``ds_probing_mode`` ``mode``."""
    if mode == PROBE_ALL:
        return True
    if mode != PROBE_INACTIVE and flags & PROBING:
        return True
    return mode == PROBE_INACTIVE and bool(flags & PROBING) and bool(flags & INACTIVE)


@dataclass(frozen=True, slots=True)
class PingSettings:
    """The module parameters the pinger reads."""

    interval: float
    mode: int = PROBE_NONE
    method: str = "OPTIONS"
    from_uri: str = "sip:dispatcher@localhost"
    outbound_proxy: str = ""
    latency_stats: bool = False
    alpha: float = 0.9


# apply(setid, uri, requested state, reply context) -> datagrams sent by event routes
ApplyFn = Callable[[int, str, int, ReplyContext], "list[Outgoing]"]


class Pinger:
    """The keepalive timer source (one per router, in one worker only)."""

    def __init__(self, state: SharedState, settings: PingSettings, send: LocalRequest,
                 apply: ApplyFn, reply_codes: Callable[[], tuple[int, ...]],
                 clock: Callable[[], float]) -> None:
        self.state = state
        self.settings = settings
        self.send = send
        self.apply = apply
        self.reply_codes = reply_codes
        self.clock = clock
        self.next_round: float | None = None  # None: not scheduled yet
        self.started: dict[tuple[int, str], float] = {}
        self.pending: list[Outgoing] = []
        self.rounds = 0

    # ------------------------------------------------------------ TimerSource
    def next_deadline(self) -> float | None:
        if self.pending or self.next_round is None:
            return 0.0  # run at once: schedule the first round / flush event output
        return self.next_round

    def on_deadline(self, now: float) -> list[Outgoing]:
        out, self.pending = self.pending, []
        if self.next_round is None:
            self.next_round = now + self.settings.interval  # first round one interval in
        elif now >= self.next_round:
            self.next_round += self.settings.interval
            if self.next_round <= now:  # we fell behind: do not burst
                self.next_round = now + self.settings.interval
            out.extend(self.run_round(now))
        out.extend(self.pending)
        self.pending = []
        return out

    # ------------------------------------------------------------ a round
    def run_round(self, now: float) -> list[Outgoing]:
        """Send one keepalive to every destination the probing mode selects."""
        state = self.state
        state.sync()
        if not state.ping_active:
            return []
        self.rounds += 1
        out: list[Outgoing] = []
        for dset in list(state.dlist):
            for dest in list(dset):
                if dest.flags & DISABLED or not wants_ping(dest.flags, self.settings.mode):
                    continue
                out.extend(self.ping(dest, now))
        return out

    def ping(self, dest: Destination, now: float) -> list[Outgoing]:
        settings = self.settings
        key = (dest.setid, dest.uri)
        self.started[key] = self.clock()
        obproxy = dest.attrs.obproxy or settings.outbound_proxy or None
        setid, uri = key

        def on_final(code: int, reason: str | None, reply: SipMessage | None) -> None:
            self.finished(setid, uri, code, reason, reply is not None)

        try:
            return self.send(settings.method, dest.uri,
                             from_uri=dest.attrs.ping_from or settings.from_uri,
                             now=now, on_final=on_final, dst_uri=obproxy)
        except Exception:  # noqa: BLE001 - like a failed t_request(): count a failure
            log.exception("unable to ping [%s] in group [%d]", dest.uri, dest.setid)
            self.started.pop(key, None)
            self.failed_to_send(dest)
            return []

    def failed_to_send(self, dest: Destination) -> None:
        """``t_request`` failed: TRYING (+PROBING) with code 500 unless disabled meanwhile."""
        requested = TRYING | (PROBING if self.settings.mode != PROBE_NONE else 0)
        if self.state.flags_of(dest) & DISABLED:
            return
        rctx = ReplyContext(500, SEND_FAILED_REASON, 0, dest.setid, dest.uri)
        self.pending.extend(self.apply(dest.setid, dest.uri, requested, rctx))

    # ------------------------------------------------------------ results
    def finished(self, setid: int, uri: str, code: int, reason: str | None,
                 replied: bool) -> None:
        """A keepalive transaction ended with ``code`` (``ds_options_callback``)."""
        settings = self.settings
        started = self.started.pop((setid, uri), None)
        state = self.state
        if settings.latency_stats:
            # whole milliseconds, truncated as Kamailio does (the epsilon absorbs
            # binary float noise: 0.01 s must not become 9 ms)
            latency = None if started is None else int((self.clock() - started) * 1000 + 1e-6)
            state.record_latency(setid, uri, code, latency, settings.alpha)
        state.sync()
        dest = state.dlist.find(setid, uri)
        flags = dest.flags if dest is not None else 0
        mode = settings.mode
        if mode == PROBE_ONLYFLAGGED and not flags & PROBING:
            return  # probing was switched off meanwhile (RPC or reload)
        rctx = ReplyContext(code, reason if replied else None, 1 if replied else 0, setid, uri)
        if reply_accepted(code, self.reply_codes()):
            requested = 0
            if mode == PROBE_ALL or (mode == PROBE_ONLYFLAGGED and flags & PROBING):
                requested |= PROBING
        else:
            requested = TRYING | (PROBING if mode != PROBE_NONE else 0)
        if flags & DISABLED or dest is None:
            return  # disabled meanwhile: disabled wins
        self.pending.extend(self.apply(setid, uri, requested, rctx))
