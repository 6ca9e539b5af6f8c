"""dispatcher cfg functions through Router.handle(): failover, states, algorithms 10/12/13.

Expected behaviour is Kamailio 5.6.3's (spec/dispatcher.md), checked on a
running 5.6.3 where marked [verified] in the spec or noted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from siprouter.config.errors import CfgError
from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.modules.base import ANY_ROUTE
from siprouter.modules.dispatcher.destinations import DISABLED, INACTIVE, PROBING, TRYING
from siprouter.modules.dispatcher.module import DispatcherModule, parse_mark_state, parse_socket
from siprouter.routing.router import Router
from tests.modules.dispatcher.support import (
    context,
    dispatcher,
    flags_by_uri,
    in_child,
    listing,
    make_router,
    reply,
    request,
    send,
    sent_to,
    top_line,
)

P1, P2, P3, P4 = 58221, 58222, 58223, 58224
FOUR = "".join(f"1 sip:127.0.0.1:{p} 0 0\n" for p in (P1, P2, P3, P4))  # internal: 4, 3, 2, 1
FAILOVER = 'modparam("dispatcher", "flags", 2)'


def uri(port: int) -> str:
    return f"sip:127.0.0.1:{port}"


def run(router: Router, fn: str, data: bytes | None = None, now: float = 0.0) -> tuple[int, object]:
    """Call a module function on a fresh request context: (return code, context)."""
    ctx = context(router, data, now)
    module = dispatcher(router)
    name, _, args = fn.partition("(")
    values = [a.strip().strip('"') for a in args.rstrip(")").split(",") if a.strip()]
    call = getattr(module, name)
    converted = [int(v) if v.lstrip("-").isdigit() else v for v in values]
    return call(ctx, *converted), ctx


def records(ctx: object) -> list[str]:
    return [r["uri"] for r in ctx.xavps.get("_dsdst_", [])]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- failover list


def test_failover_list_spec_example(tmp_path: Path) -> None:
    """§7: set [7024, 7023(D), 7022, 7021], alg 4: du=7022, list 7022 7021 7024, cnt=3."""
    lst = FOUR.replace(f"{P3} 0 0", f"{P3} 4 0")
    router = make_router(tmp_path, "request_route { exit; }", lst, FAILOVER)
    module = dispatcher(router)
    ctx = context(router)
    assert module.ds_select_dst(ctx, 1, 4) == 1  # first call: index 0 = 58224
    ctx = context(router)
    assert module.ds_select_dst(ctx, 1, 4) == 1
    assert ctx.dst_uri == uri(P2)
    assert records(ctx) == [uri(P2), uri(P1), uri(P4)]
    assert ctx.xavps["_dsctx_"] == [{"cnt": 3}]
    assert ctx.xavps["_dsdst_"][0] == {"uri": uri(P2), "grp": 1}
    ctx = context(router)
    module.ds_select_dst(ctx, 1, 4)
    assert records(ctx) == [uri(P1), uri(P4), uri(P2)]


def test_limit_and_no_failover(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", FOUR, FAILOVER)
    code, ctx = run(router, "ds_select_dst(1, 8, 2)")
    assert code == 1 and records(ctx) == [uri(P4), uri(P3)]
    assert ctx.xavps["_dsctx_"] == [{"cnt": 2}]  # type: ignore[attr-defined]
    plain = make_router(tmp_path, "request_route { exit; }", FOUR)
    code, ctx = run(plain, "ds_select_dst(1, 8)")
    assert code == 1 and records(ctx) == []
    assert ctx.xavps["_dsctx_"] == [{"cnt": 0}]  # type: ignore[attr-defined]


def test_second_selection_puts_its_records_first(tmp_path: Path) -> None:
    """[verified] 5.6.3: a later ds_select_dst() prepends its records and its cnt."""
    lst = "1 sip:127.0.0.1:58221 0 0\n1 sip:127.0.0.1:58222 0 0\n2 sip:127.0.0.1:58231 4 0\n"
    router = make_router(tmp_path, "request_route { exit; }", lst, FAILOVER)
    module = dispatcher(router)
    ctx = context(router)
    assert module.ds_select_dst(ctx, 1, 4) == 1
    assert module.ds_select_dst(ctx, 2, 4) == -1
    assert module.ds_select_dst(ctx, 1, 4) == 1
    assert records(ctx) == [uri(P1), uri(P2), uri(P2), uri(P1)]
    assert ctx.xavps["_dsctx_"] == [{"cnt": 2}, {"cnt": 2}]


def test_use_default_entry_is_appended_last_unchecked(tmp_path: Path) -> None:
    lst = FOUR.replace(f"{P1} 0 0", f"{P1} 4 0")  # the default entry (index 3) is disabled
    router = make_router(tmp_path, "request_route { exit; }", lst,
                         FAILOVER + '\nmodparam("dispatcher", "use_default", 1)')
    code, ctx = run(router, "ds_select_dst(1, 8)")
    assert code == 1 and records(ctx) == [uri(P4), uri(P3), uri(P2), uri(P1)]


def test_xavp_fields_attrs_socket_and_modes(tmp_path: Path) -> None:
    lst = "1 sip:127.0.0.1:58221 0 0 socket=udp:127.0.0.1:58200;class=4\n"
    router = make_router(tmp_path, "request_route { exit; }", lst,
                         FAILOVER + '\nmodparam("dispatcher", "xavp_dst_mode", 2)')
    code, ctx = run(router, "ds_select_dst(1, 8)")
    assert code == 1
    assert ctx.xavps["_dsdst_"] == [{  # type: ignore[attr-defined]
        "uri": uri(P1), "grp": 1, "attrs": "socket=udp:127.0.0.1:58200;class=4",
        "sock": "udp:127.0.0.1:58200", "socket": "udp:127.0.0.1:58200"}]
    assert ctx.local == ("127.0.0.1", 58200)  # type: ignore[attr-defined]
    skip = make_router(tmp_path, "request_route { exit; }", lst,
                       FAILOVER + '\nmodparam("dispatcher", "xavp_dst_mode", 1)'
                       '\nmodparam("dispatcher", "xavp_ctx_mode", 1)')
    code, ctx = run(skip, "ds_select_dst(1, 8)")
    assert ctx.xavps["_dsdst_"] == [  # type: ignore[attr-defined]
        {"uri": uri(P1), "grp": 1, "sock": "udp:127.0.0.1:58200"}]
    assert "_dsctx_" not in ctx.xavps  # type: ignore[attr-defined]


def test_non_local_socket_skips_the_destination(tmp_path: Path) -> None:
    lst = "1 sip:127.0.0.1:58221 0 0 socket=udp:10.9.9.9:5060\n1 sip:127.0.0.1:58222\n"
    router = make_router(tmp_path, "request_route { exit; }", lst)
    assert list(flags_by_uri(dispatcher(router))) == [uri(P2)]
    with pytest.raises(CfgError, match="non-local socket"):
        make_router(tmp_path, "request_route { exit; }", lst,
                    'modparam("dispatcher", "ds_load_mode", 1)')
    with pytest.raises(CfgError, match="non-local socket"):
        make_router(tmp_path, "request_route { exit; }", FOUR,
                    'modparam("dispatcher", "ds_default_socket", "udp:127.0.0.1:9")')


def test_default_socket_applies_to_every_destination(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", FOUR,
                         FAILOVER + '\nmodparam("dispatcher", "ds_default_socket", '
                                    '"udp:127.0.0.1:58200")')
    code, ctx = run(router, "ds_select_dst(1, 8, 1)")
    assert ctx.xavps["_dsdst_"][0]["sock"] == "udp:127.0.0.1:58200"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- next / set


ROUTE_FAILOVER = r'''
request_route {
  if (!ds_select_dst("1", "4")) { send_reply("503", "none"); exit; }
  if ($rU == "next2") { ds_next_dst(); ds_next_dst(); }
  if ($rU == "nextall") { while (ds_next_dst()) { $var(n) = $var(n) + 1; } }
  if ($rU == "domain") { ds_next_domain(); }
  if ($rU == "setdom") { ds_set_domain(); }
  forward();
}
'''


def test_ds_next_dst_walks_the_list_then_fails(tmp_path: Path) -> None:
    router = make_router(tmp_path, ROUTE_FAILOVER, FOUR, FAILOVER)
    assert sent_to(send(router, request("next2", callid="a"))) == [P2]  # 4 -> 3 -> 2
    router.var_store["n"] = 0
    assert sent_to(send(router, request("nextall", callid="b"))) == [P4]  # last record
    assert router.var_store["n"] == 3


def test_ds_next_domain_and_set_domain_rewrite_the_ruri(tmp_path: Path) -> None:
    router = make_router(tmp_path, ROUTE_FAILOVER, FOUR, FAILOVER)
    out = send(router, request("domain", callid="a"))  # selects P4, next is P3
    assert top_line(out[0]) == "INVITE sip:domain@127.0.0.1:58223 SIP/2.0"
    assert sent_to(out) == [P4]  # $du is still the selected one
    out = send(router, request("setdom", callid="b"))  # selects P3 and applies it again
    assert top_line(out[0]) == "INVITE sip:setdom@127.0.0.1:58223 SIP/2.0"


def test_next_dst_without_failover_flag_fails(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", FOUR)
    code, ctx = run(router, "ds_next_dst()")
    assert code == -1
    code, ctx = run(router, "ds_set_dst()")
    assert code == -1  # no records


def test_select_domain_keeps_user_and_drops_port(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", "1 sip:10.0.0.7:5070;transport=tcp\n")
    code, ctx = run(router, "ds_select_domain(1, 4)")
    assert code == 1
    assert ctx.ruri == "sip:u@10.0.0.7:5070;transport=tcp"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- ds_mark_dst


MARK_ROUTE = r'''
request_route {
  ds_select_dst("1", "8");
  if ($hdr(X-Mark) != $null) { ds_mark_dst("$hdr(X-Mark)"); $var(rc) = $rc; }
  if ($rU == "mark0") { ds_mark_dst(); $var(rc) = $rc; }
  forward();
}
onreply_route {
  exit;
}
event_route[dispatcher:dst-down] {
  $var(events) = $var(events) + "down:" + $ru + ":" + $dsv(code) + ":" + $dsv(flags) + ";";
}
event_route[dispatcher:dst-up] {
  $var(events) = $var(events) + "up:" + $ru + ":" + $dsv(code) + ";";
}
'''


def marked(router: Router, state: str, callid: str) -> object:
    send(router, request("m", callid=callid, extra=f"X-Mark: {state}\r\n"))
    return router.var_store.get("rc")


def test_ds_mark_dst_state_machine_and_events(tmp_path: Path) -> None:
    """[verified] 5.6.3 probing_threshold 2: t -> TX, t -> IX (down, 820), a -> AX (up)."""
    router = make_router(tmp_path, MARK_ROUTE, FOUR,
                         FAILOVER + '\nmodparam("dispatcher", "ds_probing_threshold", 2)')
    router.var_store["events"] = ""
    module = dispatcher(router)
    assert marked(router, "t", "c1") == 1
    assert flags_by_uri(module)[uri(P4)] == "TX"
    assert marked(router, "t", "c2") == 1
    assert flags_by_uri(module)[uri(P4)] == "IX"
    assert router.var_store["events"] == "down:sip:m@127.0.0.1:58200:820:0;"
    assert marked(router, "a", "c3") == 1  # ds_select_dst now picks P3 ...
    assert flags_by_uri(module)[uri(P3)] == "AX"
    assert marked(router, "ip", "c4") == 1  # ... and takes it down at once
    assert flags_by_uri(module) == {uri(P4): "IX", uri(P3): "IP", uri(P2): "AX", uri(P1): "AX"}
    assert marked(router, "x", "c5") == -1


def test_ds_mark_dst_default_state_and_failover_requirement(tmp_path: Path) -> None:
    router = make_router(tmp_path, MARK_ROUTE, FOUR,
                         FAILOVER + '\nmodparam("dispatcher", "ds_probing_mode", 1)')
    send(router, request("mark0"))
    assert router.var_store["rc"] == 1
    assert flags_by_uri(dispatcher(router))[uri(P4)] == "IP"  # i + p with probing mode 1
    plain = make_router(tmp_path, MARK_ROUTE, FOUR)
    send(plain, request("mark0"))
    assert plain.var_store["rc"] == -1
    assert flags_by_uri(dispatcher(plain))[uri(P4)] == "AX"


def test_ds_mark_dst_on_a_reply_reports_its_code(tmp_path: Path) -> None:
    router = make_router(tmp_path, MARK_ROUTE, FOUR, FAILOVER)
    router.var_store["events"] = ""
    module = dispatcher(router)
    ctx = context(router, reply(503, "Busy"))
    ctx.xavps["_dsdst_"] = [{"uri": uri(P2), "grp": 1}]
    assert module.ds_mark_dst(ctx, "i") == 1
    assert router.var_store["events"] == "down::503:1;"  # a reply has no $ru
    ctx.xavps["_dsdst_"] = [{"uri": "sip:127.0.0.1:1", "grp": 1}]
    assert module.ds_mark_dst(ctx, "i") == -1  # not in the set


def test_state_changes_reach_every_process(tmp_path: Path) -> None:
    """A worker's ds_mark_dst() is seen by another worker's next selection."""
    router = make_router(tmp_path, MARK_ROUTE, FOUR, FAILOVER)
    in_child(lambda: marked(router, "i", "c1"))  # marks P4 (first by priority order)
    assert sent_to(send(router, request("x", callid="c2"))) == [P3]
    assert in_child(lambda: sent_to(send(router, request("x", callid="c3")))) == [P3]


@pytest.mark.parametrize(("text", "flags"), [
    ("i", INACTIVE), ("IP", INACTIVE | PROBING), ("d", DISABLED), ("tp", TRYING | PROBING),
    ("ia", 0), ("ai", INACTIVE), ("ap", PROBING), ("x", -1), ("i ", -1)])
def test_parse_mark_state(text: str, flags: int) -> None:
    assert parse_mark_state(text) == flags


# --------------------------------------------------------------------------- other functions


def test_ds_is_active_and_list_exists(tmp_path: Path) -> None:
    lst = "1 sip:127.0.0.1:58221 1 0\n1 sip:127.0.0.1:58222 0 0\n2 sip:127.0.0.1:58231 4 0\n"
    router = make_router(tmp_path, "request_route { exit; }", lst)
    assert run(router, "ds_is_active(1)")[0] == 1
    assert run(router, "ds_is_active(2)")[0] == -1
    assert run(router, "ds_is_active(3)")[0] == -1
    assert run(router, f"ds_is_active(1, {uri(P2)})")[0] == 1
    assert run(router, f"ds_is_active(1, {uri(P1)})")[0] == -1
    assert run(router, "ds_is_active(1, SIP:127.0.0.1:58222)")[0] == -1  # exact bytes
    assert run(router, "ds_list_exists(2)")[0] == 1
    assert run(router, "ds_list_exists(4)")[0] == -1


def test_ds_select_routes(tmp_path: Path) -> None:
    lst = "1 sip:127.0.0.1:58221 4 0\n2 sip:127.0.0.1:58231 0 0\n2 sip:127.0.0.1:58232 0 0\n" \
          "3 sip:127.0.0.1:58241 0 0\n"
    router = make_router(tmp_path, "request_route { exit; }", lst, FAILOVER)
    code, ctx = run(router, "ds_select_routes(1=4;2=8;3=4, d)")
    assert code == 1
    assert ctx.dst_uri == "sip:127.0.0.1:58232"  # type: ignore[attr-defined]
    assert records(ctx) == ["sip:127.0.0.1:58232", "sip:127.0.0.1:58231",
                            "sip:127.0.0.1:58241"]
    assert ctx.xavps["_dsctx_"] == [{"cnt": 3}]  # type: ignore[attr-defined]
    code, ctx = run(router, "ds_select_routes(2=8;3=4, x, 2)")
    assert code == 1 and ctx.dst_uri is None  # type: ignore[attr-defined]
    assert records(ctx) == ["sip:127.0.0.1:58232", "sip:127.0.0.1:58231"]
    assert run(router, "ds_select_routes(1=4, d)")[0] == -1
    assert run(router, "ds_select_routes(1=4;x, d)")[0] == -1
    assert run(router, "ds_select_routes(2=4, q)")[0] == -1


def test_force_dst_0_refuses_a_set_du(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", FOUR,
                         'modparam("dispatcher", "force_dst", 0)')
    module = dispatcher(router)
    ctx = context(router)
    assert module.ds_select_dst(ctx, 1, 4) == 1
    assert module.ds_select_dst(ctx, 1, 4) == -1
    assert module.ds_select(ctx, 1, 4) == 1


def test_reload_with_reload_delta(tmp_path: Path) -> None:
    route = r'request_route { ds_reload(); $var(rc) = $rc; exit; }'
    router = make_router(tmp_path, route, FOUR, 'modparam("dispatcher", "reload_delta", 2)')
    module = dispatcher(router)
    wall = [1000.0]
    module.shared_state().clock = lambda: wall[0]
    (tmp_path / "dispatcher.list").write_text("7 sip:127.0.0.1:58271\n")
    send(router, request())
    assert router.var_store["rc"] == 1
    assert list(flags_by_uri(module)) == ["sip:127.0.0.1:58271"]
    wall[0] = 1001.0
    (tmp_path / "dispatcher.list").write_text(FOUR)
    send(router, request())
    assert router.var_store["rc"] == -1  # within reload_delta
    wall[0] = 1002.0
    (tmp_path / "dispatcher.list").write_text("1\n")  # a bad line: the old list stays
    send(router, request())
    assert router.var_store["rc"] == -1
    assert list(flags_by_uri(module)) == ["sip:127.0.0.1:58271"]


def test_reload_in_a_worker_is_used_by_the_others(tmp_path: Path) -> None:
    router = make_router(tmp_path, ROUTE_FAILOVER, FOUR,
                         FAILOVER + '\nmodparam("dispatcher", "reload_delta", 0)')
    module = dispatcher(router)
    (tmp_path / "dispatcher.list").write_text("1 sip:127.0.0.1:58261 0 0\n")
    assert in_child(lambda: module.ds_reload(context(router))) == 1
    assert sent_to(send(router, request())) == [58261]


def test_start_up_errors(tmp_path: Path) -> None:
    with pytest.raises(CfgError, match="TM-functions"):
        make_router(tmp_path, "request_route { exit; }", FOUR,
                    'modparam("dispatcher", "ds_ping_interval", 10)')
    with pytest.raises(CfgError, match="no dispatching list"):
        make_router(tmp_path, "request_route { exit; }", "1\n")
    with pytest.raises(CfgError, match="invalid setid_pvname"):
        make_router(tmp_path, "request_route { exit; }", FOUR,
                    'modparam("dispatcher", "setid_pvname", "$rm")')
    with pytest.raises(CfgError):
        make_router(tmp_path, "request_route { $var(x) = $dsv(nope); }", FOUR)


def test_empty_list_loads_and_selection_fails(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", "# nothing\n")
    assert run(router, "ds_select_dst(1, 4)")[0] == -1
    with pytest.raises(Exception, match="No Destination Sets"):
        listing(dispatcher(router))


def test_works_without_a_shared_area(tmp_path: Path) -> None:
    """Single process (rank 0) with no supervisor: a private shared mapping."""
    router = make_router(tmp_path, ROUTE_FAILOVER, FOUR, FAILOVER, shared=False)
    assert sent_to(send(router, request(callid="a"))) == [P4]
    assert in_child(lambda: sent_to(send(router, request(callid="b")))) == [P3]
    assert sent_to(send(router, request(callid="c"))) == [P2]


def test_dsv_is_null_outside_event_routes(tmp_path: Path) -> None:
    router = make_router(tmp_path, 'request_route { $var(c) = $dsv(code); exit; }', FOUR)
    send(router, request())
    assert router.var_store["c"] in (None, 0)


# --------------------------------------------------------------------------- alg 12


def test_alg_12_parallel_branches(tmp_path: Path) -> None:
    """[verified] 5.6.3: d-uri mode: $du = first usable, one branch per later entry;
    xavp mode: branches from the selected one on; no failover records, cnt 0."""
    lst = FOUR.replace(f"{P2} 0 0", f"{P2} 4 0")
    router = make_router(tmp_path, "request_route { exit; }", lst, FAILOVER)
    code, ctx = run(router, "ds_select_dst(1, 12)")
    assert code == 1 and ctx.dst_uri == uri(P4)  # type: ignore[attr-defined]
    assert [(b.uri, b.dst_uri) for b in ctx.branches] == [  # type: ignore[attr-defined]
        ("sip:u@127.0.0.1:58200", uri(P3)), ("sip:u@127.0.0.1:58200", uri(P2)),
        ("sip:u@127.0.0.1:58200", uri(P1))]  # states unchecked
    assert records(ctx) == [] and ctx.xavps["_dsctx_"] == [{"cnt": 0}]  # type: ignore[attr-defined]
    code, ctx = run(router, "ds_select(1, 12)")
    assert len(ctx.branches) == 4 and ctx.dst_uri is None  # type: ignore[attr-defined]
    code, ctx = run(router, "ds_select_domain(1, 12)")
    assert ctx.ruri == "sip:u@127.0.0.1:58224"  # type: ignore[attr-defined]
    assert [b.uri for b in ctx.branches] == [  # type: ignore[attr-defined]
        "sip:u@127.0.0.1:58223", "sip:u@127.0.0.1:58222", "sip:u@127.0.0.1:58221"]


def test_alg_12_branch_limit_returns_2(tmp_path: Path) -> None:
    lst = "".join(f"1 sip:127.0.0.1:{58200 + i} 0 0\n" for i in range(1, 16))
    router = make_router(tmp_path, "request_route { exit; }", lst)
    code, ctx = run(router, "ds_select_dst(1, 12)")
    assert code == 2
    assert len(ctx.branches) == router.settings.max_branches - 1  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- alg 10


LOAD_ROUTE = r'''
request_route {
  if (is_method("BYE|CANCEL")) { ds_load_update(); $var(rc) = $rc; exit; }
  if ($rU == "unset") { ds_select_dst("1", "10"); ds_load_unset(); $var(rc) = $rc; exit; }
  if (!ds_select_dst("1", "10")) { send_reply("503", "full"); exit; }
  if ($rU == "next") { ds_next_dst(); }
  forward();
}
onreply_route { ds_load_update(); }
'''
LOAD_LIST = ("1 sip:127.0.0.1:58221 0 0 duid=one;maxload=2\n"
             "1 sip:127.0.0.1:58222 0 0 duid=two;maxload=1\n")


def loads(module: DispatcherModule) -> dict[str, int]:
    out = {}
    for record in listing(module)["RECORDS"]:
        for target in record["SET"]["TARGETS"]:
            out[target["DEST"]["URI"]] = target["DEST"]["RUNTIME"]["DLGLOAD"]
    return out


def load_router(tmp_path: Path, extra: str = "") -> Router:
    return make_router(tmp_path, LOAD_ROUTE, LOAD_LIST,
                       FAILOVER + '\nmodparam("dispatcher", "ds_hash_size", 4)\n' + extra)


def test_alg_10_least_loaded_with_maxload(tmp_path: Path) -> None:
    router = load_router(tmp_path)
    module = dispatcher(router)
    assert sent_to(send(router, request(callid="c1"))) == [P2]  # internal order: two, one
    assert sent_to(send(router, request(callid="c2"))) == [P1]
    assert sent_to(send(router, request(callid="c3"))) == [P1]  # two is at maxload 1
    out = send(router, request(callid="c4"))
    assert top_line(out[0]) == "SIP/2.0 503 full"
    assert loads(module) == {uri(P2): 1, uri(P1): 2}
    send(router, request(method="BYE", callid="c2", totag="x"))
    assert router.var_store["rc"] == 1
    assert loads(module) == {uri(P2): 1, uri(P1): 1}
    assert sent_to(send(router, request(callid="c5"))) == [P1]
    # non-INVITE: index 0 (maxload is not looked at), no load accounting
    assert sent_to(send(router, request(method="MESSAGE", callid="c6"))) == [P2]
    assert loads(module) == {uri(P2): 1, uri(P1): 2}


def test_alg_10_records_carry_dstid_and_next_moves_the_load(tmp_path: Path) -> None:
    router = load_router(tmp_path)
    module = dispatcher(router)
    code, ctx = run(router, "ds_select_dst(1, 10)", request(callid="m1"))
    assert code == 1
    assert [r.get("dstid") for r in ctx.xavps["_dsdst_"]] == ["two", "one"]  # type: ignore[attr-defined]
    assert loads(module) == {uri(P2): 1, uri(P1): 0}
    assert module.ds_next_dst(ctx) == 1  # type: ignore[arg-type]
    assert loads(module) == {uri(P2): 0, uri(P1): 1}
    assert ctx.dst_uri == uri(P1)  # type: ignore[attr-defined]


def test_alg_10_confirmed_calls_and_expiry(tmp_path: Path) -> None:
    router = load_router(tmp_path, 'modparam("dispatcher", "ds_hash_expire", 100)\n'
                                   'modparam("dispatcher", "ds_hash_initexpire", 10)\n'
                                   'modparam("dispatcher", "ds_hash_check_interval", 5)')
    module = dispatcher(router)
    module.child_init(0)
    timer = module.expiry
    assert timer is not None and router.timers == [timer]
    send(router, request(callid="conf"), now=0.0)  # -> two
    send(router, request(callid="init"), now=0.0)  # -> one
    send(router, reply(200, "OK", callid="conf"), now=1.0)
    assert module.calls is not None and module.calls.get("conf").state == 1  # type: ignore[union-attr]
    assert timer.next_deadline() == 0.0
    timer.on_deadline(3.0)  # schedules the first check
    assert timer.next_deadline() == 8.0
    timer.on_deadline(8.0)
    assert loads(module) == {uri(P2): 1, uri(P1): 1}
    timer.on_deadline(13.0)  # "init" is still INIT after 10 s: dropped
    assert loads(module) == {uri(P2): 1, uri(P1): 0}
    timer.on_deadline(103.0)
    assert loads(module) == {uri(P2): 0, uri(P1): 0}
    assert len(module.calls) == 0


def test_alg_10_load_unset_and_duplicate_callid(tmp_path: Path) -> None:
    router = load_router(tmp_path)
    module = dispatcher(router)
    send(router, request("unset", callid="u1"))
    assert router.var_store["rc"] == 1
    assert loads(module) == {uri(P2): 0, uri(P1): 0}
    send(router, request(callid="dup"))
    send(router, request(callid="dup"))  # already counted: classic dispatching, no load
    assert loads(module) == {uri(P2): 1, uri(P1): 0}
    assert run(router, "ds_load_unset()", request(method="BYE", callid="nope"))[0] == -1


def test_alg_10_without_hash_table_does_no_accounting(tmp_path: Path) -> None:
    router = make_router(tmp_path, LOAD_ROUTE, LOAD_LIST, FAILOVER)
    for k in range(3):
        assert sent_to(send(router, request(callid=f"k{k}"))) == [P2]


# --------------------------------------------------------------------------- alg 13


def test_alg_13_prefers_low_latency_and_rotates(tmp_path: Path) -> None:
    lst = ("1 sip:127.0.0.1:58221 0 10 latency=5\n"
           "1 sip:127.0.0.1:58222 0 10 latency=95\n"
           "1 sip:127.0.0.1:58223 0 10 latency=30\n")
    router = make_router(tmp_path, "request_route { exit; }", lst,
                         FAILOVER + '\nmodparam("dispatcher", "ds_ping_latency_stats", 1)')
    # internal order [58223, 58222, 58221]; priorities 10-30//10=7, 10-95//10=1, 10 (5 < 10)
    code, ctx = run(router, "ds_select_dst(1, 13)")
    assert code == 1 and ctx.dst_uri == uri(P1)  # type: ignore[attr-defined]
    assert records(ctx) == [uri(P1), uri(P3), uri(P2)]
    code, ctx = run(router, "ds_select_dst(1, 13)")  # the pointer moved past the selected
    assert ctx.dst_uri == uri(P1)  # type: ignore[attr-defined]
    module = dispatcher(router)
    module.rpc_set_state(["i", 1, uri(P1)])
    code, ctx = run(router, "ds_select_dst(1, 13, 1)")
    assert ctx.dst_uri == uri(P3) and records(ctx) == [uri(P3)]  # type: ignore[attr-defined]
    module.rpc_set_state(["d", 1, "all"])
    assert run(router, "ds_select_dst(1, 13)")[0] == -1


def test_alg_13_equal_latency_is_round_robin(tmp_path: Path) -> None:
    router = make_router(tmp_path, "request_route { exit; }", FOUR, FAILOVER)
    picks = [run(router, "ds_select_dst(1, 13)")[1].dst_uri for _ in range(5)]  # type: ignore[attr-defined]
    assert picks == [uri(P4), uri(P3), uri(P2), uri(P1), uri(P4)]


# --------------------------------------------------------------------------- exports


def test_exports_names_arities_and_routes() -> None:
    fns = {fn.name: fn for fn in DispatcherModule.exports.functions}
    kemi = {name for fn in fns.values() for name in fn.kemi}
    assert kemi == {
        "ds_select", "ds_select_limit", "ds_select_dst", "ds_select_dst_limit",
        "ds_select_domain", "ds_select_domain_limit", "ds_select_routes",
        "ds_select_routes_limit", "ds_next_dst", "ds_next_domain", "ds_set_dst",
        "ds_set_domain", "ds_mark_dst", "ds_mark_dst_state", "ds_is_from_lists",
        "ds_is_from_list", "ds_is_from_list_mode", "ds_is_from_list_uri", "ds_load_update",
        "ds_load_unset", "ds_reload", "ds_list_exists", "ds_is_active", "ds_is_active_uri"}
    assert list(fns["ds_select_dst"].arities) == [2, 3]
    assert list(fns["ds_mark_dst"].arities) == [0, 1]
    assert fns["ds_mark_dst"].routes == frozenset(("request", "failure", "onreply"))
    assert fns["ds_next_dst"].routes == frozenset(("request", "failure"))
    assert fns["ds_reload"].routes == ANY_ROUTE
    assert "ds_list_exist" in fns["ds_list_exists"].aliases
    assert {name for name, _ in DispatcherModule.exports.rpc} == {
        "dispatcher.list", "dispatcher.reload", "dispatcher.set_state",
        "dispatcher.set_duid_state", "dispatcher.ping_active", "dispatcher.add",
        "dispatcher.remove", "dispatcher.hash"}


def test_next_dst_is_not_allowed_in_reply_routes(tmp_path: Path) -> None:
    with pytest.raises(CfgError, match="cannot be used in onreply routes"):
        make_router(tmp_path, "request_route { exit; } onreply_route[X] { ds_next_dst(); }",
                    FOUR)


def test_parse_socket() -> None:
    assert parse_socket("udp:127.0.0.1:5060") == ("udp", "127.0.0.1", 5060)
    assert parse_socket("127.0.0.1") == ("", "127.0.0.1", 0)
    assert parse_socket("tcp:[::1]:5061") == ("tcp", "::1", 5061)
    assert parse_socket("udp:h:x") is None


def test_cfg_text_router_with_kemi_free_build(tmp_path: Path) -> None:
    """build_router() directly, like `siprouter check` (no shared area, no fork)."""
    (tmp_path / "d.list").write_text(FOUR)
    text = "\n".join(["listen=udp:127.0.0.1:58200", 'loadmodule "dispatcher.so"',
                      f'modparam("dispatcher", "list_file", "{tmp_path / "d.list"}")',
                      'request_route { ds_select_dst("1", "4"); forward(); }'])
    router = build_router(parse_text(text))
    assert sent_to(send(router, request())) == [P4]


# --------------------------------------------------------------------------- D1


def test_d1_holds_after_ds_mark_dst(tmp_path: Path) -> None:
    """D1 for states set at run time: alg 9 50/30/20 with the 30 marked down -> 71/29,
    alg 0 keys of healthy destinations stay, the marked one's keys are spread."""
    lst = ("1 sip:127.0.0.1:58221 0 0 weight=20\n1 sip:127.0.0.1:58222 0 0 weight=30\n"
           "1 sip:127.0.0.1:58223 0 0 weight=50\n")  # internal order 58223, 58222, 58221
    route = r'''request_route {
      if ($rU == "w") { ds_select_dst("1", "9"); } else { ds_select_dst("1", "0"); }
      if ($rU == "mark") { ds_mark_dst("i"); }
      forward();
    }'''
    router = make_router(tmp_path, route, lst, FAILOVER)
    before = {k: sent_to(send(router, request("h", callid=f"d1-{k}")))[0] for k in range(300)}
    key = next(k for k in before if before[k] == P2)
    send(router, request("mark", callid=f"d1-{key}"))  # takes 58222 (weight 30) down
    marked = P2
    assert flags_by_uri(dispatcher(router))[uri(marked)] == "IX"
    after = {k: sent_to(send(router, request("h", callid=f"d1-{k}")))[0] for k in range(300)}
    moved = [k for k in after if after[k] != before[k]]
    assert all(before[k] == marked for k in moved)  # only the marked one's keys move
    assert marked not in after.values()
    spread = {after[k] for k in moved}
    assert len(spread) == 2  # spread over both usable ones, not handed to one neighbour
    weights = [sent_to(send(router, request("w", callid=f"w-{k}")))[0] for k in range(100)]
    assert (weights.count(P3), weights.count(P1)) == (71, 29)
