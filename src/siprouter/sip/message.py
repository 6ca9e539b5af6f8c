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

from typing import Any

from .errors import HeaderError, ParseError, StartLineError
from .headers import CSeq, NameAddr, Via, canonical_name, parse_via_header, unfold
from .uri import Uri, parse_uri


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
        """Offsets in ``text`` of the value with surrounding blanks removed."""
        start = self.colon + 1
        end = self.value_end
        while start < end and text[start] in " \t":
            start += 1
        while end > start and text[end - 1] in " \t":
            end -= 1
        return start, end

    def __repr__(self) -> str:
        return f"Header({self.name!r}: {self.value!r})"


# Edits are (start, seq, end, text): replace text[start:end] by text; inserts have
# start == end. seq keeps insertions at the same offset in the order they were made.
Edit = tuple[int, int, int, str]


class SipMessage:
    """A parsed SIP request or response."""

    __slots__ = ("text", "is_request", "method", "ruri", "version", "status", "reason",
                 "first_line_end", "ruri_start", "headers", "index", "body_start",
                 "complete", "edits", "_via1", "_uri", "_seq")

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
        self.headers: list[Header] = []
        self.index: dict[str, list[Header]] = {}
        self.body_start = len(text)
        self.complete = False
        self.edits: list[Edit] = []
        self._via1: Via | None = None
        self._uri: Uri | None = None
        self._seq = 0

    # ----------------------------------------------------------------- headers
    def header(self, key: str) -> Header | None:
        """First header with canonical name ``key`` (lower-case long form)."""
        found = self.index.get(key)
        return found[0] if found else None

    def header_value(self, key: str) -> str | None:
        found = self.index.get(key)
        return found[0].value if found else None

    def headers_named(self, key: str) -> list[Header]:
        return self.index.get(key, [])

    def has_header(self, key: str) -> bool:
        return key in self.index

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
        if hdr.parsed is None:
            hdr.parsed = parse_via_header(hdr.value)
        vias: list[Via] = hdr.parsed
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
        if hdr.parsed is None:
            hdr.parsed = NameAddr(unfold(hdr.value))
        addr: NameAddr = hdr.parsed
        return addr

    @property
    def from_(self) -> NameAddr | None:
        return self.name_addr("from")

    @property
    def to(self) -> NameAddr | None:
        return self.name_addr("to")

    @property
    def callid(self) -> str:
        value = self.header_value("call-id")
        return "" if value is None else value

    @property
    def cseq(self) -> CSeq:
        hdr = self.header("cseq")
        if hdr is None:
            raise HeaderError("no CSeq header")
        if hdr.parsed is None:
            hdr.parsed = CSeq(hdr.value)
        cseq: CSeq = hdr.parsed
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
        for start, _seq, end, new in sorted(edits):
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
        msg.status = int(code)
        msg.reason = reason
        return
    method, sp1, rest = line.partition(" ")
    uri, sp2, version = rest.partition(" ")
    if not sp1 or not sp2 or not method or not uri or not version:
        raise StartLineError(f"bad request line {line[:80]!r}")
    if not method.isascii() or not all(c.isalnum() or c in "-.!%*_+`'~" for c in method):
        raise StartLineError(f"bad method in {line[:80]!r}")
    version = version.rstrip(" \t")
    if " " in version or not version.upper().startswith("SIP/2.0"):
        raise StartLineError(f"unsupported SIP version in {line[:80]!r}")
    msg.method = method
    msg.ruri = uri
    msg.ruri_start = len(method) + 1
    msg.version = version


def parse_message(data: bytes | str) -> SipMessage:
    """Split a SIP message into start line, headers and body.

    Raises :class:`StartLineError` for anything that is not a SIP request or
    response, and :class:`HeaderError` for a header line without a colon.
    Header values are not parsed here.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    nl = text.find("\n")
    if nl < 0:
        raise StartLineError("no line terminator")
    line = text[:nl - 1] if nl and text[nl - 1] == "\r" else text[:nl]
    msg = SipMessage(text)
    _parse_start_line(msg, line)
    msg.first_line_end = pos = nl + 1
    headers = msg.headers
    index = msg.index
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
            last.value = text[last.colon + 1:content_end].strip(" \t")
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
            headers.append(last)
            bucket = index.get(key)
            if bucket is None:
                index[key] = [last]
            else:
                bucket.append(last)
        pos = line_end
    else:
        msg.body_start = size
    return msg


def parse_all(msg: SipMessage) -> None:
    """Parse every header siprouter knows, raising the first :class:`ParseError`.

    Used by tests and by strict checks; the routing path stays lazy.
    """
    if msg.is_request:
        msg.uri  # noqa: B018 - parse for the side effect of validation
    for hdr in msg.headers_named("via"):
        msg.via_values(hdr)
    for key in ("from", "to"):
        addr = msg.name_addr(key)
        if addr is None:
            raise HeaderError(f"missing {key} header")
        if addr.uri.scheme in ("sip", "sips", "tel"):
            pass
    for key in ("from", "to", "call-id", "cseq", "via"):
        if not msg.has_header(key):
            raise HeaderError(f"missing {key} header")
    for key in ("from", "to", "call-id", "cseq", "content-length", "max-forwards"):
        if len(msg.headers_named(key)) > 1:
            raise HeaderError(f"duplicate {key} header")
    cseq = msg.cseq
    if not cseq.number.isdigit() or int(cseq.number) >= 2 ** 31:
        raise HeaderError(f"bad CSeq number {cseq.number!r}")
    if msg.is_request and cseq.method != msg.method:
        raise HeaderError("CSeq method does not match the request method")
    clen = msg.header_value("content-length")
    if clen is not None:
        if not clen.isdigit():
            raise HeaderError(f"bad Content-Length {clen!r}")
        if int(clen) != len(msg.text) - msg.body_start:
            raise ParseError("Content-Length does not match the body")
    mf = msg.header_value("max-forwards")
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise HeaderError(f"bad Max-Forwards {mf!r}")
    for hdr in msg.headers_named("contact"):
        if hdr.value.strip() == "*":
            continue
        from .headers import split_commas
        for part in split_commas(unfold(hdr.value)):
            NameAddr(part).uri  # noqa: B018
