"""ds_get_hash and the per-algorithm hash keys (Kamailio 5.6 dispatcher)."""

import random

import pytest

from siprouter.modules.dispatcher.hashing import (
    auth_username_key,
    ds_get_hash,
    hash_auth_username,
    hash_callid,
    hash_pv_value,
    hash_uri,
    trim_blanks,
    uri_hash_keys,
)


def reference_hash(x: bytes, y: bytes | None = None) -> int:
    """The spec's reference implementation (dispatcher.md §8.1), kept verbatim in spirit."""

    def s8(b: int) -> int:
        return b - 256 if b > 127 else b

    m, h = 0xFFFFFFFF, 0
    for s in (x, y):
        if s is None:
            continue
        p, n = 0, len(s)
        while n >= 4 and p <= n - 4:
            v = ((s8(s[p]) << 24) + (s8(s[p + 1]) << 16) + (s8(s[p + 2]) << 8) + s8(s[p + 3])) & m
            h = (h + (v ^ (v >> 3))) & m
            p += 4
        v = 0
        while p < n:
            v = ((v << 8) + s8(s[p])) & m
            p += 1
        h = (h + (v ^ (v >> 3))) & m
    h = ((h + (h >> 11)) + ((h >> 13) + (h >> 23))) & m
    return h if h else 1


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (b"abc", None, 7167810),
        (b"x", None, 119),
        (b"fixed-callid-1", None, 892830494),
        (b"alice", b"server.com", 1412806172),
        (b"bob", b"server.com:5070", 1243008018),
        ("é€x".encode(), None, 3139145946),
    ],
)
def test_spec_vectors(x: bytes, y: bytes | None, expected: int) -> None:
    assert ds_get_hash(x, y) == expected


def test_matches_reference_on_random_bytes() -> None:
    rng = random.Random(4242)
    for _ in range(2000):
        x = rng.randbytes(rng.randrange(0, 40))
        y = rng.randbytes(rng.randrange(0, 12)) if rng.random() < 0.5 else None
        assert ds_get_hash(x, y) == reference_hash(x, y)


def test_zero_becomes_one_and_empty_part_counts_as_zero() -> None:
    assert ds_get_hash(b"") == 1
    assert ds_get_hash(b"", b"") == 1
    assert ds_get_hash(b"", b"server.com") == ds_get_hash(b"server.com")


def test_signed_chars_matter() -> None:
    # 0x80 is -128 as a C char: the tail is 0xFFFFFF80, not 0x80 (which would give 144).
    assert ds_get_hash(b"\x80") == reference_hash(b"\x80")
    assert ds_get_hash(b"\x80") != 144


def test_callid_is_trimmed() -> None:
    assert hash_callid(b" \tfixed-callid-1\r\n") == 892830494
    assert hash_callid("fixed-callid-1") == 892830494
    assert trim_blanks(b" \t a b \r\n") == b"a b"


@pytest.mark.parametrize(
    ("user", "host", "port", "secure", "keys"),
    [
        ("alice", "server.com", None, False, (b"alice", b"server.com")),
        ("alice", "server.com", "5060", False, (b"alice", b"server.com")),
        ("alice", "server.com", "05060", False, (b"alice", b"server.com")),
        ("bob", "server.com", "5070", False, (b"bob", b"server.com:5070")),
        ("bob", "server.com", 5070, False, (b"bob", b"server.com:5070")),
        ("bob", "server.com", "5061", False, (b"bob", b"server.com:5061")),
        ("bob", "server.com", "5061", True, (b"bob", b"server.com")),
        ("bob", "server.com", "5060", True, (b"bob", b"server.com:5060")),
        (None, "127.0.0.1", "7000", False, (b"", b"127.0.0.1:7000")),
    ],
)
def test_uri_keys(
    user: str | None, host: str, port: str | int | None, secure: bool, keys: tuple[bytes, bytes]
) -> None:
    assert uri_hash_keys(user, host, port, secure=secure) == keys
    assert hash_uri(user, host, port, secure=secure) == ds_get_hash(*keys)


def test_uri_hash_vectors() -> None:
    assert hash_uri("alice", "server.com") == 1412806172
    assert hash_uri(b"bob", b"server.com", b"5070") == 1243008018
    assert hash_uri("test", "127.0.0.1", "5060") == ds_get_hash(b"test", b"127.0.0.1")


def test_uri_user_only_flag() -> None:
    assert uri_hash_keys("alice", "server.com", "5070", user_only=True) == (b"alice", b"")
    assert hash_uri("alice", "a.com", user_only=True) == hash_uri("alice", "b.com", user_only=True)


@pytest.mark.parametrize(
    ("username", "user"),
    [
        ("alice", b"alice"),
        ("alice@example.com", b"alice"),
        ("sip:alice@example.com", b"alice"),
        ("sip:alice", b"alice"),
        ("a@", b"a@"),  # two characters or less: used whole
        ("ab", b"ab"),
    ],
)
def test_auth_username_key(username: str, user: bytes) -> None:
    assert auth_username_key(username) == user


def test_auth_username_hash() -> None:
    assert hash_auth_username("sip:abc@example.com") == 7167810
    assert hash_auth_username(" abc@example.com") == 7167810  # trimmed
    assert hash_auth_username(None) is None  # no credentials: round robin
    assert hash_auth_username("") is None
    assert hash_auth_username("@example.com") is None


def test_pv_value_hash() -> None:
    assert hash_pv_value(" abc\t") == 7167810
    assert hash_pv_value(b"x") == 119
    assert hash_pv_value("  ") is None
    assert hash_pv_value(None) is None
