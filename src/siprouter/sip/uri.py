"""SIP, SIPS and TEL URIs (RFC 3261 section 19.1, RFC 3966), other schemes kept opaque.

All text in siprouter is ``str`` holding latin-1 decoded bytes, so every
character maps to exactly one byte of the wire format.
"""

from __future__ import annotations

from urllib.parse import unquote

from .errors import UriError

# Schemes Kamailio's parse_uri() understands; anything else is opaque.
SIP_SCHEMES = frozenset(("sip", "sips"))
KNOWN_SCHEMES = frozenset(("sip", "sips", "tel", "tels", "urn"))

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_USER_FORBIDDEN = frozenset(" \t\r\n<>\"@")


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


def parse_uri(raw: str) -> Uri:
    """Parse a URI. Raises :class:`UriError` for a malformed sip/sips/tel URI.

    Unknown schemes are returned opaque (scheme set, everything else empty).
    """
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
    # sip / sips
    body, qmark, headers = rest.partition("?")
    user: str | None = None
    password: str | None = None
    at = body.rfind("@")
    if at >= 0:
        userinfo = body[:at]
        body = body[at + 1:]
        if not userinfo:
            raise UriError(f"empty user part in {raw!r}")
        user, pcolon, pw = userinfo.partition(":")
        if pcolon:
            password = pw
        for ch in user:
            if ch in _USER_FORBIDDEN:
                raise UriError(f"bad character {ch!r} in user part of {raw!r}")
    hostport, _, ptext = body.partition(";")
    host, port = _parse_hostport(hostport, raw)
    return Uri(raw, scheme_l, user=user, password=password, host=host, port_str=port,
               params=_split_params(ptext), headers=headers if qmark else "")
