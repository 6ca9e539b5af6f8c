"""parse_message() (lazy split), the lazy accessors, edits/render, and parse_all()."""

from __future__ import annotations

import pytest

from siprouter.sip.errors import (
    ContentLengthError,
    DuplicateHeaderError,
    HeaderError,
    ParseError,
    SipError,
    StartLineError,
    UriError,
)
from siprouter.sip.message import SipMessage, parse_all, parse_message


def build(start: str, *headers: str, body: str = "", eol: str = "\r\n",
          clen: bool = True) -> bytes:
    lines = [start, *headers]
    if clen:
        lines.append(f"Content-Length: {len(body)}")
    return (eol.join(lines) + eol + eol + body).encode("latin-1")


BASE = (
    "Via: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-1;rport",
    "From: \"Alice\" <sip:alice@example.com>;tag=a1",
    "To: <sip:bob@example.com>",
    "Call-ID: c1@example.com",
    "CSeq: 1 INVITE",
    "Max-Forwards: 70",
)
INVITE = build("INVITE sip:bob@example.com SIP/2.0", *BASE)
RESPONSE = build("SIP/2.0 180 Ringing", *BASE)


def parsed(data: bytes) -> SipMessage:
    msg = parse_message(data)
    parse_all(msg)
    return msg


# ----------------------------------------------------------------- start line
def test_request_line() -> None:
    msg = parsed(INVITE)
    assert msg.is_request and msg.method == "INVITE" and msg.ruri == "sip:bob@example.com"
    assert msg.version == "SIP/2.0" and msg.ruri_start == len("INVITE ")
    assert msg.text[msg.ruri_start:msg.ruri_start + len(msg.ruri)] == msg.ruri
    assert msg.first_line_end == len("INVITE sip:bob@example.com SIP/2.0\r\n")
    assert msg.cseq_method == "INVITE"
    assert repr(msg) == "<SipMessage INVITE sip:bob@example.com>"


def test_status_line() -> None:
    msg = parsed(RESPONSE)
    assert not msg.is_request and msg.status == 180 and msg.reason == "Ringing"
    assert msg.cseq_method == "INVITE" and msg.method == ""
    assert repr(msg) == "<SipMessage 180 Ringing>"
    assert parse_message(build("SIP/2.0 100 ", *BASE)).reason == ""
    assert parse_message(build("SIP/2.0 200 OK, really fine", *BASE)).reason == \
        "OK, really fine"


@pytest.mark.parametrize("line", [
    "INVITE sip:bob@example.com", "INVITE", "INVITE  sip:bob@example.com  SIP/2.0",
    "INVITE sip:a@b SIP/3.0", "INVITE sip:a@b SIP/1.0", "INVITE sip:a@b HTTP/1.1",
    "INV(ITE sip:a@b SIP/2.0", "INVITE sip:user@example.com; lr SIP/2.0",
    "SIP/2.0 2000 OK", "SIP/2.0 20 OK", "SIP/2.0 4294967301 x", "SIP/2.0 2x0 OK",
    "SIP/2.0 \xb2\xb2\xb2 OK", "SIP/3.0 200 OK", "SIP/2.0", "", "\x00\x01\x02",
])
def test_bad_start_lines_are_dropped(line: str) -> None:
    with pytest.raises(StartLineError) as info:
        parse_message(build(line, *BASE))
    assert info.value.status is None and info.value.reason


def test_no_line_terminator() -> None:
    with pytest.raises(StartLineError):
        parse_message(b"INVITE sip:a@b SIP/2.0")


@pytest.mark.parametrize("line", [
    "OPTIONS sip:remote-target@example.com SIP/2.0  ",    # trailing blanks
    "INVITE sip:a@b sip/2.00",                            # version prefix only
    "INVITE sip:a@b SIP/2.0\t",
])
def test_start_line_quirks_accepted_lazily_rejected_strictly(line: str) -> None:
    msg = parse_message(build(line, *BASE))
    with pytest.raises(StartLineError):
        parse_all(msg)


@pytest.mark.parametrize(("line", "error"), [
    ("INVITE <sip:user@example.com> SIP/2.0", UriError),
    ("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0", UriError),
    ("INVITE sip:us%zzer@example.com SIP/2.0", UriError),
    ("SIP/2.0 099 Too Low", StartLineError),
    ("SIP/2.0 700 Too High", StartLineError),
    ("SIP/2.0 200", StartLineError),              # the SP before the reason is required
    ("SIP/2.0 200 100%", StartLineError),
    ("SIP/2.0 200 a\x01b", StartLineError),
])
def test_start_line_strict_errors(line: str, error: type[SipError]) -> None:
    with pytest.raises(error):
        parse_all(parse_message(build(line, *BASE)))


def test_lower_case_version_and_unknown_method() -> None:
    msg = parsed(build("NEWMETHOD sip:a@b sip/2.0", *BASE).replace(b"1 INVITE", b"1 NEWMETHOD"))
    assert msg.method == "NEWMETHOD" and msg.version == "sip/2.0"


# -------------------------------------------------------------------- headers
def test_compact_forms_and_case_insensitive_names() -> None:
    data = build("INVITE sip:bob@example.com SIP/2.0",
                 "v: SIP/2.0/UDP h;branch=z9hG4bK1", "f: <sip:a@h>;tag=1", "T: sip:b@h",
                 "i: compact@h", "cseq: 1 INVITE", "m: <sip:a@10.0.0.1>", "MAX-FORWARDS: 5",
                 "c: application/sdp", "k: 100rel", "s: hi", body="v=0\r\n")
    msg = parsed(data.replace(b"Content-Length:", b"l:"))
    assert msg.callid == "compact@h"
    assert msg.header_value("content-type") == "application/sdp"
    assert msg.header_value("content-length") == "5"
    assert msg.header_value("supported") == "100rel" and msg.header_value("subject") == "hi"
    assert msg.header_value("max-forwards") == "5"
    assert msg.to is not None and msg.to.uri.user == "b"
    assert msg.from_ is not None and msg.from_.tag == "1"
    names = [h.name for h in msg.headers]
    assert names[:4] == ["v", "f", "T", "i"] and "MAX-FORWARDS" in names
    assert msg.header("via") is msg.headers[0] and msg.headers[0].key == "via"


def test_header_name_with_blanks_before_colon() -> None:
    msg = parsed(build("INVITE sip:bob@example.com SIP/2.0", *BASE,
                       "v :  SIP/2.0/TCP x", "Via\t: SIP/2.0/TCP y"))
    assert [v.host for v in msg.all_vias()] == ["127.0.0.1", "x", "y"]
    assert [h.name for h in msg.headers_named("via")] == ["Via", "v", "Via"]


def test_header_api() -> None:
    msg = parse_message(INVITE)
    assert msg.has_header("cseq") and not msg.has_header("route")
    assert msg.header("route") is None and msg.header_value("route") is None
    assert msg.headers_named("route") == []
    hdr = msg.header("call-id")
    assert hdr is not None and repr(hdr) == "Header('Call-ID': 'c1@example.com')"
    assert msg.text[hdr.start:hdr.end] == "Call-ID: c1@example.com\r\n"
    assert msg.text[hdr.colon] == ":"
    start, end = hdr.value_span(msg.text)
    assert msg.text[start:end] == "c1@example.com"


def test_value_blanks_are_trimmed() -> None:
    msg = parse_message(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: \t 70 \t"))
    hdr = msg.header("max-forwards")
    assert hdr is not None and hdr.value == "70"
    start, end = hdr.value_span(msg.text)
    assert msg.text[start:end] == "70"


def test_folding() -> None:
    data = build("INVITE sip:bob@example.com SIP/2.0", *BASE,
                 "Subject: first\r\n  second\r\n\tthird", "Contact:\r\n  <sip:a@h>",
                 "Accept: application/sdp,\r\n        message/sip")
    msg = parsed(data)
    subject = msg.header("subject")
    assert subject is not None
    assert subject.value == "first\r\n  second\r\n\tthird"
    assert msg.text[subject.start:subject.end] == "Subject: first\r\n  second\r\n\tthird\r\n"
    contact = msg.header("contact")
    assert contact is not None and contact.value == "<sip:a@h>"   # on a continuation line
    start, end = contact.value_span(msg.text)
    assert msg.text[start:end] == contact.value
    start, end = subject.value_span(msg.text)
    assert msg.text[start:end] == subject.value
    assert msg.render().encode("latin-1") == data


def test_folded_structured_values() -> None:
    data = build("INVITE sip:bob@example.com SIP/2.0",
                 "Via: SIP/2.0/UDP\r\n h1;branch=z9hG4bK1,\r\n SIP/2.0/UDP h2;branch=z9hG4bK2",
                 "From: <sip:a@h>\r\n ;tag=1", "To: <sip:b@h>", "Call-ID: c",
                 "CSeq: 7\r\n INVITE")
    msg = parsed(data)
    assert [v.host for v in msg.all_vias()] == ["h1", "h2"]
    assert msg.from_ is not None and msg.from_.tag == "1"
    assert msg.cseq.number == "7" and msg.cseq.method == "INVITE"


def test_continuation_before_first_header() -> None:
    with pytest.raises(HeaderError):
        parse_message(b"INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n")


def test_header_line_without_colon() -> None:
    with pytest.raises(HeaderError):
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"Foobar roobar"))


@pytest.mark.parametrize("name", [b"Bad Name", b"", b"Tab\tName"])
def test_bad_header_names(name: bytes) -> None:
    with pytest.raises(HeaderError):
        parse_message(INVITE.replace(b"Max-Forwards", name))


@pytest.mark.parametrize("name", [b"X(y)", b"X\xe9", b"X<y>", b"X@y"])
def test_non_token_header_names_are_strict_errors(name: bytes) -> None:
    msg = parse_message(INVITE.replace(b"Max-Forwards: 70", name + b": 1"))
    with pytest.raises(HeaderError):
        parse_all(msg)


def test_comma_separated_values() -> None:
    data = build("INVITE sip:bob@example.com SIP/2.0", *BASE,
                 'Contact: "Doe, J" <sip:j@h>;q=0.5, <sip:k@h>',
                 "Contact: sip:l@h", "Via: SIP/2.0/UDP a;branch=x, SIP/2.0/TCP b;branch=y")
    msg = parsed(data)
    assert [v.host for v in msg.all_vias()] == ["127.0.0.1", "a", "b"]
    assert len(msg.headers_named("via")) == 2
    assert msg.via1.host == "127.0.0.1"
    assert len(msg.headers_named("contact")) == 2


def test_lf_only_message() -> None:
    data = build("INVITE sip:bob@example.com SIP/2.0", *BASE, body="v=0\n", eol="\n")
    msg = parsed(data)
    assert msg.callid == "c1@example.com" and msg.body == "v=0\n" and msg.complete
    assert msg.header_value("via") == "SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-1;rport"
    assert msg.render().encode("latin-1") == data


def test_mixed_line_endings() -> None:
    data = INVITE.replace(b"CSeq: 1 INVITE\r\n", b"CSeq: 1 INVITE\n")
    msg = parsed(data)
    assert msg.cseq.method == "INVITE" and msg.render().encode("latin-1") == data


# ----------------------------------------------------------------------- body
def test_body_by_content_length() -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    msg = parsed(build("INVITE sip:bob@example.com SIP/2.0", *BASE, body=sdp))
    assert msg.body == sdp and msg.text[msg.body_start:] == sdp
    assert msg.header_value("content-length") == str(len(sdp))


def test_body_without_content_length() -> None:
    msg = parsed(build("INVITE sip:bob@example.com SIP/2.0", *BASE, body="v=0\r\n", clen=False))
    assert msg.body == "v=0\r\n" and not msg.has_header("content-length")


def test_extra_octets_after_the_declared_body_are_allowed() -> None:
    data = build("INVITE sip:bob@example.com SIP/2.0", *BASE, body="") + b"garbage\r\n"
    msg = parsed(data)
    assert msg.body == "garbage\r\n"   # the raw rest; Content-Length says 0


def test_content_length_larger_than_body() -> None:
    data = INVITE.replace(b"Content-Length: 0", b"Content-Length: 10")
    with pytest.raises(ContentLengthError) as info:
        parse_all(parse_message(data))
    assert isinstance(info.value, HeaderError) and info.value.status == 400


@pytest.mark.parametrize("value", [b"-1", b"abc", b"", b"1 0", b"\xb2"])
def test_bad_content_length(value: bytes) -> None:
    with pytest.raises(HeaderError):
        parse_all(parse_message(INVITE.replace(b"Content-Length: 0", b"Content-Length: " + value)))


def test_binary_body_is_kept_byte_for_byte() -> None:
    body = bytes(range(256)).decode("latin-1")
    data = build("MESSAGE sip:bob@example.com SIP/2.0", *BASE, body=body).replace(
        b"1 INVITE", b"1 MESSAGE")
    msg = parsed(data)
    assert msg.body.encode("latin-1") == bytes(range(256))
    assert msg.render().encode("latin-1") == data


def test_headers_without_blank_line() -> None:
    data = INVITE[:-2]   # drop the empty line
    msg = parse_message(data)
    assert not msg.complete and msg.body == ""
    with pytest.raises(ParseError):
        parse_all(msg)


# ----------------------------------------------------------- lazy accessors
def test_lazy_accessors_are_cached() -> None:
    msg = parse_message(INVITE)
    assert msg.via1 is msg.via1 and msg.to is msg.to and msg.cseq is msg.cseq
    assert msg.uri is msg.uri
    hdr = msg.header("to")
    assert hdr is not None and hdr.parsed is msg.to


def test_lazy_accessor_values() -> None:
    msg = parse_message(INVITE)
    assert msg.via1.branch == "z9hG4bK-1" and msg.via1.port == 6050
    assert msg.via1.has_param("rport")
    assert msg.from_ is not None and msg.from_.display_name == "Alice"
    assert msg.to is not None and msg.to.tag is None
    assert msg.uri.user == "bob" and msg.cseq.number == "1"


def test_missing_headers_through_lazy_accessors() -> None:
    msg = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    assert msg.to is None and msg.from_ is None and msg.callid == ""
    with pytest.raises(HeaderError):
        msg.via1  # noqa: B018
    with pytest.raises(HeaderError):
        msg.cseq  # noqa: B018
    assert msg.all_vias() == []


def test_lazy_accessors_raise_only_sip_errors() -> None:
    msg = parse_message(build("INVITE sip:bob@ SIP/2.0", "Via: garbage", "To: <sip:a@b",
                              "From: x", "CSeq: x", "Call-ID: c"))
    for name in ("via1", "to", "cseq", "uri"):
        with pytest.raises(SipError):
            getattr(msg, name)
    assert msg.from_ is not None
    with pytest.raises(UriError):
        msg.from_.uri  # noqa: B018


# ------------------------------------------------------------ edits / render
def test_render_untouched_is_identity() -> None:
    msg = parse_message(INVITE)
    assert msg.render() is msg.text


def test_edits_replace_and_insert() -> None:
    msg = parse_message(INVITE)
    hdr = msg.header("max-forwards")
    assert hdr is not None
    start, end = hdr.value_span(msg.text)
    msg.add_edit(start, end, "69")
    msg.insert(hdr.start, "X-First: 1\r\n")
    msg.insert(hdr.start, "X-Second: 2\r\n")
    out = msg.render()
    assert "X-First: 1\r\nX-Second: 2\r\nMax-Forwards: 69\r\n" in out
    assert msg.text == INVITE.decode("latin-1")   # the text itself never changes
    assert out.replace("X-First: 1\r\nX-Second: 2\r\n", "").replace(
        "Max-Forwards: 69", "Max-Forwards: 70") == msg.text


def test_render_extra_edits_are_not_kept() -> None:
    msg = parse_message(INVITE)
    out = msg.render([(msg.first_line_end, msg.next_seq(), msg.first_line_end,
                       "Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\n")])
    assert out.split("\r\n")[1] == "Via: SIP/2.0/UDP proxy;branch=z9hG4bKp"
    assert msg.render() == msg.text and msg.edits == []


def test_overlapping_edits_keep_the_first() -> None:
    msg = parse_message(INVITE)
    msg.add_edit(0, 6, "OPTIONS")
    msg.add_edit(2, 4, "zz")
    assert msg.render().startswith("OPTIONS sip:bob@example.com")


def test_render_is_byte_exact_with_odd_bytes() -> None:
    data = INVITE.replace(b"Call-ID: c1@example.com",
                          b"Call-ID: c1@example.com\r\nX-Bin: \xff\xfe\x80 \xe9")
    msg = parse_message(data)
    hdr = msg.header("x-bin")
    assert hdr is not None
    start, end = hdr.value_span(msg.text)
    msg.add_edit(start, end, msg.text[start:end])
    assert msg.render().encode("latin-1") == data


# ------------------------------------------------------------------ parse_all
@pytest.mark.parametrize("key", [b"From", b"To", b"Call-ID", b"CSeq", b"Via"])
def test_missing_required_header(key: bytes) -> None:
    lines = [line for line in INVITE.split(b"\r\n") if not line.startswith(key + b":")]
    with pytest.raises(HeaderError, match="missing"):
        parse_all(parse_message(b"\r\n".join(lines)))


def test_max_forwards_is_optional() -> None:
    parse_all(parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", b"")))


@pytest.mark.parametrize("line", [
    b"From: <sip:x@h>;tag=2", b"t: <sip:y@h>", b"i: other", b"CSeq: 2 INVITE",
    b"l: 0", b"Max-Forwards: 5", b"Content-Type: text/plain", b"Expires: 5",
])
def test_duplicate_single_headers(line: bytes) -> None:
    if line.startswith(b"Content-Type") or line.startswith(b"Expires"):
        data = INVITE.replace(b"Max-Forwards", line + b"\r\n" + line + b"\r\nMax-Forwards")
    else:
        data = INVITE.replace(b"Max-Forwards", line + b"\r\nMax-Forwards")
    with pytest.raises(DuplicateHeaderError):
        parse_all(parse_message(data))


def test_contact_star() -> None:
    data = build("REGISTER sip:example.com SIP/2.0", *BASE, "Contact: *", "Expires: 0")
    parse_all(parse_message(data.replace(b"1 INVITE", b"1 REGISTER")))


def test_cseq_method_mismatch() -> None:
    with pytest.raises(HeaderError, match="CSeq method"):
        parse_all(parse_message(INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 invite")))
    parse_all(parse_message(RESPONSE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")))


@pytest.mark.parametrize(("old", "new"), [
    (b"CSeq: 1 INVITE", b"CSeq: 2147483648 INVITE"),
    (b"Max-Forwards: 70", b"Max-Forwards: 256"),
    (b"Max-Forwards: 70", b"Max-Forwards: -1"),
    (b"Call-ID: c1@example.com", b"Call-ID: a b"),
    (b"Call-ID: c1@example.com", b"Call-ID:"),
    (b"To: <sip:bob@example.com>", b"To: Bob Smith, Jr <sip:bob@example.com>"),
    (b"To: <sip:bob@example.com>", b"To: < sip:bob@example.com >"),
    (b"Max-Forwards: 70", b"Contact: sip:a@h?x=y"),
    (b"Max-Forwards: 70", b"Contact: <sip:a@h>;;;"),
    (b"Max-Forwards: 70", b"Route: sip:p@h;lr"),
    (b"Max-Forwards: 70", b"Record-Route: <sip:p@h;lr>,"),
    (b"Max-Forwards: 70", b"Date: Fri, 01 Jan 2010 16:00:00 EST"),
    (b"Max-Forwards: 70", b"Expires: soon"),
    (b"Max-Forwards: 70", b"Content-Type: sdp"),
    (b"Max-Forwards: 70", b"Require: a b"),
    (b"Max-Forwards: 70", b"Authorization: Digest"),
    (b"Max-Forwards: 70", b"X-Text: a\x00b"),
    (b"Max-Forwards: 70", b"Subject: bare\rCR"),
    (b"z9hG4bK-1;rport", b"z9hG4bK-1;;rport"),
])
def test_parse_all_strict_header_errors(old: bytes, new: bytes) -> None:
    data = INVITE.replace(old, new)
    assert data != INVITE
    msg = parse_message(data)
    with pytest.raises((HeaderError, UriError)) as info:
        parse_all(msg)
    assert info.value.status == 400


def test_parse_all_accepts_a_rich_valid_request() -> None:
    data = build("INVITE sips:bob@[2001:db8::1]:5061;transport=tls SIP/2.0",
                 "Via: SIP/2.0/TLS [2001:db8::2]:5061;branch=z9hG4bKabc;received=2001:db8::9",
                 "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKdef;rport=5060;ttl=1;maddr=[::1]",
                 "Max-Forwards: 0068", "Route: <sip:p1@h;lr>, <sip:p2@h;lr>",
                 "Record-Route: <sip:rr@h;lr>",
                 "From: \"Alice \\\"A\\\"\" <sip:alice@example.com>;tag=a1",
                 "To: tel:+1-201-555-0123;tag=x", "Call-ID: a.b-c!%*_+`'~()<>:\\\"/[]?{}@h",
                 "CSeq: 4711 INVITE", "Expires: 0",
                 "Contact: <sip:a@h>;q=0.7;expires=3600;+sip.instance=\"<urn:x>\"",
                 "Authorization: Digest username=\"a\", realm=\"r\", nonce=\"n,1\", "
                 "uri=\"sips:bob@h\", response=\"r\", qop=auth, nc=00000001, cnonce=\"c\"",
                 "Proxy-Require: sec-agree", "Supported:", "Allow: INVITE, ACK",
                 "Accept: application/sdp;level=1, */*;q=0.1",
                 "Date: Sat, 15 Oct 2005 04:44:56 GMT", "Subject: \xe2\x98\x83 ok",
                 "Content-Type: application/sdp", body="v=0\r\n")
    msg = parsed(data)
    assert msg.uri.host == "[2001:db8::1]" and msg.uri.port == 5061
    assert msg.to is not None and msg.to.uri.scheme == "tel"
    assert msg.from_ is not None and msg.from_.display_name == 'Alice "A"'


def _header_tuples(msg: object) -> list[tuple[object, ...]]:
    return [(h.name, h.key, h.start, h.colon, h.value_end, h.end, h.value)
            for h in msg.headers]  # type: ignore[attr-defined]


def test_fast_path_agrees_with_general_parser() -> None:
    """The CRLF fast path splits exactly like the general line-by-line parser."""
    import siprouter.sip.message as message_mod
    from tests.conftest import shared_dir

    files = sorted((shared_dir() / "conformance" / "cases").glob("*.sip"))
    files += sorted((shared_dir() / "rfc4475").glob("*.dat"))
    assert len(files) > 100
    compared = 0
    for path in files:
        text = path.read_bytes().decode("latin-1")
        try:
            fast = message_mod._parse_fast(text)
        except SipError:
            fast = None
        if fast is None:
            continue
        slow = message_mod.parse_general(text)
        compared += 1
        assert _header_tuples(fast) == _header_tuples(slow), path.name
        assert (fast.body_start, fast.complete, fast.method, fast.ruri, fast.version,
                fast.status) == (slow.body_start, slow.complete, slow.method, slow.ruri,
                                 slow.version, slow.status), path.name
    assert compared > 100


def test_edits_apply_in_position_order_whatever_order_they_were_made() -> None:
    import itertools

    from siprouter.sip.message import _in_order
    edits = [(5, 1, 6, "a"), (0, 2, 0, "b"), (5, 3, 5, "c"), (0, 4, 1, "d"), (9, 5, 9, "e")]
    for perm in itertools.permutations(edits):
        assert _in_order(list(perm)) == sorted(edits)
    tie = [(3, 1, 4, "y"), (3, 1, 4, "x"), (3, 1, 3, "z")]
    assert _in_order(tie) == sorted(tie)


def test_repeated_and_missing_header_names() -> None:
    msg = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                        b"To: <sip:a@b>\r\nv: SIP/2.0/UDP g;branch=z9hG4bK2\r\nTo: <sip:c@d>\r\n"
                        b"Call-ID: 1\r\n\r\n")
    assert msg.repeated() == ("via", "to")
    assert msg.missing(("via", "to", "call-id")) is None
    assert msg.missing(("via", "from", "cseq")) == "from"
    assert msg.first_repeated(("call-id", "to", "via")) == "to"
    assert msg.first_repeated(("call-id", "from")) is None
    single = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n")
    assert single.repeated() == ()
