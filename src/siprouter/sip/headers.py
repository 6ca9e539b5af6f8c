"""Header names and parsers for the header bodies siprouter needs.

Header names are canonicalised to a lower-case long form (``v`` -> ``via``),
which is the key used everywhere in the message layer.
"""

from __future__ import annotations

from .errors import HeaderError
from .uri import Uri, parse_uri

COMPACT_FORMS: dict[str, str] = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
    "l": "content-length", "c": "content-type", "e": "content-encoding",
    "s": "subject", "k": "supported", "o": "event", "u": "allow-events",
    "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "y": "identity", "n": "identity-info",
}

_CANON_CACHE: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name (``I`` -> ``call-id``)."""
    canon = _CANON_CACHE.get(name)
    if canon is None:
        lower = name.lower()
        canon = COMPACT_FORMS.get(lower, lower)
        if len(_CANON_CACHE) < 4096:
            _CANON_CACHE[name] = canon
    return canon


_WS = " \t"


def unfold(value: str) -> str:
    """Replace line folding (CRLF followed by white space) with a single space."""
    if "\n" not in value:
        return value
    return " ".join(part.strip(_WS) for part in value.replace("\r\n", "\n").split("\n"))


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and angle brackets."""
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    depth_angle = False
    in_quote = False
    escaped = False
    start = 0
    for i, ch in enumerate(value):
        if in_quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            depth_angle = True
        elif ch == ">":
            depth_angle = False
        elif ch == "," and not depth_angle:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return parts


def parse_params(text: str) -> list[tuple[str, str | None]]:
    """Parse ``;a=b;c`` style header parameters (leading ';' optional).

    Quoted values may contain ';'. Names are kept as written.
    """
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t;":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip()
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _WS:
                i += 1
            if i < n and text[i] == '"':
                end = _end_of_quoted(text, i)
                value = text[i:end]
                i = end
                while i < n and text[i] != ";":
                    i += 1
            else:
                vstart = i
                while i < n and text[i] != ";":
                    i += 1
                value = text[vstart:i].strip()
        if not name:
            raise HeaderError(f"empty parameter name in {text!r}")
        params.append((name, value))
    return params


def _end_of_quoted(text: str, start: int) -> int:
    """Index just past the closing quote of the quoted string starting at ``start``."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise HeaderError(f"unterminated quoted string in {text!r}")


def get_param(params: list[tuple[str, str | None]], name: str) -> str | None:
    for key, value in params:
        if key.lower() == name:
            return "" if value is None else value
    return None


class Via:
    """One Via value: ``SIP/2.0/UDP host:port;params``."""

    __slots__ = ("raw", "protocol", "version", "transport", "host", "port_str", "port",
                 "params", "params_offset", "hostport_end")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        sent_proto, _, rest = raw.partition("/")
        version, _, rest = rest.partition("/")
        rest = rest.lstrip(_WS)
        # transport ends at white space
        i = 0
        while i < len(rest) and rest[i] not in _WS:
            i += 1
        transport = rest[:i]
        after = rest[i:].lstrip(_WS)
        self.protocol = sent_proto.strip()
        self.version = version.strip()
        self.transport = transport.strip()
        if self.protocol.upper() != "SIP" or not self.version or not self.transport \
                or "/" in self.transport:
            raise HeaderError(f"bad Via sent-protocol in {raw!r}")
        if self.version != "2.0":
            raise HeaderError(f"unsupported Via version in {raw!r}")
        semi = after.find(";")
        hostport = (after if semi < 0 else after[:semi]).strip()
        ptext = "" if semi < 0 else after[semi:]
        if not hostport:
            raise HeaderError(f"missing Via sent-by in {raw!r}")
        if hostport.startswith("["):
            end = hostport.find("]")
            if end < 0:
                raise HeaderError(f"bad IPv6 in Via {raw!r}")
            host = hostport[: end + 1]
            port = hostport[end + 1:].lstrip(_WS)
            if port and not port.startswith(":"):
                raise HeaderError(f"bad Via sent-by in {raw!r}")
            port = port[1:].strip()
        else:
            host, _, port = hostport.partition(":")
            host = host.strip()
            port = port.strip()
            if not host or any(c in " \t,<>\"@" for c in host):
                raise HeaderError(f"bad Via host in {raw!r}")
        if port and (not port.isdigit() or not port.isascii() or int(port) > 65535):
            raise HeaderError(f"bad Via port in {raw!r}")
        if ":" in hostport and not port and not hostport.startswith("["):
            raise HeaderError(f"empty Via port in {raw!r}")
        self.host = host
        self.port_str = port
        self.port = int(port) if port else None
        self.params = parse_params(ptext)
        # offset (inside raw) where the first ';' of the params starts, or len(raw)
        self.params_offset = len(raw) - len(after) + (semi if semi >= 0 else len(after))
        # offset just after host[:port]
        self.hostport_end = self.params_offset if semi >= 0 else len(raw.rstrip(_WS))

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return any(key.lower() == name for key, _ in self.params)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    def __repr__(self) -> str:
        return f"Via({self.raw!r})"


def parse_via_header(value: str) -> list[Via]:
    """All Via values of one header line."""
    return [Via(part) for part in split_commas(unfold(value))]


class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...)."""

    __slots__ = ("raw", "display", "uri_text", "params", "_uri")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        text = raw.strip()
        self.display = ""
        lt = _find_unquoted(text, "<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise HeaderError(f"unterminated '<' in {raw!r}")
            self.display = text[:lt].strip()
            self.uri_text = text[lt + 1:gt].strip()
            ptext = text[gt + 1:].strip()
            if ptext and not ptext.startswith(";"):
                raise HeaderError(f"garbage after '>' in {raw!r}")
        else:
            if text.startswith('"'):
                raise HeaderError(f"display name without '<' in {raw!r}")
            semi = text.find(";")
            self.uri_text = text if semi < 0 else text[:semi].strip()
            ptext = "" if semi < 0 else text[semi:]
            if " " in self.uri_text or "\t" in self.uri_text:
                raise HeaderError(f"white space in addr-spec {raw!r}")
        if not self.uri_text:
            raise HeaderError(f"empty URI in {raw!r}")
        self.params = parse_params(ptext)
        self._uri: Uri | None = None

    @property
    def uri(self) -> Uri:
        """The URI, parsed on first access (raises UriError)."""
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def __repr__(self) -> str:
        return f"NameAddr({self.raw!r})"


def _find_unquoted(text: str, target: str) -> int:
    in_quote = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == target:
            return i
        i += 1
    if in_quote:
        raise HeaderError(f"unterminated quoted string in {text!r}")
    return -1


class CSeq:
    """``CSeq: <number> <method>``; the number is kept as text (Kamailio checks it later)."""

    __slots__ = ("number", "method")

    def __init__(self, value: str) -> None:
        parts = unfold(value).split()
        if len(parts) != 2:
            raise HeaderError(f"bad CSeq {value!r}")
        self.number, self.method = parts


class Credentials:
    """Authorization / Proxy-Authorization value: scheme plus parameters."""

    __slots__ = ("scheme", "params")

    def __init__(self, value: str) -> None:
        text = unfold(value).strip()
        scheme, _, rest = text.partition(" ")
        if not scheme:
            raise HeaderError("empty credentials")
        self.scheme = scheme
        self.params: dict[str, str] = {}
        for item in _split_auth_params(rest):
            name, eq, val = item.partition("=")
            name = name.strip().lower()
            if not eq or not name:
                raise HeaderError(f"bad auth parameter {item!r}")
            val = val.strip()
            if val.startswith('"'):
                if len(val) < 2 or not val.endswith('"'):
                    raise HeaderError(f"unterminated quoted value in {item!r}")
                val = val[1:-1]
            self.params[name] = val

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"


def _split_auth_params(text: str) -> list[str]:
    items: list[str] = []
    in_quote = False
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == ",":
            items.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote:
        raise HeaderError("unterminated quoted string in credentials")
    items.append(text[start:])
    return [item for item in (s.strip() for s in items) if item]
