"""Dispatcher destinations, destination sets and the list file (Kamailio 5.6 semantics).

A :class:`DispatcherList` maps set ids to :class:`DestinationSet` objects. Each set
keeps its destinations in Kamailio's *internal order* (priority descending, ties in
reverse load order); every index used by the selection algorithms refers to it.
No I/O beyond reading the list file, no DNS: hosts are kept as written.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

log = logging.getLogger(__name__)

# Destination state flags (the list file's flags column seeds them).
INACTIVE = 1
TRYING = 2
DISABLED = 4
PROBING = 8
NODNS = 16
NOPING = 32
STATE_MASK = INACTIVE | TRYING | DISABLED | PROBING | NODNS  # cleared by every state change
UNUSABLE = INACTIVE | DISABLED

WEIGHT_SLOTS = 100
MAX_HOST_LEN = 254


class DispatcherListError(ValueError):
    """A list that cannot be loaded; the message starts with ``file:line:``."""

    def __init__(self, reason: str, filename: str = "<string>", lineno: int = 0) -> None:
        super().__init__(f"{filename}:{lineno}: {reason}")
        self.reason = reason
        self.filename = filename
        self.lineno = lineno


def flags_letters(flags: int) -> str:
    """The two FLAGS letters of ``dispatcher.list`` (``AX``, ``IP``, ``DX``, ``TP``...)."""
    if flags & INACTIVE:
        first = "I"
    elif flags & DISABLED:
        first = "D"
    elif flags & TRYING:
        first = "T"
    else:
        first = "A"
    return first + ("P" if flags & PROBING else "X")


# --------------------------------------------------------------------------- attrs


def _c_int(text: str) -> int:
    """Kamailio ``str2sint``: optional sign, leading digits; a partial number is kept."""
    m = re.match(r"([+-]?)(\d*)", text)
    assert m is not None  # the pattern matches the empty string
    value = int(m.group(2) or 0)
    return -value if m.group(1) == "-" else value


def _split_params(body: str) -> Iterator[tuple[str, str]]:
    """``name=value`` pairs separated by ``;`` (quoted values may contain ``;``)."""
    for token in re.findall(r'(?:"[^"]*"|[^;"])+', body):
        name, _, value = token.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name.strip():
            yield name.strip().lower(), value


def _percent(name: str, value: str) -> int:
    """A ``weight``/``rweight`` value: 1-100, anything else counts as 0."""
    number = _c_int(value)
    if 1 <= number <= 100:
        return number
    log.warning("dispatcher: %s %d not in 1-100 range - ignoring", name, number)
    return 0


@dataclass(frozen=True, slots=True)
class DestAttrs:
    """The ``attrs`` column: the raw ``body`` plus the attributes the module uses."""

    body: str = ""
    duid: str = ""
    maxload: int = 0
    weight: int = 0
    rweight: int = 0
    socket: str = ""
    sockname: str = ""
    ping_from: str = ""
    obproxy: str = ""
    latency: int | None = None
    cc: int = 0

    @classmethod
    def parse(cls, text: str) -> DestAttrs:
        """Parse an attrs string; one trailing ``;`` is dropped from the body."""
        body = text[:-1] if text.endswith(";") else text
        found: dict[str, Any] = {"body": body}
        for name, value in _split_params(body):
            if name in ("duid", "socket", "sockname", "ping_from", "obproxy"):
                found[name] = value
            elif name in ("weight", "rweight"):
                found[name] = _percent(name, value)
            elif name in ("maxload", "cc"):
                found[name] = _c_int(value)
            elif name == "latency" and re.fullmatch(r"[+-]?\d+", value):
                found[name] = int(value)
        return cls(**found)


# --------------------------------------------------------------------------- URIs

_SIP_URI_RE = re.compile(
    r"(?P<scheme>sips?):"
    r"(?:(?P<userinfo>[^@]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\[\]:;?@\s]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>;[^?]*)?"
    r"(?:\?.*)?",
    re.IGNORECASE | re.DOTALL,
)
_TRANSPORT_RE = re.compile(r";\s*transport\s*=\s*([^;]*)", re.IGNORECASE)


def _parse_sip_uri(uri: str) -> re.Match[str] | None:
    m = _SIP_URI_RE.fullmatch(uri)
    if m is None or (m.group("port") and int(m.group("port")) > 65535):
        return None
    return m


# --------------------------------------------------------------------------- destinations


@dataclass(eq=False, slots=True)
class Destination:
    """One destination of a set. ``flags`` is its live state (INACTIVE, DISABLED...)."""

    uri: str
    setid: int = 0
    flags: int = 0
    priority: int = 0
    attrs: DestAttrs = field(default_factory=DestAttrs)
    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int = 0  # 0 = no port in the URI (matches any port in ds_is_from_list)
    transport: str | None = None  # lower-case ``transport=`` value, None if absent
    ip: str | None = None  # address resolved at load (None: not resolved)
    send_socket: tuple[str, str, int] | None = None  # (proto, ip, port) forced send socket
    slot: int = -1  # index of this destination's record in the shared state

    @classmethod
    def create(
        cls, uri: str, setid: int = 0, flags: int = 0, priority: int = 0, attrs: str = ""
    ) -> Destination:
        """Build a destination as Kamailio loads one; ValueError if the URI is unusable.

        A URI that does not parse gets ``sip:`` prepended (when longer than 4 and
        shorter than 500 characters and not already starting with ``sip:``).
        """
        m = _parse_sip_uri(uri)
        if m is None and 4 < len(uri) < 500 and not uri.startswith("sip:"):
            uri = "sip:" + uri
            m = _parse_sip_uri(uri)
        if m is None:
            raise ValueError(f"bad uri [{uri}]")
        if len(m.group("host")) > MAX_HOST_LEN:
            raise ValueError(f"hostname in uri is too long [{uri}]")
        transport = _TRANSPORT_RE.search(m.group("params") or "")
        userinfo = m.group("userinfo")
        return cls(
            uri=uri,
            setid=setid,
            flags=flags,
            priority=priority,
            attrs=DestAttrs.parse(attrs),
            scheme=m.group("scheme").lower(),
            user=userinfo.split(":", 1)[0] if userinfo is not None else None,
            host=m.group("host"),
            port=int(m.group("port") or 0),
            transport=transport.group(1).strip().lower() if transport else None,
        )

    @property
    def usable(self) -> bool:
        """Selectable: neither INACTIVE nor DISABLED (TRYING/PROBING do not matter)."""
        return not self.flags & UNUSABLE

    def set_state(self, state: int) -> None:
        """Administrative state change: clear bits 1-16, then set ``state``."""
        self.flags = (self.flags & ~STATE_MASK) | state

    def next_hop(self) -> tuple[str, int, str]:
        """(host without IPv6 brackets, port, transport) with SIP defaults filled in."""
        secure = self.scheme == "sips"
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        port = self.port or (5061 if secure else 5060)
        return host, port, self.transport or ("tls" if secure else "udp")


def internal_order(loaded: Iterable[Destination]) -> list[Destination]:
    """Kamailio's array order: priority descending, ties in reverse load order."""
    return sorted(reversed(list(loaded)), key=lambda d: -d.priority)


def renormalised_weight_slots(weights: list[tuple[int, int]]) -> list[int]:
    """D1 alg-9 table (unshuffled) from ``(index, weight)`` of the usable destinations.

    Each destination gets the whole part of ``100 * w / S``; the free slots go one
    each to the largest fractional parts, ties to the earlier entry. Weight 0 gets
    nothing.
    """
    weighted = [(i, w) for i, w in weights if w > 0]
    total = sum(w for _, w in weighted)
    if not total:
        return []
    counts = {i: WEIGHT_SLOTS * w // total for i, w in weighted}
    free = WEIGHT_SLOTS - sum(counts.values())
    by_remainder = sorted(weighted, key=lambda iw: -(WEIGHT_SLOTS * iw[1] % total))
    for i, _ in by_remainder[:free]:
        counts[i] += 1
    return [i for i, _ in weighted for _ in range(counts[i])]


class DestinationSet:
    """A set (group) of destinations in internal order, with its weight tables.

    ``index`` is the set's position in its :class:`DispatcherList`; selection uses
    it to address the set's shared counters. ``seed`` drives the table shuffles, so
    every worker process building the same table gets the same slot order.
    """

    def __init__(
        self, setid: int, loaded: Iterable[Destination], *, seed: int = 0, index: int = 0
    ) -> None:
        self.setid = setid
        self.index = index
        self.seed = seed
        self.destinations = internal_order(loaded)
        if not self.destinations:
            raise ValueError(f"destination set {setid} is empty")
        self.kamailio_weight_slots = self._kamailio_weight_slots()
        self._d1_weights: tuple[int, list[int]] = (-1, [])
        self._rweights: tuple[int, list[int]] = (-1, [0] * WEIGHT_SLOTS)

    def __len__(self) -> int:
        return len(self.destinations)

    def __iter__(self) -> Iterator[Destination]:
        return iter(self.destinations)

    def __getitem__(self, i: int) -> Destination:
        return self.destinations[i]

    def __repr__(self) -> str:
        return f"DestinationSet({self.setid}, {[d.uri for d in self.destinations]})"

    def find(self, uri: str) -> Destination | None:
        """The destination whose URI equals ``uri`` (case-insensitive), if any."""
        wanted = uri.lower()
        return next((d for d in self.destinations if d.uri.lower() == wanted), None)

    @property
    def has_weights(self) -> bool:
        """Alg 9 is weighted only if the first destination has a weight."""
        return self.destinations[0].attrs.weight > 0

    def _shuffled(self, slots: list[int], key: str) -> list[int]:
        random.Random(f"{self.seed}:{self.setid}:{key}").shuffle(slots)
        return slots

    def _kamailio_weight_slots(self) -> list[int]:
        """Kamailio's wlist: indices repeated ``weight`` times, rest to nr-1, shuffled."""
        if not self.has_weights:
            return [0] * WEIGHT_SLOTS
        slots = [i for i, d in enumerate(self.destinations) for _ in range(d.attrs.weight)]
        slots = slots[:WEIGHT_SLOTS]
        slots += [len(self.destinations) - 1] * (WEIGHT_SLOTS - len(slots))
        return self._shuffled(slots, "w")

    def weight_slots(self, candidates: int | None = None) -> list[int]:
        """The alg-9 table for the current states: Kamailio's, or D1's.

        D1 applies when the set has weights, one of the first ``candidates``
        destinations is unusable and a usable one has a weight: the table is then
        renormalised over the usable ones (rebuilt whenever that group changes).
        """
        if not self.has_weights:
            return self.kamailio_weight_slots
        dests = self.destinations[:candidates]
        usable = [(i, d.attrs.weight) for i, d in enumerate(dests) if d.usable]
        if len(usable) == len(dests) or not any(w for _, w in usable):
            return self.kamailio_weight_slots
        mask = sum(1 << i for i, _ in usable)
        if self._d1_weights[0] != mask:
            slots = self._shuffled(renormalised_weight_slots(usable), f"d1:{mask}")
            self._d1_weights = (mask, slots)
        return self._d1_weights[1]

    def rweight_slots(self) -> list[int]:
        """Kamailio's alg-11 table, rebuilt when a destination with rweight changes usability.

        Usable destinations get ``rweight * 100 // S`` slots in order, the rest go
        to the last index written; with ``S == 0`` the previous table is kept.
        Sets of fewer than 2 destinations keep an all-zero table.
        """
        if len(self.destinations) < 2:
            return self._rweights[1]
        live = [(i, d.attrs.rweight) for i, d in enumerate(self.destinations) if d.usable]
        mask = sum(1 << i for i, rw in live if rw > 0)
        if self._rweights[0] == mask:
            return self._rweights[1]
        total = sum(rw for _, rw in live)
        slots = self._rweights[1]
        if total:
            slots = [i for i, rw in live for _ in range(rw * WEIGHT_SLOTS // total)]
            last = slots[-1] if slots else len(self.destinations) - 1
            slots = self._shuffled(slots + [last] * (WEIGHT_SLOTS - len(slots)), f"rw:{mask}")
        self._rweights = (mask, slots)
        return slots


class DispatcherList:
    """All destination sets, by set id (iteration in ascending id order).

    Every destination gets its ``slot``: its position in set-id order, then
    internal order. The shared state keeps one record per slot.
    """

    def __init__(self, sets: Iterable[DestinationSet] = (), *, seed: int = 0) -> None:
        self.seed = seed
        self.sets: dict[int, DestinationSet] = {}
        self.all: list[Destination] = []
        for index, dset in enumerate(sorted(sets, key=lambda s: s.setid)):
            dset.index = index
            self.sets[dset.setid] = dset
            for dest in dset.destinations:
                dest.slot = len(self.all)
                self.all.append(dest)

    @classmethod
    def build(cls, loaded: Iterable[Destination], *, seed: int | None = None) -> DispatcherList:
        """Group destinations (in load order) into sets; ``seed`` None picks a random one."""
        if seed is None:
            seed = random.getrandbits(64)
        groups: dict[int, list[Destination]] = {}
        for dest in loaded:
            groups.setdefault(dest.setid, []).append(dest)
        return cls(
            (DestinationSet(setid, dests, seed=seed) for setid, dests in groups.items()),
            seed=seed,
        )

    def __len__(self) -> int:
        return len(self.sets)

    def __iter__(self) -> Iterator[DestinationSet]:
        return iter(self.sets.values())

    def __contains__(self, setid: object) -> bool:
        return setid in self.sets

    def get(self, setid: int) -> DestinationSet | None:
        return self.sets.get(setid)

    def find(self, setid: int, uri: str) -> Destination | None:
        """The destination ``uri`` (case-insensitive) of set ``setid``, if any."""
        dset = self.sets.get(setid)
        return dset.find(uri) if dset is not None else None

    def load_order(self) -> Iterator[Destination]:
        """Destinations in an order that :meth:`build` turns into the same list."""
        for dset in self.sets.values():
            yield from reversed(dset.destinations)


# --------------------------------------------------------------------------- list file

_BLANK = b" \t\r\n"
_FGETS_SIZE = 1023  # Kamailio reads lines with fgets(line, 1024, f)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One parsed line: ``setid uri [flags [priority [attrs]]]``."""

    setid: int
    uri: str
    flags: int = 0
    priority: int = 0
    attrs: str = ""


class _Cursor:
    """Walks one line the way Kamailio's ``ds_load_list`` does."""

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.pos = 0

    def more(self) -> bool:
        """Skip blanks; True unless the line ends here (end of text or ``#``)."""
        while self.pos < len(self.line) and self.line[self.pos] in _BLANK:
            self.pos += 1
        return self.pos < len(self.line) and self.line[self.pos] != ord("#")

    def number(self) -> int:
        start = self.pos
        while self.pos < len(self.line) and self.line[self.pos] in b"0123456789":
            self.pos += 1
        return int(self.line[start : self.pos] or b"0")

    def token(self, stop: bytes) -> str:
        start = self.pos
        while self.pos < len(self.line) and self.line[self.pos] not in stop:
            self.pos += 1
        return self.line[start : self.pos].decode("utf-8", "surrogateescape")


def parse_list_line(line: bytes) -> ListEntry | None:
    """Parse one line; None for blank/comment lines, ValueError for a bad line.

    Numbers are leading digits only (a non-digit token counts as 0 and the rest
    is taken as attrs); ``#`` ends the line except inside attrs; anything after
    attrs is ignored.
    """
    cur = _Cursor(line.split(b"\0", 1)[0])
    if not cur.more():
        return None
    setid = cur.number()
    if not cur.more():
        raise ValueError("bad line: no destination uri")
    uri = cur.token(_BLANK + b"#")
    if not cur.more():
        return ListEntry(setid, uri)
    flags = cur.number()
    if not cur.more():
        return ListEntry(setid, uri, flags)
    priority = cur.number()
    if not cur.more():
        return ListEntry(setid, uri, flags, priority)
    return ListEntry(setid, uri, flags, priority, cur.token(_BLANK))


def _fgets_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, chunk) as fgets with a 1024-byte buffer would return them."""
    for lineno, physical in enumerate(data.split(b"\n"), start=1):
        for start in range(0, len(physical), _FGETS_SIZE):
            yield lineno, physical[start : start + _FGETS_SIZE]


def list_entries(text: str | bytes, filename: str = "<string>") -> list[tuple[int, ListEntry]]:
    """(line number, entry) for every destination line; a bad line raises."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    entries: list[tuple[int, ListEntry]] = []
    for lineno, line in _fgets_lines(data):
        try:
            entry = parse_list_line(line)
        except ValueError as exc:
            raise DispatcherListError(str(exc), filename, lineno) from None
        if entry is not None:
            entries.append((lineno, entry))
    return entries


def build_list(
    entries: Iterable[tuple[int, ListEntry]],
    filename: str = "<string>",
    *,
    strict: bool = False,
    seed: int | None = None,
    validate: Callable[[Destination], None] | None = None,
    attrs_none: bool = False,
) -> tuple[DispatcherList, int]:
    """Build a list from (line or row number, entry) pairs; returns (list, skipped).

    A bad destination (unparsable URI, host too long, or ``validate`` raising
    ValueError, e.g. for a ``socket=`` that is not a local socket or a host
    that does not resolve) is skipped with a warning, or raises
    :class:`DispatcherListError` when ``strict`` (``ds_load_mode=1``).
    ``attrs_none`` gives destinations without attrs the body ``none=yes``.
    """
    loaded: list[Destination] = []
    skipped = 0
    for lineno, entry in entries:
        attrs = entry.attrs or ("none=yes" if attrs_none else "")
        try:
            dest = Destination.create(entry.uri, entry.setid, entry.flags, entry.priority, attrs)
            if validate is not None:
                validate(dest)
        except ValueError as exc:
            if strict:
                raise DispatcherListError(str(exc), filename, lineno) from None
            log.warning("%s:%d: %s - skipping destination", filename, lineno, exc)
            skipped += 1
            continue
        loaded.append(dest)
    return DispatcherList.build(loaded, seed=seed), skipped


def parse_list_text(
    text: str | bytes,
    filename: str = "<string>",
    *,
    strict: bool = False,
    seed: int | None = None,
    validate: Callable[[Destination], None] | None = None,
    attrs_none: bool = False,
) -> DispatcherList:
    """Load a dispatcher list from its text.

    A bad line raises :class:`DispatcherListError` (``file:line: ...``); bad
    destinations are handled as :func:`build_list` says. ``seed`` makes the
    weight-table shuffles reproducible.
    """
    dlist, _skipped = build_list(
        list_entries(text, filename),
        filename,
        strict=strict,
        seed=seed,
        validate=validate,
        attrs_none=attrs_none,
    )
    return dlist


def parse_list_file(
    path: str | PathLike[str],
    *,
    strict: bool = False,
    seed: int | None = None,
    validate: Callable[[Destination], None] | None = None,
    attrs_none: bool = False,
) -> DispatcherList:
    """Load a dispatcher list file (see :func:`parse_list_text`)."""
    with open(path, "rb") as f:
        data = f.read()
    return parse_list_text(
        data, str(path), strict=strict, seed=seed, validate=validate, attrs_none=attrs_none
    )
