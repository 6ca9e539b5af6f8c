"""KEMI (app_python3): the KSR facade and Python routing logic.

Real datagrams go through Routers built from examples/loadbalancer-kemi.cfg
(KEMI Python) and examples/loadbalancer.cfg (native cfg); both must produce
the same datagrams. The facade is checked to be derived from module exports,
and the core KSR API is exercised on messages bound as the current context.
"""

from __future__ import annotations

import logging
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siprouter.config.errors import CfgError
from siprouter.config.loader import load
from siprouter.kemi.app_python3 import AppPython3Module, KemiMessage
from siprouter.kemi.ksr import Ksr, current_context, set_current
from siprouter.modules.base import Exports, Function, Module
from siprouter.modules.core import CoreModule
from siprouter.modules.sl import SlModule
from siprouter.modules.textops import TextopsModule
from siprouter.modules.xlog import XlogModule
from siprouter.routing.context import Context, Outgoing, RouteReturn, ScriptExit
from siprouter.routing.router import Router
from siprouter.routing.settings import CoreSettings
from siprouter.sip.message import parse_message

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLIENT = ("127.0.0.1", 6050)
LOCAL = ("127.0.0.1", 5060)
BACKENDS = {("127.0.0.1", 5070), ("127.0.0.1", 5071)}
# Kamailio leaves the default port 5060 out of its Via and Record-Route
OUR_VIA = "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK"


# --------------------------------------------------------------------------- helpers
def request(method: str = "INVITE", ruri: str = "sip:bob@127.0.0.1", *,
            callid: str = "c1@test", cseq: str | None = None, max_forwards: str | None = "70",
            to_tag: str | None = None, branch: str = "z9hG4bK-1",
            extra: tuple[str, ...] = ()) -> bytes:
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:6050;branch={branch}"]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    lines += ["From: <sip:alice@127.0.0.1>;tag=a1",
              "To: <sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
              f"Call-ID: {callid}",
              f"CSeq: {cseq or '1 ' + method}",
              *extra,
              "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send(router: Router, data: bytes, now: float = 0.0) -> list[Outgoing]:
    return router.handle(data, CLIENT, LOCAL, now)


def text(out: Outgoing) -> str:
    return out.data.decode("latin-1")


def first_line(out: Outgoing) -> str:
    return text(out).split("\r\n", 1)[0]


def normalized(outs: list[Outgoing]) -> list[tuple[Any, ...]]:
    """Datagrams with the Via branch values blanked out."""
    return [(o.dst, o.local, o.proto, re.sub(r"branch=[^;,\r\n]+", "branch=*", text(o)))
            for o in outs]


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example cfgs use paths relative to the repository root."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture
def kemi_router(in_root: Path) -> Router:
    return load(EXAMPLES / "loadbalancer-kemi.cfg")


@pytest.fixture
def native_router(in_root: Path) -> Router:
    return load(EXAMPLES / "loadbalancer.cfg")


def ksr_of(router: Router) -> Ksr:
    module = router.modules["app_python3"]
    assert isinstance(module, AppPython3Module) and module.ksr is not None
    return module.ksr


# --------------------------------------------------------------------------- the example
def test_kemi_cfg_installs_python_routes(kemi_router: Router) -> None:
    assert kemi_router.settings.cfgengine == "python"
    script = kemi_router.script
    assert script.request is not None and script.request.__name__ == "kemi_ksr_request_route"
    assert script.reply is not None and script.reply.__name__ == "kemi_ksr_reply_route"
    assert script.onsend is not None
    assert sys.modules["KSR"] is ksr_of(kemi_router).module


def test_max_forwards_zero_gets_483(kemi_router: Router) -> None:
    outs = send(kemi_router, request(max_forwards="0"))
    assert len(outs) == 1
    assert outs[0].dst == CLIENT
    assert first_line(outs[0]) == "SIP/2.0 483 Too Many Hops"
    assert "\r\nTo: <sip:bob@127.0.0.1>;tag=" in text(outs[0])


def test_invite_is_forwarded_to_a_dispatcher_destination(kemi_router: Router) -> None:
    outs = send(kemi_router, request())
    assert len(outs) == 1
    out = outs[0]
    assert out.dst in BACKENDS
    lines = text(out).split("\r\n")
    assert lines[0] == "INVITE sip:bob@127.0.0.1 SIP/2.0"
    vias = [line for line in lines if line.startswith("Via:")]
    assert vias[0].startswith(OUR_VIA)
    assert vias[1] == "Via: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-1"
    assert "Record-Route: <sip:127.0.0.1;lr;ftag=a1>" in lines
    assert "Max-Forwards: 69" in lines


def test_round_robin_over_the_set(kemi_router: Router) -> None:
    dsts = [send(kemi_router, request(callid=f"rr{i}"))[0].dst for i in range(4)]
    assert set(dsts) == BACKENDS
    assert dsts[0] != dsts[1] and dsts[0] == dsts[2]


def test_options_to_self_gets_200(kemi_router: Router) -> None:
    outs = send(kemi_router, request("OPTIONS", "sip:127.0.0.1"))
    assert len(outs) == 1
    assert outs[0].dst == CLIENT
    assert first_line(outs[0]) == "SIP/2.0 200 OK"


def test_options_to_a_user_is_forwarded(kemi_router: Router) -> None:
    outs = send(kemi_router, request("OPTIONS", "sip:carol@127.0.0.1"))
    assert len(outs) == 1 and outs[0].dst in BACKENDS
    assert "Record-Route" not in text(outs[0])


def test_in_dialog_requests(kemi_router: Router) -> None:
    routed = request("BYE", "sip:bob@127.0.0.1:5070", to_tag="b1",
                     extra=("Route: <sip:127.0.0.1:5060;lr;ftag=a1>",))
    outs = send(kemi_router, routed)
    assert len(outs) == 1 and outs[0].dst == ("127.0.0.1", 5070)
    assert "Route:" not in text(outs[0])
    outs = send(kemi_router, request("BYE", to_tag="b1", callid="c2"))
    assert [first_line(o) for o in outs] == ["SIP/2.0 404 Not here"]
    assert send(kemi_router, request("ACK", to_tag="b1", callid="c3")) == []


def test_sanity_failure_gets_sanity_reply(kemi_router: Router) -> None:
    outs = send(kemi_router, request(cseq="1 BYE"))
    assert len(outs) == 1 and first_line(outs[0]).startswith("SIP/2.0 400 ")


def test_reply_is_relayed_through_ksr_reply_route(kemi_router: Router) -> None:
    fwd = send(kemi_router, request())[0]
    our_via = next(line for line in text(fwd).split("\r\n") if line.startswith(OUR_VIA))
    reply = ("SIP/2.0 180 Ringing\r\n" + our_via + "\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-1\r\n"
             "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n"
             "Call-ID: c1@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    outs = kemi_router.handle(reply, fwd.dst, LOCAL, 0.0)
    assert len(outs) == 1 and outs[0].dst == CLIENT
    assert first_line(outs[0]) == "SIP/2.0 180 Ringing"
    assert our_via not in text(outs[0])


PARITY_REQUESTS = [
    request(),
    request(callid="c2", branch="z9hG4bK-2"),
    request("OPTIONS", "sip:127.0.0.1", callid="o1"),
    request("OPTIONS", "sip:127.0.0.1:5060", callid="o2"),
    request("OPTIONS", "sip:127.0.0.1:5070", callid="o3"),
    request("OPTIONS", "sip:carol@127.0.0.1", callid="o4"),
    request(max_forwards="0", callid="m0"),
    request(max_forwards="1", callid="m1"),
    request(max_forwards="abc", callid="m2"),
    request(max_forwards=None, callid="m3"),
    request("BYE", "sip:bob@127.0.0.1:5070", to_tag="b1", callid="d1",
            extra=("Route: <sip:127.0.0.1:5060;lr;ftag=a1>",)),
    request("BYE", to_tag="b1", callid="d2"),
    request("ACK", to_tag="b1", callid="d3"),
    request("ACK", "sip:bob@127.0.0.1:5071", to_tag="b1", callid="d4",
            extra=("Route: <sip:127.0.0.1:5060;lr;ftag=a1>",)),
    request(cseq="1 BYE", callid="s1"),
    request("MESSAGE", "sip:dave@example.com", callid="x1"),
    request("REGISTER", "sip:127.0.0.1", callid="x2"),
    request("CANCEL", callid="x3"),
    request("INVITE", "sips:bob@127.0.0.1", callid="x4"),
]


def test_native_and_kemi_examples_send_the_same_datagrams(
        kemi_router: Router, native_router: Router) -> None:
    for index, data in enumerate(PARITY_REQUESTS):
        got_kemi = normalized(send(kemi_router, data, now=10.0 * index))
        got_native = normalized(send(native_router, data, now=10.0 * index))
        assert got_kemi == got_native, data.decode()
    # replies to what was forwarded are relayed alike
    fwd = send(native_router, request(callid="r1"))[0]
    send(kemi_router, request(callid="r1"))
    our_via = next(line for line in text(fwd).split("\r\n") if line.startswith(OUR_VIA))
    reply = ("SIP/2.0 200 OK\r\n" + our_via + "\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-1\r\n"
             "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n"
             "Call-ID: r1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    assert normalized(kemi_router.handle(reply, fwd.dst, LOCAL, 0.0)) == \
        normalized(native_router.handle(reply, fwd.dst, LOCAL, 0.0)) != []


# --------------------------------------------------------------------------- facade from exports
def test_every_kemi_export_is_reachable_on_ksr(kemi_router: Router) -> None:
    ksr = ksr_of(kemi_router)
    checked = 0
    for module in kemi_router.modules.values():
        ns_name = module.exports.kemi_module
        if ns_name is None:
            continue
        ns = ksr.module if ns_name == "" else getattr(ksr.module, ns_name)
        for fn in module.exports.functions:
            for kname in fn.kemi:
                assert callable(getattr(ns, kname)), f"KSR.{ns_name}.{kname}"
                assert ksr.bindings[(ns_name, kname)] is fn
                checked += 1
    assert checked >= 20
    # the spec's names for the example's modules
    for path in ("maxfwd.process_maxfwd", "maxfwd.is_maxfwd_lt", "sl.sl_send_reply",
                 "sl.send_reply", "sl.sl_reply_error", "sanity.sanity_check",
                 "sanity.sanity_check_defaults", "dispatcher.ds_select_dst",
                 "dispatcher.ds_select_dst_limit", "siputils.has_totag", "rr.record_route",
                 "rr.loose_route", "xlog.xinfo", "hdr.append", "hdr.remove",
                 "hdr.is_present", "hdr.append_to_reply", "forward", "setflag",
                 "isflagset", "force_rport", "pv.get", "kx.get_ruri", "x.modf"):
        obj: Any = ksr.module
        for part in path.split("."):
            obj = getattr(obj, part)
        assert callable(obj), path


class DemoModule(Module):
    exports = Exports(
        name="demo",
        functions=(
            Function("demo_call", "demo_call", ("int", "str"), ("int",),
                     kemi=("demo_call", "demo_call_limit")),
            Function("demo_test", "demo_test", ("str",), kemi=("demo_test",), kemi_bool=True),
            Function("demo_cfg_only", "demo_test", ("str",)),
        ),
        kemi_module="demo",
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.calls: list[tuple[Any, ...]] = []

    def demo_call(self, ctx: Context, a: int, b: str, c: int = 65535) -> int:
        self.calls.append((ctx, a, b, c))
        return 0

    def demo_test(self, ctx: Context, value: str) -> int:
        return 1 if value == "yes" else -1


def make_router(*modules: type[Module]) -> Router:
    settings = CoreSettings()
    settings.apply("listen", "udp:127.0.0.1:5060")
    settings.apply("alias", "proxy.example.com")
    settings.finish()
    router = Router(settings)
    router.modules = {"core": CoreModule(router)}
    for cls in modules:
        module = cls(router)
        router.modules[module.exports.name] = module
    for module in router.modules.values():
        module.init()
    router.refresh_myself()
    return router


@pytest.fixture
def bound() -> Iterator[None]:
    previous = current_context()
    yield
    set_current(previous)


def bind(router: Router, data: bytes, route_type: str = "request") -> Context:
    ctx = Context(router, parse_message(data), CLIENT, LOCAL, "udp", 0.0, route_type)
    set_current(ctx)
    return ctx


def test_module_functions_are_bound_from_exports(bound: None) -> None:
    router = make_router(DemoModule)
    ksr = Ksr(router)
    demo = ksr.module.demo
    ctx = bind(router, request())
    assert demo.demo_call(1, "x") == 0          # a 0 return is just 0 in KEMI
    assert demo.demo_call_limit(1, "x", 5) == 0
    module = router.modules["demo"]
    assert isinstance(module, DemoModule)
    assert module.calls == [(ctx, 1, "x", 65535), (ctx, 1, "x", 5)]
    assert demo.demo_test("yes") is True and demo.demo_test("no") is False
    assert not hasattr(demo, "demo_cfg_only")
    with pytest.raises(TypeError, match="argument 1 must be int"):
        demo.demo_call("1", "x")
    with pytest.raises(TypeError, match="takes 2 to 3 argument"):
        demo.demo_call(1)
    assert set(ksr.bindings) >= {("demo", "demo_call"), ("demo", "demo_call_limit"),
                                 ("demo", "demo_test"), ("", "forward"), ("hdr", "append")}


def test_hdr_namespace_exists_without_textops(bound: None) -> None:
    router = make_router(SlModule)
    ksr = Ksr(router)
    ctx = bind(router, request())
    assert ksr.module.hdr.append("X-Test: 1\r\n") == 1
    assert "X-Test: 1\r\n" in ctx.msg.render()
    assert "textops" not in router.modules


# --------------------------------------------------------------------------- core KSR API
@pytest.fixture
def api(bound: None) -> tuple[Router, Any]:
    router = make_router(SlModule, TextopsModule, XlogModule)
    return router, Ksr(router).module


def test_method_tests(api: tuple[Router, Any]) -> None:
    router, KSR = api
    bind(router, request("INVITE"))
    assert KSR.is_INVITE() is True and KSR.is_BYE() is False
    assert KSR.is_method("INVITE") is True and KSR.is_method("invite") is True
    assert KSR.is_method("BYE|INVITE") is True and KSR.is_method("BYE|ACK") is False
    assert KSR.is_method_in("BI") is True and KSR.is_method_in("ABC") is False
    bind(router, request("PRACK"))
    assert KSR.is_method_in("E") is True and KSR.is_PRACK() is True
    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
             b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\n"
             b"CSeq: 5 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    bind(router, reply, "reply")
    assert KSR.is_OPTIONS() is True and KSR.is_method_in("O") is True
    assert KSR.is_UDP() is True and KSR.is_TCP() is False and KSR.is_IPv4() is True


def test_is_myself(api: tuple[Router, Any]) -> None:
    router, KSR = api
    ctx = bind(router, request("OPTIONS", "sip:127.0.0.1:5060"))
    assert KSR.is_myself("sip:127.0.0.1:5060") is True
    assert KSR.is_myself("sip:127.0.0.1:5070") is False
    assert KSR.is_myself("sip:127.0.0.1") is True          # no port: any port (check_self)
    assert KSR.is_myself("sip:proxy.example.com") is True   # alias
    assert KSR.is_myself("127.0.0.1") is True
    assert KSR.is_myself("sip:10.0.0.1") is False
    assert KSR.is_myself_ruri() is True and KSR.is_myself_furi() is True
    assert KSR.is_myself_duri() is False and KSR.is_myself_srcip() is True
    ctx.dst_uri = "sip:10.1.1.1:5060"
    assert KSR.is_myself_duri() is False and KSR.is_myself_nhuri() is False
    assert KSR.isdsturiset() is True and KSR.resetdsturi() is True
    assert KSR.isdsturiset() is False and KSR.is_myself_nhuri() is True


def test_pv_api(api: tuple[Router, Any]) -> None:
    router, KSR = api
    ctx = bind(router, request(extra=("X-A: one", "X-A: two")))
    assert KSR.pv.get("$rm") == "INVITE"
    assert KSR.pv.get("$sp") == 6050
    assert KSR.pv.get("$ru") == "sip:bob@127.0.0.1"
    assert KSR.pv.get("$du") is None and KSR.pv.is_null("$du") is True
    assert KSR.pv.gete("$du") == "" and KSR.pv.getw("$du") == "<<null>>"
    assert KSR.pv.getvs("$du", "dflt") == "dflt" and KSR.pv.getvn("$du", 7) == 7
    assert KSR.pv.get("$hdr(X-A)") == "one" and KSR.pv.get("$(hdr(Max-Forwards){s.int})") == 70
    assert KSR.pv.sets("$du", "sip:10.0.0.9:5080") is True
    assert ctx.dst_uri == "sip:10.0.0.9:5080" and KSR.pv.is_null("$du") is False
    assert KSR.pv.unset("$du") is True and ctx.dst_uri is None
    assert KSR.pv.sets("$ru", "sip:x@10.0.0.1") is True and ctx.ruri == "sip:x@10.0.0.1"
    assert KSR.pv.get("$rU") == "x" and KSR.pv.get("$ou") == "sip:bob@127.0.0.1"
    assert KSR.pv.seti("$var(n)", 5) is True and KSR.pv.get("$var(n)") == 5
    assert KSR.pv.sets("$si", "1.2.3.4") is False          # read-only
    assert KSR.pv.get("$nosuchpv") is None and KSR.pv.is_null("bad") is True
    with pytest.raises(TypeError):
        KSR.pv.sets("$var(x)", 3)


def test_kx_and_hdr_getters(api: tuple[Router, Any]) -> None:
    router, KSR = api
    ctx = bind(router, request(extra=("User-Agent: tester", "X-A: one", "X-A: two")))
    assert KSR.kx.get_ruri() == "sip:bob@127.0.0.1"
    assert KSR.kx.get_method() == "INVITE" and KSR.kx.get_callid() == "c1@test"
    assert KSR.kx.get_srcip() == "127.0.0.1" and KSR.kx.get_srcport() == 6050
    assert KSR.kx.get_furi() == "sip:alice@127.0.0.1" and KSR.kx.get_tuser() == "bob"
    assert KSR.kx.get_ua() == "tester" and KSR.kx.get_proto() == "udp"
    assert KSR.kx.get_duri() is None and KSR.kx.get_srcuri() == "sip:127.0.0.1:6050"
    assert KSR.kx.gete_body() == "" and KSR.kx.getw_body() == "<<null>>"
    ctx.dst_uri = "sip:10.0.0.1"
    assert KSR.kx.get_nhuri() == "sip:10.0.0.1"
    assert KSR.hdr.get("x-a") == "one" and KSR.hdr.get_idx("X-A", 1) == "two"
    assert KSR.hdr.get_idx("X-A", -1) == "two" and KSR.hdr.get("X-B") is None
    assert KSR.hdr.gete("X-B") == "" and KSR.hdr.getw("X-B") == "<<null>>"
    assert KSR.hdr.get("f") == "<sip:alice@127.0.0.1>;tag=a1"   # compact form
    assert KSR.hdr.is_present("X-A") == 1 and KSR.hdr.is_present("X-B") == -1
    assert KSR.hdr.remove("X-A") > 0 and KSR.hdr.append("X-C: 3\r\n") == 1
    rendered = ctx.msg.render()
    assert "X-A:" not in rendered and "X-C: 3\r\n" in rendered


def test_logging_expands_pvs_only_in_xlog(api: tuple[Router, Any],
                                          caplog: pytest.LogCaptureFixture) -> None:
    router, KSR = api
    router.settings.debug = 3
    bind(router, request())
    with caplog.at_level(logging.DEBUG, logger="siprouter.script"):
        assert KSR.xlog.xinfo("method $rm from $si\n") == 1
        assert KSR.info("method $rm\n") == 0
        assert KSR.log("dbg", "plain text") == 0
        assert KSR.xlog.xlog("L_WARN", "to $tu") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "method INVITE from 127.0.0.1" in messages
    assert "method $rm" in messages and "plain text" in messages
    assert "to sip:bob@127.0.0.1" in messages
    router.settings.debug = 0
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="siprouter.script"):
        KSR.info("hidden")
        KSR.err("shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_modf_calls_any_cfg_function(api: tuple[Router, Any]) -> None:
    router, KSR = api
    ctx = bind(router, request())
    assert KSR.x.modf("append_to_reply", "X-Who: $fU\r\n") == 1
    assert KSR.x.modf("sl_reply", "486", "Busy $rU") == 1     # alias, PVs expanded
    assert len(ctx.out) == 1
    reply = text(ctx.out[0])
    assert reply.startswith("SIP/2.0 486 Busy bob\r\n") and "X-Who: alice\r\n" in reply
    assert KSR.x.modf("is_method", "INVITE") == 1
    with pytest.raises(RuntimeError, match="no such function"):
        KSR.x.modf("no_such_function")
    with pytest.raises(TypeError):
        KSR.x.modf("sl_send_reply", "200")


def test_forward_uri_set_drop_and_route(api: tuple[Router, Any]) -> None:
    router, KSR = api
    ctx = bind(router, request())
    assert KSR.forward_uri("sip:10.0.0.7:5090") == 1
    assert ctx.out[-1].dst == ("10.0.0.7", 5090)
    assert KSR.set_drop() == 0 and ctx.dropped is True

    def returns_5(c: Context) -> None:
        raise RouteReturn(5)

    def exits(c: Context) -> None:
        raise ScriptExit(1)
    router.script.named.update({"R5": returns_5, "EXIT": exits, "PLAIN": lambda c: None})
    assert KSR.route("R5") == 5 and ctx.retcode == 5
    assert KSR.route("EXIT") == 0
    assert KSR.route("PLAIN") == 1
    assert KSR.route("MISSING") == -1


def test_outside_a_route_a_faked_message_is_used(api: tuple[Router, Any]) -> None:
    router, KSR = api
    set_current(None)
    assert KSR.pv.get("$rm") == "OPTIONS"
    assert KSR.is_OPTIONS() is True
    assert KSR.pv.seti("$var(boot)", 1) is True and router.var_store["boot"] == 1


# --------------------------------------------------------------------------- app_python3
CFG = """\
debug=3
listen=udp:127.0.0.1:5060
auto_aliases=no
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
{extra}
"""


def kemi_cfg(tmp_path: Path, script: str, extra: str = 'cfgengine "python"\n') -> Router:
    path = tmp_path / "handler.py"
    path.write_text(textwrap.dedent(script))
    cfg = tmp_path / "kemi.cfg"
    cfg.write_text(CFG.format(script=path, extra=extra))
    return load(cfg)


SCRIPT = """\
    import sys
    import KSR as KSR

    CALLS = []

    def mod_init():
        return Handler()

    class Handler:
        def child_init(self, rank):
            CALLS.append(("child_init", rank))
            return 0

        def ksr_request_route(self, msg):
            CALLS.append(("request", msg.Method, msg.RURI, msg.src_address))
            if KSR.is_OPTIONS():
                KSR.sl.sl_send_reply(200, "OK")
                return 1
            if KSR.is_BYE():
                self.stop()
                KSR.sl.sl_send_reply(500, "not reached")
                return 1
            if KSR.is_MESSAGE():
                raise ValueError("boom")
            if KSR.is_INFO():
                KSR.sl.sl_send_reply(200, 42)      # wrong argument type
            KSR.forward()
            return 1

        def stop(self):
            sys.exit()

        def ksr_reply_route(self, msg):
            CALLS.append(("reply", msg.Status))
            if msg.Status == 183:
                KSR.set_drop()
            return 1

        def ksr_sl_ack(self, msg, evname):
            CALLS.append(("event", evname, msg.Method))
            return 1

        def hello(self, msg, param="none"):
            CALLS.append(("python_exec", param))
            return 7
    """


def test_app_python3_runs_the_handler(tmp_path: Path) -> None:
    router = kemi_cfg(tmp_path, SCRIPT)
    handler_module = router.modules["app_python3"]
    assert isinstance(handler_module, AppPython3Module)
    calls = handler_module.script_module.CALLS
    outs = send(router, request("OPTIONS", "sip:127.0.0.1"))
    assert [first_line(o) for o in outs] == ["SIP/2.0 200 OK"]
    assert calls[-1] == ("request", "OPTIONS", "sip:127.0.0.1", CLIENT)
    outs = send(router, request("INVITE", "sip:bob@10.0.0.5:5090"))
    assert [o.dst for o in outs] == [("10.0.0.5", 5090)]
    handler_module.child_init(3)
    assert calls[-1] == ("child_init", 3)


def test_sys_exit_ends_the_route(tmp_path: Path) -> None:
    router = kemi_cfg(tmp_path, SCRIPT)
    assert send(router, request("BYE", to_tag="x")) == []


def test_script_errors_are_logged_with_the_callid(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    router = kemi_cfg(tmp_path, SCRIPT)
    with caplog.at_level(logging.ERROR, logger="siprouter.kemi"):
        assert send(router, request("MESSAGE", callid="boom-1@test")) == []
        assert send(router, request("INFO", callid="type-1@test")) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("boom-1@test" in r.getMessage() and r.exc_info for r in errors)
    assert any("type-1@test" in r.getMessage() for r in errors)
    # the worker keeps serving
    assert [first_line(o) for o in send(router, request("OPTIONS", "sip:127.0.0.1"))] == \
        ["SIP/2.0 200 OK"]


def test_set_drop_in_the_reply_route_drops_the_reply(tmp_path: Path) -> None:
    router = kemi_cfg(tmp_path, SCRIPT)
    module = router.modules["app_python3"]
    assert isinstance(module, AppPython3Module)

    def reply(code: int, reason: str) -> bytes:
        return (f"SIP/2.0 {code} {reason}\r\n"
                "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\r\n"
                "Via: SIP/2.0/UDP 127.0.0.1:6050;branch=z9hG4bK-1\r\n"
                "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n"
                "Call-ID: c1@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    assert router.handle(reply(183, "Progress"), ("127.0.0.1", 5070), LOCAL, 0.0) == []
    outs = router.handle(reply(180, "Ringing"), ("127.0.0.1", 5070), LOCAL, 0.0)
    assert [o.dst for o in outs] == [CLIENT]
    assert module.script_module.CALLS[-2:] == [("reply", 183), ("reply", 180)]


def test_event_callback_runs_a_handler_method(tmp_path: Path) -> None:
    router = kemi_cfg(tmp_path, SCRIPT, 'modparam("sl", "event_callback_fl_ack", "ksr_sl_ack")\n'
                                        'cfgengine "python"\n')
    module = router.modules["app_python3"]
    assert isinstance(module, AppPython3Module)
    outs = send(router, request("OPTIONS", "sip:127.0.0.1", callid="ack@test"), now=1.0)
    assert first_line(outs[0]) == "SIP/2.0 200 OK"
    totag = re.search(r"\r\nTo: [^\r]*;tag=([^\r;]+)", text(outs[0]))
    assert totag is not None
    ack = request("ACK", "sip:127.0.0.1", callid="ack@test", to_tag=totag.group(1),
                  cseq="1 ACK")
    assert send(router, ack, now=1.5) == []
    assert module.script_module.CALLS[-1] == ("event", "sl:filtered-ack", "ACK")


def test_native_request_route_wins_and_python_exec(tmp_path: Path) -> None:
    extra = textwrap.dedent("""\
        cfgengine "python"
        request_route {
            python_exec("hello", "p1");
            if ($retcode == 7) {
                sl_send_reply("202", "native");
            }
        }
        """)
    router = kemi_cfg(tmp_path, SCRIPT, extra)
    module = router.modules["app_python3"]
    assert isinstance(module, AppPython3Module)
    outs = send(router, request("OPTIONS", "sip:127.0.0.1"))
    assert [first_line(o) for o in outs] == ["SIP/2.0 202 native"]
    assert module.script_module.CALLS[-1] == ("python_exec", "p1")
    assert router.script.reply is not None       # KEMI reply route is still installed


def test_without_cfgengine_the_script_only_serves_python_exec(tmp_path: Path) -> None:
    router = kemi_cfg(tmp_path, SCRIPT, extra="")
    assert router.script.request is None and router.script.reply is None


@pytest.mark.parametrize(("script", "extra", "message"), [
    (None, 'cfgengine "python"\n', "cannot read the python script"),
    ("def mod_init():\n    return None\n", 'cfgengine "python"\n', "returned None"),
    ("x = (\n", 'cfgengine "python"\n', "SyntaxError"),
    ("import KSR\n", 'cfgengine "python"\n', "no callable mod_init"),
    ("def mod_init():\n    return object()\n", 'cfgengine "lua"\n',
     "cfgengine 'lua' is not provided"),
])
def test_load_errors_are_cfg_errors(tmp_path: Path, script: str | None, extra: str,
                                    message: str) -> None:
    path = tmp_path / "handler.py"
    if script is not None:
        path.write_text(script)
    cfg = tmp_path / "kemi.cfg"
    cfg.write_text(CFG.format(script=path, extra=extra))
    with pytest.raises(CfgError, match=message):
        load(cfg)


def test_cfgengine_python_needs_app_python3(tmp_path: Path) -> None:
    cfg = tmp_path / "no-module.cfg"
    cfg.write_text('listen=udp:127.0.0.1:5060\nloadmodule "sl.so"\ncfgengine "python"\n')
    with pytest.raises(CfgError, match="cfgengine 'python'"):
        load(cfg)


def test_message_object_is_invalid_after_the_call(bound: None) -> None:
    router = make_router(SlModule)
    ksr = Ksr(router)
    ctx = Context(router, parse_message(request("INVITE")), CLIENT, LOCAL)
    msg = KemiMessage(ctx, ksr)
    assert msg.Type == "SIP_REQUEST" and msg.getHeader("call-id") == "c1@test"
    msg.set_dst_uri("sip:10.0.0.1")
    assert ctx.dst_uri == "sip:10.0.0.1"
    msg.invalidate()
    with pytest.raises(RuntimeError):
        msg.RURI  # noqa: B018
