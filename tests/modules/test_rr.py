"""rr: record_route() and loose_route(), compared with Kamailio 5.6.3.

The cfg runs loose_route(), writes its code, $du and $ru into an X-LR header,
then forwards to 127.0.0.1:5090 so the Route/Record-Route headers that leave
the proxy can be compared with what Kamailio sent for the same requests.
"""

from __future__ import annotations

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.router import Router

LOCAL = ("127.0.0.1", 5060)
CLIENT = ("127.0.0.1", 5070)
SINK = ("127.0.0.1", 5090)

LOOSE = r'''request_route {
  $var(r) = loose_route();
  append_hf("X-LR: $var(r) du=$du ru=$ru\r\n");
  $du = "sip:127.0.0.1:5090";
  forward();
}'''
ME = "<sip:127.0.0.1;lr;ftag=ft1>"
R2 = "<sip:127.0.0.1;lr;r2=on>"


def make_router(route: str, modparams: str = "") -> Router:
    text = "\n".join(["listen=udp:127.0.0.1:5060", "auto_aliases=no", 'loadmodule "sl.so"',
                      'loadmodule "textops.so"', 'loadmodule "rr.so"', modparams, route])
    return build_router(parse_text(text))


def request(method: str = "INVITE", ruri: str = "sip:bob@10.0.0.5", *, extra: str = "",
            totag: str | None = None, from_tag: str | None = "ft1") -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={totag}" if totag else "")
    frm = "<sip:alice@example.com>" + (f";tag={from_tag}" if from_tag else "")
    return (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1\r\n"
            f"From: {frm}\r\nTo: {to}\r\nCall-ID: cid-1\r\nCSeq: 1 {method}\r\n{extra}"
            "Content-Length: 0\r\n\r\n").encode()


def forwarded(route: str, data: bytes, modparams: str = "") -> list[str]:
    outs = make_router(route, modparams).handle(data, CLIENT, LOCAL, 0.0)
    assert len(outs) == 1 and outs[0].dst == SINK
    return outs[0].data.decode().split("\r\n")


def routing(data: bytes) -> tuple[str, list[str], str]:
    """(request line, the Route headers, the X-LR line) of the forwarded request."""
    lines = forwarded(LOOSE, data)
    routes = [line for line in lines if line.startswith("Route:")]
    xlr = next(line for line in lines if line.startswith("X-LR:"))
    return lines[0], routes, xlr


# --------------------------------------------------------------------------- record_route
RECORD = 'request_route { record_route(); $du = "sip:127.0.0.1:5090"; forward(); }'


def test_record_route_is_the_first_header_with_ftag() -> None:
    lines = forwarded(RECORD, request())
    assert lines[0] == "INVITE sip:bob@10.0.0.5 SIP/2.0"
    # the default port 5060 is left out, like in our Via [oracle]
    assert lines[1] == "Record-Route: <sip:127.0.0.1;lr;ftag=ft1>"
    assert lines[2].startswith("Via: SIP/2.0/UDP 127.0.0.1;branch=")


def test_record_route_names_a_non_default_port() -> None:
    text = "\n".join(["listen=udp:127.0.0.1:7003", "auto_aliases=no", 'loadmodule "rr.so"',
                      RECORD])
    router = build_router(parse_text(text))
    outs = router.handle(request(), CLIENT, ("127.0.0.1", 7003), 0.0)
    assert outs[0].data.split(b"\r\n")[1] == b"Record-Route: <sip:127.0.0.1:7003;lr;ftag=ft1>"


@pytest.mark.parametrize(("route", "modparams", "data", "expected"), [
    (RECORD, "", request(from_tag=None), "Record-Route: <sip:127.0.0.1;lr>"),
    (RECORD.replace("record_route()", 'record_route(";x=y")'), "", request(),
     "Record-Route: <sip:127.0.0.1;lr;ftag=ft1;x=y>"),
    (RECORD.replace("record_route()", 'record_route(";x=y")'),
     'modparam("rr", "enable_full_lr", 1)\nmodparam("rr", "append_fromtag", 0)', request(),
     "Record-Route: <sip:127.0.0.1;lr=on;x=y>"),
])
def test_record_route_variants(route: str, modparams: str, data: bytes, expected: str) -> None:
    assert forwarded(route, data, modparams)[1] == expected


def test_record_route_only_once() -> None:
    # [oracle] a second call fails (-1) and adds nothing
    route = 'request_route { $var(a) = record_route(); $var(b) = record_route(); ' \
            'append_hf("X-R: $var(a) $var(b)\\r\\n"); $du = "sip:127.0.0.1:5090"; forward(); }'
    lines = forwarded(route, request())
    assert [line for line in lines if line.startswith("Record-Route")] == \
        ["Record-Route: <sip:127.0.0.1;lr;ftag=ft1>"]
    assert "X-R: 1 -1" in lines


def test_maxfwd_insertion_and_record_route_order() -> None:
    text = "\n".join(["listen=udp:127.0.0.1:5060", "auto_aliases=no", 'loadmodule "rr.so"',
                      'loadmodule "maxfwd.so"'])
    for first, second, expected in (
            ("maxfwd_process", "record_route", ["Max-Forwards: 10", "Record-Route"]),
            ("record_route", "maxfwd_process", ["Record-Route", "Max-Forwards: 10"])):
        args = {"maxfwd_process": '"10"', "record_route": ""}
        route = (f"request_route {{ {first}({args[first]}); {second}({args[second]}); "
                 '$du = "sip:127.0.0.1:5090"; forward(); }')
        router = build_router(parse_text(text + "\n" + route))
        lines = router.handle(request(), CLIENT, LOCAL, 0.0)[0].data.decode().split("\r\n")
        assert [line[:len(e)] for line, e in zip(lines[1:3], expected, strict=True)] == expected


# --------------------------------------------------------------------------- loose_route
@pytest.mark.parametrize(("ruri", "routes", "totag", "line", "out_routes", "xlr"), [
    # no Route
    ("sip:bob@10.0.0.5", "", "t1", "INVITE sip:bob@10.0.0.5 SIP/2.0", [],
     "X-LR: -1 du=<null> ru=sip:bob@10.0.0.5"),
    # only our Route: removed; in-dialog 1, initial request -3 (preloaded)
    ("sip:bob@10.0.0.5:5070", f"Route: {ME}\r\n", "t1", "INVITE sip:bob@10.0.0.5:5070 SIP/2.0",
     [], "X-LR: 1 du=<null> ru=sip:bob@10.0.0.5:5070"),
    ("sip:bob@10.0.0.5:5070", f"Route: {ME}\r\n", None, "INVITE sip:bob@10.0.0.5:5070 SIP/2.0",
     [], "X-LR: -3 du=<null> ru=sip:bob@10.0.0.5:5070"),
    # ours + next (loose): $du = next, kept in the message
    ("sip:bob@10.0.0.5", f"Route: {ME}, <sip:10.9.9.9:5070;lr>\r\n", "t1",
     "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:10.9.9.9:5070;lr>"],
     "X-LR: 1 du=sip:10.9.9.9:5070;lr ru=sip:bob@10.0.0.5"),
    ("sip:bob@10.0.0.5", f"Route: {ME}\r\nRoute: <sip:10.9.9.9:5070;lr>\r\n", "t1",
     "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:10.9.9.9:5070;lr>"],
     "X-LR: 1 du=sip:10.9.9.9:5070;lr ru=sip:bob@10.0.0.5"),
    ("sip:bob@10.0.0.5", f"Route: {ME}, <sip:10.9.9.9;lr>, <sip:10.8.8.8;lr>\r\n", "t1",
     "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:10.9.9.9;lr>, <sip:10.8.8.8;lr>"],
     "X-LR: 1 du=sip:10.9.9.9;lr ru=sip:bob@10.0.0.5"),
    # foreign first Route (preloaded): $du = it, kept
    ("sip:bob@10.0.0.5", "Route: <sip:10.9.9.9:5070;lr>\r\n", None,
     "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:10.9.9.9:5070;lr>"],
     "X-LR: 1 du=sip:10.9.9.9:5070;lr ru=sip:bob@10.0.0.5"),
    ("sip:bob@10.0.0.5", f"Route: <sip:10.9.9.9:5070;lr>, {ME}\r\n", None,
     "INVITE sip:bob@10.0.0.5 SIP/2.0", [f"Route: <sip:10.9.9.9:5070;lr>, {ME}"],
     "X-LR: 1 du=sip:10.9.9.9:5070;lr ru=sip:bob@10.0.0.5"),
    # ours + strict router: it becomes the R-URI, the R-URI goes to the end
    ("sip:bob@10.0.0.5", f"Route: {ME}, <sip:10.9.9.9:5070>\r\n", None,
     "INVITE sip:10.9.9.9:5070 SIP/2.0", ["Route: <sip:bob@10.0.0.5>"],
     "X-LR: 1 du=<null> ru=sip:10.9.9.9:5070"),
    ("sip:bob@10.0.0.5", "Route: <sip:10.9.9.9>\r\n", "t1", "INVITE sip:10.9.9.9 SIP/2.0",
     ["Route: <sip:bob@10.0.0.5>"], "X-LR: 1 du=<null> ru=sip:10.9.9.9"),
    # another own Route without r2 stays; with r2 both go
    ("sip:bob@10.0.0.5", f"Route: {ME}\r\nRoute: <sip:127.0.0.1;lr>\r\nRoute: <sip:10.9.9.9;lr>\r\n",
     None, "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:127.0.0.1;lr>",
                                               "Route: <sip:10.9.9.9;lr>"],
     "X-LR: 1 du=sip:127.0.0.1;lr ru=sip:bob@10.0.0.5"),
    ("sip:bob@10.0.0.5", f"Route: {R2}, {R2}, <sip:10.9.9.9;lr>\r\n", "t1",
     "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:10.9.9.9;lr>"],
     "X-LR: 1 du=sip:10.9.9.9;lr ru=sip:bob@10.0.0.5"),
    ("sip:bob@10.0.0.5", f"Route: {R2}\r\nRoute: {R2}\r\nRoute: <sip:10.9.9.9>\r\n", "t1",
     "INVITE sip:10.9.9.9 SIP/2.0", ["Route: <sip:bob@10.0.0.5>"],
     "X-LR: 1 du=<null> ru=sip:10.9.9.9"),
    # the R-URI is ours (previous hop was a strict router): last Route -> R-URI
    ("sip:127.0.0.1;lr", "Route: <sip:10.9.9.9;lr>, <sip:bob@10.0.0.5>\r\n", "t1",
     "INVITE sip:bob@10.0.0.5 SIP/2.0", ["Route: <sip:10.9.9.9;lr>"],
     "X-LR: 1 du=sip:10.9.9.9;lr ru=sip:bob@10.0.0.5"),
    ("sip:127.0.0.1;lr", "Route: <sip:10.9.9.9>, <sip:bob@10.0.0.5>\r\n", "t1",
     "INVITE sip:10.9.9.9 SIP/2.0", ["Route: <sip:bob@10.0.0.5>"],
     "X-LR: 1 du=<null> ru=sip:10.9.9.9"),
    ("sip:bob@127.0.0.1", f"Route: {ME}\r\n", "t1", "INVITE sip:127.0.0.1;lr;ftag=ft1 SIP/2.0",
     [], "X-LR: 1 du=sip:127.0.0.1;lr;ftag=ft1 ru=sip:127.0.0.1;lr;ftag=ft1"),
    ("sip:127.0.0.1", f"Route: {R2}, {R2}\r\nRoute: <sip:10.9.9.9;lr>\r\n"
     "Route: <sip:bob@10.0.0.5>\r\n", "t1", "INVITE sip:bob@10.0.0.5 SIP/2.0",
     ["Route: <sip:127.0.0.1;lr;r2=on>", "Route: <sip:10.9.9.9;lr>"],
     "X-LR: 1 du=sip:127.0.0.1;lr;r2=on ru=sip:bob@10.0.0.5"),
])
def test_loose_route(ruri: str, routes: str, totag: str | None, line: str,
                     out_routes: list[str], xlr: str) -> None:
    got_line, got_routes, got_xlr = routing(request(ruri=ruri, extra=routes, totag=totag))
    assert (got_line, got_routes, got_xlr) == (line, out_routes, xlr)


def test_in_dialog_idiom() -> None:
    route = '''request_route {
      if (has_totag()) {
        if (loose_route()) { forward(); exit; }
        sl_send_reply("404", "Not here"); exit;
      }
      sl_send_reply("200", "initial");
    }'''
    text = "\n".join(["listen=udp:127.0.0.1:5060", "auto_aliases=no", 'loadmodule "sl.so"',
                      'loadmodule "rr.so"', 'loadmodule "siputils.so"', route])
    router = build_router(parse_text(text))
    bye = request("BYE", "sip:bob@127.0.0.1:5071", extra=f"Route: {ME}\r\n", totag="t1")
    outs = router.handle(bye, CLIENT, LOCAL, 0.0)
    assert [o.dst for o in outs] == [("127.0.0.1", 5071)]
    assert b"Route:" not in outs[0].data
    outs = router.handle(request("BYE", totag="t1"), CLIENT, LOCAL, 0.0)
    assert outs[0].data.startswith(b"SIP/2.0 404 Not here\r\n")
