"""sl: stateless replies byte by byte (spec/sl.md), the To-tag, ACK absorption, stats.

The server listens on 127.0.0.1:7000 and the client sends from 127.0.0.1:7050,
as in the spec's verified examples, so the exact bytes of the spec can be
compared (To-tag test vector included). Time is the ``now`` argument of
Router.handle(): the 2 s ACK window is tested without sleeping.
"""

from __future__ import annotations

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.modules.sl import SlModule, bucket_for, sl_totag, tag_prefix
from siprouter.routing.context import Outgoing
from siprouter.routing.replies import crc16_x25, format_q, nibbles_lsb_first
from siprouter.routing.router import Router
from siprouter.sip.headers import Via

LOCAL = ("127.0.0.1", 7000)
CLIENT = ("127.0.0.1", 7050)
SERVER = "Server: kamailio (5.6.3 (x86_64/linux))"
TAG = "b0d1c3113ce4222c05ac937c96e3c733.58c9e518"   # spec test vector

ROUTE = r'''request_route {
  if (method == "ACK") { $du = "sip:127.0.0.1:7090"; forward(); exit; }
  if ($hdr(X-Force-Rport) != $null) { force_rport(); }
  if ($hdr(X-Extra) != $null) { append_to_reply("X-Extra: hello\r\n"); }
  switch ($rU) {
    case "r100": sl_send_reply("100", "Trying"); exit;
    case "r180": sl_send_reply("180", "Test Reason"); exit;
    case "r200": sl_send_reply("200", "OK"); exit;
    case "r299": sl_send_reply("299", "X"); exit;
    case "r302":
      $ru = "sip:new@10.0.0.1"; append_branch("sip:b2@10.0.0.2:5080");
      sl_send_reply("302", "Test Reason"); exit;
    case "rq":
      append_branch("sip:q1@h", "1"); append_branch("sip:q2@h", "0");
      append_branch("sip:q3@h", "0.125"); append_branch("sip:q4@h", "0.25000");
      sl_send_reply("300", "q"); exit;
    case "rrevert":
      $ru = "sip:x@y"; revert_uri(); append_branch("sip:b@h"); sl_send_reply("303", "rev"); exit;
    case "rnone": sl_send_reply("301", "none"); exit;
    case "rab": $ru = "sip:x@y"; append_branch(); sl_send_reply("300", "ab"); exit;
    case "err": sl_reply_error(); exit;
    case "errbad": $du = "http://x"; forward(); sl_reply_error(); exit;
    case "errdns": $du = "sip:nowhere.invalid"; forward(); sl_reply_error(); exit;
    case "errlater": $du = "http://x"; forward(); $var(x) = 1; sl_reply_error(); exit;
    case "erridiom": $du = "http://x"; if (!forward()) { sl_reply_error(); } exit;
  }
  sl_send_reply("404", "Not Here");
}
event_route[sl:filtered-ack] { $var(absorbed) = $var(absorbed) + 1; }
'''


def make_router(route: str = ROUTE, globals_: str = "") -> Router:
    text = "\n".join(["listen=udp:127.0.0.1:7000", "auto_aliases=no", globals_,
                      'loadmodule "sl.so"', 'loadmodule "textops.so"', 'loadmodule "corex.so"',
                      route])
    router = build_router(parse_text(text))

    def no_dns(host: str) -> str:
        if host.startswith("127."):
            return host
        raise OSError(f"cannot resolve {host}")
    router.resolve = no_dns
    return router


def request(user: str = "r200", method: str = "INVITE", *, via: str | None = None,
            extra: str = "", totag: str | None = None, callid: str = "fixed-callid-1",
            version: str = "SIP/2.0", via_name: str = "Via") -> bytes:
    via = via or "SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed1"
    to = "<sip:bob@example.com>" + (f";tag={totag}" if totag else "")
    cseq = "1 ACK" if method == "ACK" else f"1 {method}"
    return (f"{method} sip:{user}@127.0.0.1:7000 {version}\r\n{via_name}: {via}\r\n"
            f"From: <sip:alice@example.com>;tag=ftag1\r\nTo: {to}\r\nCall-ID: {callid}\r\n"
            f"CSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def send(router: Router, data: bytes, src: tuple[str, int] = CLIENT,
         now: float = 1000.0) -> list[Outgoing]:
    return router.handle(data, src, LOCAL, now)


def reply(router: Router, data: bytes, src: tuple[str, int] = CLIENT,
          now: float = 1000.0) -> str:
    outs = send(router, data, src, now)
    assert len(outs) == 1, outs
    return outs[0].data.decode("latin-1")


def header_lines(text: str, name: str) -> list[str]:
    return [line for line in text.split("\r\n") if line.lower().startswith(name.lower() + ":")]


# --------------------------------------------------------------------------- layout
def test_reply_layout_byte_by_byte() -> None:
    # spec/sl.md §3 example [verified on 5.6.3]: two Vias, two Record-Routes, a 180
    data = (b"INVITE sip:r180@127.0.0.1:7000 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed1\r\n"
            b"Via: SIP/2.0/TCP 10.0.0.9:5090;branch=z9hG4bKother;received=1.2.3.4\r\n"
            b"Max-Forwards: 70\r\n"
            b"Record-Route: <sip:rr1.example.com;lr>\r\n"
            b"From: <sip:alice@example.com>;tag=ftag1\r\n"
            b"To: <sip:bob@example.com>\r\n"
            b"Record-Route: <sip:rr2.example.com;lr>\r\n"
            b"Call-ID: fixed-callid-1\r\n"
            b"CSeq: 1 INVITE\r\n"
            b"Contact: <sip:alice@127.0.0.1:7050>\r\n"
            b"Content-Length: 0\r\n\r\n")
    outs = send(make_router(), data)
    assert len(outs) == 1
    assert outs[0].dst == CLIENT and outs[0].local == LOCAL
    assert outs[0].data == (
        b"SIP/2.0 180 Test Reason\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed1\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.9:5090;branch=z9hG4bKother;received=1.2.3.4\r\n"
        b"Record-Route: <sip:rr1.example.com;lr>\r\n"
        b"From: <sip:alice@example.com>;tag=ftag1\r\n"
        b"To: <sip:bob@example.com>;tag=" + TAG.encode() + b"\r\n"
        b"Record-Route: <sip:rr2.example.com;lr>\r\n"
        b"Call-ID: fixed-callid-1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
        b"Content-Length: 0\r\n\r\n")


def test_compact_headers_are_copied_as_received() -> None:
    data = (b"OPTIONS sip:r200@127.0.0.1:7000 SIP/2.0\r\n"
            b"v: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed1\r\n"
            b"f: <sip:alice@example.com>;tag=ftag1\r\nt: <sip:bob@example.com>\r\n"
            b"i: fixed-callid-1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")
    assert reply(make_router(), data) == (
        "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed1\r\n"
        f"f: <sip:alice@example.com>;tag=ftag1\r\nt: <sip:bob@example.com>;tag={TAG}\r\n"
        f"i: fixed-callid-1\r\nCSeq: 1 OPTIONS\r\n{SERVER}\r\nContent-Length: 0\r\n\r\n")


def test_the_version_token_is_echoed() -> None:
    assert reply(make_router(), request(version="sip/2.0")).startswith("sip/2.0 200 OK\r\n")


@pytest.mark.parametrize(("user", "tagged", "record_route"), [
    ("r100", False, False), ("r180", True, True), ("r200", True, True), ("r299", True, True),
    ("r302", True, False), ("other", True, False),
])
def test_to_tag_and_record_route_by_status(user: str, tagged: bool, record_route: bool) -> None:
    text = reply(make_router(), request(user, extra="Record-Route: <sip:rr1;lr>\r\n"))
    to = header_lines(text, "To")
    assert to == [f"To: <sip:bob@example.com>;tag={TAG}" if tagged else "To: <sip:bob@example.com>"]
    assert header_lines(text, "Record-Route") == (["Record-Route: <sip:rr1;lr>"]
                                                  if record_route else [])


def test_an_existing_to_tag_is_kept() -> None:
    text = reply(make_router(), request(totag="abc"))
    assert header_lines(text, "To") == ["To: <sip:bob@example.com>;tag=abc"]


def test_server_header_settings() -> None:
    text = reply(make_router(globals_='server_header="Server: siprouter test"'), request())
    assert text.endswith("\r\nServer: siprouter test\r\nContent-Length: 0\r\n\r\n")
    text = reply(make_router(globals_="server_signature=no"), request())
    assert "Server:" not in text and text.endswith("CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


# --------------------------------------------------------------------------- To-tag
def test_to_tag_test_vector() -> None:
    via = Via("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed1")
    assert sl_totag(tag_prefix("127.0.0.1", 7000), via, "fixed-callid-1") == TAG
    assert crc16_x25("123456789") == 0x906E          # CRC-16/X-25 check value
    assert [nibbles_lsb_first(v) for v in (0, 0x1234, 0xF, 0xABCD)] == \
        ["0000", "4321", "f000", "dcba"]


def test_to_tag_depends_on_via_and_call_id_only() -> None:
    router = make_router()
    base = header_lines(reply(router, request()), "To")
    assert base == header_lines(reply(router, request("other", "OPTIONS")), "To")
    assert base != header_lines(reply(router, request(callid="x")), "To")
    other_branch = "SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKfixed2"
    assert base != header_lines(reply(router, request(via=other_branch)), "To")


# --------------------------------------------------------------------------- 3xx Contact
def test_3xx_contact_from_the_destination_set_after_earlier_reply_lumps() -> None:
    text = reply(make_router(), request("r302", extra="X-Extra: 1\r\n"))
    assert text.split("\r\n")[5:] == [
        "CSeq: 1 INVITE", "X-Extra: hello",
        "Contact: <sip:new@10.0.0.1>, <sip:b2@10.0.0.2:5080>",
        SERVER, "Content-Length: 0", "", ""]


@pytest.mark.parametrize(("user", "contact"), [
    ("rq", ["Contact: <sip:q1@h>;q=1, <sip:q2@h>;q=0, <sip:q3@h>;q=0.125, <sip:q4@h>;q=0.25"]),
    ("rrevert", ["Contact: <sip:b@h>"]),
    ("rnone", []),
    # append_branch() without arguments moves the R-URI into a branch
    ("rab", ["Contact: <sip:x@y>, <sip:x@y>"]),
])
def test_3xx_contact_variants(user: str, contact: list[str]) -> None:
    assert header_lines(reply(make_router(), request(user)), "Contact") == contact


@pytest.mark.parametrize(("q", "text"), [
    ("1", "1"), ("0", "0"), ("0.5", "0.5"), ("0.125", "0.125"), ("0.25000", "0.25"),
    ("1.0", "1"), ("0.1234", "0.123"),
])
def test_format_q(q: str, text: str) -> None:
    assert format_q(q) == text


# --------------------------------------------------------------------------- received/rport
@pytest.mark.parametrize(("via", "extra", "expected", "dst_port"), [
    # spec/sl.md §3.1 verified examples (source 127.0.0.1:7051)
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bK175576;rport", "",
     "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bK175576;rport=7051;received=127.0.0.1",
     7051),
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bK557217", "X-Force-Rport: 1\r\n",
     "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bK557217;rport=7051", 7051),
    ("SIP/2.0/UDP client.example.com:7051;branch=z9hG4bK410288", "",
     "Via: SIP/2.0/UDP client.example.com:7051;branch=z9hG4bK410288;received=127.0.0.1", 7051),
    # no rport: the reply goes to the Via port, not the source port
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1", "",
     "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1", 7050),
    ("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb1", "", "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb1",
     5060),
    # an existing rport value is replaced; a received is kept and another one appended
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1;rport=77", "",
     "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1;rport=7051;received=127.0.0.1", 7051),
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1;received=1.2.3.4", "",
     "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1;received=1.2.3.4;received=127.0.0.1",
     7050),
    # [oracle] blanks around the rport name go with it
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1; rport ;x=1", "",
     "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKb1;rport=7051;x=1;received=127.0.0.1",
     7051),
    # several values on one line: received at the end of the line (spec quirk)
    ("SIP/2.0/UDP 127.0.0.1:7050;rport;branch=z9hG4bKc1, SIP/2.0/UDP 10.1.1.1:5060;branch=z9c2",
     "", "Via: SIP/2.0/UDP 127.0.0.1:7050;rport=7051;branch=z9hG4bKc1, "
     "SIP/2.0/UDP 10.1.1.1:5060;branch=z9c2;received=127.0.0.1", 7051),
    # [oracle] a forced rport also goes to the end of such a line
    ("SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKc1, SIP/2.0/UDP 10.1.1.1:5060;branch=z9c2",
     "X-Force-Rport: 1\r\n", "Via: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKc1, "
     "SIP/2.0/UDP 10.1.1.1:5060;branch=z9c2;rport=7051", 7051),
])
def test_received_and_rport(via: str, extra: str, expected: str, dst_port: int) -> None:
    outs = send(make_router(), request(via=via, extra=extra), src=("127.0.0.1", 7051))
    assert len(outs) == 1 and outs[0].dst == ("127.0.0.1", dst_port)
    assert header_lines(outs[0].data.decode(), "Via")[0] == expected


def test_multi_value_via_line_spec_example() -> None:
    via = "SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKc1;rport=7050, " \
          "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKc2"
    text = reply(make_router(), request(via=via, via_name="v"))
    assert header_lines(text, "v") == [
        "v: SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKc1;rport=7050, "
        "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKc2;received=127.0.0.1"]


# --------------------------------------------------------------------------- ACK filter
def test_ack_absorption_window() -> None:
    router = make_router()
    sl = router.modules["sl"]
    assert isinstance(sl, SlModule)
    reply(router, request("other"), now=1000.0)
    ack = request("other", "ACK", totag=TAG)
    assert send(router, ack, now=1001.9) == []                       # absorbed
    assert sl.stats["received_ACKs"] == 1
    assert [o.dst for o in send(router, ack, now=1002.1)] == [("127.0.0.1", 7090)]
    # the window follows the last reply sent to anyone
    reply(router, request("other", "OPTIONS", callid="other-call"), now=1010.0)
    assert send(router, ack, now=1011.5) == []
    # a 2xx ACK (new branch), another Call-ID or a foreign tag go to the script
    new_branch = request("other", "ACK", totag=TAG,
                         via="SIP/2.0/UDP 127.0.0.1:7050;branch=z9hG4bKnew")
    assert len(send(router, new_branch, now=1011.5)) == 1
    assert len(send(router, request("other", "ACK", totag=TAG, callid="x"), now=1011.5)) == 1
    assert len(send(router, request("other", "ACK", totag="foreign"), now=1011.5)) == 1
    assert sl.stats["received_ACKs"] == 2


def test_filtered_ack_event_route_runs() -> None:
    route = ROUTE.replace('case "r200":', 'case "count": sl_send_reply("200", "n=$var(absorbed)");'
                                          ' exit;\n    case "r200":')
    router = make_router(route)
    reply(router, request("other"), now=5.0)
    assert send(router, request("other", "ACK", totag=TAG), now=5.5) == []
    assert send(router, request("other", "ACK", totag=TAG), now=6.0) == []
    assert reply(router, request("count", "OPTIONS"), now=6.0).startswith("SIP/2.0 200 n=2\r\n")


def test_no_reply_to_an_ack() -> None:
    router = make_router('request_route { sl_send_reply("200", "x"); }')
    assert send(router, request("x", "ACK")) == []
    sl = router.modules["sl"]
    assert isinstance(sl, SlModule) and sl.stats["failures"] == 1


def test_no_reply_when_the_headers_cannot_be_fully_parsed() -> None:
    router = make_router()
    data = request(extra="Max-Forwards: 8\r\nMax-Forwards: 3\r\n")
    assert send(router, data) == []


# --------------------------------------------------------------------------- sl_reply_error
@pytest.mark.parametrize(("user", "status"), [
    ("err", "500 I'm terribly sorry, server error occurred (1/SL)"),
    ("errbad", "479 Regretfully, we were not able to process the URI (479/SL)"),
    ("errdns", "478 Unresolvable destination (478/SL)"),
    # the error is the previous action's: an assignment in between clears it [oracle]
    ("errlater", "500 I'm terribly sorry, server error occurred (1/SL)"),
    ("erridiom", "479 Regretfully, we were not able to process the URI (479/SL)"),
])
def test_sl_reply_error(user: str, status: str) -> None:
    assert reply(make_router(), request(user)).split("\r\n")[0] == f"SIP/2.0 {status}"


# --------------------------------------------------------------------------- stats
def test_stats_buckets() -> None:
    codes = [100, 180, 200, 202, 299, 300, 301, 302, 399, 400, 401, 403, 404, 407, 408, 483,
             486, 500, 503, 603, 700]
    cases = "".join(f'case "c{c}": sl_send_reply("{c}", "x"); exit;\n' for c in codes)
    router = make_router(f"request_route {{ switch ($rU) {{ {cases} }} "
                         f'sl_send_reply("200", "x"); }}')
    for code in codes:
        assert len(send(router, request(f"c{code}"))) == 1
    send(router, request("c200", "ACK"))
    sl = router.modules["sl"]
    assert isinstance(sl, SlModule)
    stats = sl.stat_values()
    assert stats["1xx_replies"] == 0                    # 1xx count as xxx in 5.6
    assert stats["xxx_replies"] == 3                    # 100, 180, 700
    assert (stats["200_replies"], stats["202_replies"], stats["2xx_replies"]) == (1, 1, 1)
    assert (stats["300_replies"], stats["301_replies"], stats["302_replies"],
            stats["3xx_replies"]) == (1, 1, 1, 1)
    assert [stats[f"{c}_replies"] for c in (400, 401, 403, 404, 407, 408, 483)] == [1] * 7
    assert stats["4xx_replies"] == 1 and stats["500_replies"] == 1
    assert stats["5xx_replies"] == 1 and stats["6xx_replies"] == 1
    assert stats["sent_replies"] == len(codes)
    assert stats["sent_err_replies"] == 0
    assert stats["failures"] == 1                       # the reply attempt to the ACK
    rpc = sl.rpc_stats()
    assert list(rpc) == ["200", "202", "2xx", "300", "301", "302", "3xx", "400", "401", "403",
                         "404", "407", "408", "483", "4xx", "500", "5xx", "6xx", "xxx"]
    assert rpc["xxx"] == 3 and rpc["4xx"] == 1


@pytest.mark.parametrize(("code", "bucket"), [
    (100, "xxx_replies"), (199, "xxx_replies"), (200, "200_replies"), (250, "2xx_replies"),
    (302, "302_replies"), (483, "483_replies"), (599, "5xx_replies"), (699, "6xx_replies"),
    (700, "xxx_replies"), (999, "xxx_replies"),
])
def test_bucket_for(code: int, bucket: str) -> None:
    assert bucket_for(code) == bucket


def test_send_reply_without_tm_is_stateless() -> None:
    router = make_router('request_route { send_reply("404", "Nope"); }')
    assert reply(router, request()).startswith("SIP/2.0 404 Nope\r\n")
