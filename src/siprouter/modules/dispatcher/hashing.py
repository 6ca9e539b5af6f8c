"""Kamailio's dispatcher hash (``ds_get_hash``) and the keys each hash algorithm uses.

The function works on bytes taken as C ``char`` (signed on x86-64) with 32-bit
unsigned arithmetic, so the results equal ``kamcmd dispatcher.hash`` on 5.6.
Key helpers return the hash for algorithms 0 (Call-ID), 1/2/3 (From/To/R-URI),
5 (auth username) and 7 (PV value); the caller extracts the raw header values.
"""

from __future__ import annotations

from typing import Final

_MASK: Final = 0xFFFFFFFF
_BLANKS: Final = b" \t\r\n"

SIP_PORT: Final = 5060
SIPS_PORT: Final = 5061


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def _mix_part(h: int, data: bytes) -> int:
    """Add one key part to the running hash: 4-byte blocks, then the tail."""
    chars = memoryview(data).cast("b")  # signed chars, like C on x86-64
    n = len(chars)
    p = 0
    while p + 4 <= n:
        v = ((chars[p] << 24) + (chars[p + 1] << 16) + (chars[p + 2] << 8) + chars[p + 3]) & _MASK
        h = (h + (v ^ (v >> 3))) & _MASK
        p += 4
    v = 0
    while p < n:  # tail bytes; an empty tail still adds 0 ^ 0
        v = ((v << 8) + chars[p]) & _MASK
        p += 1
    return (h + (v ^ (v >> 3))) & _MASK


def ds_get_hash(data: bytes, data2: bytes | None = None) -> int:
    """Kamailio ``ds_get_hash(x, y)``: unsigned 32-bit, never 0 (0 becomes 1)."""
    h = _mix_part(0, data)
    if data2 is not None:
        h = _mix_part(h, data2)
    h = ((h + (h >> 11)) + ((h >> 13) + (h >> 23))) & _MASK
    return h or 1


def trim_blanks(data: bytes) -> bytes:
    """Kamailio ``trim()``: drop surrounding spaces, tabs, CR and LF."""
    return data.strip(_BLANKS)


def hash_callid(callid: bytes | str) -> int:
    """Alg 0: hash of the Call-ID header body, blanks trimmed."""
    return ds_get_hash(trim_blanks(_as_bytes(callid)))


def uri_hash_keys(
    user: bytes | str | None,
    host: bytes | str,
    port: bytes | str | int | None = None,
    *,
    secure: bool = False,
    user_only: bool = False,
) -> tuple[bytes, bytes]:
    """The two key parts Kamailio hashes for a URI (algs 1, 2, 3).

    ``user`` is the URI user part (None/empty when absent), ``host`` the host as
    written, ``port`` the port text as written (None when absent). ``:port`` is
    appended unless it equals 5060 (5061 for ``sips``). With ``user_only``
    (module ``flags`` bit 1) the host part is left out.
    """
    key1 = _as_bytes(user) if user else b""
    if user_only:
        return key1, b""
    key2 = _as_bytes(host)
    if port is not None and port != b"" and port != "":
        text = str(port).encode() if isinstance(port, int) else _as_bytes(port)
        default = SIPS_PORT if secure else SIP_PORT
        if not text.isdigit() or int(text) != default:
            key2 += b":" + text
    return key1, key2


def hash_uri(
    user: bytes | str | None,
    host: bytes | str,
    port: bytes | str | int | None = None,
    *,
    secure: bool = False,
    user_only: bool = False,
) -> int:
    """Algs 1/2/3: hash of a URI's user + host[:port] (see :func:`uri_hash_keys`)."""
    key1, key2 = uri_hash_keys(user, host, port, secure=secure, user_only=user_only)
    return ds_get_hash(key1, key2)


def auth_username_key(username: bytes | str) -> bytes:
    """User part of a digest ``username`` as Kamailio's digest parser extracts it.

    Values of at most 2 characters are used whole; otherwise the part before
    the first ``@`` is kept, then only what follows its first ``:`` (so
    ``sip:alice@example.com`` gives ``alice``). Not trimmed.
    """
    whole = _as_bytes(username)
    if len(whole) <= 2:
        return whole
    user = whole.split(b"@", 1)[0]
    if b":" in user:
        user = user.split(b":", 1)[1]
    return user


def hash_auth_username(username: bytes | str | None) -> int | None:
    """Alg 5: hash of the digest username's user part, blanks trimmed.

    None (no credentials, or an empty user part) tells
    :func:`~siprouter.modules.dispatcher.selection.select` to fall back to round
    robin, as Kamailio does.
    """
    if username is None:
        return None
    user = auth_username_key(username)
    return ds_get_hash(trim_blanks(user)) if user else None


def hash_pv_value(value: bytes | str | None) -> int | None:
    """Alg 7: hash of the printed ``hash_pvar`` value; None (an error) when empty."""
    if value is None:
        return None
    key = trim_blanks(_as_bytes(value))
    return ds_get_hash(key) if key else None
