"""Header names and parsers for the header bodies siprouter needs.

Header names are canonicalised to a lower-case long form (``v`` -> ``via``),
which is the key used everywhere in the message layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from . import speedup
from .errors import HeaderError
from .uri import Uri, check_uri, is_host, is_ipv4, is_ipv6, parse_uri

_ViaParts = tuple[str, str, str | None, int | None, list[tuple[str, str | None]], int]
_AddrParts = tuple[str, str, list[tuple[str, str | None]]]
# the C versions of the fast paths below (optional: built with the compiled variant;
# not Final, so that tests can switch them off and compare with the Python code)
_c_via: Callable[[str], _ViaParts | None] | None = speedup("via_fast")
_c_name_addr: Callable[[str], _AddrParts | None] | None = speedup("name_addr_fast")

COMPACT_FORMS: Final[dict[str, str]] = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
    "l": "content-length", "c": "content-type", "e": "content-encoding",
    "s": "subject", "k": "supported", "o": "event", "u": "allow-events",
    "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "y": "identity", "n": "identity-info",
}

_CANON_CACHE: Final[dict[str, str]] = {}


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name (``I`` -> ``call-id``)."""
    canon = _CANON_CACHE.get(name)
    if canon is None:
        lower = name.lower()
        canon = COMPACT_FORMS.get(lower, lower)
        if len(_CANON_CACHE) < 4096:
            _CANON_CACHE[name] = canon
    return canon


_WS: Final = " \t"


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
    if '"' not in text:
        return _parse_plain_params(text)
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


def _parse_plain_params(text: str) -> list[tuple[str, str | None]]:
    """parse_params() for the common case of parameters without quoted values."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        name = name.strip(" \t")
        if not name:
            if eq or item.strip(" \t"):
                raise HeaderError(f"empty parameter name in {text!r}")
            continue
        params.append((name, value.strip(" \t") if eq else None))
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
    """Value of parameter ``name`` (case-insensitive); '' for a flag, None if absent."""
    name = name.lower()
    size = len(name)
    for key, value in params:
        if len(key) == size and (key == name or key.lower() == name):
            return "" if value is None else value
    return None


# The usual shape of a Via value; anything else takes the general parser.
_VIA_FAST: Final = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:;[^;\s,\"=]+(?:=[^;\s,\"=]*)?)*)\Z")


class Via:
    """One Via value: ``SIP/2.0/UDP host:port;params``."""

    __slots__ = ("raw", "protocol", "version", "transport", "host", "port_str", "port",
                 "params", "params_offset", "hostport_end")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        if _c_via is not None:
            done = _c_via(raw)
            if done is not None:
                transport, host, port, number, params, cut = done
                self._set_canonical(transport, host, port, number, params, cut)
                return
        fast = _VIA_FAST.match(raw)
        if fast is not None and self._init_fast(fast):
            return
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
        params = parse_params(ptext)
        for i, (name, value) in enumerate(params):
            if value is not None and name.lower() == "rport":
                params[i] = (name, _rport_value(value))
        self.params = params
        # offset (inside raw) where the first ';' of the params starts, or len(raw)
        self.params_offset = len(raw) - len(after) + (semi if semi >= 0 else len(after))
        # offset just after host[:port]
        self.hostport_end = self.params_offset if semi >= 0 else len(raw.rstrip(_WS))

    def _init_fast(self, match: re.Match[str]) -> bool:
        """Fill the fields from a canonical ``SIP/2.0/UDP host[:port][;params]`` match."""
        transport, host, port, ptext = match.groups()
        number = int(port) if port else None
        if number is not None and number > 65535:
            return False
        # the pattern admits no blanks, quotes or '=' in values and no empty names
        params: list[tuple[str, str | None]] = []
        if ptext:
            for item in ptext[1:].split(";"):
                name, eq, value = item.partition("=")
                if eq and len(name) == 5 and name.lower() == "rport":
                    params.append((name, _rport_value(value)))
                else:
                    params.append((name, value if eq else None))
        self._set_canonical(transport, host, port, number, params, len(self.raw) - len(ptext))
        return True

    def _set_canonical(self, transport: str, host: str, port: str | None, number: int | None,
                       params: list[tuple[str, str | None]], params_offset: int) -> None:
        """The fields of a canonical value (the regex fast path or its C version)."""
        self.protocol = "SIP"
        self.version = "2.0"
        self.transport = transport
        self.host = host
        self.port_str = port or ""
        self.port = number
        self.params = params
        self.params_offset = self.hostport_end = params_offset

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return get_param(self.params, name) is not None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    def __repr__(self) -> str:
        return f"Via({self.raw!r})"


def _rport_value(value: str) -> str | None:
    """The rport value as a usable port, the way Kamailio's str2s() reads it.

    At most 5 ASCII digits, wrapping at 16 bits; anything else, and 0, reads
    like a bare ``rport`` (a relayed reply then goes to the Via port). So no
    caller ever turns e.g. ``'\xb2'`` or ``'99999'`` into a bad port number.
    """
    if not value or len(value) > 5 or not value.isascii() or not value.isdigit():
        return None
    port = int(value) & 0xFFFF
    if port == 0:
        return None
    return value if port == int(value) else str(port)


def parse_via_header(value: str) -> list[Via]:
    """All Via values of one header line."""
    return [Via(part) for part in split_commas(unfold(value))]


# ``[display] <uri>;params`` without quotes in the URI or params; else the general parser.
_NAME_ADDR_FAST: Final = re.compile(
    r'((?:"[^"\\]*"|[^"<>;]*?)[ \t]*)<([^<>"\s]+)>[ \t]*((?:;[^;"<>]*)*)\Z')


class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...)."""

    __slots__ = ("raw", "display", "uri_text", "params", "_uri")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        text = raw.strip()
        if _c_name_addr is not None:
            done = _c_name_addr(text)
            if done is not None:
                self.display, self.uri_text, self.params = done
                self._uri: Uri | None = None
                return
        fast = _NAME_ADDR_FAST.match(text)
        if fast is not None:
            display, self.uri_text, ptext = fast.groups()
            self.display = display.strip(" \t")
            self.params = _parse_plain_params(ptext) if ptext else []
            self._uri = None
            return
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
        self._uri = None

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

    @property
    def display_name(self) -> str:
        """The display name without its quotes, quoted-pairs resolved ('' if none)."""
        return unquote_string(self.display)

    def __repr__(self) -> str:
        return f"NameAddr({self.raw!r})"


def unquote_string(text: str) -> str:
    """``"a \\"b\\""`` -> ``a "b"``; text that is not a quoted string is returned as is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    out: list[str] = []
    i = 1
    end = len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\" and i + 1 < end:
            i += 1
            ch = text[i]
        out.append(ch)
        i += 1
    return "".join(out)


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


# --------------------------------------------------------------------------
# Strict validation (RFC 3261 section 25.1 grammar) used by parse_all().
# The classes above stay lenient: they are what the routing path uses, and
# their leniency matches Kamailio. The check_* functions take header values
# (folding allowed) and raise HeaderError / UriError on anything the grammar
# does not allow.

TOKEN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "-.!%*_+`'~")
_WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')
_CTL_OK: Final = frozenset("\t")


def is_token(text: str) -> bool:
    return bool(text) and all(ch in TOKEN_CHARS for ch in text)


def check_text(value: str, what: str) -> None:
    """A free-text header value: no control characters besides HTAB (after unfolding)."""
    for ch in unfold(value):
        if (ch < " " and ch not in _CTL_OK) or ch == "\x7f":
            raise HeaderError(f"control character {ch!r} in {what}")


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


def _strict_quoted_end(text: str, start: int) -> int:
    """Index past the quoted-string starting at ``text[start] == '"'`` (strict qdtext)."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return i + 1
        if ch == "\\":
            if i + 1 >= n or text[i + 1] in "\n\r" or text[i + 1] > "\x7f":
                raise HeaderError(f"bad quoted-pair in {text!r}")
            i += 2
            continue
        if (ch < " " and ch != "\t") or ch == "\x7f":
            raise HeaderError(f"control character {ch!r} in quoted string {text!r}")
        i += 1
    raise HeaderError(f"unterminated quoted string in {text!r}")


def _scan_token(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in TOKEN_CHARS:
        i += 1
    return i


def check_params(text: str, what: str,
                 bare_ipv6: frozenset[str] = frozenset()) -> list[tuple[str, str | None]]:
    """Strict ``*( SEMI generic-param )`` (text unfolded, may start with blanks).

    generic-param = token [ EQUAL gen-value ], gen-value = token / host /
    quoted-string; SEMI and EQUAL allow blanks on both sides. Parameters named
    in ``bare_ipv6`` (lower case) may also hold an IPv6 address without
    brackets (Via ``received``). Returns the parameters, names as written.
    """
    params: list[tuple[str, str | None]] = []
    n = len(text)
    i = _skip_ws(text, 0)
    while i < n:
        if text[i] != ";":
            raise HeaderError(f"expected ';' in {what}: {text!r}")
        i = _skip_ws(text, i + 1)
        start = i
        i = _scan_token(text, i)
        name = text[start:i]
        if not name:
            raise HeaderError(f"empty parameter in {what}: {text!r}")
        i = _skip_ws(text, i)
        value: str | None = None
        if i < n and text[i] == "=":
            i = _skip_ws(text, i + 1)
            if i < n and text[i] == '"':
                end = _strict_quoted_end(text, i)
            else:
                end = i
                while end < n and text[end] != ";":
                    end += 1
                while end > i and text[end - 1] in _WS:
                    end -= 1
            value = text[i:end]
            if not (value.startswith('"') or is_token(value) or is_host(value)
                    or (name.lower() in bare_ipv6 and is_ipv6(value))):
                raise HeaderError(f"bad value {value!r} of parameter {name!r} in {what}")
            i = _skip_ws(text, end)
        params.append((name, value))
    return params


def check_display_name(display: str, raw: str) -> None:
    """display-name = *(token LWS) / quoted-string."""
    if not display:
        return
    if display.startswith('"'):
        if _strict_quoted_end(display, 0) != len(display):
            raise HeaderError(f"garbage after quoted display name in {raw!r}")
        return
    for word in re.split(r"[ \t]+", display):
        if not is_token(word):
            raise HeaderError(f"bad display name {display!r} in {raw!r}")


_QVALUE: Final = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


def check_name_addr(value: str, what: str, angle_required: bool = False,
                    contact: bool = False) -> NameAddr:
    """One name-addr / addr-spec with header parameters, strictly.

    ``angle_required`` (Route, Record-Route) rejects the bare addr-spec form.
    ``contact`` also checks the q and expires parameters.
    """
    text = unfold(value).strip(_WS)
    addr = NameAddr(text)
    lt = _find_unquoted(text, "<")
    if lt >= 0:
        gt = text.find(">", lt)
        check_display_name(text[:lt].strip(_WS), text)
        inner = text[lt + 1:gt]
        if inner != inner.strip(_WS):
            raise HeaderError(f"white space inside <> in {what}: {text!r}")
        ptext = text[gt + 1:]
    else:
        if angle_required:
            raise HeaderError(f"{what} must use <>: {text!r}")
        semi = text.find(";")
        ptext = "" if semi < 0 else text[semi:]
        for ch in "?,":
            if ch in addr.uri_text:
                raise HeaderError(f"URI with {ch!r} must be enclosed in <> in {what}: {text!r}")
    check_uri(addr.uri_text)
    params = check_params(ptext, what)
    if contact:
        for name, pvalue in params:
            key = name.lower()
            if key == "q" and (pvalue is None or not _QVALUE.match(pvalue)):
                raise HeaderError(f"bad q value in {what}: {text!r}")
            if key == "expires" and (pvalue is None or not pvalue.isdigit()
                                     or not pvalue.isascii()):
                raise HeaderError(f"bad expires parameter in {what}: {text!r}")
    return addr


def _nonempty_parts(value: str, what: str) -> list[str]:
    parts = split_commas(unfold(value))
    if any(not part for part in parts):
        raise HeaderError(f"empty element in {what}: {value!r}")
    return parts


def check_name_addr_list(value: str, what: str, angle_required: bool = False,
                         contact: bool = False) -> list[NameAddr]:
    """Comma-separated name-addr values (Contact, Route, Record-Route)."""
    return [check_name_addr(part, what, angle_required, contact)
            for part in _nonempty_parts(value, what)]


_SENT_PROTOCOL: Final = re.compile(r"[ \t]*([^ \t/]+)[ \t]*/[ \t]*([^ \t/]+)[ \t]*/[ \t]*([^ \t/]+)"
                                   r"[ \t]+")


def check_via_value(value: str) -> Via:
    """One Via value: sent-protocol LWS sent-by *( SEMI via-params ), strictly."""
    text = unfold(value)
    via = Via(text)
    match = _SENT_PROTOCOL.match(text)
    if match is None or not all(is_token(g) for g in match.groups()):
        raise HeaderError(f"bad Via sent-protocol in {text!r}")
    rest = text[match.end():]
    semi = rest.find(";")
    sent_by = (rest if semi < 0 else rest[:semi]).strip(_WS)
    ptext = "" if semi < 0 else rest[semi:]
    if sent_by.startswith("["):
        end = sent_by.find("]") + 1
        host, port_part = sent_by[:end], sent_by[end:].strip(_WS)
    else:
        host, colon, port = sent_by.partition(":")
        host = host.rstrip(_WS)
        port_part = colon + port
    if not is_host(host):
        raise HeaderError(f"bad Via host {host!r} in {text!r}")
    if port_part:
        port = port_part[1:].strip(_WS)
        if not port_part.startswith(":") or not port.isdigit() or not port.isascii():
            raise HeaderError(f"bad Via port in {text!r}")
    for name, pvalue in check_params(ptext, "Via", frozenset(("received",))):
        key = name.lower()
        if key == "branch" and (pvalue is None or not is_token(pvalue)):
            raise HeaderError(f"bad Via branch in {text!r}")
        if key == "received" and (pvalue is None or not (is_ipv4(pvalue)
                                                         or is_ipv6(pvalue))):
            raise HeaderError(f"bad Via received in {text!r}")
        if key == "ttl" and (pvalue is None or not pvalue.isdigit() or not pvalue.isascii()
                             or len(pvalue) > 3 or int(pvalue) > 255):
            raise HeaderError(f"bad Via ttl in {text!r}")
        if key == "maddr" and (pvalue is None or not is_host(pvalue)):
            raise HeaderError(f"bad Via maddr in {text!r}")
        if key == "rport" and pvalue is not None and (not pvalue.isdigit()
                                                      or not pvalue.isascii()):
            raise HeaderError(f"bad Via rport in {text!r}")
    return via


def check_via(value: str) -> list[Via]:
    """A whole Via header line (one or more comma-separated values)."""
    return [check_via_value(part) for part in _nonempty_parts(value, "Via")]


MAX_CSEQ: Final = 2 ** 31
_CSEQ: Final = re.compile(r"([0-9]+)[ \t]+(\S+)", re.ASCII)


def check_cseq(value: str) -> CSeq:
    """CSeq = 1*DIGIT LWS Method, the number below 2**31 (RFC 3261 section 8.1.1.5)."""
    cseq = CSeq(value)
    match = _CSEQ.fullmatch(unfold(value).strip(_WS))
    if match is None or not is_token(match.group(2)):
        raise HeaderError(f"bad CSeq {value!r}")
    if int(match.group(1)) >= MAX_CSEQ:
        raise HeaderError(f"bad CSeq number {cseq.number!r}")
    return cseq


def check_call_id(value: str) -> None:
    """callid = word [ "@" word ]."""
    text = value.strip(_WS)
    words = text.split("@")
    if len(words) > 2 or not all(w and all(ch in _WORD_CHARS for ch in w) for w in words):
        raise HeaderError(f"bad Call-ID {value!r}")


def is_digits(text: str) -> bool:
    """``text.isdigit() and text.isascii()``: one or more of 0-9 (a loop, no method calls)."""
    if not text:
        return False
    for ch in text:
        code = ord(ch)
        if code < 48 or code > 57:
            return False
    return True


def digits_value(text: str) -> int:
    """``int(text)`` for a string the caller has checked to be ASCII digits.

    Up to 9 digits by a loop: int() goes through CPython's general number
    parser, a large piece of code to bring into the cache for "70" or "0".
    """
    if len(text) > 9:
        return int(text)
    value = 0
    for ch in text:
        value = value * 10 + ord(ch) - 48
    return value


def check_digits(value: str, what: str, maximum: int | None = None) -> int:
    """1*DIGIT, optionally at most ``maximum``."""
    text = unfold(value).strip(_WS)
    if not text.isdigit() or not text.isascii():
        raise HeaderError(f"bad {what} {value!r}")
    number = int(text)
    if maximum is not None and number > maximum:
        raise HeaderError(f"{what} {value!r} out of range")
    return number


def check_token_list(value: str, what: str, empty_ok: bool = False) -> list[str]:
    """token *( COMMA token ) (option tags, methods...)."""
    text = unfold(value).strip(_WS)
    if not text:
        if empty_ok:
            return []
        raise HeaderError(f"empty {what}")
    items = [item.strip(_WS) for item in text.split(",")]
    if not all(is_token(item) for item in items):
        raise HeaderError(f"bad {what} {value!r}")
    return items


def _check_media_type(text: str, what: str, star_ok: bool) -> None:
    semi = text.find(";")
    mtype = text if semi < 0 else text[:semi]
    main, slash, sub = mtype.partition("/")
    main, sub = main.strip(_WS), sub.strip(_WS)
    if not slash or not is_token(main) or not is_token(sub):
        raise HeaderError(f"bad media type in {what}: {text!r}")
    if not star_ok and (main == "*" or sub == "*"):
        raise HeaderError(f"wildcard media type in {what}: {text!r}")
    if semi >= 0:
        for _name, pvalue in check_params(text[semi:], what):
            if pvalue is None:
                raise HeaderError(f"media parameter without value in {what}: {text!r}")


def check_content_type(value: str) -> None:
    """media-type = m-type SLASH m-subtype *( SEMI m-parameter )."""
    _check_media_type(unfold(value).strip(_WS), "Content-Type", star_ok=False)


def check_accept(value: str) -> None:
    """Accept = [ accept-range *( COMMA accept-range ) ]."""
    text = unfold(value).strip(_WS)
    if not text:
        return
    for part in _nonempty_parts(text, "Accept"):
        _check_media_type(part, "Accept", star_ok=True)


_DATE: Final = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
                          r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
                          r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT\Z")


def check_date(value: str) -> None:
    """SIP-date = rfc1123-date, which must be in GMT (RFC 3261 section 20.17)."""
    if _DATE.match(unfold(value).strip(_WS)) is None:
        raise HeaderError(f"bad Date {value!r}")


def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings, keeping empty items."""
    items: list[str] = []
    in_quote = False
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == sep:
            items.append(text[start:i])
            start = i + 1
        i += 1
    items.append(text[start:])
    return items


def check_credentials(value: str) -> Credentials:
    """credentials = auth-scheme LWS auth-param *( COMMA auth-param ), strictly.

    auth-param = auth-param-name EQUAL ( token / quoted-string ).
    """
    text = unfold(value).strip(_WS)
    end = _scan_token(text, 0)
    if end == 0 or end >= len(text) or text[end] not in _WS:
        raise HeaderError(f"bad credentials {text!r}")
    for item in _split_unquoted(text[end:], ","):
        name, eq, val = item.partition("=")
        val = val.strip(_WS)
        if not eq or not is_token(name.strip(_WS)) or not val:
            raise HeaderError(f"bad auth parameter {item!r} in {text!r}")
        if val.startswith('"'):
            if _strict_quoted_end(val, 0) != len(val):
                raise HeaderError(f"bad quoted auth parameter in {text!r}")
        elif not is_token(val):
            raise HeaderError(f"bad auth parameter value in {text!r}")
    return Credentials(text)
