"""URIs: the lenient parse_uri() of the routing path and the strict check_uri()."""

from __future__ import annotations

import pytest

from siprouter.sip.errors import ParseError, SipError, UriError
from siprouter.sip.uri import (
    KNOWN_SCHEMES,
    check_uri,
    is_host,
    is_hostname,
    is_ipv4,
    is_ipv6,
    parse_uri,
)


# ------------------------------------------------------------------ parse_uri
def test_full_sip_uri() -> None:
    uri = parse_uri("sip:alice:secret@example.com:5070;transport=TCP;lr?Subject=hi&X=1")
    assert uri.scheme == "sip"
    assert uri.user == "alice" and uri.password == "secret"
    assert uri.host == "example.com" and uri.port_str == "5070" and uri.port == 5070
    assert uri.params == [("transport", "TCP"), ("lr", None)]
    assert uri.headers == "Subject=hi&X=1"
    assert uri.raw == str(uri) == "sip:alice:secret@example.com:5070;transport=TCP;lr?Subject=hi&X=1"


def test_minimal_sip_uri() -> None:
    uri = parse_uri("sip:example.com")
    assert uri.user is None and uri.password is None
    assert uri.host == "example.com" and uri.port is None and uri.port_str == ""
    assert uri.params == [] and uri.headers == ""


def test_scheme_is_case_insensitive_and_kept_raw() -> None:
    uri = parse_uri("SIPS:Bob@Example.COM")
    assert uri.scheme == "sips" and uri.user == "Bob" and uri.host == "Example.COM"
    assert uri.raw == "SIPS:Bob@Example.COM"


def test_param_lookup_is_case_insensitive() -> None:
    uri = parse_uri("sip:h;Transport=UDP;LR;maddr=10.0.0.1")
    assert uri.param("transport") == "UDP" and uri.param("TRANSPORT") == "UDP"
    assert uri.transport == "udp"
    assert uri.param("lr") == "" and uri.has_param("lr") and uri.has_param("Lr")
    assert uri.param("ttl") is None and not uri.has_param("ttl")
    assert uri.param("maddr") == "10.0.0.1"


@pytest.mark.parametrize(("text", "port"), [
    ("sip:h", 5060), ("sip:h:5080", 5080), ("sips:h", 5061), ("sip:h;transport=tls", 5061),
    ("sips:h:5070", 5070),
])
def test_default_port(text: str, port: int) -> None:
    assert parse_uri(text).default_port() == port


def test_host_port() -> None:
    assert parse_uri("sip:u@h:5061").host_port == "h:5061"
    assert parse_uri("sip:u@h").host_port == "h"
    assert parse_uri("sip:[2001:db8::1]:5061").host_port == "[2001:db8::1]:5061"


def test_escapes_are_kept_and_unescaped_on_demand() -> None:
    uri = parse_uri("sip:sips%3Auser%40example.com@example.net;n%61me=v%61lue")
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.unescaped_user() == "sips:user@example.com"
    assert uri.host == "example.net"
    assert uri.params == [("n%61me", "v%61lue")]
    assert parse_uri("sip:null-%00-null@h").unescaped_user() == "null-\x00-null"
    assert parse_uri("sip:%E9@h").unescaped_user() == "\xe9"   # latin-1, one char per byte
    assert parse_uri("sip:h").unescaped_user() is None


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net" and uri.host == "example.com"
    assert uri.params == []
    uri = parse_uri("sip:a?b;c:pw@example.com;p=1?h=v")
    assert uri.user == "a?b;c" and uri.password == "pw"
    assert uri.host == "example.com" and uri.params == [("p", "1")] and uri.headers == "h=v"


def test_semicolon_without_user_starts_the_params() -> None:
    uri = parse_uri("sip:example.com;user=phone")
    assert uri.user is None and uri.params == [("user", "phone")]


@pytest.mark.parametrize("text", [
    "sip:[2001:db8::1]", "sip:alice@[2001:db8::1]:5060;transport=udp", "sips:[::1]:5061",
])
def test_ipv6_references(text: str) -> None:
    uri = parse_uri(text)
    assert uri.host.startswith("[") and uri.host.endswith("]")
    assert uri.host.strip("[]") in ("2001:db8::1", "::1")


def test_ipv6_port_and_params() -> None:
    uri = parse_uri("sip:alice@[2001:db8::1]:5070;transport=udp")
    assert uri.user == "alice" and uri.host == "[2001:db8::1]" and uri.port == 5070
    assert uri.transport == "udp"


def test_tel_uris() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert uri.scheme == "tel" and uri.user == "+1-201-555-0123" and uri.host == ""
    assert uri.param("phone-context") == "example.com"
    assert parse_uri("TEL:3000").user == "3000"


def test_unknown_schemes_are_opaque() -> None:
    uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert uri.scheme == "nobodyknowsthisscheme" and uri.host == "" and uri.user is None
    assert uri.scheme not in KNOWN_SCHEMES
    assert parse_uri("http://www.example.com/a?b").scheme == "http"
    assert parse_uri("urn:service:sos").scheme == "urn"


@pytest.mark.parametrize("text", [
    "", "example.com", ":x", "sip:", "sip:@example.com", "sip:bob@", "sip:bob@h:",
    "sip:bob@h:x", "sip:bob@h:65536", "sip:bob@h:123456", "sip:h:-1", "sip:a@b@c",
    "sip:u@h?x=a@b", "sip:[::1", "sip:[::1]x", "sip:[::1]:", "sip:bob smith@h",
    "sip:<bob>@h", 'sip:"bob"@h', "sip:h_o st", "sip:ho%st", "tel:", "tel:;x=1",
    "mailto:", "sip:h:\xb2",
])
def test_parse_errors(text: str) -> None:
    with pytest.raises(UriError) as info:
        parse_uri(text)
    assert isinstance(info.value, ParseError) and info.value.status == 400


def test_lenient_parse_matches_kamailio() -> None:
    """What Kamailio's parse_uri accepts although the RFC grammar does not."""
    assert parse_uri("sip:[garbage]").host == "[garbage]"
    assert parse_uri("sip:host_name.example.com").host == "host_name.example.com"
    assert parse_uri("sip:%zz@h").user == "%zz"
    assert parse_uri("sip:h;;a").params == [("a", None)]


# ------------------------------------------------------------------ check_uri
@pytest.mark.parametrize("text", [
    "sip:example.com", "SIP:User@Example.COM:5060", "sips:alice@example.com;transport=tls",
    "sip:alice:@h", "sip:alice:p%41ss&=+$,@h",
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
    "(doesn't-it)@example.com",
    "sip:user;par=u%40example.net@example.com", "sip:%00%00@host5.example.com",
    "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
    "sip:h;lr;maddr=[2001:db8::1];x=a/b:c&d+e$",
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    "sip:h?subject=project%20x&priority=urgent&empty=",
    "sip:[2001:db8::1]:5060", "sip:[::ffff:192.0.2.1]", "sip:192.0.2.1:5060",
    "sip:host.example.com.", "sip:a-b.c-d.example",
    "tel:+1-201-555-0123", "tel:+12015550123;phone-context=example.com;ext=22",
    "tel:7042;phone-context=example.com", "tel:*21#",
    "nobodyKnowsThisScheme:totallyopaquecontent", "soap.beep://192.0.2.103:3002",
    "http://www.example.com/a%20b?c=d", "isbn:2983792873", "urn:service:sos",
])
def test_check_uri_accepts(text: str) -> None:
    assert check_uri(text).raw == text


@pytest.mark.parametrize("text", [
    "<sip:user@example.com>",          # not a scheme
    "1sip:h", "s_p:h", ":h",
    "sip:h;;a", "sip:h;a=", "sip:h;=b", "sip:h;a b",
    "sip:h?", "sip:h?novalue", "sip:h?a=b&", "sip:h?a=<b>",
    "sip:%zz@h", "sip:%4@h", "sip:a%@h", "sip:us er@h", "sip:us\x00er@h", "sip:\xe9@h",
    "sip:u:p;w@h",                     # ';' is not allowed in a password
    "sip:host_name.example.com", "sip:-host.example.com", "sip:host-.example.com",
    "sip:a..b", "sip:123", "sip:[garbage]", "sip:[fe80::1%25eth0]", "sip:[1:2:3]",
    "tel:", "tel:+", "tel:+1a", "tel:12;=x", "tel:12;a b=1", "tel:-",
    "http://www.example.com/a b", "http://x/<y>", "isbn:%g1",
])
def test_check_uri_rejects(text: str) -> None:
    with pytest.raises(UriError):
        check_uri(text)


def test_check_uri_request_uri_headers() -> None:
    check_uri("sip:user@example.com?Route=%3Csip:example.com%3E")
    with pytest.raises(UriError, match="headers are not allowed"):
        check_uri("sip:user@example.com?Route=%3Csip:example.com%3E", allow_headers=False)


def test_errors_are_sip_errors() -> None:
    with pytest.raises(SipError):
        check_uri("nope")


# ------------------------------------------------------------------ host helpers
@pytest.mark.parametrize(("text", "ok"), [
    ("192.0.2.1", True), ("0.0.0.0", True), ("255.255.255.255", True),
    ("256.1.1.1", False), ("1.2.3", False), ("1.2.3.4.5", False), ("1..2.3", False),
    ("01.2.3.4", True), ("1.2.3.\xb2", False),
])
def test_is_ipv4(text: str, ok: bool) -> None:
    assert is_ipv4(text) is ok


@pytest.mark.parametrize(("text", "ok"), [
    ("::1", True), ("2001:db8::1", True), ("::ffff:192.0.2.1", True), ("1:2:3:4:5:6:7:8", True),
    ("1:2:3", False), ("fe80::1%eth0", False), ("[::1]", False), ("", False), ("g::1", False),
])
def test_is_ipv6(text: str, ok: bool) -> None:
    assert is_ipv6(text) is ok


@pytest.mark.parametrize(("text", "ok"), [
    ("example.com", True), ("example.com.", True), ("a", True), ("a-b.c", True),
    ("x.1a", False), ("1.2.3", False), ("-a.com", False), ("a-.com", False), ("a..b", False),
    ("", False), (".", False), ("a_b.com", False),
])
def test_is_hostname(text: str, ok: bool) -> None:
    assert is_hostname(text) is ok


def test_is_host() -> None:
    assert is_host("example.com") and is_host("192.0.2.1") and is_host("[2001:db8::1]")
    assert not is_host("[2001:db8::1") and not is_host("2001:db8::1") and not is_host("")
