"""The optional C fast paths (sip/_speedups.c) give exactly what the Python code gives.

Each value is parsed twice, with the C function and with it switched off (the
Python code is the reference), on hand-picked cases, the RFC 4475 corpus and
random input. Only the compiled variant builds the extension
(scripts/test-compiled.sh); the pure-Python run skips these tests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siprouter.sip import headers
from siprouter.sip.errors import SipError
from siprouter.sip.message import parse_message

speedups = pytest.importorskip("siprouter.sip._speedups")

SHARED = Path(__file__).resolve().parents[3] / "shared"


def via_fields(raw: str) -> Any:
    try:
        via = headers.Via(raw)
    except SipError as err:
        return ("error", type(err).__name__, str(err))
    return (via.protocol, via.version, via.transport, via.host, via.port_str, via.port,
            via.params, via.params_offset, via.hostport_end)


def addr_fields(raw: str) -> Any:
    try:
        addr = headers.NameAddr(raw)
    except SipError as err:
        return ("error", type(err).__name__, str(err))
    return (addr.display, addr.uri_text, addr.params)


def both(fields: Any, name: str, raw: str) -> None:
    """``fields(raw)`` is the same with the C function ``headers.<name>`` and without it."""
    with_c = fields(raw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(headers, name, None)
        python = fields(raw)
    assert with_c == python, (name, raw)


def with_params(head: str, params: list[tuple[str, str, str]]) -> str:
    return head + "".join(";" + name + eq + value for name, eq, value in params)


VIAS = [
    "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1-1-0",
    "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1;rport",
    "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1;rport=5060;received=1.2.3.4",
    "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx;lr;x=",
    "SIP/2.0/UDP host.example.com:65535",
    "SIP/2.0/UDP host:65536;branch=a",
    "SIP/2.0/UDP host:123456",
    "SIP/2.0/UDP host:;branch=a",
    "SIP/2.0/UDP host;branch=a b",
    "SIP/2.0/UDP host;;branch=a",
    "SIP/2.0/UDP host;=a",
    "SIP/2.0/UDP host;a=\"b\"",
    "SIP/2.0/UDP host;a\xa0=b",
    "SIP/2.0/UDP  host",
    "sip/2.0/udp host",
    "SIP/2.0/UDP [::1",
    "SIP/2.0/UDP h\xe9ost",
    "SIP/2.0/UDP host;RPORT=7",
    "SIP/2.0/UDP host;branch=z\u0100",
]

ADDRS = [
    "<sip:bob@example.com>",
    "Bob <sip:bob@example.com>;tag=123",
    "\"Bob Smith\" <sip:bob@example.com> ; tag = 1 ;x;",
    "\"Bob \\\"Q\\\" Smith\" <sip:bob@example.com>",
    "\"unterminated <sip:bob@example.com>",
    "sip:bob@example.com;tag=1",
    "<sip:bob@example.com>;=1",
    "<sip:bob@example.com>;tag=\"q\"",
    "<sip:bob@exa mple.com>",
    "<>",
    "Bob<sip:a@b>",
    "<sip:a@b>\xa0;tag=1",
    "<sip:a@b>junk",
    "B;ob <sip:a@b>",
    "\t <sip:a@b>;a;;b=",
    "\"\u0100\" <sip:a@b>",
]


@pytest.mark.parametrize("raw", VIAS)
def test_via_matches_the_python_code(raw: str) -> None:
    both(via_fields, "_c_via", raw)


@pytest.mark.parametrize("raw", ADDRS)
def test_name_addr_matches_the_python_code(raw: str) -> None:
    both(addr_fields, "_c_name_addr", raw)


def test_the_usual_values_take_the_c_path() -> None:
    assert speedups.via_fast(VIAS[0]) == ("UDP", "127.0.0.1", "5080", 5080,
                                          [("branch", "z9hG4bK-1-1-0")], 26)
    assert speedups.via_fast(VIAS[2]) is None       # rport=: the Python code
    assert speedups.name_addr_fast("Bob <sip:bob@example.com>;tag=123") == (
        "Bob", "sip:bob@example.com", [("tag", "123")])
    assert speedups.name_addr_fast("<sip:a@b>;=1") is None    # the Python code raises


def test_rfc4475_headers_match_the_python_code() -> None:
    folder = SHARED / "rfc4475"
    if not folder.is_dir():
        pytest.skip("../shared/rfc4475 not found")
    seen = 0
    for path in sorted(folder.glob("*.dat")):
        try:
            msg = parse_message(path.read_bytes())
        except SipError:
            continue
        for hdr in msg.headers:
            if hdr.key == "via":
                for part in headers.split_commas(headers.unfold(hdr.value)):
                    both(via_fields, "_c_via", part)
                    seen += 1
            elif hdr.key in ("from", "to", "contact", "route", "record-route"):
                both(addr_fields, "_c_name_addr", headers.unfold(hdr.value))
                seen += 1
    assert seen > 50


PIECES = ["SIP/2.0/", "UDP", "tcp", " ", "  ", "\t", "host", "127.0.0.1", "[::1]", "[", "]",
          ":", "5060", "65536", "123456", ";", "branch=z9hG4bK", "rport", "=", "=5", ",", "\"",
          "<", ">", "sip:a@b", "Bob", "\\", "\xa0", "\x85", "\x1c", "\xe9", "tag", "x"]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_random_values_match_the_python_code(raw: str) -> None:
    both(via_fields, "_c_via", raw)
    both(addr_fields, "_c_name_addr", raw)

TOKENS = st.lists(st.sampled_from(PIECES + ["a", "b", "1", ".", "-", "z9hG4bK", ""]),
                  max_size=4).map("".join)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(st.sampled_from(["SIP/2.0/UDP ", "SIP/2.0/tls ", "SIP/2.0/ UDP "]),
                 st.sampled_from(["host", "127.0.0.1", "[2001:db8::1]", "h-1.example", ""]),
                 st.sampled_from(["", ":5060", ":0", ":99999", ":"]),
                 st.lists(st.tuples(TOKENS, st.sampled_from(["", "="]), TOKENS), max_size=4)))
def test_near_canonical_vias_match_the_python_code(parts: Any) -> None:
    head, host, port, params = parts
    both(via_fields, "_c_via", with_params(head + host + port, params))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(st.sampled_from(["", "Bob ", "\"Bob\" ", "\"B;<\" ", " \t", "B\"ob "]),
                 st.sampled_from(["<sip:a@b>", "<sip:a@b;lr>", "<>", "<sip:a b>", "sip:a@b"]),
                 st.sampled_from(["", " ", "\t"]),
                 st.lists(st.tuples(TOKENS, st.sampled_from(["", "=", " = "]), TOKENS),
                          max_size=4)))
def test_near_canonical_name_addrs_match_the_python_code(parts: Any) -> None:
    display, uri, blanks, params = parts
    both(addr_fields, "_c_name_addr", with_params(display + uri + blanks, params))


NAMES = ["via", "from", "to", "call-id", "x-custom", "Via", "", "vía", "v\u0131a"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(NAMES), max_size=10), st.sampled_from(NAMES),
       st.lists(st.booleans(), min_size=10, max_size=10), st.booleans())
def test_key_scans_match_the_list_methods(keys: list[str], key: str, copies: list[bool],
                                          intern_key: bool) -> None:
    """Interned or not (copies: equal strings that are other objects), same answer as list's."""
    import sys
    keys = [("x" + k)[1:] if copy else sys.intern(k) for k, copy in zip(keys, copies[:len(keys)], strict=True)]
    key = sys.intern(key) if intern_key else ("x" + key)[1:]
    assert speedups.key_count(keys, key) == keys.count(key)
    assert speedups.key_index(keys, key) == (keys.index(key) if key in keys else -1)


def test_header_lookups_use_the_c_scans() -> None:
    from siprouter.sip import message
    msg = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                        b"v: SIP/2.0/UDP g;branch=z9hG4bK2\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
    assert message._c_key_index is speedups.key_index
    assert msg.header_index("via") == 0 and msg.count("via") == 2
    assert msg.header_index("x-a") == 2 and msg.header_value("x-a") == "1"
    assert msg.header_index("route") == -1 and not msg.has_header("route")
    assert [h.value for h in msg.headers_named("via")] == [
        "SIP/2.0/UDP h;branch=z9hG4bK1", "SIP/2.0/UDP g;branch=z9hG4bK2"]


def both_splits(text: str) -> None:
    from siprouter.sip import message
    names = {"Via:": "via", "v:": "via", "To:": "to", "X-A:": "x-a"}
    assert speedups.split_message(text, names) == message.split_headers(text, names), text


def test_rfc4475_messages_split_as_in_python() -> None:
    folder = SHARED / "rfc4475"
    if not folder.is_dir():
        pytest.skip("../shared/rfc4475 not found")
    for path in sorted(folder.glob("*.dat")):
        both_splits(path.read_bytes().decode("latin-1"))


SPLIT_PIECES = ["\r\n", "\r\n\r\n", "\r", "\n", "Via:", "v:", "To:", "X-A:", "X-B:", ":",
                " ", "\t", "a", "SIP/2.0/UDP h", "\xe9", "Call-ID:", "Max-Forwards:", "From",
                "m:", "Cseq:"]
START_PIECES = ["SIP/2.0", "SIP/2.0 ", "sip/2.0", " ", "200", "2", "0", "x", "OK", "INVITE",
                "OPTIONS", "FOO", "sip:a@b", "\t", "ACK"]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SPLIT_PIECES), max_size=16).map("".join))
def test_random_messages_split_as_in_python(text: str) -> None:
    both_splits("OPTIONS sip:a@b SIP/2.0" + text)
    both_splits(text)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(START_PIECES), max_size=8).map("".join))
def test_random_start_lines_split_as_in_python(line: str) -> None:
    both_splits(line + "\r\nVia: SIP/2.0/UDP h\r\n\r\n")


@pytest.mark.parametrize("line, head, tail", [
    ("OPTIONS sip:a@b SIP/2.0", "OPTIONS", "sip:a@b"),
    ("SIP/2.0 200 OK", 200, "OK"),
    ("SIP/2.0 180 Ringing now", 180, "Ringing now"),
    ("SIP/2.0 200", 200, ""),
    ("SIP/2.0 200 ", 200, ""),
    ("SIP/2.0 2000 OK", None, None),          # the general parser reports these
    ("FOO sip:a@b SIP/2.0", None, None),      # an extension method: the general parser
    ("INVITE sip:a@b SIP/2.0 ", None, None),
    ("INVITE  sip:a@b SIP/2.0", None, None),
    ("INVITE sip:a@b sip/2.0", None, None),
])
def test_simple_start_lines(line: str, head: object, tail: object) -> None:
    from siprouter.sip import message
    split = speedups.split_message(line + "\r\n\r\n", {})
    assert split[4:] == (head, tail) == message.simple_start_line(line)
    if isinstance(head, str):      # the known methods come out interned
        assert split[4] is sys.intern(line.split(" ")[0])


def test_usual_header_names_have_their_canonical_keys() -> None:
    from siprouter.sip import message
    from siprouter.sip.headers import canonical_name
    lines = "".join(f"{name}: x\r\n" for name in message.KNOWN_NAMES)
    split = speedups.split_message(f"OPTIONS sip:a@b SIP/2.0\r\n{lines}\r\n", {})
    assert split[3] == [canonical_name(name) for name in message.KNOWN_NAMES]
    assert all(key is sys.intern(key) for key in split[3])


def crc16_x25_bitwise(text: str) -> int:
    """CRC-16/X-25 by its definition: reflected polynomial 0x8408, init and final xor 0xFFFF."""
    crc = 0xFFFF
    for byte in text.encode("latin-1"):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=80))
def test_crc16_x25_matches_its_definition(text: str) -> None:
    from siprouter.routing import replies
    assert speedups.crc16_x25(text) == crc16_x25_bitwise(text)
    assert replies.crc16_x25(text) == crc16_x25_bitwise(text)


def test_crc16_x25_leaves_wide_strings_to_python() -> None:
    assert speedups.crc16_x25("\u0100") is None
    assert crc16_x25_bitwise("123456789") == 0x906E     # the catalogue's check value


KEY_POOL = ["via", "to", "from", "call-id", "cseq", "x-a", "X-A", "route"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(KEY_POOL), max_size=12),
       st.lists(st.sampled_from(KEY_POOL), max_size=5).map(tuple))
def test_key_summaries_as_in_python(keys: list[str], wanted: tuple[str, ...]) -> None:
    from siprouter.sip import message
    keys = [key if i % 2 else "".join(key) for i, key in enumerate(keys)]   # some not interned
    assert speedups.key_repeats(keys) == message.key_repeats(keys)
    assert speedups.first_missing(keys, wanted) == message.first_missing(keys, wanted)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(max_codepoint=255), max_size=30),
                min_size=4, max_size=4))
def test_totag_sums_as_in_python(parts: list[str]) -> None:
    from siprouter.routing import replies
    host, port, branch, callid = parts
    via = headers.Via("SIP/2.0/UDP h;branch=x")
    via.host, via.port_str, via.params = host, port, [("branch", branch)]
    with_c = replies.totag_sums(via, callid)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replies, "_c_totag_sums", None)
        patch.setattr(replies, "_c_crc16_x25", None)
        assert replies.totag_sums(via, callid) == with_c
    assert speedups.totag_sums(host, port, "\u0100", callid) is None


def test_check_signals_runs_pending_handlers() -> None:
    """transport/worker.py calls it once per round (compiled, its loop runs no bytecode)."""
    import os
    import signal

    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: seen.append(signum))
    try:
        assert speedups.check_signals() is None
        os.kill(os.getpid(), signal.SIGUSR1)
        speedups.check_signals()
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_the_c_name_table_is_message_known_names() -> None:
    """_speedups.c keeps its own copy of KNOWN_NAMES: the two must not drift apart."""
    import re

    from siprouter.sip import message
    source = (Path(message.__file__).parent / "_speedups.c").read_text()
    table = source[source.index("known_names[][2] = {"):source.index("#define KNOWN_NAMES")]
    assert dict(re.findall(r'\{"([^"]+)", "([^"]+)"\}', table)) == message.KNOWN_NAMES
