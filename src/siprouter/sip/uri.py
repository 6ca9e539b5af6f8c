"""SIP, SIPS and TEL URIs (RFC 3261 section 19.1, RFC 3966), other schemes kept opaque.

All text in siprouter is ``str`` holding latin-1 decoded bytes, so every
character maps to exactly one byte of the wire format.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import unquote

from .errors import UriError

# Schemes Kamailio's parse_uri() understands; anything else is opaque.
SIP_SCHEMES: Final = frozenset(("sip", "sips"))
KNOWN_SCHEMES: Final = frozenset(("sip", "sips", "tel", "tels", "urn"))

_HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_USER_FORBIDDEN: Final = frozenset(" \t\r\n<>\"@")


class Uri:
    """A parsed URI. ``raw`` is always the exact text it was parsed from."""

    __slots__ = ("raw", "scheme", "user", "password", "host", "port", "port_str",
                 "params", "headers")

    def __init__(self, raw: str, scheme: str, user: str | None = None,
                 password: str | None = None, host: str = "", port_str: str = "",
                 params: list[tuple[str, str | None]] | None = None,
                 headers: str = "") -> None:
        self.raw = raw
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port_str = port_str
        self.port = int(port_str) if port_str else None
        self.params = params if params is not None else []
        self.headers = headers

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (case-insensitive name); '' for a flag param."""
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return "" if value is None else value
        return None

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(key.lower() == name for key, _ in self.params)

    @property
    def transport(self) -> str:
        """The transport parameter lower-cased, '' if absent."""
        value = self.param("transport")
        return value.lower() if value else ""

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port_str}" if self.port_str else self.host

    def default_port(self) -> int:
        """Port to use for this URI: explicit, else 5061 for sips/tls, else 5060."""
        if self.port is not None:
            return self.port
        if self.scheme == "sips" or self.transport == "tls":
            return 5061
        return 5060

    def unescaped_user(self) -> str | None:
        return None if self.user is None else unquote(self.user, encoding="latin-1")

    def __str__(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"Uri({self.raw!r})"


def _split_params(text: str) -> list[tuple[str, str | None]]:
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        if not item:
            continue
        name, eq, value = item.partition("=")
        params.append((name, value if eq else None))
    return params


def _parse_hostport(text: str, raw: str) -> tuple[str, str]:
    """Split ``host[:port]``; validates both as Kamailio's parse_uri does."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UriError(f"unterminated IPv6 reference in {raw!r}")
        host = text[: end + 1]
        rest = text[end + 1:]
        if rest and not rest.startswith(":"):
            raise UriError(f"bad character after IPv6 reference in {raw!r}")
        port = rest[1:] if rest else ""
        if rest and not port:
            raise UriError(f"empty port in {raw!r}")
    else:
        host, colon, port = text.partition(":")
        if colon and not port:
            raise UriError(f"empty port in {raw!r}")
        if not host:
            raise UriError(f"missing host in {raw!r}")
        for ch in host:
            if ch not in _HOST_CHARS:
                raise UriError(f"bad character {ch!r} in host of {raw!r}")
    if port and (not port.isdigit() or not port.isascii() or len(port) > 5
                 or int(port) > 65535):
        raise UriError(f"bad port {port!r} in {raw!r}")
    return host, port


# Parsed URIs by text: the same R-URIs, From/To and Contact URIs come back in
# every message of a call and across calls. Uri objects are never modified.
_URI_CACHE: Final[dict[str, Uri]] = {}
CACHE_SIZE: Final = 512


def clear_uri_cache() -> None:
    """Empty the parsed-URI cache."""
    _URI_CACHE.clear()


def parse_uri(raw: str) -> Uri:
    """Parse a URI. Raises :class:`UriError` for a malformed sip/sips/tel URI.

    Unknown schemes are returned opaque (scheme set, everything else empty).
    Results are cached by text.
    """
    uri = _URI_CACHE.get(raw)
    if uri is None:
        uri = _parse_uri(raw)
        if len(_URI_CACHE) >= CACHE_SIZE:
            _URI_CACHE.clear()
        _URI_CACHE[raw] = uri
    return uri


def _parse_uri(raw: str) -> Uri:
    scheme, colon, rest = raw.partition(":")
    if not colon or not scheme:
        raise UriError(f"no scheme in URI {raw!r}")
    scheme_l = scheme.lower()
    if scheme_l in ("tel", "tels"):
        number, _, ptext = rest.partition(";")
        if not number:
            raise UriError(f"empty telephone number in {raw!r}")
        return Uri(raw, scheme_l, user=number, params=_split_params(ptext))
    if scheme_l not in SIP_SCHEMES:
        if not rest:
            raise UriError(f"empty URI {raw!r}")
        return Uri(raw, scheme_l, host="")
    # sip / sips. The first '@' ends the userinfo, wherever it is: the user part
    # may hold ';', '?' and '/' (RFC 3261 user-unreserved), and '@' may not
    # appear unescaped anywhere else (Kamailio's parse_uri does the same).
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1:]
        if not userinfo:
            raise UriError(f"empty user part in {raw!r}")
        if "@" in rest:
            raise UriError(f"second '@' in {raw!r}")
        user, pcolon, pw = userinfo.partition(":")
        if pcolon:
            password = pw
        for ch in user:
            if ch in _USER_FORBIDDEN:
                raise UriError(f"bad character {ch!r} in user part of {raw!r}")
    body, qmark, headers = rest.partition("?")
    hostport, _, ptext = body.partition(";")
    host, port = _parse_hostport(hostport, raw)
    return Uri(raw, scheme_l, user=user, password=password, host=host, port_str=port,
               params=_split_params(ptext), headers=headers if qmark else "")


# --------------------------------------------------------------------------
# Strict validation (RFC 3261 section 19.1 / 25.1, RFC 3966, RFC 3986 schemes).
# parse_uri() stays as lenient as Kamailio's parser: the routing path relies on
# that. check_uri() is what parse_all() uses to apply the full grammar.

_ALPHA: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT: Final = "0123456789"
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_ALNUM: Final = _ALPHA + _DIGIT
_MARK: Final = "-_.!~*'()"
_UNRESERVED: Final = _ALNUM + _MARK
_RESERVED: Final = ";/?:@&=+$,"
_USER_CHARS: Final = frozenset(_UNRESERVED + "&=+$,;?/")          # unreserved / user-unreserved
_PASSWORD_CHARS: Final = frozenset(_UNRESERVED + "&=+$,")
_PARAM_CHARS: Final = frozenset(_UNRESERVED + "[]/:&+$")          # paramchar (RFC 3261 and 3966)
_HNAME_CHARS: Final = frozenset(_UNRESERVED + "[]/?:+$")          # hnv-unreserved / unreserved
_URIC: Final = frozenset(_RESERVED + _UNRESERVED)                 # absoluteURI characters
_TEL_GLOBAL: Final = frozenset(_DIGIT + "-.()")
_TEL_LOCAL: Final = frozenset("0123456789abcdefABCDEF*#-.()")
_TEL_PNAME: Final = frozenset(_ALNUM + "-")
_SCHEME_FIRST: Final = frozenset(_ALPHA)
_SCHEME_CHARS: Final = frozenset(_ALNUM + "+-.")
_IPV6_CHARS: Final = frozenset("0123456789abcdefABCDEF:.")


def _check_chars(text: str, allowed: frozenset[str], what: str, raw: str,
                 empty_ok: bool = False) -> None:
    """Every character of ``text`` is in ``allowed`` or part of a %HH escape."""
    if not text and not empty_ok:
        raise UriError(f"empty {what} in {raw!r}")
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%":
            if i + 2 >= n or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
                raise UriError(f"bad escape in {what} of {raw!r}")
            i += 3
            continue
        if ch not in allowed:
            raise UriError(f"bad character {ch!r} in {what} of {raw!r}")
        i += 1


def is_ipv4(text: str) -> bool:
    """RFC 3261 IPv4address: four groups of 1-3 digits (each at most 255)."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        0 < len(p) <= 3 and p.isascii() and p.isdigit() and int(p) <= 255 for p in parts)


def is_ipv6(text: str) -> bool:
    """RFC 3261 IPv6address (no brackets, no zone index)."""
    if not text or any(ch not in _IPV6_CHARS for ch in text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def is_hostname(text: str) -> bool:
    """RFC 3261 hostname: dot-separated labels, the last one starting with a letter."""
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            return False
        if any(ch not in _ALNUM and ch != "-" for ch in label):
            return False
    return labels[-1][0] in _SCHEME_FIRST


def is_host(text: str) -> bool:
    """RFC 3261 host: hostname / IPv4address / IPv6reference."""
    if text.startswith("["):
        return text.endswith("]") and is_ipv6(text[1:-1])
    return is_ipv4(text) or is_hostname(text)


def _check_sip_uri(uri: Uri, raw: str, allow_headers: bool) -> None:
    rest = raw.partition(":")[2]
    if uri.user is not None:
        _check_chars(uri.user, _USER_CHARS, "user part", raw)
        if uri.password is not None:
            _check_chars(uri.password, _PASSWORD_CHARS, "password", raw, empty_ok=True)
        rest = rest[rest.find("@") + 1:]
    if not is_host(uri.host):
        raise UriError(f"bad host {uri.host!r} in {raw!r}")
    body, qmark, headers = rest.partition("?")
    ptext = body.partition(";")[2] if ";" in body else None
    if ptext is not None:
        for item in ptext.split(";"):
            name, eq, value = item.partition("=")
            _check_chars(name, _PARAM_CHARS, "parameter name", raw)
            if eq:
                _check_chars(value, _PARAM_CHARS, "parameter value", raw)
    if qmark:
        if not allow_headers:
            raise UriError(f"headers are not allowed in {raw!r}")
        for item in headers.split("&"):
            name, eq, value = item.partition("=")
            if not eq:
                raise UriError(f"URI header without '=' in {raw!r}")
            _check_chars(name, _HNAME_CHARS, "header name", raw)
            _check_chars(value, _HNAME_CHARS, "header value", raw, empty_ok=True)


def _check_tel_uri(raw: str) -> None:
    rest = raw.partition(":")[2]
    number, semi, ptext = rest.partition(";")
    if number.startswith("+"):
        digits = number[1:]
        if not any(ch in _DIGIT for ch in digits) or any(ch not in _TEL_GLOBAL
                                                        for ch in digits):
            raise UriError(f"bad global number in {raw!r}")
    elif not any(ch in _TEL_LOCAL and ch not in "-.()" for ch in number) or any(
            ch not in _TEL_LOCAL for ch in number):
        raise UriError(f"bad local number in {raw!r}")
    if semi:
        for item in ptext.split(";"):
            name, eq, value = item.partition("=")
            if not name or any(ch not in _TEL_PNAME for ch in name):
                raise UriError(f"bad parameter name {name!r} in {raw!r}")
            if eq:
                _check_chars(value, _PARAM_CHARS, "parameter value", raw)


def check_uri(raw: str, allow_headers: bool = True) -> Uri:
    """Parse ``raw`` and apply the full URI grammar; raises :class:`UriError`.

    sip/sips URIs are checked against RFC 3261 (user, password, host, port,
    parameters, headers, %-escapes), tel URIs against RFC 3966, any other scheme
    as an RFC 3261 absoluteURI (scheme syntax, URI characters and escapes only).
    ``allow_headers=False`` rejects a ``?headers`` part (the Request-URI).
    """
    scheme, colon, rest = raw.partition(":")
    if not colon or not scheme or scheme[0] not in _SCHEME_FIRST or any(
            ch not in _SCHEME_CHARS for ch in scheme):
        raise UriError(f"bad scheme in URI {raw!r}")
    uri = parse_uri(raw)
    if uri.scheme in SIP_SCHEMES:
        _check_sip_uri(uri, raw, allow_headers)
    elif uri.scheme in ("tel", "tels"):
        _check_tel_uri(raw)
    else:
        _check_chars(rest, _URIC, "URI", raw)
    return uri
