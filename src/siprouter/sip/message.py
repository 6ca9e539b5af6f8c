"""SIP message parsing and serialisation (sans-IO).

:func:`parse_message` splits a datagram into start line, header lines and body.
Header *values* are parsed lazily, only when something asks for them, and the
parsed form is cached on the :class:`Header`.

Changes are never made to the text itself: they are recorded as edits
(Kamailio's "lumps") and applied by :meth:`SipMessage.render`, so bytes nobody
touched go out exactly as they came in.

All text is ``str`` holding the latin-1 decoding of the wire bytes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar

from . import speedup
from .errors import (
    ContentLengthError,
    DuplicateHeaderError,
    HeaderError,
    ParseError,
    StartLineError,
)
from .headers import (
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    check_accept,
    check_call_id,
    check_content_type,
    check_credentials,
    check_cseq,
    check_date,
    check_digits,
    check_name_addr,
    check_name_addr_list,
    check_text,
    check_token_list,
    check_via,
    digits_value,
    is_digits,
    is_token,
    parse_via_header,
    unfold,
)
from .uri import Uri, check_uri, clear_uri_cache, parse_uri

# the C version of _parse_fast's header split; C list scans for the header names
_c_split: Final[Callable[[str, dict[str, str]],
                         tuple[int, int, list[int], list[str | None],
                               str | int | None, str | None] | None] | None] = \
    speedup("split_message")
_c_key_index: Final[Callable[[list[str], str], int] | None] = speedup("key_index")
_c_key_count: Final[Callable[[list[str], str], int] | None] = speedup("key_count")
_c_key_repeats: Final[Callable[[list[str]], tuple[str, ...]] | None] = speedup("key_repeats")
_c_first_missing: Final[Callable[[list[str], tuple[str, ...]], int] | None] = \
    speedup("first_missing")


def key_repeats(keys: list[str]) -> tuple[str, ...]:
    """The keys that occur more than once, each once, in order (_speedups.key_repeats)."""
    found: list[str] = []
    for i, key in enumerate(keys):
        if key not in found and key in keys[i + 1:]:
            found.append(key)
    return tuple(found)


def first_missing(keys: list[str], wanted: tuple[str, ...]) -> int:
    """Index in ``wanted`` of the first key not in ``keys``, or -1 (_speedups.first_missing)."""
    for i, key in enumerate(wanted):
        if key not in keys:
            return i
    return -1


class Header:
    """One header field as it appears in the message text.

    ``start``/``end`` delimit the whole field including its line terminator(s);
    ``colon`` is the offset of the ':'; ``value`` is the body with surrounding
    white space removed. ``parsed`` caches the parsed form.
    """

    __slots__ = ("name", "key", "start", "end", "colon", "value_end", "value", "parsed")

    def __init__(self, name: str, key: str, start: int, colon: int, value_end: int,
                 end: int, value: str) -> None:
        self.name = name
        self.key = key
        self.start = start
        self.colon = colon
        self.value_end = value_end
        self.end = end
        self.value = value
        self.parsed: Any = None

    def value_span(self, text: str) -> tuple[int, int]:
        """Offsets in ``text`` of the value with surrounding blanks removed.

        ``text[start:end] == self.value``: a value that starts on a continuation
        line starts after the line break.
        """
        start = self.colon + 1
        end = self.value_end
        lead = " \t\r\n" if "\n" in text[start:end] else " \t"
        while start < end and text[start] in lead:
            start += 1
        while end > start and text[end - 1] in " \t":
            end -= 1
        return start, end

    def __repr__(self) -> str:
        return f"Header({self.name!r}: {self.value!r})"


# Parsed header values by text. A call's messages repeat the same Via, From,
# To and CSeq values (a reply carries the request's Vias), so each is parsed
# once. The parsed objects are never modified. Each cache is small: a call's
# messages follow each other closely, and values seen once (every new request's
# Via and From) must not fill the processor's caches with dead objects.
_VIA_CACHE: Final[dict[str, list[Via]]] = {}
_ADDR_CACHE: Final[dict[str, NameAddr]] = {}
_CSEQ_CACHE: Final[dict[str, CSeq]] = {}
_CACHE_SIZE: Final = 512
T = TypeVar("T")


def clear_parse_caches() -> None:
    """Empty the parsed-value caches (they are bounded; tests measuring memory use this)."""
    _VIA_CACHE.clear()
    _ADDR_CACHE.clear()
    _CSEQ_CACHE.clear()
    clear_uri_cache()


def _remember(cache: dict[str, T], key: str, value: T) -> T:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


# Kamailio's faked message (core/fmsg.c): the request seen by routes that run without
# one (dispatcher keepalive events, KSR called outside a route)
FAKED_REQUEST: Final = ("OPTIONS sip:you@kamailio.org SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP 127.0.0.1\r\n"
                        "From: <you@kamailio.org>;tag=123\r\n"
                        "To: <you@kamailio.org>\r\n"
                        "Call-ID: 123\r\n"
                        "CSeq: 1 OPTIONS\r\n"
                        "Content-Length: 0\r\n\r\n")


# Edits are (start, seq, end, text): replace text[start:end] by text; inserts have
# start == end. seq keeps insertions at the same offset in the order they were made.
Edit = tuple[int, int, int, str]


class SipMessage:
    """A parsed SIP request or response.

    Header fields are kept in message order with a parallel list ``keys`` of
    their canonical names; lookups by name run over ``keys`` with list methods
    (C speed), so finding a header does not cost a Python loop over all of them.
    """

    __slots__ = ("text", "is_request", "method", "ruri", "version", "status", "reason",
                 "first_line_end", "ruri_start", "keys", "_hdrs", "_starts",
                 "body_start", "complete", "edits", "_via1", "_uri", "_seq", "_index",
                 "_from", "_to", "_cseq", "_callid", "_repeated")

    def __init__(self, text: str) -> None:
        self.text = text
        self.is_request = True
        self.method = ""
        self.ruri = ""
        self.version = ""
        self.status = 0
        self.reason = ""
        self.first_line_end = 0
        self.ruri_start = 0
        self.keys: list[str] = []
        # Header objects are made on first access (header_at): the fast parser
        # stores only where each line starts, and most headers are never looked at
        self._hdrs: list[Header | None] = []
        self._starts: list[int] = []
        self.body_start = len(text)
        self.complete = False
        self.edits: list[Edit] = []
        self._via1: Via | None = None
        self._uri: Uri | None = None
        self._seq = 0
        self._index: dict[str, list[Header]] | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None
        self._cseq: CSeq | None = None
        self._callid: str | None = None
        self._repeated: tuple[str, ...] | None = None

    # ----------------------------------------------------------------- headers
    def header_at(self, i: int) -> Header:
        """The i-th header field."""
        hdr = self._hdrs[i]
        if hdr is None:
            return self._make_header(i)
        return hdr

    def _make_header(self, i: int) -> Header:
        """The Header of line i of a fast-parsed message (from its offsets)."""
        starts = self._starts
        text = self.text
        start = starts[i]
        end = starts[i + 1] - 2
        colon = text.find(":", start, end)
        hdr = Header(text[start:colon], self.keys[i], start, colon, end, end + 2,
                     text[colon + 1:end].strip(" \t"))
        self._hdrs[i] = hdr
        return hdr

    def _append(self, hdr: Header) -> None:
        self.keys.append(hdr.key)
        self._repeated = None
        self._hdrs.append(hdr)

    def header_index(self, key: str) -> int:
        """Index of the first header with canonical name ``key``, or -1."""
        keys = self.keys
        if _c_key_index is not None:
            return _c_key_index(keys, key)
        return keys.index(key) if key in keys else -1

    def header(self, key: str) -> Header | None:
        """First header with canonical name ``key`` (lower-case long form)."""
        i = self.header_index(key)
        return None if i < 0 else self.header_at(i)

    def header_value(self, key: str) -> str | None:
        hdr = self.header(key)
        return None if hdr is None else hdr.value

    def headers_named(self, key: str) -> list[Header]:
        first = self.header_index(key)
        if first < 0:
            return []
        if self.count(key) == 1:
            return [self.header_at(first)]
        keys = self.keys
        return [self.header_at(i) for i in range(first, len(keys)) if keys[i] == key]

    def has_header(self, key: str) -> bool:
        return self.header_index(key) >= 0

    def count(self, key: str) -> int:
        """How many header fields have canonical name ``key``."""
        if _c_key_count is not None:
            return _c_key_count(self.keys, key)
        return self.keys.count(key)

    def repeated(self) -> tuple[str, ...]:
        """Canonical names of the headers that occur more than once (usually none)."""
        found = self._repeated
        if found is None:
            keys = self.keys
            found = self._repeated = _c_key_repeats(keys) if _c_key_repeats is not None \
                else key_repeats(keys)
        return found

    def first_repeated(self, wanted: tuple[str, ...]) -> str | None:
        """The first of the canonical names ``wanted`` that more than one header has, or None."""
        repeated = self.repeated()
        if repeated:
            for key in wanted:
                if key in repeated:
                    return key
        return None

    def missing(self, wanted: tuple[str, ...]) -> str | None:
        """The first of the canonical names ``wanted`` that no header has, or None."""
        keys = self.keys
        i = _c_first_missing(keys, wanted) if _c_first_missing is not None \
            else first_missing(keys, wanted)
        return None if i < 0 else wanted[i]

    @property
    def headers(self) -> list[Header]:
        """All header fields in message order."""
        return [self.header_at(i) for i in range(len(self.keys))]

    @property
    def index(self) -> dict[str, list[Header]]:
        """Canonical name -> header fields (built on first use)."""
        if self._index is None:
            index: dict[str, list[Header]] = {}
            for hdr in self.headers:
                index.setdefault(hdr.key, []).append(hdr)
            self._index = index
        return self._index

    @property
    def headers_start(self) -> int:
        """Offset of the first header line (where inserted first headers go)."""
        return self.first_line_end

    @property
    def headers_end(self) -> int:
        """Offset just after the last header line."""
        if not self.keys:
            return self.first_line_end
        return self.header_at(len(self.keys) - 1).end

    @property
    def body(self) -> str:
        return self.text[self.body_start:]

    # ------------------------------------------------------------ parsed values
    @property
    def via1(self) -> Via:
        """The topmost Via value (raises HeaderError if missing or malformed)."""
        via = self._via1
        if via is None:
            hdr = self.header("via")
            if hdr is None:
                raise HeaderError("no Via header")
            vias = self.via_values(hdr)
            via = self._via1 = vias[0]
        return via

    @staticmethod
    def via_values(hdr: Header) -> list[Via]:
        vias: list[Via] | None = hdr.parsed
        if vias is None:
            vias = _VIA_CACHE.get(hdr.value)
            if vias is None:
                vias = _remember(_VIA_CACHE, hdr.value, parse_via_header(hdr.value))
            hdr.parsed = vias
        return vias

    def all_vias(self) -> list[Via]:
        result: list[Via] = []
        for hdr in self.headers_named("via"):
            result.extend(self.via_values(hdr))
        return result

    def name_addr(self, key: str) -> NameAddr | None:
        """Parsed From/To (first header of that name); None if absent."""
        hdr = self.header(key)
        if hdr is None:
            return None
        addr: NameAddr | None = hdr.parsed
        if addr is None:
            addr = _ADDR_CACHE.get(hdr.value)
            if addr is None:
                addr = _remember(_ADDR_CACHE, hdr.value, NameAddr(unfold(hdr.value)))
            hdr.parsed = addr
        return addr

    @property
    def from_(self) -> NameAddr | None:
        addr = self._from
        if addr is None:
            addr = self._from = self.name_addr("from")
        return addr

    @property
    def to(self) -> NameAddr | None:
        addr = self._to
        if addr is None:
            addr = self._to = self.name_addr("to")
        return addr

    @property
    def callid(self) -> str:
        value = self._callid
        if value is None:
            found = self.header_value("call-id")
            value = self._callid = "" if found is None else found
        return value

    @property
    def cseq(self) -> CSeq:
        if self._cseq is not None:
            return self._cseq
        hdr = self.header("cseq")
        if hdr is None:
            raise HeaderError("no CSeq header")
        cseq: CSeq | None = hdr.parsed
        if cseq is None:
            cseq = _CSEQ_CACHE.get(hdr.value)
            if cseq is None:
                cseq = _remember(_CSEQ_CACHE, hdr.value, CSeq(hdr.value))
            hdr.parsed = cseq
        self._cseq = cseq
        return cseq

    @property
    def uri(self) -> Uri:
        """The received Request-URI, parsed (raises UriError)."""
        if self._uri is None:
            self._uri = parse_uri(self.ruri)
        return self._uri

    @property
    def cseq_method(self) -> str:
        """Request method, or for a response the method in CSeq."""
        if self.is_request:
            return self.method
        return self.cseq.method

    # -------------------------------------------------------------- edits
    def add_edit(self, start: int, end: int, text: str) -> None:
        """Replace ``text[start:end]`` by ``text`` when the message is rendered."""
        self._seq += 1
        self.edits.append((start, self._seq, end, text))

    def insert(self, offset: int, text: str) -> None:
        self.add_edit(offset, offset, text)

    def render(self, extra: list[Edit] | None = None) -> str:
        """The message text with all edits (plus ``extra``) applied."""
        edits = self.edits
        if extra:
            edits = edits + extra
        if not edits:
            return self.text
        text = self.text
        out: list[str] = []
        pos = 0
        for start, _seq, end, new in (edits if len(edits) == 1 else _in_order(edits)):
            if start < pos:  # overlapping edit: keep the first one
                continue
            out.append(text[pos:start])
            out.append(new)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def __repr__(self) -> str:
        if self.is_request:
            return f"<SipMessage {self.method} {self.ruri}>"
        return f"<SipMessage {self.status} {self.reason}>"


def _in_order(edits: list[Edit]) -> list[Edit]:
    """``sorted(edits)`` by insertion: a message has a few edits, mostly in order."""
    result: list[Edit] = []
    for edit in edits:
        i = len(result)
        while i > 0:
            prev = result[i - 1]
            if prev[0] < edit[0] or (prev[0] == edit[0] and prev <= edit):
                break
            i -= 1
        result.insert(i, edit)
    return result


_KNOWN_METHODS: Final = frozenset(("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO",
                                   "PRACK", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE",
                                   "PUBLISH"))
_METHOD_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")


def _parse_start_line(msg: SipMessage, line: str) -> None:
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":
        version, sp, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not sp or len(code) != 3 or not code.isdigit() or not code.isascii():
            raise StartLineError(f"bad status line {line[:80]!r}")
        if not version.upper().startswith("SIP/2.0"):
            raise StartLineError(f"unsupported SIP version in {line[:80]!r}")
        msg.is_request = False
        msg.version = version
        msg.status = digits_value(code)
        msg.reason = reason
        return
    method, sp1, rest = line.partition(" ")
    uri, sp2, version = rest.partition(" ")
    if not sp1 or not sp2 or not method or not uri or not version:
        raise StartLineError(f"bad request line {line[:80]!r}")
    if method not in _KNOWN_METHODS and _METHOD_RE.match(method) is None:
        raise StartLineError(f"bad method in {line[:80]!r}")
    version = version.rstrip(" \t")
    if " " in version or not version.upper().startswith("SIP/2.0"):
        raise StartLineError(f"unsupported SIP version in {line[:80]!r}")
    msg.method = method
    msg.ruri = uri
    msg.ruri_start = len(method) + 1
    msg.version = version


# The usual spellings of the usual header names (the table in _speedups.c): their
# keys are found without looking the name up in the names dict.
KNOWN_NAMES: Final[dict[str, str]] = {name: sys.intern(key) for name, key in {
    "Via": "via", "From": "from", "To": "to", "Call-ID": "call-id", "CSeq": "cseq",
    "Max-Forwards": "max-forwards", "Content-Length": "content-length", "Contact": "contact",
    "Route": "route", "Record-Route": "record-route", "Content-Type": "content-type",
    "User-Agent": "user-agent", "Allow": "allow", "Supported": "supported", "Accept": "accept",
    "Expires": "expires", "Server": "server", "Subject": "subject", "Require": "require",
    "Authorization": "authorization", "Proxy-Authorization": "proxy-authorization",
    "WWW-Authenticate": "www-authenticate", "Proxy-Authenticate": "proxy-authenticate",
    "Event": "event", "Date": "date", "Call-Id": "call-id", "Cseq": "cseq",
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
    "l": "content-length", "c": "content-type",
}.items()}


def simple_start_line(line: str) -> tuple[str | int | None, str | None]:
    """(method, Request-URI) for ``METHOD SP URI SP SIP/2.0`` with a known method,
    (status, reason) for ``SIP/2.0 SP DDD [SP reason]``, else (None, None)."""
    if line.startswith("SIP/2.0 ") and len(line) >= 11:
        code = line[8:11]
        if is_digits(code) and (len(line) == 11 or line[11] == " "):
            return digits_value(code), line[12:]
        return None, None
    method, sp, rest = line.partition(" ")
    if not sp or method not in _KNOWN_METHODS or not rest.endswith(" SIP/2.0"):
        return None, None
    uri = rest[:-8]
    if not uri or " " in uri:
        return None, None
    return method, uri


def split_headers(text: str, names: dict[str, str]
                  ) -> tuple[int, int, list[int], list[str | None],
                             str | int | None, str | None] | None:
    """The header block of a message with CRLF line ends (_speedups.split_message in C).

    Returns the offset of the first CRLF, that of the CRLFCRLF ending the
    headers, the offsets where the header lines between them start followed by
    ``end + 2`` (empty without headers), for each line its key (``KNOWN_NAMES``,
    else ``names.get("Name:")``; None for a name in neither or a line without a
    colon) and :func:`simple_start_line` of the first line; None when either
    CRLF or CRLFCRLF is missing or a bare CR or LF is in the header block (a
    folded line starts with SP/HT: its name is never found).
    """
    first = text.find("\r\n")
    if first < 0:
        return None
    end = text.find("\r\n\r\n", first)
    if end < 0:
        return None
    head, tail = simple_start_line(text[:first])
    if end == first:
        return first, end, [], [], head, tail
    block = text[first + 2:end]
    lines = block.split("\r\n")
    breaks = len(lines) - 1
    if block.count("\n") != breaks or block.count("\r") != breaks:
        return None
    starts: list[int] = []
    keys: list[str | None] = []
    pos = first + 2
    for line in lines:
        starts.append(pos)
        pos += len(line) + 2
        colon = line.find(":")
        key = KNOWN_NAMES.get(line[:colon]) if colon >= 0 else None
        keys.append(key if key is not None else names.get(line[:colon + 1]))
    starts.append(pos)
    return first, end, starts, keys, head, tail


def _parse_fast(text: str) -> SipMessage | None:
    """parse_message() for the usual message: CRLF line ends, no folding.

    Returns None whenever the general parser is needed (it then also reports
    the errors).
    """
    if _c_split is not None:
        split = _c_split(text, _CANON)
    else:
        split = split_headers(text, _CANON)
    if split is None:
        return None
    first, end, starts, found, head, tail = split
    msg = SipMessage(text)
    if isinstance(head, str) and tail is not None:     # checked by the split
        msg.method = head
        msg.ruri = tail
        msg.ruri_start = len(head) + 1
        msg.version = "SIP/2.0"
    elif isinstance(head, int) and tail is not None:
        msg.is_request = False
        msg.version = "SIP/2.0"
        msg.status = head
        msg.reason = tail
    else:
        _parse_start_line(msg, text[:first])
    msg.first_line_end = first + 2
    msg.body_start = end + 4
    msg.complete = True
    if first == end:
        return msg
    canon = _CANON
    if None in found:  # a name not seen before (or no colon): canonicalise and check
        for i, key in enumerate(found):
            if key is None:
                start = starts[i]
                colon = text.find(":", start, starts[i + 1] - 2)
                name = text[start:colon]
                if colon <= start or " " in name or "\t" in name:
                    return None
                key = canonical_name(name)
                if len(canon) < 4096:
                    # interned: the C name scans compare known names by identity
                    key = canon[name + ":"] = sys.intern(key)
                found[i] = key
    keys: list[str] = found  # type: ignore[assignment]
    msg.keys = keys
    msg._starts = starts
    msg._hdrs = [None] * len(keys)
    return msg


_CANON: Final[dict[str, str]] = {}


def parse_message(data: bytes | str) -> SipMessage:
    """Split a SIP message into start line, headers and body.

    Raises :class:`StartLineError` for anything that is not a SIP request or
    response, and :class:`HeaderError` for a header line without a colon.
    Header values are not parsed here.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    fast = _parse_fast(text)
    if fast is not None:
        return fast
    return parse_general(text)


def parse_general(text: str) -> SipMessage:
    """parse_message() line by line: any line ends, folding, missing blank line."""
    nl = text.find("\n")
    if nl < 0:
        raise StartLineError("no line terminator")
    line = text[:nl - 1] if nl and text[nl - 1] == "\r" else text[:nl]
    msg = SipMessage(text)
    _parse_start_line(msg, line)
    msg.first_line_end = pos = nl + 1
    size = len(text)
    last: Header | None = None
    find = text.find
    while pos < size:
        nl = find("\n", pos)
        if nl < 0:
            line_end = content_end = size
        else:
            line_end = nl + 1
            content_end = nl - 1 if nl > pos and text[nl - 1] == "\r" else nl
        if content_end == pos:  # empty line: end of headers
            msg.body_start = line_end
            msg.complete = True
            break
        first = text[pos]
        if first == " " or first == "\t":  # folded continuation of the previous header
            if last is None:
                raise HeaderError("continuation line before the first header")
            last.value_end = content_end
            last.end = line_end
            # a value that starts on a continuation line does not start with CRLF
            last.value = text[last.colon + 1:content_end].lstrip(" \t\r\n").rstrip(" \t")
        else:
            colon = find(":", pos, content_end)
            if colon < 0:
                raise HeaderError(f"header line without colon: {text[pos:content_end][:60]!r}")
            name = text[pos:colon].rstrip(" \t")
            if not name or " " in name or "\t" in name:
                raise HeaderError(f"bad header name {name!r}")
            key = canonical_name(name)
            last = Header(name, key, pos, colon, content_end, line_end,
                          text[colon + 1:content_end].strip(" \t"))
            msg._append(last)
        pos = line_end
    else:
        msg.body_start = size
    return msg


# Headers that may appear at most once (RFC 3261 section 7.3.1: their grammar is
# not a comma-separated list).
SINGLE_HEADERS: Final = ("from", "to", "call-id", "cseq", "content-length", "max-forwards",
                         "content-type", "expires", "date", "min-expires", "mime-version")
# Required in every message (RFC 3261 section 8.1.1). Max-Forwards is required
# in requests by RFC 3261 but absent from RFC 2543 ones, which stay acceptable.
REQUIRED_HEADERS: Final = ("from", "to", "call-id", "cseq", "via")
MAX_FORWARDS_LIMIT: Final = 255

_REASON_OK: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                              "-_.!~*'();/?:@&=+$,% \t")
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def _check_start_line(msg: SipMessage) -> None:
    """Request-Line / Status-Line exactly as RFC 3261 section 7.1 / 7.2 writes them."""
    text = msg.text
    end = msg.first_line_end - 1
    if end > 0 and text[end - 1] == "\r":
        end -= 1
    line = text[:end]
    if msg.is_request:
        parts = line.split(" ")
        if len(parts) != 3 or parts[2].upper() != "SIP/2.0":
            raise StartLineError(f"bad request line {line[:80]!r}")
        if not is_token(parts[0]):
            raise StartLineError(f"bad method in {line[:80]!r}")
        check_uri(parts[1], allow_headers=False)
        return
    version, _, rest = line.partition(" ")
    _code, sp, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0" or not sp or not 100 <= msg.status <= 699:
        raise StartLineError(f"bad status line {line[:80]!r}")
    for i, ch in enumerate(reason):
        if ch == "%" and not (len(reason) > i + 2 and reason[i + 1] in _HEX
                              and reason[i + 2] in _HEX):
            raise StartLineError(f"bad escape in reason phrase {line[:80]!r}")
        if ch not in _REASON_OK and ch < "\x80":
            raise StartLineError(f"bad character {ch!r} in reason phrase {line[:80]!r}")


def _check_header(msg: SipMessage, hdr: Header) -> None:
    """Strictly parse one header by its canonical name; unknown ones as free text."""
    key = hdr.key
    value = hdr.value
    if not is_token(hdr.name):
        raise HeaderError(f"bad header name {hdr.name!r}")
    if key == "via":
        check_via(value)
        msg.via_values(hdr)
    elif key in ("from", "to"):
        check_name_addr(value, hdr.name)
        msg.name_addr(key)
    elif key == "contact":
        if value.strip(" \t") != "*":
            check_name_addr_list(value, "Contact", contact=True)
    elif key in ("route", "record-route"):
        check_name_addr_list(value, hdr.name, angle_required=True)
    elif key == "call-id":
        check_call_id(value)
    elif key == "cseq":
        check_cseq(value)
    elif key == "content-length":
        check_digits(value, "Content-Length")
    elif key == "max-forwards":
        check_digits(value, "Max-Forwards", MAX_FORWARDS_LIMIT)
    elif key in ("expires", "min-expires"):
        check_digits(value, hdr.name)
    elif key == "content-type":
        check_content_type(value)
    elif key == "accept":
        check_accept(value)
    elif key == "date":
        check_date(value)
    elif key in ("authorization", "proxy-authorization"):
        check_credentials(value)
    elif key in ("require", "proxy-require"):
        check_token_list(value, hdr.name)
    elif key in ("supported", "unsupported", "allow"):
        check_token_list(value, hdr.name, empty_ok=True)
    else:
        check_text(value, hdr.name)


def parse_all(msg: SipMessage) -> None:
    """Parse the whole message strictly (RFC 3261 grammar), raising the first error.

    On top of what :func:`parse_message` checks, this validates the start line
    exactly (single spaces, ``SIP/2.0``, a Request-URI without headers, a status
    code 100-699), every header name, the value of every header siprouter knows
    (Via, From, To, Contact, Route, Record-Route, Call-ID, CSeq, Content-Length,
    Max-Forwards, Expires, Content-Type, Accept, Date, credentials, option tag
    lists; all URIs in them by :func:`~.uri.check_uri`), free-text values of the
    others, the required and single-instance headers, the CSeq method of a
    request, and the body length: a Content-Length larger than the body is an
    error, a smaller one is not (the extra octets of a datagram are discarded,
    RFC 3261 section 18.3).

    Raises :class:`StartLineError`, :class:`UriError`, :class:`HeaderError`,
    :class:`DuplicateHeaderError` or :class:`ContentLengthError`. Used by tests
    and strict checks; the routing path stays lazy and lenient.
    """
    _check_start_line(msg)
    if not msg.complete:
        raise ParseError("headers not terminated by an empty line")
    for key in REQUIRED_HEADERS:
        if not msg.has_header(key):
            raise HeaderError(f"missing {key} header")
    for key in SINGLE_HEADERS:
        if len(msg.headers_named(key)) > 1:
            raise DuplicateHeaderError(f"duplicate {key} header")
    for hdr in msg.headers:
        _check_header(msg, hdr)
    if msg.is_request:
        msg.uri  # noqa: B018 - the lazy parse must accept what the strict one did
        if msg.cseq.method != msg.method:
            raise HeaderError("CSeq method does not match the request method")
    msg.via1  # noqa: B018
    clen = msg.header_value("content-length")
    if clen is not None and int(unfold(clen)) > len(msg.text) - msg.body_start:
        raise ContentLengthError("Content-Length is larger than the body")
