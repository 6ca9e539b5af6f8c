"""tm through Router.handle(): t_relay() and friends, tm's routes, local requests.

Expectations come from Kamailio 5.6.3 running the same cfgs (listen
127.0.0.1:58000, caller 127.0.0.1:58010, callees 127.0.0.1:58011/58012,
default tm parameters unless set): the datagrams on the wire, byte for byte
except Kamailio's Via branches (compared normalised), and the script's view
($var counters, return codes). Time is the ``now`` of Router.handle() and of
the timer source, so timers run at fake time.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from siprouter.config.loader import build_router, load
from siprouter.config.parser import parse_text
from siprouter.modules.tm import TmModule
from siprouter.routing.context import Outgoing
from siprouter.routing.router import Router
from siprouter.sip.message import parse_message
from siprouter.tm.table import TransactionTable

LOCAL = ("127.0.0.1", 58000)
CALLER = ("127.0.0.1", 58010)
CALLEE = ("127.0.0.1", 58011)
CALLEE2 = ("127.0.0.1", 58012)
T0 = 500.0
SERVER = "Server: kamailio (5.6.3 (x86_64/linux))"
TAG = "7fd5c3bcbacef65dcb1f020d25288a87-14ac8815"    # tm To-tag for the default INVITE


def make_router(route: str, params: str = "") -> Router:
    text = "\n".join([
        "listen=udp:127.0.0.1:58000", "auto_aliases=no",
        *(f'loadmodule "{m}.so"' for m in ("tm", "sl", "rr", "textops", "siputils", "pv",
                                          "xlog", "corex", "maxfwd")),
        params, route])
    router = build_router(parse_text(text))
    for module in router.modules.values():
        module.child_init(0)

    def no_dns(host: str) -> str:
        if re.fullmatch(r"[0-9.]+", host):
            return host
        raise OSError(f"cannot resolve {host}")
    router.resolve = no_dns
    return router


def request(method: str = "INVITE", *, callid: str = "c1", branch: str = "z9hG4bKa1",
            to_tag: str = "", ruri: str = "sip:bob@127.0.0.1:58000", extra: str = "",
            contact: bool = True) -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    return (f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:58010;branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
            f"To: <sip:bob@127.0.0.1>{tag}\r\n"
            f"Call-ID: {callid}\r\nCSeq: 1 {method}\r\n"
            + ("Contact: <sip:alice@127.0.0.1:58010>\r\n" if contact else "")
            + f"{extra}Content-Length: 0\r\n\r\n").encode()


def reply_to(data: bytes, code: int, reason: str, to_tag: str = "t1",
             method: str | None = None) -> bytes:
    """A callee's reply to a request the proxy sent."""
    lines = [f"SIP/2.0 {code} {reason}"]
    for line in data.decode().split("\r\n")[1:]:
        if not line:
            break
        name = line.split(":", 1)[0].lower()
        if name in ("via", "from", "call-id", "record-route"):
            lines.append(line)
        elif name == "cseq":
            lines.append(line if method is None else f"CSeq: 1 {method}")
        elif name == "to":
            lines.append(line + (f";tag={to_tag}" if ";tag=" not in line else ""))
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def send(router: Router, data: bytes, src: tuple[str, int] = CALLER,
         now: float = T0) -> list[Outgoing]:
    return router.handle(data, src, LOCAL, now)


def tick(router: Router, now: float) -> list[Outgoing]:
    out: list[Outgoing] = []
    for source in router.timers:
        out.extend(source.on_deadline(now))
    return out


def lines(out: list[Outgoing]) -> list[tuple[tuple[str, int], str]]:
    return [(item.dst, item.data.decode().split("\r\n", 1)[0]) for item in out]


def text(item: Outgoing) -> str:
    return item.data.decode("latin-1")


def norm(value: str) -> str:
    return re.sub(r"branch=z9hG4bK(?:sr\d+\.[0-9a-f]+|[0-9a-f]+\.[0-9a-f]+)\.(\d+)",
                  r"branch=z9hG4bK<X>.\1", value)


def tm_of(router: Router) -> TmModule:
    module = router.modules["tm"]
    assert isinstance(module, TmModule)
    return module


HUNDRED = ("SIP/2.0 100 trying -- your call is important to us\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
           "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
           "To: <sip:bob@127.0.0.1>\r\n"
           "Call-ID: c1\r\n"
           "CSeq: 1 INVITE\r\n"
           f"{SERVER}\r\n"
           "Content-Length: 0\r\n\r\n")


# --------------------------------------------------------------------------- a call
CALL = r'''
modparam("tm", "fr_timer", 1500)
request_route {
  if (is_method("ACK") && t_check_trans()) { $var(ack_seen) = 1; }
  if (has_totag()) { if (loose_route()) { t_relay(); exit; } t_relay(); exit; }
  if (is_method("INVITE")) record_route();
  $du = "sip:127.0.0.1:58011";
  if (!t_relay()) { sl_reply_error(); }
  $var(after) = $var(after) + 1;
  exit;
}
'''


def test_invite_call_flow_like_kamailio() -> None:
    router = make_router(CALL)
    out = send(router, request())
    assert [item.dst for item in out] == [CALLER, CALLEE]
    assert text(out[0]) == HUNDRED
    assert norm(text(out[1])) == (
        "INVITE sip:bob@127.0.0.1:58000 SIP/2.0\r\n"
        "Record-Route: <sip:127.0.0.1:58000;lr;ftag=ft1>\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;received=127.0.0.1;branch=z9hG4bKa1;rport=58010\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:alice@127.0.0.1:58010>\r\n"
        "Content-Length: 0\r\n\r\n")
    assert out[1].local == LOCAL
    invite = out[1].data
    ringing = send(router, reply_to(invite, 180, "Ringing", "uastag"), CALLEE, T0 + 0.3)
    assert [text(item) for item in ringing] == [
        "SIP/2.0 180 Ringing\r\n"
        "Record-Route: <sip:127.0.0.1:58000;lr;ftag=ft1>\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;received=127.0.0.1;branch=z9hG4bKa1;rport=58010\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>;tag=uastag\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"]
    busy = send(router, reply_to(invite, 486, "Busy Here", "uastag"), CALLEE, T0 + 0.5)
    assert [item.dst for item in busy] == [CALLEE, CALLER]
    assert norm(text(busy[0])) == (
        "ACK sip:bob@127.0.0.1:58000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.0\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>;tag=uastag\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n")
    assert text(busy[1]).startswith("SIP/2.0 486 Busy Here\r\nRecord-Route: <sip:127.0.0.1:")
    assert router.var_store["after"] == 1
    # the INVITE again: the 486 again, and t_relay() returns 1 (the script goes on)
    again = send(router, request(), now=T0 + 0.8)
    assert [item.data for item in again] == [busy[1].data]
    assert router.var_store["after"] == 2
    # timer G retransmits the 486 until the ACK
    assert lines(tick(router, T0 + 1.0)) == [(CALLER, "SIP/2.0 486 Busy Here")]
    # the ACK: t_check_trans() absorbs it and ends the script
    assert send(router, request("ACK", to_tag="uastag"), now=T0 + 1.2) == []
    assert "ack_seen" not in router.var_store
    assert tick(router, T0 + 2.0) == []


def test_2xx_e2e_ack_and_bye() -> None:
    router = make_router(CALL)
    invite = send(router, request())[1].data
    ok = send(router, reply_to(invite, 200, "OK", "t1"), CALLEE, T0 + 0.1)
    assert lines(ok) == [(CALLER, "SIP/2.0 200 OK")]
    assert lines(send(router, reply_to(invite, 200, "OK", "t1"), CALLEE, T0 + 0.6)) == \
        [(CALLER, "SIP/2.0 200 OK")]
    # the ACK of the 2xx follows the route set and is relayed statelessly
    ack = request("ACK", to_tag="t1", branch="z9hG4bKack1",
                  ruri="sip:bob@127.0.0.1:58011",
                  extra="Route: <sip:127.0.0.1:58000;lr;ftag=ft1>\r\n")
    relayed = send(router, ack, now=T0 + 0.7)
    assert lines(relayed) == [(CALLEE, "ACK sip:bob@127.0.0.1:58011 SIP/2.0")]
    assert "Route:" not in text(relayed[0])
    assert "ack_seen" not in router.var_store      # t_check_trans() was -1
    bye = request("BYE", to_tag="t1", branch="z9hG4bKbye1", ruri="sip:bob@127.0.0.1:58011",
                  extra="Route: <sip:127.0.0.1:58000;lr;ftag=ft1>\r\n")
    out = send(router, bye, now=T0 + 5)
    assert lines(out) == [(CALLEE, "BYE sip:bob@127.0.0.1:58011 SIP/2.0")]   # no 100
    assert ";branch=z9hG4bKsr0." in text(out[0])
    done = send(router, reply_to(out[0].data, 200, "OK", "t1"), CALLEE, T0 + 5.1)
    assert lines(done) == [(CALLER, "SIP/2.0 200 OK")]
    assert tm_of(router).stat_values()["2xx_transactions"] == 3


# --------------------------------------------------------------------------- failover
FAILOVER = r'''
modparam("tm", "fr_timer", 1500)
modparam("tm", "fr_inv_timer", 2500)
request_route {
  if (has_totag()) { t_relay(); exit; }
  $du = "sip:127.0.0.1:58011";
  setflag(3);
  $avp(tries) = 1;
  $xavp(ds=>uri) = "sip:127.0.0.1:58012";
  t_on_failure("F");
  if (!t_relay()) { sl_reply_error(); }
  exit;
}
failure_route[F] {
  $var(failures) = $var(failures) + 1;
  $var(du) = $du;
  $var(flag3) = 0; if (isflagset(3)) { $var(flag3) = 1; }
  $var(timeout) = 0; if (t_branch_timeout()) { $var(timeout) = 1; }
  $var(replied) = 0; if (t_branch_replied()) { $var(replied) = 1; }
  $var(s408) = 0; if (t_check_status("408")) { $var(s408) = 1; }
  $var(canceled) = 0; if (t_is_canceled()) { $var(canceled) = 1; }
  $var(tries) = $avp(tries);
  if ($avp(tries) < 2) {
    $avp(tries) = 2;
    $du = $xavp(ds=>uri);
    t_on_failure("F");
    t_relay();
  }
}
'''


def test_timeout_failover_in_failure_route() -> None:
    router = make_router(FAILOVER)
    out = send(router, request())
    assert lines(out) == [(CALLER, "SIP/2.0 100 trying -- your call is important to us"),
                          (CALLEE, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    failover = tick(router, T0 + 1.5)
    assert lines(failover) == [(CALLEE2, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert norm(text(failover[0])) == (
        "INVITE sip:bob@127.0.0.1:58000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.1\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;received=127.0.0.1;branch=z9hG4bKa1;rport=58010\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:alice@127.0.0.1:58010>\r\n"
        "Content-Length: 0\r\n\r\n")
    vs = router.var_store
    assert (vs["failures"], vs["du"], vs["flag3"], vs["timeout"], vs["replied"], vs["s408"],
            vs["canceled"], vs["tries"]) == (1, "sip:127.0.0.1:58011", 1, 1, 0, 1, 0, 1)
    assert lines(tick(router, T0 + 2.0)) == [(CALLEE2, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    final = tick(router, T0 + 3.0)
    assert [text(item) for item in final] == [
        "SIP/2.0 408 Request Timeout\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n"]
    # the second failure route saw the t_relay()-time $du again and the AVP it changed
    assert (vs["failures"], vs["du"], vs["tries"]) == (2, "sip:127.0.0.1:58011", 2)


def test_failover_on_a_500_after_a_provisional() -> None:
    router = make_router(FAILOVER)
    invite = send(router, request())[1].data
    send(router, reply_to(invite, 180, "Ringing"), CALLEE, T0 + 0.1)
    out = send(router, reply_to(invite, 500, "Server Error"), CALLEE, T0 + 0.2)
    assert lines(out) == [(CALLEE, "ACK sip:bob@127.0.0.1:58000 SIP/2.0"),
                          (CALLEE2, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    vs = router.var_store
    assert (vs["timeout"], vs["replied"], vs["s408"]) == (0, 1, 0)
    ok = send(router, reply_to(out[1].data, 200, "OK", "t2"), CALLEE2, T0 + 0.3)
    assert lines(ok) == [(CALLER, "SIP/2.0 200 OK")]


def test_failure_routes_see_the_relay_time_destination_and_keep_avps_flags_xavps() -> None:
    """Verified on 5.6.3: each failure_route starts with the $du/$ru of the first
    t_relay(); AVPs, XAVPs and flags changed in one are there in the next; a
    branch whose first reply is final counts as not replied."""
    router = make_router(r'''
modparam("tm", "fr_timer", 800)
request_route {
  $du = "sip:127.0.0.1:58011"; setflag(3); $avp(tries) = 1;
  $xavp(ds=>uri) = "sip:127.0.0.1:58012";
  t_on_failure("F"); t_relay(); exit;
}
failure_route[F] {
  $var(f) = 0; if (isflagset(3)) { $var(f) = 1; }
  $var(g) = 0; if (isflagset(4)) { $var(g) = 1; }
  $var(t) = 0; if (t_branch_timeout()) { $var(t) = 1; }
  $var(r) = 0; if (t_branch_replied()) { $var(r) = 1; }
  $var(seen) = $var(seen) + "|" + $du + " " + $ru + " " + $avp(tries) + " "
    + $xavp(ds=>uri) + " " + $var(f) + $var(g) + $var(t) + $var(r);
  setflag(4);
  if ($avp(tries) < 3) {
    $avp(tries) = $avp(tries) + 1;
    $xavp(ds[0]=>uri) = "sip:127.0.0.1:5801" + $avp(tries);
    $du = $xavp(ds=>uri);
    $ru = "sip:changed@127.0.0.1";
    t_on_failure("F");
    t_relay();
  }
}''')
    router.var_store["seen"] = ""
    first = send(router, request("MESSAGE", contact=False))
    out = send(router, reply_to(first[0].data, 500, "Err"), CALLEE, T0 + 0.2)
    assert lines(out) == [(CALLEE2, "MESSAGE sip:changed@127.0.0.1 SIP/2.0")]
    assert lines(tick(router, T0 + 0.7)) == [(CALLEE2, "MESSAGE sip:changed@127.0.0.1 SIP/2.0")]
    assert lines(tick(router, T0 + 1.0)) == [(("127.0.0.1", 58013),
                                              "MESSAGE sip:changed@127.0.0.1 SIP/2.0")]
    tick(router, T0 + 1.5)
    assert lines(tick(router, T0 + 1.8)) == [(CALLER, "SIP/2.0 408 Request Timeout")]
    base = "sip:127.0.0.1:58011 sip:bob@127.0.0.1:58000"
    assert router.var_store["seen"].split("|")[1:] == [
        f"{base} 1 sip:127.0.0.1:58012 1000",
        f"{base} 2 sip:127.0.0.1:58012 1110",
        f"{base} 3 sip:127.0.0.1:58013 1110"]


def test_failure_route_t_relay_needs_a_new_destination() -> None:
    router = make_router(r'''
modparam("tm", "fr_timer", 800)
request_route { $du = "sip:127.0.0.1:58011"; t_on_failure("F"); t_relay(); exit; }
failure_route[F] { t_on_failure("G"); t_relay(); $var(rc) = $rc; }
failure_route[G] { $var(g) = 1; }
''')
    send(router, request("MESSAGE", contact=False))
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE, "MESSAGE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert lines(tick(router, T0 + 0.8)) == [(CALLER, "SIP/2.0 408 Request Timeout")]
    assert router.var_store["rc"] == -1 and "g" not in router.var_store


# --------------------------------------------------------------------------- CANCEL
CANCEL = r'''
request_route {
  if (is_method("CANCEL")) {
    if (t_check_trans()) { $var(matched) = $var(matched) + 1; t_relay(); }
    exit;
  }
  if (has_totag()) { t_relay(); exit; }
  record_route();
  $du = "sip:127.0.0.1:58011";
  t_on_failure("F");
  t_relay();
  exit;
}
failure_route[F] { if (t_is_canceled()) { $var(canceled) = 1; } }
'''


def test_cancel_of_a_ringing_call() -> None:
    router = make_router(CANCEL)
    route = "Route: <sip:127.0.0.1:58000;lr>\r\n"
    invite = send(router, request(extra=route))[1].data
    send(router, reply_to(invite, 180, "Ringing", "uastag"), CALLEE, T0 + 0.1)
    cancel = request("CANCEL", extra=route, contact=False)
    out = send(router, cancel, now=T0 + 0.2)
    assert [item.dst for item in out] == [CALLEE, CALLER]
    assert norm(text(out[0])) == (
        "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.0\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 CANCEL\r\n"
        "Route: <sip:127.0.0.1:58000;lr>\r\n"
        "Content-Length: 0\r\n\r\n")
    assert text(out[1]) == (
        "SIP/2.0 200 canceling\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 CANCEL\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n")
    assert send(router, reply_to(out[0].data, 200, "OK", "uastag"), CALLEE, T0 + 0.3) == []
    done = send(router, reply_to(invite, 487, "Request Terminated", "uastag"), CALLEE, T0 + 0.3)
    assert lines(done) == [(CALLEE, "ACK sip:bob@127.0.0.1:58000 SIP/2.0"),
                           (CALLER, "SIP/2.0 487 Request Terminated")]
    assert "Route: <sip:127.0.0.1:58000;lr>\r\n" in text(done[0])
    assert router.var_store["canceled"] == 1
    assert send(router, request("ACK", to_tag="uastag"), now=T0 + 0.4) == []
    # a retransmitted CANCEL gets its 200 again
    assert [item.data for item in send(router, cancel, now=T0 + 0.6)] == [out[1].data]
    assert router.var_store["matched"] == 2


def test_cancel_before_any_provisional() -> None:
    router = make_router(CANCEL, 'modparam("tm", "fr_timer", 1500)')
    send(router, request())
    out = send(router, request("CANCEL", contact=False), now=T0 + 0.1)
    assert lines(out) == [(CALLER, "SIP/2.0 200 canceling")]
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]
    final = tick(router, T0 + 1.5)
    assert lines(final) == [(CALLER, "SIP/2.0 487 Request Terminated")]
    assert f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n" in text(final[0])
    assert SERVER in text(final[0])
    assert router.var_store["canceled"] == 1


def test_cancel_without_invite_is_not_relayed() -> None:
    router = make_router(CANCEL)
    assert send(router, request("CANCEL", contact=False)) == []
    assert "matched" not in router.var_store


def test_cancel_after_t_newtran_and_unmatched_cancel() -> None:
    router = make_router(r'''
request_route {
  if (is_method("CANCEL")) { $du = "sip:127.0.0.1:58011"; t_newtran(); t_relay(); exit; }
  $du = "sip:127.0.0.1:58011"; t_relay(); exit;
}''')
    invite = send(router, request())[1].data
    send(router, reply_to(invite, 180, "Ringing"), CALLEE, T0 + 0.1)
    out = send(router, request("CANCEL", contact=False), now=T0 + 0.2)
    assert lines(out) == [(CALLEE, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0"),
                          (CALLER, "SIP/2.0 200 canceling")]
    # a CANCEL for nothing we know is relayed statefully (unmatched_cancel=0)
    stray = send(router, request("CANCEL", callid="other", branch="z9hG4bKo", contact=False),
                 now=T0 + 0.3)
    assert lines(stray) == [(CALLEE, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert ";branch=z9hG4bKsr0." in text(stray[0])


# --------------------------------------------------------------------------- errors
def test_failed_relay_replies_twice_like_kamailio() -> None:
    """t_relay() to an unresolvable host: -478; the script's sl_reply_error() reply
    (its error code was reset by xlog()) and tm's own error reply."""
    router = make_router(r'''
request_route {
  $du = "sip:nowhere.invalid";
  if (!t_relay()) { $var(rc) = $rc; xlog("L_INFO", "relay failed\n"); sl_reply_error(); }
  exit;
}''')
    out = send(router, request())
    assert lines(out)[0] == (CALLER, "SIP/2.0 100 trying -- your call is important to us")
    assert sorted(line for _dst, line in lines(out)[1:]) == [
        "SIP/2.0 478 Unresolvable destination (478/TM)",
        "SIP/2.0 500 I'm terribly sorry, server error occurred (1/SL)"]
    assert router.var_store["rc"] == -478
    tm_reply = next(text(item) for item in out if "(478/TM)" in text(item))
    assert f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n" in tm_reply
    assert lines(tick(router, T0 + 0.5)) == [(CALLER, "SIP/2.0 478 Unresolvable destination "
                                                      "(478/TM)")]


def test_sl_reply_error_right_after_t_relay() -> None:
    router = make_router(r'''
request_route { $du = "sip:nowhere.invalid"; if (!t_relay()) { sl_reply_error(); } exit; }''')
    out = send(router, request("MESSAGE"))
    assert sorted(line for _dst, line in lines(out)) == [
        "SIP/2.0 478 Unresolvable destination (478/SL)",
        "SIP/2.0 478 Unresolvable destination (478/TM)"]


def test_t_reply_after_a_failed_relay_replaces_the_error_reply() -> None:
    router = make_router(r'''
request_route { $du = "sip:nowhere.invalid"; if (!t_relay()) { t_reply("503", "Try Later"); }
  exit; }''')
    out = send(router, request("MESSAGE"))
    assert lines(out) == [(CALLER, "SIP/2.0 503 Try Later")]
    stats = tm_of(router).stat_values()
    assert (stats["rpl_sent"], stats["4xx_transactions"], stats["5xx_transactions"]) == (1, 0, 1)


def test_t_newtran_t_reply_and_retransmissions() -> None:
    router = make_router(r'''
request_route {
  $var(runs) = $var(runs) + 1;
  if (t_check_trans()) { $var(found) = 1; }
  t_newtran();
  $var(newtran) = $rc;
  t_reply("404", "Not here");
  $var(treply) = $rc;
  exit;
}''')
    msg = request("MESSAGE", contact=False)
    out = send(router, msg)
    assert [text(item) for item in out] == [
        "SIP/2.0 404 Not here\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKa1;rport=58010;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>;tag={TAG}\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 MESSAGE\r\n"
        f"{SERVER}\r\n"
        "Content-Length: 0\r\n\r\n"]
    assert (router.var_store["newtran"], router.var_store["treply"]) == (1, 1)
    # the retransmission: t_check_trans() resends the 404 and ends the script
    again = send(router, msg, now=T0 + 0.3)
    assert [item.data for item in again] == [out[0].data]
    assert router.var_store["runs"] == 2 and "found" not in router.var_store


def test_t_reply_needs_a_transaction_and_send_reply_falls_back() -> None:
    router = make_router(r'''
request_route { t_reply("404", "x"); $var(rc) = $rc; send_reply("403", "sr"); exit; }''')
    out = send(router, request("MESSAGE", contact=False))
    assert router.var_store["rc"] == -1
    assert lines(out) == [(CALLER, "SIP/2.0 403 sr")]
    assert "-" not in text(out[0]).split("tag=")[-1].split("\r\n")[0]   # sl's To-tag


def test_send_reply_is_stateful_with_a_transaction() -> None:
    router = make_router(r'''
request_route { t_newtran(); send_reply("486", "Busy"); exit; }''')
    out = send(router, request())
    assert lines(out) == [(CALLER, "SIP/2.0 486 Busy")]
    assert f"tag={TAG}" in text(out[0])
    assert lines(tick(router, T0 + 0.5)) == [(CALLER, "SIP/2.0 486 Busy")]   # stateful


def test_t_relay_to_a_fixed_host_and_port() -> None:
    router = make_router(r'''
request_route { t_relay("127.0.0.1", "58012"); $var(rc) = $rc; exit; }''')
    out = send(router, request("MESSAGE"))
    assert lines(out) == [(CALLEE2, "MESSAGE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert router.var_store["rc"] == 1


def test_non_invite_timeout() -> None:
    router = make_router(r'''
modparam("tm", "fr_timer", 1500)
request_route { $du = "sip:127.0.0.1:58011"; t_relay(); exit; }''')
    assert lines(send(router, request("MESSAGE"))) == [
        (CALLEE, "MESSAGE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE, "MESSAGE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert lines(tick(router, T0 + 1.5)) == [(CALLER, "SIP/2.0 408 Request Timeout")]
    assert tick(router, T0 + 3) == []


def test_t_set_fr() -> None:
    router = make_router(r'''
request_route { $du = "sip:127.0.0.1:58011"; t_set_fr(0, 700); t_relay(); exit; }''')
    send(router, request("MESSAGE"))
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE, "MESSAGE sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert lines(tick(router, T0 + 0.7)) == [(CALLER, "SIP/2.0 408 Request Timeout")]


def test_t_set_fr_on_a_running_transaction_restarts_its_branch_timers() -> None:
    # Kamailio's change_fr(): after a provisional reply the INVITE branch runs
    # on the fr_inv timer, restarted from now; 0 leaves a value unchanged
    router = make_router(r'''
request_route { $du = "sip:127.0.0.1:58011"; t_on_reply("R"); t_relay(); exit; }
onreply_route[R] { if ($rs == 180) { t_set_fr(2000, 0); } }''')
    sent = send(router, request("INVITE"))
    invite = next(item.data for item in sent if item.dst == CALLEE)
    assert lines(send(router, reply_to(invite, 180, "Ringing"), CALLEE, T0 + 0.1)) == [
        (CALLER, "SIP/2.0 180 Ringing")]
    assert [line for line in lines(tick(router, T0 + 2.0)) if line[0] == CALLER] == []
    timed_out = lines(tick(router, T0 + 2.2))
    assert (CALLER, "SIP/2.0 408 Request Timeout") in timed_out
    assert (CALLEE, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0") in timed_out


def test_t_set_fr_after_a_provisional_reply_shortens_a_running_timer() -> None:
    router = make_router(r'''
request_route { $du = "sip:127.0.0.1:58011"; t_on_reply("R"); t_relay(); exit; }
onreply_route[R] { t_set_fr(0, 500); }''')
    sent = send(router, request("MESSAGE"))
    message = next(item.data for item in sent if item.dst == CALLEE)
    send(router, reply_to(message, 100, "Trying"), CALLEE, T0 + 0.1)
    assert [line for line in lines(tick(router, T0 + 0.55)) if line[0] == CALLER] == []
    assert lines(tick(router, T0 + 0.65)) == [(CALLER, "SIP/2.0 408 Request Timeout")]


def test_t_reset_fr_on_a_running_transaction_restores_the_defaults() -> None:
    router = make_router(r'''
request_route { $du = "sip:127.0.0.1:58011"; t_set_fr(0, 700); t_on_reply("R"); t_relay(); exit; }
onreply_route[R] { t_reset_fr(); }''')
    sent = send(router, request("MESSAGE"))
    message = next(item.data for item in sent if item.dst == CALLEE)
    send(router, reply_to(message, 100, "Trying"), CALLEE, T0 + 0.1)
    assert [line for line in lines(tick(router, T0 + 1.0)) if line[0] == CALLER] == []
    assert lines(tick(router, T0 + 30.2)) == [(CALLER, "SIP/2.0 408 Request Timeout")]


# --------------------------------------------------------------------------- tm routes
ROUTES = r'''
request_route {
  if (has_totag()) { t_relay(); exit; }
  record_route();
  $ru = "sip:fork@127.0.0.1:58011";
  append_branch("sip:b2@127.0.0.1:58012");
  t_on_reply("R");
  t_on_branch("B");
  t_on_failure("F");
  t_relay();
  exit;
}
branch_route[B] {
  $var(branches) = $var(branches) + 1;
  if ($ru =~ "b2") { append_hf("X-B: 2\r\n"); }
  if ($ru =~ "drop") { drop; }
}
onreply_route[R] {
  $var(replies) = $var(replies) + 1;
  if ($rs == 181) { drop; }
}
failure_route[F] {
  $var(best404) = 0; if (t_check_status("404")) { $var(best404) = 1; }
  $var(best603) = 0; if (t_check_status("603")) { $var(best603) = 1; }
}
'''


def test_fork_with_branch_route_and_aggregation() -> None:
    router = make_router(ROUTES)
    out = send(router, request())
    assert lines(out)[1:] == [(CALLEE, "INVITE sip:fork@127.0.0.1:58011 SIP/2.0"),
                              (CALLEE2, "INVITE sip:b2@127.0.0.1:58012 SIP/2.0")]
    assert "X-B: 2\r\n" not in text(out[1])
    assert text(out[2]).endswith("Content-Length: 0\r\nX-B: 2\r\n\r\n")
    assert ";branch=z9hG4bKsr0." in text(out[2]) and text(out[2]).count(".1\r\n") == 1
    assert router.var_store["branches"] == 2
    sent = send(router, reply_to(out[1].data, 486, "Busy Here", "t1"), CALLEE, T0 + 0.1)
    assert lines(sent) == [(CALLEE, "ACK sip:fork@127.0.0.1:58011 SIP/2.0")]
    sent = send(router, reply_to(out[2].data, 404, "Not Found", "t2"), CALLEE2, T0 + 0.2)
    assert lines(sent) == [(CALLEE2, "ACK sip:b2@127.0.0.1:58012 SIP/2.0"),
                           (CALLER, "SIP/2.0 404 Not Found")]
    assert router.var_store["best404"] == 1 and router.var_store["replies"] == 2


def test_append_branch_with_uri_takes_the_current_du() -> None:
    """Kamailio's append_branch("uri") copies $du into the new branch (and keeps it)."""
    router = make_router(r'''
request_route {
  $ru = "sip:a@127.0.0.1:58011"; $du = "sip:127.0.0.1:58012";
  append_branch("sip:b@10.0.0.9");
  t_relay(); exit;
}''')
    out = send(router, request())
    assert lines(out)[1:] == [(CALLEE2, "INVITE sip:a@127.0.0.1:58011 SIP/2.0"),
                              (CALLEE2, "INVITE sip:b@10.0.0.9 SIP/2.0")]


def test_onreply_route_drops_provisional_replies_only() -> None:
    router = make_router(ROUTES)
    out = send(router, request())
    assert send(router, reply_to(out[1].data, 181, "Forwarded"), CALLEE, T0 + 0.1) == []
    assert lines(send(router, reply_to(out[1].data, 180, "Ringing"), CALLEE, T0 + 0.1)) == [
        (CALLER, "SIP/2.0 180 Ringing")]
    # the 200: the other branch never answered, so it gets no CANCEL
    ok = send(router, reply_to(out[1].data, 200, "OK"), CALLEE, T0 + 0.2)
    assert lines(ok) == [(CALLER, "SIP/2.0 200 OK")]
    assert router.var_store["replies"] == 3


def test_2xx_cancels_the_ringing_fork_with_a_reason() -> None:
    router = make_router(ROUTES)
    out = send(router, request())
    send(router, reply_to(out[2].data, 180, "Ringing", "t2"), CALLEE2, T0 + 0.1)
    ok = send(router, reply_to(out[1].data, 200, "OK", "t1"), CALLEE, T0 + 0.2)
    assert lines(ok) == [(CALLER, "SIP/2.0 200 OK"),
                         (CALLEE2, "CANCEL sip:b2@127.0.0.1:58012 SIP/2.0")]
    assert norm(text(ok[1])) == (
        "CANCEL sip:b2@127.0.0.1:58012 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bK<X>.1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 CANCEL\r\n"
        "Content-Length: 0\r\n"
        'Reason: SIP;cause=200;text="Call completed elsewhere"\r\n\r\n')


def test_6xx_ends_the_fork() -> None:
    router = make_router(ROUTES)
    out = send(router, request())
    send(router, reply_to(out[2].data, 180, "Ringing", "t2"), CALLEE2, T0 + 0.1)
    declined = send(router, reply_to(out[1].data, 603, "Decline", "t1"), CALLEE, T0 + 0.2)
    assert lines(declined) == [(CALLEE, "ACK sip:fork@127.0.0.1:58011 SIP/2.0"),
                               (CALLEE2, "CANCEL sip:b2@127.0.0.1:58012 SIP/2.0")]
    assert text(declined[1]).endswith("Reason: SIP;cause=603\r\n\r\n")
    done = send(router, reply_to(out[2].data, 487, "Request Terminated", "t2"), CALLEE2, T0 + 0.3)
    assert lines(done) == [(CALLEE2, "ACK sip:b2@127.0.0.1:58012 SIP/2.0"),
                           (CALLER, "SIP/2.0 603 Decline")]
    assert router.var_store["best603"] == 1


def test_branch_route_can_drop_a_branch() -> None:
    router = make_router(ROUTES.replace("sip:b2@", "sip:drop@"))
    out = send(router, request())
    assert lines(out)[1:] == [(CALLEE, "INVITE sip:fork@127.0.0.1:58011 SIP/2.0")]


def test_503_becomes_500() -> None:
    router = make_router(CALL)
    invite = send(router, request())[1].data
    out = send(router, reply_to(invite, 503, "Service Unavailable"), CALLEE, T0 + 0.1)
    assert lines(out) == [(CALLEE, "ACK sip:bob@127.0.0.1:58000 SIP/2.0"),
                          (CALLER, "SIP/2.0 500 Service Unavailable")]
    assert SERVER in text(out[1]) and f"tag={TAG}" in text(out[1])


def test_fr_inv_timeout_cancels_the_branch() -> None:
    router = make_router(CALL, 'modparam("tm", "fr_inv_timer", 1500)')
    invite = send(router, request())[1].data
    send(router, reply_to(invite, 180, "Ringing"), CALLEE, T0 + 0.2)
    out = tick(router, T0 + 1.7)
    assert lines(out) == [(CALLER, "SIP/2.0 408 Request Timeout"),
                          (CALLEE, "CANCEL sip:bob@127.0.0.1:58000 SIP/2.0")]
    assert "Reason:" not in text(out[1])


def test_unknown_replies_go_stateless() -> None:
    router = make_router(CALL)
    foreign = (b"SIP/2.0 200 OK\r\n"
               b"Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bKsr0.99.0\r\n"
               b"Via: SIP/2.0/UDP 127.0.0.1:58010;branch=z9hG4bKzz\r\n"
               b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: nope\r\n"
               b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert lines(send(router, foreign, CALLEE)) == [(CALLER, "SIP/2.0 200 OK")]


def test_reply_route_sees_the_transaction() -> None:
    router = make_router(CALL.replace("request_route", r'''
reply_route { if (t_check_trans()) { $var(known) = $var(known) + 1; } }
request_route''', 1))
    invite = send(router, request())[1].data
    send(router, reply_to(invite, 180, "Ringing"), CALLEE, T0 + 0.1)
    assert router.var_store["known"] == 1


# --------------------------------------------------------------------------- the module
def test_router_hooks_are_installed() -> None:
    router = make_router(CALL)
    assert router.steer_requests
    assert router.reply_owner is TransactionTable.reply_owner
    assert tm_of(router).table in router.timers
    invite = send(router, request())[1].data
    assert router.reply_owner(parse_message(reply_to(invite, 200, "OK"))) == 0


def test_unknown_parameter_is_an_error() -> None:
    from siprouter.config.errors import CfgError

    with pytest.raises(CfgError, match="unknown parameter 'no_such_param' of module 'tm'"):
        make_router(CALL, 'modparam("tm", "no_such_param", 1)')


def test_t_check_trans_is_not_allowed_in_failure_route() -> None:
    from siprouter.config.errors import CfgError

    with pytest.raises(CfgError, match="t_check_trans"):
        make_router("request_route { exit; }\nfailure_route[F] { t_check_trans(); }")


def test_local_request() -> None:
    router = make_router("request_route { exit; }", 'modparam("tm", "fr_timer", 1000)')
    tm = tm_of(router)
    results: list[tuple[int, str | None]] = []
    out = tm.local_request("OPTIONS", "sip:127.0.0.1:58011", from_uri="sip:pinger@localhost",
                           now=T0, on_final=lambda code, reason, msg: results.append(
                               (code, reason)))
    assert lines(out) == [(CALLEE, "OPTIONS sip:127.0.0.1:58011 SIP/2.0")]
    sent = text(out[0])
    assert re.fullmatch(
        r"OPTIONS sip:127.0.0.1:58011 SIP/2.0\r\n"
        r"Via: SIP/2.0/UDP 127.0.0.1:58000;branch=z9hG4bKsr0\.[0-9a-f]+\.0\r\n"
        r"To: <sip:127.0.0.1:58011>\r\n"
        r"From: <sip:pinger@localhost>;tag=[0-9a-f]{32}-[0-9a-f]{8}\r\n"
        r"CSeq: 10 OPTIONS\r\n"
        r"Call-ID: [0-9a-f]{16}-\d+@127.0.0.1\r\n"
        r"Max-Forwards: 70\r\n"
        r"Content-Length: 0\r\n"
        r"User-Agent: kamailio \(5.6.3 \(x86_64/linux\)\)\r\n\r\n", sent)
    assert send(router, reply_to(out[0].data, 200, "OK"), CALLEE, T0 + 0.1) == []
    assert results == [(200, "OK")]
    second = tm.local_request("OPTIONS", "sip:127.0.0.1:58012", from_uri="sip:p@l", now=T0,
                              on_final=lambda code, reason, msg: results.append((code, reason)))
    assert text(second[0]).split("Call-ID: ")[1] != sent.split("Call-ID: ")[1]
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE2, "OPTIONS sip:127.0.0.1:58012 SIP/2.0")]
    assert tick(router, T0 + 1.0) == []
    assert results == [(200, "OK"), (408, None)]
    bad = tm.local_request("OPTIONS", "sip:nowhere.invalid", from_uri="sip:p@l", now=T0,
                           on_final=lambda code, reason, msg: results.append((code, reason)))
    assert bad == [] and results[-1] == (500, None)


def test_statistics_and_rpc() -> None:
    router = make_router(CALL)
    invite = send(router, request())[1].data
    send(router, reply_to(invite, 200, "OK"), CALLEE, T0 + 0.1)
    tm = tm_of(router)
    stats = tm.stat_values()
    assert set(tm.exports.stats) <= set(stats)
    assert (stats["UAS_transactions"], stats["2xx_transactions"], stats["inuse_transactions"],
            stats["active_transactions"], stats["relayed_replies"], stats["local_replies"]) == \
        (1, 1, 1, 0, 1, 1)
    result = tm.rpc_stats([])
    assert (result["current"], result["waiting"], result["total"], result["2xx"]) == (1, 1, 1, 1)


KEMI_SCRIPT = '''
import KSR as KSR

def mod_init():
    return Handler()

class Handler:
    def ksr_request_route(self, msg):
        if KSR.siputils.has_totag() > 0:
            KSR.tm.t_relay()
            return 1
        KSR.pv.sets("$du", "sip:127.0.0.1:58011")
        KSR.tm.t_on_failure("ksr_failure")
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()
        return 1

    def ksr_failure(self, msg):
        if KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_is_canceled() < 0:
            KSR.pv.sets("$du", "sip:127.0.0.1:58012")
            KSR.tm.t_relay()
        return 1
'''


def test_kemi_failure_route_is_a_handler_method(tmp_path: Path) -> None:
    script = tmp_path / "handler.py"
    script.write_text(textwrap.dedent(KEMI_SCRIPT))
    cfg = tmp_path / "kemi.cfg"
    cfg.write_text("\n".join([
        "listen=udp:127.0.0.1:58000", "auto_aliases=no",
        *(f'loadmodule "{m}.so"' for m in ("tm", "sl", "siputils", "pv", "app_python3")),
        'modparam("tm", "fr_timer", 1000)',
        f'modparam("app_python3", "load", "{script}")', 'cfgengine "python"']))
    router = load(cfg)
    for module in router.modules.values():
        module.child_init(0)
    assert lines(send(router, request()))[1] == (CALLEE, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")
    tick(router, T0 + 0.5)
    assert lines(tick(router, T0 + 1.0)) == [(CALLEE2, "INVITE sip:bob@127.0.0.1:58000 SIP/2.0")]


# --------------------------------------------------------------------------- the benchmark cfg
def bench_router(tmp_path: Path, shared: Path) -> Router:
    shutil.copy(shared / "bench" / "kam-lb-tm.cfg", tmp_path / "kam-lb-tm.cfg")
    (tmp_path / "dispatcher.list").write_text("1 sip:127.0.0.1:58011\n1 sip:127.0.0.1:58012\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)   # list_file is relative, as in the benchmark
    try:
        router = load(tmp_path / "kam-lb-tm.cfg")
    finally:
        os.chdir(cwd)
    for module in router.modules.values():
        module.child_init(0)
    return router


def bench_request(method: str = "INVITE", **kwargs: str) -> bytes:
    return request(method, ruri="sip:bob@127.0.0.1", **kwargs)  # type: ignore[arg-type]


def test_bench_cfg_call_and_failover(tmp_path: Path, shared: Path) -> None:
    """kam-lb-tm.cfg: the first call goes to the second destination (round robin,
    as Kamailio does), which times out after 2 s; the failure route fails over to
    the first; it answers; ACK and BYE follow the Record-Route."""
    router = bench_router(tmp_path, shared)
    # the listen address of the cfg is 127.0.0.1:5060; the router answers from it
    out = router.handle(bench_request(), CALLER, ("127.0.0.1", 5060), T0)
    assert lines(out) == [(CALLER, "SIP/2.0 100 trying -- your call is important to us"),
                          (CALLEE2, "INVITE sip:bob@127.0.0.1 SIP/2.0")]
    assert "Max-Forwards: 69\r\n" in text(out[1])
    assert "Record-Route: <sip:127.0.0.1;lr;ftag=ft1>\r\n" in text(out[1])
    assert lines(tick(router, T0 + 0.5)) == [(CALLEE2, "INVITE sip:bob@127.0.0.1 SIP/2.0")]
    assert lines(tick(router, T0 + 1.5)) == [(CALLEE2, "INVITE sip:bob@127.0.0.1 SIP/2.0")]
    failover = tick(router, T0 + 2.0)
    assert lines(failover) == [(CALLEE, "INVITE sip:bob@127.0.0.1 SIP/2.0")]
    ok = router.handle(reply_to(failover[0].data, 200, "OK", "t1"), CALLEE, ("127.0.0.1", 5060),
                       T0 + 2.2)
    assert lines(ok) == [(CALLER, "SIP/2.0 200 OK")]
    ack = request("ACK", to_tag="t1", branch="z9hG4bKack", ruri="sip:bob@127.0.0.1:58011",
                  extra="Route: <sip:127.0.0.1;lr;ftag=ft1>\r\n")
    relayed = router.handle(ack, CALLER, ("127.0.0.1", 5060), T0 + 2.3)
    assert lines(relayed) == [(CALLEE, "ACK sip:bob@127.0.0.1:58011 SIP/2.0")]
    bye = request("BYE", to_tag="t1", branch="z9hG4bKbye", ruri="sip:bob@127.0.0.1:58011",
                  extra="Route: <sip:127.0.0.1;lr;ftag=ft1>\r\n")
    out = router.handle(bye, CALLER, ("127.0.0.1", 5060), T0 + 3)
    assert lines(out) == [(CALLEE, "BYE sip:bob@127.0.0.1:58011 SIP/2.0")]


def test_bench_cfg_failover_on_500(tmp_path: Path, shared: Path) -> None:
    router = bench_router(tmp_path, shared)
    local = ("127.0.0.1", 5060)
    out = router.handle(bench_request(), CALLER, local, T0)
    failover = router.handle(reply_to(out[1].data, 500, "Server Error"), CALLEE2, local,
                             T0 + 0.1)
    assert lines(failover) == [(CALLEE2, "ACK sip:bob@127.0.0.1 SIP/2.0"),
                               (CALLEE, "INVITE sip:bob@127.0.0.1 SIP/2.0")]
    # the second destination fails too: no destination left, the 500 goes upstream
    last = router.handle(reply_to(failover[1].data, 500, "Server Error"), CALLEE, local,
                         T0 + 0.2)
    assert lines(last) == [(CALLEE, "ACK sip:bob@127.0.0.1 SIP/2.0"),
                           (CALLER, "SIP/2.0 500 Server Error")]
