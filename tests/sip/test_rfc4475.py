"""RFC 4475 torture messages: one test per file of ../shared/rfc4475.

INDEX.md says whether a message is valid, invalid or "semantic" (parses, but a
server should answer it with an error). Here:

* valid: ``parse_message`` + ``parse_all`` accept it, it renders back byte for
  byte, and the fields the RFC calls out have the values it gives;
* invalid: a :class:`SipError` subclass (the exact class is pinned) comes out of
  ``parse_message`` or ``parse_all``, and nothing else ever does;
* semantic: syntactically fine (parsed and checked like a valid one), except
  for the three whose fault is in the header structure (missing required
  headers, several values of a single-value header) that ``parse_all``
  rejects, since RFC 4475 expects a 400 for them.

Whatever the class, the lazy accessors the routing path uses may only raise
:class:`SipError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import shared_dir

from siprouter.sip.errors import (
    ContentLengthError,
    DuplicateHeaderError,
    HeaderError,
    SipError,
    StartLineError,
    UriError,
)
from siprouter.sip.headers import Credentials, NameAddr, split_commas, unfold
from siprouter.sip.message import SipMessage, parse_all, parse_message

RFC_DIR = shared_dir() / "rfc4475"
FILES = sorted(RFC_DIR.glob("*.dat"))


def _index_classes() -> dict[str, str]:
    """file name -> class ("valid", "invalid", "semantic") from INDEX.md."""
    index = RFC_DIR / "INDEX.md"
    if not index.is_file():
        return {}
    classes = {}
    for line in index.read_text().splitlines():
        m = re.match(r"\|\s*(\S+\.dat)\s*\|[^|]*\|\s*(\w+)\s*\|", line)
        if m:
            classes[m.group(1)] = m.group(2)
    return classes


CLASSES = _index_classes()

# test.dat is "an extra plain INVITE that is not part of the RFC" and INDEX.md
# gives it no class. Its bytes are not a valid message though: the request line
# has no SIP-Version, "Foobar roobar" is a header line without a colon, and
# "TO : alan@jasomi.com" has no URI scheme. So it is treated as invalid.
EXTRA_INVALID = {"test.dat": StartLineError}

# Expected error class for every message that must be rejected.
REJECTED: dict[str, type[SipError]] = {
    "badinv01.dat": HeaderError,       # ";;,;,," in Via, ";;;;" in Contact
    "clerr.dat": ContentLengthError,   # Content-Length 9999, far more than the body
    "ncl.dat": HeaderError,            # Content-Length: -999
    "scalar02.dat": HeaderError,       # CSeq 36893488147419103232 (>= 2**31)
    "scalarlg.dat": HeaderError,       # CSeq 9292394834772304023312 in a response
    "quotbal.dat": HeaderError,        # To: "Mr. J. User <sip:...>  (no closing quote)
    "ltgtruri.dat": UriError,          # INVITE <sip:user@example.com> SIP/2.0
    "lwsruri.dat": StartLineError,     # INVITE sip:user@example.com; lr SIP/2.0
    "lwsstart.dat": StartLineError,    # INVITE  sip:...  SIP/2.0
    "trws.dat": StartLineError,        # "SIP/2.0  " trailing blanks
    "escruri.dat": UriError,           # headers (?Route=...) in the Request-URI
    "baddate.dat": HeaderError,        # Date in EST, not GMT
    "regbadct.dat": HeaderError,       # Contact addr-spec with '?' outside <>
    "badaspec.dat": HeaderError,       # To: ... < sip:t.watson@example.org >
    "baddn.dat": HeaderError,          # From: Bell, Alexander <sip:...>
    "badvers.dat": StartLineError,     # SIP/7.0
    "mismatch01.dat": HeaderError,     # OPTIONS with CSeq 8 INVITE
    "mismatch02.dat": HeaderError,     # NEWMETHOD with CSeq 8 INVITE
    "bigcode.dat": StartLineError,     # status code 4294967301
    # semantic, but a broken header structure: RFC 4475 expects 400
    "insuf.dat": HeaderError,          # no Call-ID, From, To
    "multi01.dat": DuplicateHeaderError,  # two CSeq, Call-ID, From, To, Max-Forwards
    "mcl01.dat": DuplicateHeaderError,    # two Content-Length
    **EXTRA_INVALID,
}


# ------------------------------------------------------------------ helpers
def header_values(msg: SipMessage, key: str) -> list[str]:
    return [unfold(h.value) for h in msg.headers_named(key)]


def contacts(msg: SipMessage) -> list[NameAddr]:
    return [NameAddr(part) for value in header_values(msg, "contact")
            for part in split_commas(value)]


def utf8(text: str) -> str:
    """Wire text (latin-1 decoded) read as UTF-8."""
    return text.encode("latin-1").decode("utf-8")


def declared_body(msg: SipMessage) -> str:
    """The body as Content-Length delimits it (the rest of a datagram is discarded)."""
    clen = msg.header_value("content-length")
    return msg.body if clen is None else msg.body[:int(clen)]


def lazy_accessors(msg: SipMessage) -> None:
    """What the routing path touches: may raise SipError, nothing else."""
    for name in ("via1", "to", "from_", "cseq", "callid", "cseq_method", "body"):
        try:
            getattr(msg, name)
        except SipError:
            pass
    if msg.is_request:
        try:
            msg.uri  # noqa: B018
        except SipError:
            pass
    for hdr in msg.headers_named("via"):
        try:
            msg.via_values(hdr)
        except SipError:
            pass


# ------------------------------------------------------------ spot checks
def check_wsinv(msg: SipMessage) -> None:
    assert msg.method == "INVITE"
    assert msg.uri.user == "vivekg" and msg.uri.host == "chair-dnrc.example.com"
    assert msg.uri.params == [("unknownparam", None)]
    assert msg.to is not None and msg.to.tag == "1918181833n"
    assert msg.to.uri.raw == "sip:vivekg@chair-dnrc.example.com"
    assert msg.from_ is not None and msg.from_.tag == "98asjd8"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.header_value("max-forwards") == "0068"
    assert msg.callid == "wsinv.ndaksdj@192.0.2.1"
    assert int(msg.cseq.number) == 9 and msg.cseq.method == "INVITE"
    vias = msg.all_vias()
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert header_values(msg, "subject") == [""]
    assert header_values(msg, "newfangledheader") == [
        "newfangled value continued newfangled value"]
    assert header_values(msg, "unknownheaderwithunusualvalue") == [";;,,;;,;"]
    (contact,) = contacts(msg)
    assert contact.display_name == 'Quoted string ""'
    assert contact.uri.raw == "sip:jdrosen@example.com"
    assert contact.params == [("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")]
    route = NameAddr(header_values(msg, "route")[0])
    assert route.uri.params == [("lr", None), ("unknownwith", "value"),
                                ("unknown-no-value", None)]
    assert msg.header_value("content-type") == "application/sdp"
    assert len(msg.body) == 150 and msg.body.startswith("v=0\r\n")


def check_intmeth(msg: SipMessage) -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method and msg.cseq.method == method
    assert msg.cseq.number == "139122385"
    uri = msg.uri
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == [] and uri.headers == ""
    assert msg.via1.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to is not None
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.from_ is not None
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.uri.raw == "sip:mundane@example.com"
    assert msg.from_.tag == "_token~1'+`*%!-."
    value = msg.from_.param("fromParam''~+*_!.-%")
    assert value is not None and utf8(value) == '"работающий"'
    assert msg.callid == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.header_value("max-forwards") == "255"
    (ext,) = [h for h in msg.headers if h.name == "extensionHeader-!.%*+_`'~"]
    assert utf8(ext.value) == "\ufeff大停電"
    assert msg.body == ""


def check_esc01(msg: SipMessage) -> None:
    assert msg.uri.user == "sips%3Auser%40example.com"
    assert msg.uri.unescaped_user() == "sips:user@example.com"
    assert msg.uri.host == "example.net"
    assert msg.to is not None and msg.to.uri.unescaped_user() == "user"
    assert msg.from_ is not None and msg.from_.uri.unescaped_user() == "I have spaces"
    assert msg.callid == "esc01.239409asdfakjkn23onasd0-3234"  # compact "i:"
    assert msg.header_value("content-type") == "application/sdp"  # compact "C:"
    (contact,) = contacts(msg)  # the value starts on a continuation line
    assert contact.uri.unescaped_user() == "caller"
    assert [(unquote(n, encoding="latin-1"), v and unquote(v, encoding="latin-1"))
            for n, v in contact.uri.params] == [("lr", None), ("name", "value%41")]
    assert len(msg.body) == 150


def check_escnull(msg: SipMessage) -> None:
    assert msg.method == "REGISTER"
    assert msg.to is not None and msg.from_ is not None
    assert msg.to.uri.unescaped_user() == "null-\x00-null"
    assert msg.from_.uri.unescaped_user() == "null-\x00-null"
    assert [c.uri.unescaped_user() for c in contacts(msg)] == ["\x00", "\x00\x00"]
    assert msg.header_value("content-length") == "0"  # "L:0", no blank


def check_esc02(msg: SipMessage) -> None:
    # '%' is a token character: the method is not unescaped to REGISTER
    assert msg.method == "RE%47IST%45R" and msg.cseq.method == "RE%47IST%45R"
    assert msg.to is not None and msg.to.display_name == "%Z%45"
    assert msg.via1.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an extension header, not a third Contact
    assert [c.uri.host for c in contacts(msg)] == ["host1.example.com", "host3.example.com"]
    assert header_values(msg, "c%6fntact") == ["<sip:alias2@host2.example.com>"]


def check_lwsdisp(msg: SipMessage) -> None:
    assert msg.from_ is not None
    assert msg.from_.display == "caller" and msg.from_.uri.raw == "sip:caller@example.com"
    assert msg.from_.tag == "323"


def check_longreq(msg: SipMessage) -> None:
    assert msg.to is not None
    assert msg.to.display_name.startswith("I have a user name of extremeextreme")
    assert msg.to.uri.port == 6000 and len(msg.to.uri.params) == 3
    assert msg.to.uri.params[2] == (
        "verylong" + "long" * 24 + "ParameterNameWithNoValue", None)
    assert msg.from_ is not None and msg.from_.tag is not None
    assert msg.from_.tag.startswith("1298298") and len(msg.from_.params) == 3
    vias = msg.all_vias()
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[-1].param("received") == "192.0.2.5"
    assert vias[-1].branch == "verylong" + "long" * 49 + "branchvalue"
    assert all(v.transport == "TCP" for v in vias)
    assert msg.header_value("content-length") == "150" and len(msg.body) == 150


def check_dblreq(msg: SipMessage) -> None:
    # Content-Length: 0 -- the INVITE after the REGISTER is not part of it
    assert msg.method == "REGISTER" and msg.callid.startswith("dblreq.0ha0isndaksdj99")
    assert declared_body(msg) == ""
    assert "INVITE sip:joe@example.com" in msg.body


def check_semiuri(msg: SipMessage) -> None:
    assert msg.uri.user == "user;par=u%40example.net"
    assert msg.uri.unescaped_user() == "user;par=u@example.net"
    assert msg.uri.host == "example.com" and msg.uri.params == []
    assert header_values(msg, "accept") == [
        "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, "
        "message/sip, message/sipfrag"]


def check_transports(msg: SipMessage) -> None:
    assert [(v.transport, v.host) for v in msg.all_vias()] == [
        ("UDP", "t1.example.com"), ("SCTP", "t2.example.com"), ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"), ("TCP", "t5.example.com")]
    assert msg.callid == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01(msg: SipMessage) -> None:
    assert msg.method == "MESSAGE"
    assert msg.via1.port == 5070 and msg.via1.has_param("rport")
    assert msg.header_value("content-type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(msg.body) == 553
    assert msg.body.startswith("--7a9cbec02ceef655\r\n")
    assert msg.body.endswith("--7a9cbec02ceef655--\r\n")


def check_unreason(msg: SipMessage) -> None:
    assert not msg.is_request and msg.status == 200
    assert utf8(msg.reason) == (
        "= 2**3 * 5**2 но сто девяносто девять - простое")
    assert msg.cseq.method == "INVITE" and len(msg.body) == 154


def check_noreason(msg: SipMessage) -> None:
    assert not msg.is_request and msg.status == 100 and msg.reason == ""
    assert msg.via1.branch == "z9hG4bK2398ndaoe"


def check_inv2543(msg: SipMessage) -> None:
    # RFC 2543 style: no branch, no From tag, no Max-Forwards, no Content-Length
    assert msg.via1.branch is None and msg.via1.host == "iftgw.example.com"
    assert msg.from_ is not None and msg.from_.tag is None
    assert msg.from_.uri.param("user") == "phone"
    # To in addr-spec form: ";user=phone" is a header parameter, not a URI one
    assert msg.to is not None and msg.to.param("user") == "phone"
    assert msg.to.uri.params == []
    assert not msg.has_header("max-forwards") and not msg.has_header("content-length")
    rr = NameAddr(header_values(msg, "record-route")[0])
    assert rr.uri.param("maddr") == "ss1.example.com"


def check_badbranch(msg: SipMessage) -> None:
    assert msg.via1.branch == "z9hG4bK"  # only the magic cookie


def check_unkscm(msg: SipMessage) -> None:
    assert msg.uri.scheme == "nobodyknowsthisscheme"
    assert msg.ruri == "nobodyKnowsThisScheme:totallyopaquecontent"


def check_novelsc(msg: SipMessage) -> None:
    assert msg.uri.scheme == "soap.beep" and msg.ruri == "soap.beep://192.0.2.103:3002"


def check_unksm2(msg: SipMessage) -> None:
    assert msg.to is not None and msg.to.uri.scheme == "isbn"
    assert msg.from_ is not None and msg.from_.uri.scheme == "http"
    assert msg.from_.tag == "3234233"
    assert [c.uri.scheme for c in contacts(msg)] == ["name"]


def check_bext01(msg: SipMessage) -> None:
    assert header_values(msg, "require") == ["nothingSupportsThis, nothingSupportsThisEither"]
    assert header_values(msg, "proxy-require") == [
        "noProxiesSupportThis, norDoAnyProxiesSupportThis"]
    assert msg.via1.transport == "TLS"


def check_invut(msg: SipMessage) -> None:
    assert msg.header_value("content-type") == "application/unknownformat"
    assert len(msg.body) == 40


def check_regaut01(msg: SipMessage) -> None:
    creds = Credentials(msg.header_value("authorization") or "")
    assert creds.scheme == "NoOneKnowsThisScheme" and not creds.is_digest
    assert creds.params == {"opaque-data": "here"}


def check_bcast(msg: SipMessage) -> None:
    assert not msg.is_request and msg.status == 200
    assert [v.host for v in msg.all_vias()] == ["192.0.2.198", "255.255.255.255"]


def check_zeromf(msg: SipMessage) -> None:
    assert msg.header_value("max-forwards") == "0"


def check_cparam01(msg: SipMessage) -> None:
    (contact,) = contacts(msg)   # no <>: ";unknownparam" belongs to the header
    assert contact.params == [("unknownparam", None)] and contact.uri.params == []
    assert contact.uri.user == "+19725552222"


def check_cparam02(msg: SipMessage) -> None:
    (contact,) = contacts(msg)   # inside <>: ";unknownparam" belongs to the URI
    assert contact.params == [] and contact.uri.params == [("unknownparam", None)]


def check_regescrt(msg: SipMessage) -> None:
    (contact,) = contacts(msg)   # compact "M:"
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert unquote(contact.uri.headers) == "Route=<sip:sip.example.com>"


def check_sdp01(msg: SipMessage) -> None:
    assert header_values(msg, "accept") == ["text/nobodyKnowsThis"]


SPOT_CHECKS: dict[str, Callable[[SipMessage], None]] = {
    "wsinv.dat": check_wsinv, "intmeth.dat": check_intmeth, "esc01.dat": check_esc01,
    "escnull.dat": check_escnull, "esc02.dat": check_esc02, "lwsdisp.dat": check_lwsdisp,
    "longreq.dat": check_longreq, "dblreq.dat": check_dblreq, "semiuri.dat": check_semiuri,
    "transports.dat": check_transports, "mpart01.dat": check_mpart01,
    "unreason.dat": check_unreason, "noreason.dat": check_noreason,
    "inv2543.dat": check_inv2543, "badbranch.dat": check_badbranch,
    "unkscm.dat": check_unkscm, "novelsc.dat": check_novelsc, "unksm2.dat": check_unksm2,
    "bext01.dat": check_bext01, "invut.dat": check_invut, "regaut01.dat": check_regaut01,
    "bcast.dat": check_bcast, "zeromf.dat": check_zeromf, "cparam01.dat": check_cparam01,
    "cparam02.dat": check_cparam02, "regescrt.dat": check_regescrt, "sdp01.dat": check_sdp01,
}


def check_accepted(name: str, data: bytes) -> None:
    msg = parse_message(data)
    parse_all(msg)
    # byte-exact round trip, without edits and with edits that change nothing
    assert msg.render().encode("latin-1") == data
    for hdr in msg.headers:
        start, end = hdr.value_span(msg.text)
        msg.add_edit(start, end, msg.text[start:end])
    assert msg.render().encode("latin-1") == data
    # the key fields, through the lazy accessors the routing path uses
    assert msg.via1.host and msg.via1.transport
    assert msg.to is not None and msg.from_ is not None
    assert msg.callid and msg.cseq.number.isdigit()
    if msg.is_request:
        assert msg.ruri and msg.uri.raw == msg.ruri
        assert msg.text.startswith(f"{msg.method} {msg.ruri} SIP/2.0\r\n")
    else:
        assert msg.text.startswith(f"SIP/2.0 {msg.status} {msg.reason}\r\n")
    SPOT_CHECKS[name](msg)


def check_rejected(name: str, data: bytes) -> None:
    expected = REJECTED[name]
    with pytest.raises(SipError) as info:
        msg = parse_message(data)
        lazy_accessors(msg)
        parse_all(msg)
    err = info.value
    assert type(err) is expected, f"{type(err).__name__}: {err}"
    assert err.reason
    assert err.status == (None if isinstance(err, StartLineError) else 400)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_rfc4475(path: Path) -> None:
    name = path.name
    data = path.read_bytes()
    cls = CLASSES.get(name)
    assert cls is not None or name in EXTRA_INVALID, f"{name} is not in INDEX.md"
    if cls == "valid":
        assert name not in REJECTED
    elif cls == "invalid":
        assert name in REJECTED
    if name in REJECTED:
        check_rejected(name, data)
    else:
        check_accepted(name, data)
