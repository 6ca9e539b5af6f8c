"""Stateless forward() and the stateless reply relay (routing/forward.py).

Expectations were compared with Kamailio 5.6.3 running the same cfg (requests
from 127.0.0.1:5070, forwarded copies captured on 127.0.0.1:5090): the Via
we add, the received/rport edits of the previous top Via (the exact
positions Kamailio's lumps give), R-URI rewrites, $du, and the reply relay
(Kamailio's default ``check_via=0`` relays whatever the top Via says).
"""

from __future__ import annotations

import re

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.context import Outgoing
from siprouter.routing.router import Router

LOCAL = ("127.0.0.1", 5060)
CLIENT = ("127.0.0.1", 5070)
SINK = ("127.0.0.1", 5090)
TO_SINK = 'request_route { $du = "sip:127.0.0.1:5090"; forward(); }'


def make_router(route: str = TO_SINK, globals_: str = "",
                listen: str = "udp:127.0.0.1:5060") -> Router:
    text = "\n".join([f"listen={listen}", "auto_aliases=no", globals_, 'loadmodule "sl.so"',
                      'loadmodule "textops.so"', route])
    router = build_router(parse_text(text))

    def no_dns(host: str) -> str:
        if re.fullmatch(r"[0-9.]+", host):
            return host
        raise OSError(f"cannot resolve {host}")
    router.resolve = no_dns
    return router


def request(method: str = "INVITE", ruri: str = "sip:bob@127.0.0.1:5060", *,
            via: str = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1", extra: str = "",
            body: str = "", callid: str = "cid-1") -> bytes:
    return (f"{method} {ruri} SIP/2.0\r\nVia: {via}\r\n"
            f"From: <sip:alice@example.com>;tag=ft1\r\nTo: <sip:bob@example.com>\r\n"
            f"Call-ID: {callid}\r\nCSeq: 1 {method}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def send(router: Router, data: bytes, src: tuple[str, int] = CLIENT) -> list[Outgoing]:
    return router.handle(data, src, LOCAL, 1000.0)


def forwarded(router: Router, data: bytes, src: tuple[str, int] = CLIENT) -> list[str]:
    outs = send(router, data, src)
    assert len(outs) == 1 and outs[0].local == LOCAL
    return outs[0].data.decode("latin-1").split("\r\n")


# --------------------------------------------------------------------------- requests
def test_forwarded_request_layout() -> None:
    lines = forwarded(make_router(), request(extra="Max-Forwards: 70\r\n"
                                             "Content-Type: text/plain\r\n", body="hello"))
    assert lines[0] == "INVITE sip:bob@127.0.0.1:5060 SIP/2.0"
    # our Via on top; the default port 5060 is left out [oracle]
    assert re.fullmatch(r"Via: SIP/2\.0/UDP 127\.0\.0\.1;branch=z9hG4bK[^;]+", lines[1])
    assert lines[2:] == ["Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1",
                         "From: <sip:alice@example.com>;tag=ft1", "To: <sip:bob@example.com>",
                         "Call-ID: cid-1", "CSeq: 1 INVITE", "Max-Forwards: 70",
                         "Content-Type: text/plain", "Content-Length: 5", "", "hello"]


def test_our_via_names_a_non_default_port() -> None:
    router = make_router(listen="udp:127.0.0.1:7000")
    outs = router.handle(request(), CLIENT, ("127.0.0.1", 7000), 0.0)
    assert outs[0].data.split(b"\r\n")[1].startswith(b"Via: SIP/2.0/UDP 127.0.0.1:7000;branch=")
    assert outs[0].local == ("127.0.0.1", 7000)


def test_stateless_branch_is_stable_for_retransmissions() -> None:
    router = make_router()
    first = forwarded(router, request())[1]
    assert forwarded(router, request())[1] == first
    assert forwarded(router, request(callid="other"))[1] != first


@pytest.mark.parametrize(("via", "force", "expected"), [
    ("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1", False,
     "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1"),
    # rport present: received is added (before the params), rport filled in place
    ("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1;rport", False,
     "SIP/2.0/UDP 127.0.0.1:5070;received=127.0.0.1;branch=z9hG4bKb1;rport=5070"),
    ("SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKb1", False,
     "SIP/2.0/UDP 127.0.0.1:5070;received=127.0.0.1;rport=5070;branch=z9hG4bKb1"),
    ("SIP/2.0/UDP 127.0.0.1:5070;rport=1234;branch=z9hG4bKb1", False,
     "SIP/2.0/UDP 127.0.0.1:5070;received=127.0.0.1;rport=5070;branch=z9hG4bKb1"),
    # host differs from the source IP
    ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKb1", False,
     "SIP/2.0/UDP 10.0.0.1:5070;received=127.0.0.1;branch=z9hG4bKb1"),
    ("SIP/2.0/UDP 10.0.0.3", False, "SIP/2.0/UDP 10.0.0.3;received=127.0.0.1"),
    ("SIP/2.0/UDP LOCALHOST:5070;branch=z9hG4bKb1", False,
     "SIP/2.0/UDP LOCALHOST:5070;received=127.0.0.1;branch=z9hG4bKb1"),
    # an existing received is replaced in place (names are case-insensitive)
    ("SIP/2.0/UDP 127.0.0.1:5070;received=9.9.9.9;branch=z9hG4bKb1", False,
     "SIP/2.0/UDP 127.0.0.1:5070;received=127.0.0.1;branch=z9hG4bKb1"),
    ("SIP/2.0/UDP host.example.com;branch=z9hG4bKb1;rport;received=1.1.1.1", False,
     "SIP/2.0/UDP host.example.com;branch=z9hG4bKb1;rport=5070;received=127.0.0.1"),
    ("SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKb1;Received=2.2.2.2", False,
     "SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKb1;received=127.0.0.1"),
    ("SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKb1;RPORT", False,
     "SIP/2.0/UDP 10.0.0.3:5070;received=127.0.0.1;branch=z9hG4bKb1;rport=5070"),
    # blanks: received goes right before the first ';', rport is rewritten from its ';'
    ("SIP/2.0/UDP 127.0.0.1:5070 ;branch=z9hG4bKb1 ; rport", False,
     "SIP/2.0/UDP 127.0.0.1:5070 ;received=127.0.0.1;branch=z9hG4bKb1 ;rport=5070"),
    # only the first value of a multi-value line is looked at
    ("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1, SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKb2",
     False, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1, "
            "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKb2"),
    ("SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb1;rport, SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKb2",
     False, "SIP/2.0/UDP 10.0.0.2;received=127.0.0.1;branch=z9hG4bKb1;rport=5070, "
            "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKb2"),
    # force_rport(): rport in front of the received, or of the params
    ("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1", True,
     "SIP/2.0/UDP 127.0.0.1:5070;rport=5070;branch=z9hG4bKb1"),
    ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKb1", True,
     "SIP/2.0/UDP 10.0.0.1:5070;rport=5070;received=127.0.0.1;branch=z9hG4bKb1"),
    ("SIP/2.0/UDP 10.0.0.3:5070", True, "SIP/2.0/UDP 10.0.0.3:5070;rport=5070;received=127.0.0.1"),
    ("SIP/2.0/UDP 127.0.0.1:5070;received=9.9.9.9;branch=z9hG4bKb1", True,
     "SIP/2.0/UDP 127.0.0.1:5070;rport=5070;received=127.0.0.1;branch=z9hG4bKb1"),
    ("SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKb1;received=9.9.9.9", True,
     "SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKb1;rport=5070;received=127.0.0.1"),
    ("SIP/2.0/UDP 10.0.0.3:5070;received=1.1.1.1;rport=5;branch=z9hG4bKb1", True,
     "SIP/2.0/UDP 10.0.0.3:5070;received=127.0.0.1;rport=5070;branch=z9hG4bKb1"),
])
def test_received_and_rport_on_the_previous_top_via(via: str, force: bool, expected: str) -> None:
    route = TO_SINK.replace("{", "{ force_rport();", 1) if force else TO_SINK
    lines = forwarded(make_router(route), request(via=via))
    assert lines[2] == f"Via: {expected}"


def test_compact_via_keeps_its_name() -> None:
    data = request().replace(b"\r\nVia: ", b"\r\nv: ")
    lines = forwarded(make_router(), data)
    assert lines[1].startswith("Via: SIP/2.0/UDP 127.0.0.1;branch=")
    assert lines[2] == "v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1"


@pytest.mark.parametrize(("route", "first_line", "dst"), [
    (TO_SINK, "INVITE sip:bob@127.0.0.1:5060 SIP/2.0", SINK),
    ('request_route { $ru = "sip:x@127.0.0.1:5091"; forward(); }',
     "INVITE sip:x@127.0.0.1:5091 SIP/2.0", ("127.0.0.1", 5091)),
    ('request_route { $rU = "carol"; $rp = 5092; forward(); }',
     "INVITE sip:carol@127.0.0.1:5092 SIP/2.0", ("127.0.0.1", 5092)),
    # $du decides where, the R-URI is only rewritten
    ('request_route { $du = "sip:127.0.0.1:5090"; $ru = "sip:x@10.0.0.1"; forward(); }',
     "INVITE sip:x@10.0.0.1 SIP/2.0", SINK),
    ('request_route { $du = "sip:127.0.0.1:5090"; $du = $null; $rp = 5093; forward(); }',
     "INVITE sip:bob@127.0.0.1:5093 SIP/2.0", ("127.0.0.1", 5093)),
    ('request_route { forward("127.0.0.1", 5094); }',
     "INVITE sip:bob@127.0.0.1:5060 SIP/2.0", ("127.0.0.1", 5094)),
    ('request_route { $ru = "sip:x@10.0.0.1"; revert_uri(); $rp = 5095; forward(); }',
     "INVITE sip:bob@127.0.0.1:5095 SIP/2.0", ("127.0.0.1", 5095)),
    # no port in the R-URI: 5060
    ('request_route { $ru = "sip:x@127.0.0.2"; forward(); }',
     "INVITE sip:x@127.0.0.2 SIP/2.0", ("127.0.0.2", 5060)),
])
def test_destination_and_request_uri(route: str, first_line: str, dst: tuple[str, int]) -> None:
    outs = send(make_router(route), request())
    assert len(outs) == 1 and outs[0].dst == dst
    assert outs[0].data.decode().split("\r\n")[0] == first_line


def test_forward_failures_return_the_error_code() -> None:
    # [oracle] -479 (E_BAD_URI) for an unparsable URI, -478 (E_BAD_ADDRESS) when the
    # host cannot be resolved (a tel: URI has none)
    route = '''request_route {
      $du = "http://x"; $var(a) = forward();
      $du = "sip:nowhere.invalid"; $var(b) = forward();
      $du = "tel:123"; $var(c) = forward();
      sl_send_reply("500", "r $var(a) $var(b) $var(c)");
    }'''
    outs = send(make_router(route), request())
    assert [o.data.split(b"\r\n")[0] for o in outs] == [b"SIP/2.0 500 r -479 -478 -478"]


def test_route_headers_are_ignored_by_forward() -> None:
    lines = forwarded(make_router(), request(extra="Route: <sip:10.9.9.9;lr>\r\n"))
    assert "Route: <sip:10.9.9.9;lr>" in lines


def test_forward_counts_fwd_requests() -> None:
    router = make_router()
    send(router, request())
    send(router, request())
    assert router.stats.values["fwd_requests"] == 2


# --------------------------------------------------------------------------- replies
def reply(*vias: str, status: str = "200 OK") -> bytes:
    lines = "".join(f"Via: {v}\r\n" for v in vias)
    return (f"SIP/2.0 {status}\r\n{lines}From: <sip:alice@example.com>;tag=ft1\r\n"
            "To: <sip:bob@example.com>;tag=tt\r\nCall-ID: cid-1\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n").encode()


OURS = "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKsrv"
CLIENT_VIA = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1"


@pytest.mark.parametrize(("vias", "dst", "top_via"), [
    ((OURS, CLIENT_VIA), CLIENT, CLIENT_VIA),
    # received and rport of the next Via decide the address
    ((OURS, "SIP/2.0/UDP 127.0.0.1:9999;branch=z9hG4bKb1;rport=5071;received=127.0.0.3"),
     ("127.0.0.3", 5071), "SIP/2.0/UDP 127.0.0.1:9999;branch=z9hG4bKb1;rport=5071;received=127.0.0.3"),
    ((OURS, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1;rport"), CLIENT,
     "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1;rport"),
    ((OURS, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb1"), ("127.0.0.1", 5060),
     "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb1"),
    # maddr is not used [oracle]
    ((OURS, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1;maddr=127.0.0.2"), CLIENT,
     "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1;maddr=127.0.0.2"),
    # check_via=0 (Kamailio's default): the top Via is removed whoever it names [oracle]
    (("SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bK-stray", CLIENT_VIA), CLIENT, CLIENT_VIA),
    (("SIP/2.0/UDP localhost:5060;branch=z9hG4bKsrv", CLIENT_VIA), CLIENT, CLIENT_VIA),
    # the next Via names us: Kamailio sends it to itself (then drops it: no 2nd Via)
    ((CLIENT_VIA, OURS), ("127.0.0.1", 5060), OURS),
])
def test_reply_is_relayed_to_the_next_via(vias: tuple[str, ...], dst: tuple[str, int],
                                          top_via: str) -> None:
    router = make_router()
    outs = send(router, reply(*vias), src=SINK)
    assert len(outs) == 1 and outs[0].dst == dst
    lines = outs[0].data.decode().split("\r\n")
    assert lines[0] == "SIP/2.0 200 OK"
    assert lines[1] == f"Via: {top_via}"
    assert sum(line.startswith("Via:") for line in lines) == len(vias) - 1


def test_relayed_and_dropped_replies_are_counted() -> None:
    router = make_router()
    send(router, reply(OURS, CLIENT_VIA), src=SINK)
    send(router, reply(OURS), src=SINK)
    assert (router.stats.values["fwd_replies"], router.stats.values["drop_replies"]) == (1, 1)


def test_reply_with_several_vias_on_one_line() -> None:
    outs = send(make_router(), reply(f"{OURS}, {CLIENT_VIA}"), src=SINK)
    assert outs[0].dst == CLIENT
    assert outs[0].data.split(b"\r\n")[1] == f"Via: {CLIENT_VIA}".encode()


def test_reply_with_only_one_via_is_dropped() -> None:
    router = make_router()
    assert send(router, reply(OURS), src=SINK) == []
    assert send(router, reply("SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bK-stray-1"),
                src=SINK) == []


def test_check_via_drops_replies_whose_top_via_is_not_ours() -> None:
    router = make_router(globals_="check_via=1")
    stray = reply("SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bK-stray", CLIENT_VIA)
    assert send(router, stray, src=SINK) == []
    assert [o.dst for o in send(router, reply(OURS, CLIENT_VIA), src=SINK)] == [CLIENT]
    # no port in our Via means 5060, which is ours
    ours_5060 = reply("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsrv", CLIENT_VIA)
    assert len(send(router, ours_5060, src=SINK)) == 1
