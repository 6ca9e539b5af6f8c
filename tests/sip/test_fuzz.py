"""Fuzzing with mutated real messages (hypothesis).

Seeds are the conformance corpus requests (../shared/conformance/cases/*.sip),
replies built from them that the conformance cfg would relay, and the RFC 4475
messages. Mutations: flip/insert/delete bytes, insert nasty fragments,
duplicate/delete/swap lines, and replace header or parameter values.

Properties:

* ``parse_message`` / ``parse_all`` and the lazy accessors raise nothing but
  :class:`SipError`; what ``parse_message`` accepts renders back unchanged, and
  what ``parse_all`` accepts the lazy accessors accept too;
* a Router built from conformance.cfg never raises from ``handle()``, returns a
  list of datagrams, and never logs "error processing message" (an exception
  caught inside ``handle()``: a message-layer bug).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path

import pytest
from conftest import shared_dir
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from siprouter.config.loader import load
from siprouter.sip.errors import SipError
from siprouter.sip.headers import NameAddr, split_commas, unfold
from siprouter.sip.message import SipMessage, parse_all, parse_message

SHARED = shared_dir()
CASES_DIR = SHARED / "conformance" / "cases"
CFG_DIR = SHARED / "conformance" / "cfg"
RFC_DIR = SHARED / "rfc4475"

CLIENT = ("127.0.0.1", 6050)
LOCAL = ("127.0.0.1", 6060)          # listen= of conformance.cfg
OUR_VIA = "Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKfuzz0a0ff2fb2a2cf5748b.0"
_REPLY_HEADERS = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:", re.IGNORECASE)


def _reply_from(request: bytes) -> bytes | None:
    """The 200 a downstream UAS would send back through us for ``request``."""
    head = request.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n")
    keep = [line for line in head[1:] if _REPLY_HEADERS.match(line)]
    if not keep or not head[0].split(b" ", 1)[0].isalpha():
        return None
    lines = [b"SIP/2.0 200 OK", OUR_VIA.encode(), *keep, b"Content-Length: 0"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _load_seeds() -> list[bytes]:
    requests = [p.read_bytes() for p in sorted(CASES_DIR.glob("*.sip"))]
    replies = [r for r in map(_reply_from, requests) if r is not None]
    torture = [p.read_bytes() for p in sorted(RFC_DIR.glob("*.dat"))]
    return requests + replies[::3] + torture


SEEDS = _load_seeds()

NASTY = [
    b";", b",", b"<", b">", b'"', b"\\", b"@", b":", b"?", b"%", b"%4", b"[", b"]", b"=",
    b" ", b"\t", b"\r\n", b"\n", b"\r", b"\r\n ", b"\r\n\r\n", b"\x00", b"\xff", b"\x7f",
    b"\xb2", b"\xb9", b"\xc3\xa9", b"sip:", b"sips:", b"tel:", b"urn:x", b"[::1]", b"[::1",
    b"SIP/2.0", b"SIP/2.0/UDP ", b"99999999999", b"65536", b"4294967296", b"-1", b"0",
    b";rport=", b";received=", b";maddr=", b";branch=", b";tag=", b";transport=tcp", b";lr",
    b"Via: SIP/2.0/UDP 127.0.0.1:6050;rport=\xb2\r\n", b"Max-Forwards: ", b"Content-Length: ",
    b"Expires: ", b"Proxy-Require: ", b"Authorization: Digest ", b"Contact: ", b"To: ",
    b"From: ", b"CSeq: ", b"Call-ID: ", b"l: ", b"v: ", b"i: ",
]
VALUES = [
    b"", b"\xb2", b"1\xb9", b"\xb2\xb3", b"0", b"-1", b"65536", b"99999999999", b"4294967297",
    b"abc", b"[::1]", b"[", b'"', b'"x', b"sip:", b"sip:@", b"%", b"%zz", b"\x00", b"1.2.3.4",
    b"z9hG4bK", b"<sip:a@b>", b"*", b" ", b"\t", b"\xff\xfe", b"a,b", b"a;b", b"?x=y",
]

_VALUE_END = re.compile(rb"[^;,>\r\n]*")
positions = st.integers(min_value=0, max_value=1 << 20)
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(0, 255)),
    st.tuples(st.just("insert"), positions, st.one_of(st.sampled_from(NASTY),
                                                      st.binary(min_size=1, max_size=8))),
    st.tuples(st.just("delete"), positions, st.integers(1, 16)),
    st.tuples(st.just("dup_line"), positions, positions),
    st.tuples(st.just("del_line"), positions, st.just(0)),
    st.tuples(st.just("swap_lines"), positions, positions),
    st.tuples(st.just("value"), positions, st.sampled_from(VALUES)),
)


def mutate(data: bytes, op: tuple[str, int, int | bytes]) -> bytes:
    kind, pos, arg = op
    if isinstance(arg, bytes):
        if kind == "value":
            # replace the value after a ':' or '=' (a header or a parameter value)
            starts = [m.end() for m in re.finditer(rb"[=:][ \t]*", data)]
            if not starts:
                return data
            start = starts[pos % len(starts)]
            end = _VALUE_END.match(data, start)
            assert end is not None
            return data[:start] + arg + data[end.end():]
        at = pos % (len(data) + 1)
        return data[:at] + arg + data[at:]                      # insert
    if kind in ("dup_line", "del_line", "swap_lines"):
        lines = data.split(b"\n")
        i = pos % len(lines)
        if kind == "dup_line":
            lines.insert(arg % (len(lines) + 1), lines[i])
        elif kind == "del_line":
            del lines[i]
        else:
            j = arg % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    at = pos % (len(data) + 1)
    if kind == "flip":
        return data[:at] + bytes([arg]) + data[at + 1:]
    return data[:at] + data[at + arg:]                           # delete


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    for op in draw(st.lists(mutation, min_size=1, max_size=4)):
        data = mutate(data, op)
    return data


# A reply whose second Via has rport=<superscript two>: int() of it used to
# escape from the reply relay.
RPORT_SUPERSCRIPT = (
    OUR_VIA.encode() + b"\r\nVia: SIP/2.0/UDP 127.0.0.1:6050;rport=\xb2;branch=z9hG4bKa\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n")
REGRESSIONS = [
    b"SIP/2.0 200 OK\r\n" + RPORT_SUPERSCRIPT,
    b"SIP/2.0 200 OK\r\n" + RPORT_SUPERSCRIPT.replace(b"rport=\xb2", b"rport=99999"),
    b"SIP/2.0 200 OK\r\n" + RPORT_SUPERSCRIPT.replace(b"rport=\xb2", b"rport=0"),
    b"INVITE sip:1?x@127.0.0.1:6060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bKb\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:x?y@b>\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
]


# ------------------------------------------------------------- message layer
def _lazy(msg: SipMessage) -> None:
    """Every lazy accessor the routing path uses, plus per-value parsing."""
    msg.via1  # noqa: B018
    msg.all_vias()
    msg.cseq  # noqa: B018
    assert msg.callid is not None
    for key in ("from", "to"):
        addr = msg.name_addr(key)
        if addr is not None:
            addr.uri  # noqa: B018
    if msg.is_request:
        msg.uri  # noqa: B018
    for hdr in msg.headers_named("contact"):
        if hdr.value.strip() != "*":
            for part in split_commas(unfold(hdr.value)):
                NameAddr(part).uri  # noqa: B018


def check_message(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipError:
        return
    assert msg.render().encode("latin-1") == data
    for hdr in msg.headers:
        start, end = hdr.value_span(msg.text)
        assert msg.text[start:end] == hdr.value
    try:
        _lazy(msg)
    except SipError:
        pass
    try:
        parse_all(msg)
    except SipError:
        return
    # what the strict parser accepts, the lazy one must accept as well
    _lazy(parse_message(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_parser_raises_only_sip_errors(data: bytes) -> None:
    check_message(data)


@pytest.mark.parametrize("data", REGRESSIONS)
def test_parser_regressions(data: bytes) -> None:
    check_message(data)


def test_seeds_parse_and_render() -> None:
    for data in SEEDS:
        check_message(data)


# ------------------------------------------------------------------- router
def _no_dns(host: str) -> str:
    """IP literals only: the fuzzer must not send DNS queries."""
    text = host.strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise OSError(f"not resolving {host!r} in tests") from None


def test_router_never_raises(monkeypatch: pytest.MonkeyPatch,
                             caplog: pytest.LogCaptureFixture) -> None:
    cfg = CFG_DIR / "conformance.cfg"
    assert cfg.is_file(), f"conformance cfg not found at {cfg}"
    monkeypatch.chdir(CFG_DIR)          # dispatcher.list is relative to the cfg dir
    router = load(Path("conformance.cfg"))
    router.resolve = _no_dns
    caplog.set_level(logging.INFO)
    clock = [1000.0]

    def handle(data: bytes) -> None:
        caplog.clear()
        clock[0] += 0.3                  # sometimes within sl's 2 s ACK window, sometimes not
        out = router.handle(data, CLIENT, LOCAL, clock[0])
        assert isinstance(out, list)
        caught = [r for r in caplog.records
                  if "error processing message" in r.getMessage() or r.exc_info]
        assert not caught, caught[0].getMessage() + "\n" + (caplog.text[-3000:])

    for data in REGRESSIONS:
        handle(data)

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_messages())
    @example(REGRESSIONS[0])
    def run(data: bytes) -> None:
        handle(data)

    run()
