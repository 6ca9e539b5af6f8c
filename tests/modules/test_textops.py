"""textops (is_method, append_hf, remove_hf, is_present_hf, append_to_reply) and
siputils has_totag(), compared with Kamailio 5.6.3 on the same cfg."""

from __future__ import annotations

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.context import Outgoing
from siprouter.routing.router import Router

LOCAL = ("127.0.0.1", 5060)
CLIENT = ("127.0.0.1", 5070)
SINK = ("127.0.0.1", 5090)


def make_router(route: str) -> Router:
    text = "\n".join(["listen=udp:127.0.0.1:5060", "auto_aliases=no", 'loadmodule "sl.so"',
                      'loadmodule "textops.so"', 'loadmodule "siputils.so"', route])
    return build_router(parse_text(text))


def request(method: str = "INVITE", *, extra: str = "", totag: str | None = None,
            cseq: str | None = None) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={totag}" if totag is not None else "")
    return (f"{method} sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1\r\n"
            f"From: <sip:alice@example.com>;tag=ft1\r\nTo: {to}\r\nCall-ID: cid-1\r\n"
            f"CSeq: {cseq or '1 ' + method}\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def send(router: Router, data: bytes) -> list[Outgoing]:
    return router.handle(data, CLIENT, LOCAL, 0.0)


def reason(router: Router, data: bytes) -> str:
    outs = send(router, data)
    assert len(outs) == 1
    return outs[0].data.decode().split("\r\n")[0].split(" ", 2)[2]


# --------------------------------------------------------------------------- is_method
IS_METHOD = '''request_route {
 $var(r) = "";
 if (is_method("INVITE")) { $var(r) = $var(r) + "a"; }
 if (is_method("invite")) { $var(r) = $var(r) + "b"; }
 if (is_method("INVITE|BYE")) { $var(r) = $var(r) + "c"; }
 if (is_method("FOO")) { $var(r) = $var(r) + "d"; }
 if (is_method("foo")) { $var(r) = $var(r) + "e"; }
 if (is_method("BYE|CANCEL")) { $var(r) = $var(r) + "f"; }
 if (has_totag()) { $var(r) = $var(r) + "g"; }
 sl_send_reply("200", "r=$var(r)");
}'''


@pytest.mark.parametrize(("method", "cseq", "totag", "expected"), [
    ("INVITE", None, None, "r=abc"),
    # [oracle] the request method is matched case-insensitively, unknown ones too
    ("invite", "1 invite", None, "r=abc"),
    ("Invite", "1 Invite", None, "r=abc"),
    ("FOO", "1 FOO", None, "r=de"),
    ("foo", "1 foo", None, "r=de"),
    ("BYE", None, "x", "r=cfg"),
    # an empty To-tag is no tag
    ("OPTIONS", None, "", "r="),
])
def test_is_method_and_has_totag(method: str, cseq: str | None, totag: str | None,
                                 expected: str) -> None:
    assert reason(make_router(IS_METHOD), request(method, cseq=cseq, totag=totag)) == expected


def test_is_method_on_a_reply_uses_the_cseq_method() -> None:
    route = ('request_route { drop; }\n'
             'reply_route { if (!is_method("INVITE")) { drop; } }')
    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKsrv\r\n"
             b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1\r\n"
             b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\n"
             b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    router = make_router(route)
    assert len(send(router, reply)) == 1
    assert send(router, reply.replace(b"1 INVITE", b"1 BYE")) == []


# --------------------------------------------------------------------------- header ops
HEADER_OPS = r'''request_route {
  $var(a) = remove_hf("X-Foo");
  $var(b) = remove_hf("Subject");
  $var(c) = remove_hf("x-none");
  $var(d) = is_present_hf("s");
  $var(e) = is_present_hf("subject");
  $var(f) = is_present_hf("X-FOO");
  $var(g) = append_hf("X-One: 1\r\n");
  $var(h) = append_hf("X-Two: 2\r\n", "Call-ID");
  $var(i) = append_hf("X-Three: 3\r\n", "X-None");
  $var(j) = append_hf("X-Four: $rU\r\n");
  $var(k) = is_present_hf("X-One");
  $var(l) = remove_hf("User-Agent");
  $var(m) = append_hf("X-Five: 5\r\n", "i");
  append_hf("X-R: $var(a) $var(b) $var(c) $var(d) $var(e) $var(f) $var(g) $var(h) $var(i) $var(j) $var(k) $var(l) $var(m)\r\n");
  $du = "sip:127.0.0.1:5090";
  forward();
}'''


def test_header_operations() -> None:
    data = request(extra="X-Foo: foo\r\nSubject: s1\r\nx-foo: foo2\r\ns: s2\r\nUser-Agent: ua\r\n")
    outs = send(make_router(HEADER_OPS), data)
    assert len(outs) == 1 and outs[0].dst == SINK
    lines = outs[0].data.decode().split("\r\n")
    # [oracle] remove_hf removes every instance (compact names too) and returns 1;
    # append_hf after a missing header appends at the end; appended headers are not
    # seen by is_present_hf
    assert lines[2:] == [
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1",
        "From: <sip:alice@example.com>;tag=ft1", "To: <sip:bob@example.com>", "Call-ID: cid-1",
        "X-Two: 2", "X-Five: 5", "CSeq: 1 INVITE", "Content-Length: 0", "X-One: 1",
        "X-Three: 3", "X-Four: bob", "X-R: 1 1 -1 1 1 1 1 1 1 1 -1 1 1", "", ""]


def test_header_operations_fail_when_headers_cannot_be_fully_parsed() -> None:
    # a second Max-Forwards makes Kamailio 5.6's full header parse fail [oracle]
    data = request(extra="X-Foo: foo\r\nMax-Forwards: 8\r\nMax-Forwards: 3\r\nX-Bar: bar\r\n")
    route = r'''request_route {
      $var(a) = append_hf("X-A: 1\r\n");
      $var(b) = remove_hf("X-Foo");
      $var(c) = is_present_hf("X-Foo");
      $var(d) = is_present_hf("X-Bar");
      $var(e) = $hdr(X-Foo);
      $var(g) = $ci;
      $du = "sip:127.0.0.1:5090";
      if ($var(a) == -1 && $var(b) == -1 && $var(c) == -1 && $var(d) == -1 && $var(e) == 0
          && $var(g) == "cid-1") { forward(); }
    }'''
    outs = send(make_router(route), data)
    assert len(outs) == 1
    assert b"X-A" not in outs[0].data and b"X-Foo: foo" in outs[0].data


def test_append_to_reply_order() -> None:
    route = r'''request_route {
      append_to_reply("X-First: $rU\r\n");
      append_to_reply("X-Second: 2\r\n");
      $ru = "sip:moved@10.0.0.1";
      sl_send_reply("302", "Moved");
    }'''
    text = send(make_router(route), request())[0].data.decode()
    assert text.split("\r\n")[6:] == ["X-First: bob", "X-Second: 2",
                                      "Contact: <sip:moved@10.0.0.1>",
                                      "Server: kamailio (5.6.3 (x86_64/linux))",
                                      "Content-Length: 0", "", ""]


def test_append_to_reply_is_used_by_later_replies_only_for_this_request() -> None:
    route = r'''request_route {
      if ($rU == "bob") { append_to_reply("X-Extra: 1\r\n"); }
      sl_send_reply("200", "ok");
    }'''
    router = make_router(route)
    assert b"X-Extra: 1\r\n" in send(router, request())[0].data
    other = request().replace(b"sip:bob@", b"sip:carol@", 1)
    assert b"X-Extra" not in send(router, other)[0].data

