"""Header names and values: the lazy parsers (Via, NameAddr, CSeq, Credentials...)
and the strict check_* validators used by parse_all()."""

from __future__ import annotations

import pytest

from siprouter.sip.errors import HeaderError, SipError, UriError
from siprouter.sip.headers import (
    COMPACT_FORMS,
    Credentials,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    check_accept,
    check_call_id,
    check_content_type,
    check_credentials,
    check_cseq,
    check_date,
    check_digits,
    check_display_name,
    check_name_addr,
    check_name_addr_list,
    check_params,
    check_text,
    check_token_list,
    check_via,
    get_param,
    is_token,
    parse_params,
    parse_via_header,
    split_commas,
    unfold,
    unquote_string,
)


# --------------------------------------------------------------------- names
@pytest.mark.parametrize(("name", "key"), [
    ("Via", "via"), ("v", "via"), ("V", "via"), ("VIA", "via"), ("vIa", "via"),
    ("i", "call-id"), ("I", "call-id"), ("Call-ID", "call-id"), ("call-id", "call-id"),
    ("f", "from"), ("t", "to"), ("m", "contact"), ("l", "content-length"),
    ("c", "content-type"), ("e", "content-encoding"), ("s", "subject"), ("k", "supported"),
    ("o", "event"), ("u", "allow-events"), ("r", "refer-to"), ("b", "referred-by"),
    ("x", "session-expires"), ("MaX-fOrWaRdS", "max-forwards"), ("X-Custom", "x-custom"),
    ("C%6Fntact", "c%6fntact"),
])
def test_canonical_name(name: str, key: str) -> None:
    assert canonical_name(name) == key


def test_compact_forms_map_to_long_lower_case_names() -> None:
    assert all(len(k) == 1 and k.islower() and v.islower() for k, v in COMPACT_FORMS.items())


# ------------------------------------------------------------- value helpers
def test_unfold() -> None:
    assert unfold("plain") == "plain"
    assert unfold("a\r\n b") == "a b"
    assert unfold("a \r\n\t  b\r\n c") == "a b c"
    assert unfold("a\n b") == "a b"                       # LF-only folding


@pytest.mark.parametrize(("value", "parts"), [
    ("a", ["a"]),
    ("a, b ,c", ["a", "b", "c"]),
    ('"Doe, John" <sip:j@h>, <sip:k@h>', ['"Doe, John" <sip:j@h>', "<sip:k@h>"]),
    ("<sip:a@h;x=1,2>, <sip:b@h>", ["<sip:a@h;x=1,2>", "<sip:b@h>"]),
    ('"a \\" , b" <sip:a@h>', ['"a \\" , b" <sip:a@h>']),
    (",,", ["", "", ""]),
])
def test_split_commas(value: str, parts: list[str]) -> None:
    assert split_commas(value) == parts


def test_parse_params() -> None:
    assert parse_params(";a=1;b; c = 2 ") == [("a", "1"), ("b", None), ("c", "2")]
    assert parse_params('a="x;y";b') == [("a", '"x;y"'), ("b", None)]
    assert parse_params(";;a") == [("a", None)]               # lenient: empty ones skipped
    assert parse_params("") == []
    with pytest.raises(HeaderError):
        parse_params(";=1")
    with pytest.raises(HeaderError):
        parse_params(';a="open')


def test_get_param_is_case_insensitive() -> None:
    params = [("Tag", "x"), ("lr", None)]
    assert get_param(params, "tag") == "x" and get_param(params, "TAG") == "x"
    assert get_param(params, "lr") == "" and get_param(params, "q") is None


def test_unquote_string() -> None:
    assert unquote_string('"J Rosenberg \\\\\\""') == 'J Rosenberg \\"'
    assert unquote_string('"a\\"b"') == 'a"b'
    assert unquote_string("token") == "token" and unquote_string('"') == '"'


# ----------------------------------------------------------------------- Via
def test_via_basic() -> None:
    via = Via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport;received=1.2.3.4")
    assert (via.protocol, via.version, via.transport) == ("SIP", "2.0", "UDP")
    assert via.host == "10.0.0.1" and via.port == 5060 and via.port_str == "5060"
    assert via.branch == "z9hG4bK1"
    assert via.has_param("rport") and via.param("rport") == ""
    assert via.param("received") == "1.2.3.4"
    assert via.raw[via.params_offset:] == ";branch=z9hG4bK1;rport;received=1.2.3.4"
    assert via.raw[:via.hostport_end] == "SIP/2.0/UDP 10.0.0.1:5060"


def test_via_without_params_or_port() -> None:
    via = Via("SIP/2.0/TCP host.example.com")
    assert via.port is None and via.branch is None and via.params == []
    assert via.params_offset == via.hostport_end == len(via.raw)


def test_via_lws_everywhere() -> None:
    via = Via(unfold("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5062 ;  branch = 390skdjuw"))
    assert via.transport == "UDP" and via.host == "192.0.2.2" and via.port == 5062
    assert via.branch == "390skdjuw"


def test_via_lower_case_and_unknown_transport() -> None:
    via = Via("sip/2.0/udp h")
    assert via.protocol == "sip" and via.transport == "udp"
    assert Via("SIP/2.0/UNKNOWN h").transport == "UNKNOWN"


def test_via_ipv6() -> None:
    via = Via("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKx;received=2001:db8::9")
    assert via.host == "[2001:db8::1]" and via.port == 5070
    assert via.param("received") == "2001:db8::9"
    assert Via("SIP/2.0/UDP [::1];branch=b").port is None


def test_via_param_names_are_case_insensitive() -> None:
    via = Via("SIP/2.0/UDP h;Branch=z9hG4bKA;RPort=5")
    assert via.branch == "z9hG4bKA" and via.has_param("rport") and via.param("RPORT") == "5"


@pytest.mark.parametrize(("value", "rport"), [
    ("5060", "5060"), ("65535", "65535"), ("1", "1"),
    ("", ""), ("0", ""), ("abc", ""), ("\xb2", ""), ("1\xb9", ""), ("-1", ""),
    ("123456", ""), ("99999999999", ""), ("65536", ""), ("70000", "4464"),
])
def test_via_rport_reads_like_kamailio_str2s(value: str, rport: str) -> None:
    via = Via(f"SIP/2.0/UDP h;rport={value};branch=b")
    assert via.has_param("rport") and via.param("rport") == rport


def test_parse_via_header_splits_values() -> None:
    vias = parse_via_header("SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b:5061;branch=2")
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "a", None, "1"), ("TCP", "b", 5061, "2")]


@pytest.mark.parametrize("value", [
    "", "garbage", "SIP/3.0/UDP h", "HTTP/2.0/UDP h", "SIP/2.0/UDP", "SIP/2.0/ h",
    "SIP/2.0/UDP h:", "SIP/2.0/UDP h:99999", "SIP/2.0/UDP h:x", "SIP/2.0/UDP h:\xb2",
    "SIP/2.0/UDP [::1", "SIP/2.0/UDP [::1]x", "SIP/2.0/UDP <h>", "SIP/2.0/UDP a@b",
    "SIP/2.0/UDP h;=x", ";",
])
def test_via_errors(value: str) -> None:
    with pytest.raises(HeaderError):
        Via(value)


# ------------------------------------------------------------------ NameAddr
def test_name_addr_quoted_display_name() -> None:
    addr = NameAddr('"Doe, John \\"JD\\"" <sip:jd@example.com;transport=tcp>;tag=abc;x')
    assert addr.display == '"Doe, John \\"JD\\""'
    assert addr.display_name == 'Doe, John "JD"'
    assert addr.uri_text == "sip:jd@example.com;transport=tcp"
    assert addr.uri.params == [("transport", "tcp")]
    assert addr.tag == "abc" and addr.param("x") == "" and addr.params[1] == ("x", None)


def test_name_addr_angle_bracket_inside_quotes() -> None:
    addr = NameAddr('"<not the uri>" <sip:a@b>')
    assert addr.uri_text == "sip:a@b" and addr.display_name == "<not the uri>"


def test_name_addr_token_display_and_no_space() -> None:
    assert NameAddr("caller<sip:caller@example.com>;tag=323").display == "caller"
    addr = NameAddr("Alice Smith <sip:a@h>")
    assert addr.display == "Alice Smith" and addr.display_name == "Alice Smith"


def test_addr_spec_params_belong_to_the_header() -> None:
    addr = NameAddr("sip:+19725552222@gw1.example.net;unknownparam;tag=1")
    assert addr.uri_text == "sip:+19725552222@gw1.example.net"
    assert addr.params == [("unknownparam", None), ("tag", "1")]
    assert addr.uri.params == [] and addr.display == ""


def test_name_addr_params_inside_brackets_belong_to_the_uri() -> None:
    addr = NameAddr("<sip:a@h;unknownparam>")
    assert addr.uri.params == [("unknownparam", None)] and addr.params == []


def test_name_addr_unknown_scheme_and_lazy_uri() -> None:
    addr = NameAddr("<sip:@bad>;tag=1")   # the URI is only parsed on access
    assert addr.tag == "1"
    with pytest.raises(UriError):
        addr.uri  # noqa: B018
    assert NameAddr("isbn:2983792873").uri.scheme == "isbn"


@pytest.mark.parametrize("value", [
    "", "  ", "<>", "<sip:a@b", '"Mr. J. User <sip:j.user@example.com>', '"quoted" sip:a@b',
    "<sip:a@b> garbage", "sip:a b@c",
])
def test_name_addr_errors(value: str) -> None:
    with pytest.raises(HeaderError):
        NameAddr(value)


# --------------------------------------------------------------------- CSeq
def test_cseq() -> None:
    cseq = CSeq("0009\r\n  INVITE")
    assert cseq.number == "0009" and cseq.method == "INVITE"
    assert CSeq("1    invite").method == "invite"
    for bad in ("", "1", "INVITE", "1 INVITE x"):
        with pytest.raises(HeaderError):
            CSeq(bad)


# -------------------------------------------------------------- Credentials
def test_digest_credentials() -> None:
    creds = Credentials('Digest username="bob", realm="a,b", nonce="n", uri="sip:x",\r\n'
                        ' response="r", qop=auth, nc=00000001, cnonce="c"')
    assert creds.is_digest and creds.scheme == "Digest"
    assert creds.params == {"username": "bob", "realm": "a,b", "nonce": "n", "uri": "sip:x",
                            "response": "r", "qop": "auth", "nc": "00000001", "cnonce": "c"}


def test_other_credentials() -> None:
    creds = Credentials("NoOneKnowsThisScheme opaque-data=here")
    assert not creds.is_digest and creds.params == {"opaque-data": "here"}
    assert Credentials("DIGEST username=x").is_digest


@pytest.mark.parametrize("value", ["", 'Digest username="open', "Digest novalue", "Digest =x"])
def test_credentials_errors(value: str) -> None:
    with pytest.raises(HeaderError):
        Credentials(value)


# ------------------------------------------------------------ strict checks
@pytest.mark.parametrize(("text", "ok"), [
    ("INVITE", True), ("!interesting-Method0123456789_*+`.%indeed'~", True),
    ("", False), ("a b", False), ("a,b", False), ("a\x00", False), ("\xe9", False),
])
def test_is_token(text: str, ok: bool) -> None:
    assert is_token(text) is ok


def test_check_params() -> None:
    assert check_params(" ; tag = 98asjd8 ;lr; maddr=[::1]; x=\"a;b\"", "X") == [
        ("tag", "98asjd8"), ("lr", None), ("maddr", "[::1]"), ("x", '"a;b"')]
    assert check_params("", "X") == []
    assert check_params(";received=2001:db8::1", "Via", frozenset(("received",))) == [
        ("received", "2001:db8::1")]


@pytest.mark.parametrize("text", [
    ";;", ";a;;b", ";", ";a=", ";=b", ";a b", ";a=b c", ';a="open', ";a=<b>", "x;a",
    ";received=2001:db8::1", ';a="x"y', ";a=\x00",
])
def test_check_params_rejects(text: str) -> None:
    with pytest.raises(HeaderError):
        check_params(text, "X")


@pytest.mark.parametrize("value", [
    "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
    "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw",
    "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239",
    "SIP/2.0/UDP host.example.com:5060 ; received=2001:db8::9;rport=5060;ttl=16;maddr=[::1]",
    "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK-.!%66*_+`'~",
    "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en;rport",
    "SIP/2.0/TCP host.example.com;received=192.0.2.5;x=\"quoted\"",
])
def test_check_via_accepts(value: str) -> None:
    assert check_via(value)


@pytest.mark.parametrize("value", [
    "SIP/2.0/UDP 192.0.2.15;;,;,,", "SIP/2.0/UDP a,", "SIP/2.0/UDP host_1", "SIP/2.0/UDP -h",
    "SIP/2.0/UDP h;branch=\"q\"", "SIP/2.0/UDP h;received=host", "SIP/2.0/UDP h;ttl=256",
    "SIP/2.0/UDP h;ttl=x", "SIP/2.0/UDP h;maddr=a_b", "SIP/2.0/UDP h;rport=x",
    "SIP/2.0/UD,P h", "SIP/2.0/UDPh", "SIP/2.0/UDP [::1] x", "SIP/2.0/UDP [bad]",
    "SIP/2.0/UDP h:\xb2", "SIP/7.0/UDP h",
])
def test_check_via_rejects(value: str) -> None:
    with pytest.raises(HeaderError):
        check_via(value)


@pytest.mark.parametrize("value", [
    "sip:user@example.com", "<sip:user@example.com>;tag=1", "caller<sip:caller@example.com>",
    '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8',
    '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:a@example.com>',
    "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;p=\"\xd1\x80\"",
    "isbn:2983792873", "<http://www.example.com>;tag=3234233",
    "sip:+16505552222@ss1.example.net;user=phone",
    "<sip:a@b>;tag",   # a generic-param needs no value
    '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n'
    "  secondparam ; q = 0.33",
])
def test_check_name_addr_accepts(value: str) -> None:
    assert check_name_addr(value, "To").uri is not None


@pytest.mark.parametrize(("value", "error"), [
    ('"Watson, Thomas" < sip:t.watson@example.org >', HeaderError),
    ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", HeaderError),
    ('"Mr. J. User <sip:j.user@example.com>', HeaderError),
    ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", HeaderError),
    ("sip:a@b, sip:c@d", HeaderError),
    ("<sip:a@b>;tag=1, <sip:c@d>", HeaderError),
    ('"raw \x01 control" <sip:a@b>', HeaderError),
    ('"x"y <sip:a@b>', HeaderError),
    ("<sip:a@b>;;tag=1", HeaderError),
    ("<sip:@b>", UriError),
    ("<sip:a@b;=x>", UriError),
    ("<no-scheme>", UriError),
])
def test_check_name_addr_rejects(value: str, error: type[SipError]) -> None:
    with pytest.raises(error):
        check_name_addr(value, "To")


def test_check_contact_list() -> None:
    addrs = check_name_addr_list("<sip:a@h>;q=0.5;expires=60, \"B\" <sip:b@h>;q=1.000, sip:c@h",
                                 "Contact", contact=True)
    assert [a.uri.user for a in addrs] == ["a", "b", "c"]
    for bad in ("<sip:a@h>;q=2", "<sip:a@h>;q=0.1234", "<sip:a@h>;expires=x", "<sip:a@h>,",
                "<sip:a@h>;q"):
        with pytest.raises(HeaderError):
            check_name_addr_list(bad, "Contact", contact=True)


def test_check_route_needs_angle_brackets() -> None:
    check_name_addr_list("<sip:p1@h;lr>, <sip:p2@h;lr>", "Route", angle_required=True)
    with pytest.raises(HeaderError):
        check_name_addr_list("sip:p1@h;lr", "Route", angle_required=True)


def test_check_display_name() -> None:
    check_display_name("", "x")
    check_display_name("Alice   Smith", "x")
    check_display_name('"anything, really"', "x")
    for bad in ("Bell, Alexander", '"a" b', "a\x1cb", '"open'):
        with pytest.raises(HeaderError):
            check_display_name(bad, "x")


def test_check_cseq() -> None:
    assert check_cseq("0009\r\n  INVITE").number == "0009"
    assert check_cseq(f"{2 ** 31 - 1} ACK").method == "ACK"
    for bad in (f"{2 ** 31} INVITE", "36893488147419103232 REGISTER", "-1 INVITE", "x INVITE",
                "1 INV ITE", "1\x0bINVITE", "1 IN,VITE", "\xb2 INVITE", "1"):
        with pytest.raises(HeaderError):
            check_cseq(bad)


def test_check_call_id() -> None:
    check_call_id("wsinv.ndaksdj@192.0.2.1")
    check_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    for bad in ("", "a@b@c", "a b", "@b", "a@", "a\x00", "\xe9"):
        with pytest.raises(HeaderError):
            check_call_id(bad)


def test_check_digits() -> None:
    assert check_digits(" 0068 ", "Max-Forwards", 255) == 68
    for bad in ("", "-1", "+5", "1 0", "\xb2", "abc"):
        with pytest.raises(HeaderError):
            check_digits(bad, "X")
    with pytest.raises(HeaderError):
        check_digits("300", "Max-Forwards", 255)


def test_check_token_lists() -> None:
    assert check_token_list("100rel, precondition", "Require") == ["100rel", "precondition"]
    assert check_token_list("", "Supported", empty_ok=True) == []
    for bad in ("", "a,", "a b", ",a"):
        with pytest.raises(HeaderError):
            check_token_list(bad, "Require")


def test_check_media_types() -> None:
    check_content_type("multipart/mixed;boundary=7a9cbec02ceef655")
    check_content_type('text/plain; charset="utf-8"')
    check_accept("application/sdp, application/pkcs7-mime,\r\n multipart/mixed")
    check_accept("*/*;q=0.5, text/*")
    check_accept("")
    for bad in ("", "text", "text/", "/plain", "text/plain;charset", "*/*", "te xt/plain"):
        with pytest.raises(HeaderError):
            check_content_type(bad)
    for bad in ("text/plain,", "text"):
        with pytest.raises(HeaderError):
            check_accept(bad)


def test_check_date() -> None:
    check_date("Sat, 15 Oct 2005 04:44:56 GMT")
    for bad in ("Fri, 01 Jan 2010 16:00:00 EST", "Sat, 15 Oct 2005 04:44:56", "yesterday",
                "Sat 15 Oct 2005 04:44:56 GMT", "Sat, 5 Oct 2005 04:44:56 GMT"):
        with pytest.raises(HeaderError):
            check_date(bad)


def test_check_credentials() -> None:
    creds = check_credentials('Digest username="bob", realm="r", nonce="n", uri="sip:x", '
                              'response="0123", algorithm=MD5')
    assert creds.params["username"] == "bob"
    check_credentials("NoOneKnowsThisScheme opaque-data=here")
    for bad in ("Digest", "Digest ", "Digest a=1,,b=2", "Digest a=", "Digest a", 'Digest a="x',
                "Digest a=b c", "Dig,est a=1", 'Digest a="x"y'):
        with pytest.raises(HeaderError):
            check_credentials(bad)


def test_check_text() -> None:
    check_text("newfangled value\r\n continued newfangled value", "X")
    check_text("\xef\xbb\xbf\xe5\xa4\xa7", "X")
    check_text(";;,,;;,;", "X")
    for bad in ("a\x00b", "a\rb", "a\x7f", "a\x1b"):
        with pytest.raises(HeaderError):
            check_text(bad, "X")


def test_digits_value_is_int() -> None:
    from siprouter.sip.headers import digits_value
    for text in ("0", "00", "7", "70", "65535", "123456789", "1234567890", "99999999999999999999"):
        assert digits_value(text) == int(text)


def test_is_digits_is_isdigit_and_isascii() -> None:
    from siprouter.sip.headers import is_digits
    for text in ("", "0", "0123456789", "12a", " 1", "1 ", "\u0660", "\xb2", "٣", "-1", "+1"):
        assert is_digits(text) == (text.isdigit() and text.isascii()), text
