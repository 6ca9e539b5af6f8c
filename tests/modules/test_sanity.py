"""sanity module: check order, reply texts, silent failures, modes, and the conformance corpus.

The corpus cases are replayed through a real Router with sl, maxfwd and sanity
loaded. The request route is a Python stand-in for the conformance cfgs
(maxfwd, then sanity_check, then the local replies / forward stand-in), so
whatever happens before sanity (core drops, the sl ACK filter, maxfwd's 483)
happens exactly as in the server.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprouter.modules.base import Module
from siprouter.modules.maxfwd import MaxfwdModule
from siprouter.modules.sanity import (
    ALL_CHECKS,
    CHECK_ORDER,
    SanityModule,
    kamailio_uri,
    parse_digest,
    uri_text_ok,
    valid_uint,
)
from siprouter.modules.sl import SlModule
from siprouter.routing.context import Branch, Context, ScriptExit
from siprouter.routing.router import Router, Script
from siprouter.routing.settings import CoreSettings
from siprouter.sip.message import parse_message

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SIPROUTER_SHARED") or ROOT.parent / "shared")
CASES = SHARED / "conformance" / "cases"

CLIENT = ("127.0.0.1", 6050)
LOCAL = ("127.0.0.1", 6060)
SOCKETS = {"client": 6050, "client_alt": 6051, "ds1": 6101, "ds2": 6102, "ds3": 6103}

# cfg -> (sanity_check masks, sanity modparams)
CFGS: dict[str, tuple[int, int, dict[str, Any]]] = {
    "conformance.cfg": (17895, 7, {}),
    "conformance_sanity3047.cfg": (3047, 7, {"proxy_require": "precondition,sec-agree"}),
    "conformance_sanity_extra.cfg": (13343, 15, {}),
}


# --------------------------------------------------------------------------- harness
@dataclass
class Run:
    """What the stand-in script saw for the last request."""

    sanity: list[int] = field(default_factory=list)
    forwarded: bool = False


def make_router(mask: int = 17895, uri_mask: int = 7, **params: Any) -> tuple[Router, Run]:
    core = CoreSettings()
    core.listen_specs = ["udp:127.0.0.1:6060"]
    core.finish()
    router = Router(core)
    sl = SlModule(router)
    maxfwd = MaxfwdModule(router)
    maxfwd.set_param("max_limit", 32)
    sanity = SanityModule(router)
    for name, value in params.items():
        sanity.set_param(name, value)
    modules: dict[str, Module] = {"sl": sl, "maxfwd": maxfwd, "sanity": sanity}
    router.modules.update(modules)
    for module in modules.values():
        module.init()
    run = Run()

    def request_route(ctx: Context) -> None:
        """The conformance cfgs' request_route."""
        if maxfwd.process_maxfwd(ctx, 10) == -1:
            sl.sl_send_reply(ctx, 483, "Too Many Hops")
            raise ScriptExit(0)
        ret = sanity.sanity_check(ctx, mask, uri_mask)
        run.sanity.append(ret)
        if ret <= 0:
            raise ScriptExit(0)
        uri = ctx.uri
        user = uri.user or ""
        if ctx.msg.method == "OPTIONS" and not uri.user and \
                router.is_myself(uri.host, uri.port, uri.scheme):
            sl.sl_send_reply(ctx, 200, "OK")
            raise ScriptExit(0)
        if user.startswith("3"):
            if user.startswith("31"):
                ctx.set_ruri("sip:moved@127.0.0.1:6104")
            ctx.branches.append(Branch("sip:alt1@127.0.0.1:6105", "0.5"))
            ctx.branches.append(Branch("sip:alt2@127.0.0.1:6106;transport=udp"))
            sl.sl_send_reply(ctx, 302, "Moved Temporarily")
            raise ScriptExit(0)
        if user.startswith("404"):
            sl.sl_send_reply(ctx, 404, "Not found")
            raise ScriptExit(0)
        run.forwarded = True    # ds_select_dst() + forward()

    router.script = Script(request=request_route)
    return router, run


def send(router: Router, run: Run, data: bytes, now: float = 0.0,
         src: tuple[str, int] = CLIENT) -> list[Any]:
    run.sanity.clear()
    run.forwarded = False
    return router.handle(data, src, LOCAL, now)


def msg_bytes(*headers: str, first: str = "INVITE sip:bob@example.com SIP/2.0",
              body: str = "", cl: bool = True) -> bytes:
    """A request with the usual headers; ``headers`` replace/extend them by name."""
    base = {
        "Via": "SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-test1",
        "Max-Forwards": "70",
        "From": "\"Alice\" <sip:alice@example.com>;tag=a1",
        "To": "<sip:bob@example.com>",
        "Call-ID": "test@sanity",
        "CSeq": "1 " + first.split(" ", 1)[0],
    }
    lines = [f"{k}: {v}" for k, v in base.items()
             if not any(h.split(":", 1)[0] == k for h in headers)]
    lines.extend(headers)
    if cl:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([first, *lines]) + "\r\n\r\n" + body).encode("latin-1")


def status_line(out: Any) -> str:
    text: str = out.data.decode("latin-1")
    return text.split("\r\n", 1)[0]


def header_values(out: Any, name: str) -> list[str]:
    msg = parse_message(out.data)
    return [h.value for h in msg.headers if h.name.lower() == name.lower()]


# --------------------------------------------------------------------------- corpus
def _load_cases() -> list[dict[str, Any]]:
    if not CASES.is_dir():
        return []
    cases = []
    for path in sorted(CASES.glob("*.json")):
        if path.name == "divergences.json":
            continue
        case = json.loads(path.read_text())
        if case.get("cfg") in CFGS:
            cases.append(case)
    return cases


ALL_CASES = _load_cases()
SANITY_CASES = [c for c in ALL_CASES if c["category"].startswith("sanity")]
OTHER_CASES = [c for c in ALL_CASES if not c["category"].startswith("sanity")]


def _last_to_tag(outs: list[Any]) -> str:
    for out in reversed(outs):
        for value in header_values(out, "to") + header_values(out, "t"):
            match = re.search(r";\s*tag=([^;>\s]+)", value)
            if match:
                return match.group(1)
    return ""


def replay(case: dict[str, Any]) -> None:
    mask, uri_mask, params = CFGS[case["cfg"]]
    router, run = make_router(mask, uri_mask, **params)
    now = 100.0
    client_replies: list[Any] = []
    for number, step in enumerate(case["steps"], 1):
        if "send" not in step:
            continue    # downstream replies and bursts do not reach sanity
        now += step.get("delay_before", 0) + 0.05
        data = (CASES / step["send"]).read_bytes()
        if step.get("substitute"):
            data = data.replace(b"{{TO_TAG}}", _last_to_tag(client_replies).encode())
        if data[:4].upper() == b"SIP/":
            continue    # SIP replies never run the request route
        src = ("127.0.0.1", SOCKETS[step.get("from", "client")])
        outs = send(router, run, data, now, src)
        client_replies.extend(outs)
        expect = step["expect"]
        where = f"{case['id']} step {number}"
        outcome = expect["outcome"]
        if outcome == "forwarded":
            assert outs == [], where
            assert run.sanity == [1], where
            assert run.forwarded, where
        elif outcome == "no_reply":
            assert outs == [], where
            assert not run.forwarded, where
            if run.sanity and parse_message(data).method != "ACK":
                assert run.sanity == [0], where
        elif outcome == "reply":
            assert not run.forwarded, where
            got = sorted((status_line(o), o.dst[1]) for o in outs)
            want = sorted((m["start_line"], SOCKETS[m["socket"]]) for m in expect["messages"])
            assert got == want, where
            for out, message in zip(sorted(outs, key=status_line),
                                    sorted(expect["messages"], key=lambda m: m["start_line"]),
                                    strict=True):
                assert header_values(out, "Unsupported") == \
                    message["headers"].get("Unsupported", []), where
        else:  # pragma: no cover - not used by these cfgs
            pytest.fail(f"{where}: unexpected outcome {outcome}")


@pytest.mark.parametrize("case", SANITY_CASES, ids=[c["id"] for c in SANITY_CASES])
def test_conformance_sanity_case(case: dict[str, Any]) -> None:
    replay(case)


@pytest.mark.parametrize("case", OTHER_CASES, ids=[c["id"] for c in OTHER_CASES])
def test_conformance_other_case_passes_sanity(case: dict[str, Any]) -> None:
    """Cases of other categories on the same cfgs: sanity must not change their outcome."""
    replay(case)


def test_corpus_present_when_shared_exists() -> None:
    if SHARED.is_dir():
        assert len(SANITY_CASES) >= 80


# --------------------------------------------------------------------------- unit tests
def test_check_order_and_bits() -> None:
    assert CHECK_ORDER == (1, 2, 4, 16384, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 8192,
                           4096)
    assert sum(CHECK_ORDER) == ALL_CHECKS


def test_plan_is_cached_and_ordered() -> None:
    router, _ = make_router()
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    plan = sanity.plan(17895)
    assert plan is sanity.plan(17895)
    names = [fn.__name__ for fn in plan]
    assert names == ["_check_ruri_version", "_check_ruri_scheme", "_check_required_headers",
                     "_check_via1", "_check_cseq_method", "_check_cseq_value", "_check_cl",
                     "_check_expires", "_check_parse_uris"]
    # no-op bits are not in the plan at all
    assert sanity.plan(8 | 16) == ()
    assert [fn.__name__ for fn in sanity.plan(4096 | 8192 | 2048)] == [
        "_check_digest", "_check_authorization", "_check_duptags"]


@pytest.mark.parametrize("number,ok", [
    ("0", True), ("1", True), ("2147483648", True), ("4294967295", True),
    ("4294967296", True), ("4294967297", False), ("12345678901", False), ("-1", False),
    ("1a", False), ("", False), ("0000000001", True), ("9999999999", False),
    ("\u00b2", False),
])
def test_valid_uint(number: str, ok: bool) -> None:
    assert valid_uint(number) is ok


def test_all_pass_common_request() -> None:
    router, run = make_router()
    assert send(router, run, msg_bytes()) == []
    assert run.sanity == [1] and run.forwarded


def test_order_version_before_cseq() -> None:
    router, run = make_router()
    outs = send(router, run, msg_bytes("CSeq: 1 BYE",
                                       first="INVITE sip:bob@example.com SIP/2.00"))
    assert [status_line(o) for o in outs] == ["SIP/2.00 505 Version Not Supported (R-URI)"]


def test_order_scheme_before_uri_checks() -> None:
    router, run = make_router(1024 | 2, 7)
    outs = send(router, run, msg_bytes("From: <sip:@>;tag=x",
                                       first="INVITE http://example.com SIP/2.0"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Bad Request URI"]


def test_ruri_check_in_uri_bits_only() -> None:
    router, run = make_router(1024, 1)
    outs = send(router, run, msg_bytes(first="INVITE sip:bob@example.com:99999 SIP/2.0"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Bad Request URI"]
    router, run = make_router(1024, 6)
    assert send(router, run, msg_bytes(first="INVITE im:bob@example.com SIP/2.0")) == []
    assert run.sanity == [1]


@pytest.mark.parametrize("ruri", ["sip:bob@example.com", "sips:bob@example.com", "tel:+123",
                                  "urn:service:sos", "SIP:bob@example.com"])
def test_ruri_scheme_accepted(ruri: str) -> None:
    router, run = make_router(2, 7)
    assert send(router, run, msg_bytes(first=f"INVITE {ruri} SIP/2.0")) == []
    assert run.sanity == [1]


@pytest.mark.parametrize("headers,reason", [
    (("CSeq: 1 invite",), "CSeq method does not match request method"),
    (("CSeq: 4294967297 INVITE",), "CSeq number is illegal"),
    (("CSeq: 1x INVITE",), "CSeq number is illegal"),
    (("Expires: 3600 foo",), None),
    (("Expires: 3600foo",), "Expires value is illegal"),
    (("Expires:   ",), "Bad Expires Header"),
    (("Expires: 4294967296",), None),
    (("Expires: 4294967297",), "Expires value is illegal"),
])
def test_cseq_and_expires(headers: tuple[str, ...], reason: str | None) -> None:
    router, run = make_router(3047, 7)
    outs = send(router, run, msg_bytes(*headers))
    if reason is None:
        assert outs == [] and run.sanity == [1]
    else:
        assert [status_line(o) for o in outs] == [f"SIP/2.0 400 {reason}"]
        assert run.sanity == [0]


def test_content_length() -> None:
    router, run = make_router(128, 7)
    data = msg_bytes(body="hello", cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\n")
    outs = send(router, run, data)
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Content-Length mis-match"]
    # missing Content-Length: fine, with or without a body
    assert send(router, run, msg_bytes(body="hello", cl=False)) == []
    assert run.sanity == [1]
    # no blank line after the headers
    data = msg_bytes()[:-2]
    outs = send(router, run, data)
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Content-Length Body Failure"]


def test_proxy_require_first_unsupported_and_case() -> None:
    router, run = make_router(512, 7, proxy_require=" precondition , sec-agree ")
    outs = send(router, run, msg_bytes("Proxy-Require: sec-agree, Precondition, foo"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 420 Bad Proxy Require Extension"]
    assert header_values(outs[0], "Unsupported") == ["Precondition"]
    outs = send(router, run, msg_bytes("Proxy-Require: precondition",
                                       "Proxy-Require: foo"))
    assert outs == [] and run.sanity == [1]


def test_proxy_require_empty_param_rejects_everything() -> None:
    router, run = make_router(512, 7)
    outs = send(router, run, msg_bytes("Proxy-Require: precondition"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 420 Bad Proxy Require Extension"]
    assert header_values(outs[0], "Unsupported") == ["precondition"]


def test_uri_checks_contact() -> None:
    router, run = make_router(1024, 15)
    for contact, expected in [
        ("Contact: *", None),
        ("Contact: <sip:alice@127.0.0.1>;expires=abc", None),
        ("Contact: <sip:@>", "400 Bad Contact URI"),
        ("Contact: <http://example.com>", "400 Bad Contact URI"),
        ("Contact: <sip:alice@127.0.0.1", "400 Bad Contact Header"),
        ("Contact: <sip:a@b>, \"x <sip:c@d>", "400 Bad Contact Header"),
    ]:
        outs = send(router, run, msg_bytes(contact))
        if expected is None:
            assert outs == [] and run.sanity == [1], contact
        else:
            assert [status_line(o) for o in outs] == [f"SIP/2.0 {expected}"], contact


def test_uri_checks_from_to() -> None:
    router, run = make_router(1024, 7)
    outs = send(router, run, msg_bytes("From: <http://example.com>;tag=1"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Invalid From Header"]
    outs = send(router, run, msg_bytes("To: <sip:bob@example.com:x>"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Ivalid To Header"]


def test_from_empty_is_silent_and_marks_no_reply() -> None:
    router, run = make_router(1024, 2)
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    msg = parse_message(msg_bytes("From: "))
    ctx = Context(router, msg, CLIENT, LOCAL)
    assert sanity.sanity_check(ctx, 1024, 2) == 0
    assert ctx.no_reply and ctx.out == []
    sl = router.modules["sl"]
    assert isinstance(sl, SlModule)
    assert sl.sl_send_reply(ctx, 500, "x") == -2


DIGEST_OK = ('Digest username="alice", realm="example.com", nonce="n1", '
             'uri="sip:bob@example.com", response="0123"')


@pytest.mark.parametrize("value,reason", [
    (DIGEST_OK, None),
    (DIGEST_OK.replace('nonce="n1"', 'nonce=""'), "Auth Empty Nonce"),
    (DIGEST_OK.replace('username="alice"', 'username=""'), "Auth Empty User"),
    (DIGEST_OK + ", qop=auth-int", "Bad Auth Credentials"),
    (DIGEST_OK + ", qop=other", None),
    (DIGEST_OK + ", qop=\"auth\", cnonce=\"c\", nc=00000001", None),
    (DIGEST_OK + ",", "Bad Auth Header"),
    ("Digest ", None),            # too short to be Digest: another scheme (silent below)
    (DIGEST_OK.replace("Digest", "DIGEST"), None),
])
def test_digest_credentials(value: str, reason: str | None) -> None:
    router, run = make_router(2048, 7)
    outs = send(router, run, msg_bytes(f"Authorization: {value}"))
    if reason is None:
        assert [status_line(o) for o in outs] == []
    else:
        assert [status_line(o) for o in outs] == [f"SIP/2.0 400 {reason}"]
        assert run.sanity == [0]


def test_digest_non_digest_scheme() -> None:
    data = msg_bytes('Authorization: Basic YWxpY2U6c2VjcmV0')
    router, run = make_router(2048, 7)
    assert send(router, run, data) == []
    assert run.sanity == [0]          # silent failure
    router, run = make_router(8192, 7)
    assert send(router, run, data) == []
    assert run.sanity == [1]          # accepted by the authorization check
    # a non-Digest credential stops the check: later headers are not looked at
    data = msg_bytes('Authorization: Basic YWxpY2U6c2VjcmV0',
                     'Proxy-Authorization: Digest username=""')
    assert send(router, run, data) == [] and run.sanity == [1]


def test_digest_checks_authorization_then_proxy_authorization() -> None:
    router, run = make_router(2048, 7)
    no_user = DIGEST_OK.replace('username="alice", ', "")
    no_response = DIGEST_OK.replace('response="0123"', 'response=""')
    data = msg_bytes(f"Proxy-Authorization: {no_user}", f"Authorization: {no_response}")
    outs = send(router, run, data)
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Auth Empty Response"]


def test_parse_digest_is_lenient() -> None:
    ret, params = parse_digest('Digest username="alice, realm="example.com"')
    assert ret == 0 and params == {"username": "alice, realm="}
    assert parse_digest("Basic abc")[0] == 1
    assert parse_digest("Digest  noequals")[0] == -2
    assert parse_digest("Digest a=")[0] == -2


def test_duptags_case_insensitive() -> None:
    router, run = make_router(4096, 7)
    outs = send(router, run, msg_bytes("From: <sip:alice@example.com>;tag=a;TAG=b"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Many From Tag Params"]
    outs = send(router, run, msg_bytes("To: <sip:bob@example.com>;tag=a;Tag=b"))
    assert [status_line(o) for o in outs] == ["SIP/2.0 400 Many To Tag Params"]


def test_no_reply_to_ack() -> None:
    router, run = make_router()
    outs = send(router, run, msg_bytes("CSeq: 1 INVITE", first="ACK sip:bob@example.com SIP/2.0"))
    assert outs == [] and run.sanity == [0]
    sl = router.modules["sl"]
    assert isinstance(sl, SlModule)
    assert sl.stats["failures"] == 0      # sanity did not even try


def test_autodrop_and_argument_validation() -> None:
    router, _ = make_router(autodrop=0)
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    bad = parse_message(msg_bytes("CSeq: 1 BYE"))
    ctx = Context(router, bad, CLIENT, LOCAL)
    assert sanity.sanity_check(ctx) == -1           # default 3047 includes bit 32
    assert len(ctx.out) == 1
    for args in [(0, 7), (32768, 7), (-1, 7), (1, 0), (1, 16)]:
        ctx = Context(router, bad, CLIENT, LOCAL)
        assert sanity.sanity_check(ctx, *args) == -1
        assert ctx.out == []
    ctx = Context(router, bad, CLIENT, LOCAL)
    assert sanity.sanity_check(ctx, 32767, 15) == -1
    assert sanity.sanity_check(Context(router, bad, CLIENT, LOCAL), 1) == 1


def test_kemi_variants() -> None:
    router, _ = make_router()        # autodrop=1
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    bad = parse_message(msg_bytes("CSeq: 1 BYE"))
    assert sanity.kemi_sanity_check(Context(router, bad, CLIENT, LOCAL), 32, 7) == -1
    assert sanity.kemi_sanity_check_defaults(Context(router, bad, CLIENT, LOCAL)) == -1
    assert sanity.kemi_sanity_check(Context(router, bad, CLIENT, LOCAL), 0, 0) == 1
    assert sanity.kemi_sanity_check(Context(router, bad, CLIENT, LOCAL), 1 << 20 | 1, 0) == 1
    ctx = Context(router, bad, CLIENT, LOCAL)
    assert sanity.sanity_check(ctx, 32, 7) == 0
    kemi = {name for fn in sanity.exports.functions for name in fn.kemi}
    assert kemi == {"sanity_check", "sanity_check_defaults", "sanity_reply"}
    found = sanity.function("sanity_check")
    assert found is not None and found[0].arities == range(0, 3)
    assert found[0].kemi == ()          # the KEMI sanity_check is a separate export
    by_kemi = {name: fn.method for fn in sanity.exports.functions for name in fn.kemi}
    assert by_kemi == {"sanity_check": "kemi_sanity_check",
                       "sanity_check_defaults": "kemi_sanity_check_defaults",
                       "sanity_reply": "sanity_reply"}


def test_noreply_mode_and_sanity_reply() -> None:
    router, _ = make_router(noreply=1)
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    bad = parse_message(msg_bytes("Proxy-Require: foo"))
    ctx = Context(router, bad, CLIENT, LOCAL)
    assert sanity.sanity_check(ctx, 512, 7) == 0
    assert ctx.out == []
    assert sanity.sanity_reply(ctx) == 1
    assert [status_line(o) for o in ctx.out] == ["SIP/2.0 420 Bad Proxy Require Extension"]
    assert header_values(ctx.out[0], "Unsupported") == ["foo"]
    # another message: nothing stored for it -> 500 Server Sanity Failure
    other = Context(router, parse_message(msg_bytes()), CLIENT, LOCAL)
    assert sanity.sanity_reply(other) == 1
    assert [status_line(o) for o in other.out] == ["SIP/2.0 500 Server Sanity Failure"]
    # a new sanity_check() clears the stored reply
    ctx2 = Context(router, bad, CLIENT, LOCAL)
    assert sanity.sanity_check(ctx2, 1, 7) == 1
    assert sanity.sanity_reply(ctx2) == 1
    assert [status_line(o) for o in ctx2.out] == ["SIP/2.0 500 Server Sanity Failure"]
    # marked messages get nothing
    marked = Context(router, parse_message(msg_bytes("From: ")), CLIENT, LOCAL)
    assert sanity.sanity_check(marked, 1024, 2) == 0
    assert sanity.sanity_reply(marked) == -2 and marked.out == []
    # ACK: nothing, returns 1
    ack = Context(router, parse_message(msg_bytes(first="ACK sip:b@example.com SIP/2.0")),
                  CLIENT, LOCAL)
    assert sanity.sanity_reply(ack) == 1 and ack.out == []


def test_sanity_reply_without_noreply_does_nothing() -> None:
    router, _ = make_router()
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    ctx = Context(router, parse_message(msg_bytes()), CLIENT, LOCAL)
    assert sanity.sanity_reply(ctx) == 1 and ctx.out == []


REPLY = (b"SIP/2.0 200 OK\r\n"
         b"Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKx\r\n"
         b"Via: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bKy\r\n"
         b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\n"
         b"Call-ID: r@sanity\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("mask,uri_mask,expected", [
    (1, 7, -1), (2, 7, -1), (32, 7, -1), (3047, 7, -1),
    (4, 7, 1), (64, 7, 1), (128, 7, 1), (16384, 7, 1), (17604, 6, 1),
])
def test_on_replies(mask: int, uri_mask: int, expected: int) -> None:
    router, _ = make_router(autodrop=0)
    sanity = router.modules["sanity"]
    assert isinstance(sanity, SanityModule)
    ctx = Context(router, parse_message(REPLY), ("127.0.0.1", 6101), LOCAL, route_type="reply")
    assert sanity.sanity_check(ctx, mask, uri_mask) == expected
    assert ctx.out == []


def test_requires_sl() -> None:
    core = CoreSettings()
    core.listen_specs = ["udp:127.0.0.1:6060"]
    core.finish()
    router = Router(core)
    sanity = SanityModule(router)
    router.modules["sanity"] = sanity
    with pytest.raises(ValueError):
        sanity.init()


# --------------------------------------------------------------------------- URI fast path
@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="sSiIpP:@?;=<>[]\" \t\r\nab1.-_%9", max_size=24))
def test_uri_fast_path_agrees_with_parser(text: str) -> None:
    assert uri_text_ok(text) == (kamailio_uri(text) is not None)


@settings(max_examples=1000, deadline=None)
@given(st.from_regex(r"sips?:([a-z0-9;?:@%]{1,6}@)?[a-z0-9.@]{1,8}(:[0-9]{0,6})?([;?][a-z=@;?]{0,6})?",
                     fullmatch=True))
def test_uri_fast_path_agrees_on_sip_like(text: str) -> None:
    assert uri_text_ok(text) == (kamailio_uri(text) is not None)


@pytest.mark.parametrize("text,ok", [
    ("sip:alice@example.com", True), ("sip:example.com:5060;transport=udp", True),
    ("sip:a%?x@host", True), ("sip:u@host;x=a@b", False), ("sip:host:99999", False),
    ("sip:host:", False), ("sip:@", False), ("tel:+1555", True), ("http://x", False),
    ("SIPS:bob@h?subject=x", True),
])
def test_uri_text_ok(text: str, ok: bool) -> None:
    assert uri_text_ok(text) is ok
