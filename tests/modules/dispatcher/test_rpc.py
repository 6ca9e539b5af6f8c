"""dispatcher.* RPC commands: results, faults, and effect on the workers.

The expected structures and texts were read from Kamailio 5.6.3 through
jsonrpcs (tests in this file mirror those calls). RPC methods run in the
control process: in_child() plays it, the test process plays a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from siprouter.modules.dispatcher.hashing import ds_get_hash
from siprouter.rpc.errors import RpcError
from tests.modules.dispatcher.support import (
    dispatcher,
    flags_by_uri,
    in_child,
    listing,
    make_router,
    request,
    send,
    sent_to,
)

LIST = ("1 sip:127.0.0.1:58221 0 0\n"
        "1 sip:127.0.0.1:58222 8 0 duid=b;maxload=3\n"
        "1 sip:127.0.0.1:58223 0 5 weight=50;socket=udp:127.0.0.1:58200;"
        "ping_from=sip:x@y;obproxy=sip:127.0.0.1:58224\n"
        "2 sip:127.0.0.1:58231;transport=tcp 4 0\n")
ROUTE = r'request_route { if (!ds_select_dst("1", "4")) { send_reply("503", "x"); exit; } forward(); }'


def router_for(tmp_path: Path, extra: str = "") -> Any:
    return make_router(tmp_path, ROUTE, LIST, extra)


def fault(call: Any, *args: Any) -> str:
    with pytest.raises(RpcError) as info:
        call(*args)
    assert info.value.code == 500
    return info.value.message


# --------------------------------------------------------------------------- list


def test_list_structure_matches_kamailio(tmp_path: Path) -> None:
    module = dispatcher(router_for(tmp_path))
    assert listing(module) == {"NRSETS": 2, "RECORDS": [
        {"SET": {"ID": 1, "TARGETS": [
            {"DEST": {"URI": "sip:127.0.0.1:58223", "FLAGS": "AX", "PRIORITY": 5,
                      "ATTRS": {"BODY": "weight=50;socket=udp:127.0.0.1:58200;"
                                        "ping_from=sip:x@y;obproxy=sip:127.0.0.1:58224",
                                "DUID": None, "MAXLOAD": 0, "WEIGHT": 50, "RWEIGHT": 0,
                                "SOCKET": "udp:127.0.0.1:58200", "SOCKNAME": None,
                                "OBPROXY": "sip:127.0.0.1:58224"}}},
            {"DEST": {"URI": "sip:127.0.0.1:58222", "FLAGS": "AP", "PRIORITY": 0,
                      "ATTRS": {"BODY": "duid=b;maxload=3", "DUID": "b", "MAXLOAD": 3,
                                "WEIGHT": 0, "RWEIGHT": 0, "SOCKET": None, "SOCKNAME": None,
                                "OBPROXY": None}}},
            {"DEST": {"URI": "sip:127.0.0.1:58221", "FLAGS": "AX", "PRIORITY": 0}}]}},
        {"SET": {"ID": 2, "TARGETS": [
            {"DEST": {"URI": "sip:127.0.0.1:58231;transport=tcp", "FLAGS": "DX",
                      "PRIORITY": 0}}]}}]}


def test_list_short_full_latency_and_runtime(tmp_path: Path) -> None:
    module = dispatcher(router_for(
        tmp_path, 'modparam("dispatcher", "ds_ping_latency_stats", 1)\n'
                  'modparam("dispatcher", "ds_hash_size", 4)'))
    short = listing(module, "SHORT")
    first = short["RECORDS"][0]["SET"]["TARGETS"][0]["DEST"]
    assert list(first) == ["URI", "FLAGS", "PRIORITY", "LATENCY", "RUNTIME"]
    assert first["LATENCY"] == {"AVG": 0.0, "STD": 0.0, "EST": 0.0, "MAX": 0, "TIMEOUT": 0}
    assert first["RUNTIME"] == {"DLGLOAD": 0}
    full = listing(module, "full")
    tcp = full["RECORDS"][1]["SET"]["TARGETS"][0]["DEST"]
    assert list(tcp) == ["URI", "FLAGS", "PRIORITY", "HOST", "IPADDR", "PORT", "PROTOID",
                         "DNSTIME_SEC", "DNSTIME_USEC", "LATENCY", "RUNTIME"]
    assert (tcp["HOST"], tcp["IPADDR"], tcp["PORT"], tcp["PROTOID"]) == (
        "127.0.0.1", "127.0.0.1", 58231, 2)
    assert listing(module, "other") == listing(module)


def test_list_without_sets_is_a_fault(tmp_path: Path) -> None:
    module = dispatcher(make_router(tmp_path, ROUTE, ""))
    assert fault(module.rpc_list, []) == "No Destination Sets"


# --------------------------------------------------------------------------- set_state


def test_set_state_texts_and_faults(tmp_path: Path) -> None:
    module = dispatcher(router_for(tmp_path))
    ok = "Ok. Dispatcher state updated."
    assert module.rpc_set_state(["ip", 1, "SIP:127.0.0.1:58221"]) == ok  # case-insensitive
    assert module.rpc_set_state(["tp", "1", "sip:127.0.0.1:58222"]) == ok
    assert module.rpc_set_state(["2p", 1, "sip:127.0.0.1:58223"]) == ok  # p ignored: disabled
    assert flags_by_uri(module) == {"sip:127.0.0.1:58223": "DX", "sip:127.0.0.1:58222": "TP",
                                    "sip:127.0.0.1:58221": "IP",
                                    "sip:127.0.0.1:58231;transport=tcp": "DX"}
    assert module.rpc_set_state(["1", 1, "all"]) == ok
    assert set(flags_by_uri(module).values()) == {"AX", "DX"}
    assert module.rpc_set_state(["a", 9, "all"]) == ok  # [verified] no such group: still Ok
    assert fault(module.rpc_set_state, []) == "Invalid Parameters"
    assert fault(module.rpc_set_state, ["a", "x", "all"]) == "Invalid Parameters"
    assert fault(module.rpc_set_state, ["", 1, "all"]) == "Invalid State Parameter"
    assert fault(module.rpc_set_state, ["x", 1, "all"]) == "Unknown State Value"
    assert fault(module.rpc_set_state, ["a", 1, "sip:nope"]) == "State Update Failed"
    assert fault(module.rpc_set_state, ["a", 7, "sip:127.0.0.1:58221"]) == "State Update Failed"


def test_set_duid_state(tmp_path: Path) -> None:
    module = dispatcher(router_for(tmp_path))
    assert module.rpc_set_duid_state(["i", 1, "B"]) == "Ok. Dispatcher state updated."
    assert flags_by_uri(module)["sip:127.0.0.1:58222"] == "IX"
    assert fault(module.rpc_set_duid_state, ["i", 1, "zz"]) == "State Update Failed"


def test_set_state_in_the_control_process_stops_traffic_at_once(tmp_path: Path) -> None:
    router = router_for(tmp_path)
    module = dispatcher(router)
    assert sent_to(send(router, request(callid="a"))) == [58223]
    in_child(lambda: module.rpc_set_state(["ip", 1, "sip:127.0.0.1:58222"]))
    assert [sent_to(send(router, request(callid=f"b{k}")))[0] for k in range(4)] == [
        58221, 58223, 58221, 58223]
    in_child(lambda: module.rpc_set_state(["a", 1, "sip:127.0.0.1:58222"]))
    assert {sent_to(send(router, request(callid=f"c{k}")))[0] for k in range(3)} == {
        58221, 58222, 58223}


# --------------------------------------------------------------------------- ping_active


def test_ping_active(tmp_path: Path) -> None:
    module = dispatcher(router_for(tmp_path))
    assert module.rpc_ping_active([]) == {"OldPingState": 1}
    assert module.rpc_ping_active([0]) == {"NewPingState": 0, "OldPingState": 1}
    assert in_child(lambda: module.rpc_ping_active([])) == {"OldPingState": 0}


# --------------------------------------------------------------------------- reload / add / remove


def test_reload_texts_and_rate_limit(tmp_path: Path) -> None:
    router = router_for(tmp_path)
    module = dispatcher(router)
    wall = [500.0]
    module.shared_state().clock = lambda: wall[0]
    (tmp_path / "dispatcher.list").write_text("3 sip:127.0.0.1:58241 0 0\n")
    assert in_child(lambda: module.rpc_reload([])) == "Ok. Dispatcher successfully reloaded."
    assert list(flags_by_uri(module)) == ["sip:127.0.0.1:58241"]
    assert fault(module.rpc_reload, []) == "Ongoing reload"
    wall[0] += 5
    (tmp_path / "dispatcher.list").write_text("3\n")
    assert fault(module.rpc_reload, []) == "Reload Failed"
    wall[0] += 5
    (tmp_path / "dispatcher.list").unlink()
    assert fault(module.rpc_reload, []) == "Reload Failed"
    assert list(flags_by_uri(module)) == ["sip:127.0.0.1:58241"]


def test_reload_under_use_swaps_for_the_worker(tmp_path: Path) -> None:
    router = router_for(tmp_path)
    module = dispatcher(router)
    (tmp_path / "dispatcher.list").write_text("1 sip:127.0.0.1:58261 0 0\n"
                                              "1 sip:127.0.0.1:58262 0 0\n")
    in_child(lambda: module.rpc_reload([]))
    assert [sent_to(send(router, request(callid=f"r{k}")))[0] for k in range(3)] == [
        58262, 58261, 58262]


def test_add_and_remove(tmp_path: Path) -> None:
    router = router_for(tmp_path, 'modparam("dispatcher", "reload_delta", 0)')
    module = dispatcher(router)
    module.rpc_set_state(["i", 1, "sip:127.0.0.1:58221"])
    assert in_child(lambda: module.rpc_add([1, "127.0.0.1:58225", 8, 0, "duid=e"])) == \
        "Ok. Dispatcher destination added."
    flags = flags_by_uri(module)
    # [verified] 5.6.3 re-adds the array in order: equal priorities come out reversed,
    # the new entry first among them; flags are kept
    assert list(flags)[:4] == ["sip:127.0.0.1:58223", "sip:127.0.0.1:58225",
                               "sip:127.0.0.1:58221", "sip:127.0.0.1:58222"]
    assert flags["sip:127.0.0.1:58221"] == "IX" and flags["sip:127.0.0.1:58225"] == "AP"
    assert module.rpc_add([4, "sip:127.0.0.1:58241"]) == "Ok. Dispatcher destination added."
    assert listing(module)["NRSETS"] == 3
    assert module.rpc_remove([1, "127.0.0.1:58225"]) == "Ok. Dispatcher destination removed."
    assert "sip:127.0.0.1:58225" not in flags_by_uri(module)
    assert module.rpc_remove([4, "sip:127.0.0.1:58241"]) == "Ok. Dispatcher destination removed."
    assert listing(module)["NRSETS"] == 2  # the empty set is gone
    assert module.rpc_remove([1, "sip:127.0.0.1:9999"]) == "Ok. Dispatcher destination removed."
    assert fault(module.rpc_add, [1]) == "Invalid Parameters"
    assert fault(module.rpc_remove, ["x", "sip:a"]) == "Invalid Parameters"
    assert fault(module.rpc_remove, [1, "a"]) == "Removing dispatcher dst failed"
    # a bad URI is skipped (ds_load_mode 0) and the call still succeeds, as in Kamailio
    assert module.rpc_add([1, "bad uri"]) == "Ok. Dispatcher destination added."


def test_add_with_load_mode_1_fails_on_a_bad_destination(tmp_path: Path) -> None:
    module = dispatcher(router_for(tmp_path, 'modparam("dispatcher", "reload_delta", 0)\n'
                                             'modparam("dispatcher", "ds_load_mode", 1)'))
    assert fault(module.rpc_add, [1, "a b"]) == "Adding dispatcher dst failed"


def test_add_and_remove_share_the_reload_rate_limit(tmp_path: Path) -> None:
    """[verified] the time is taken before the parameters are checked."""
    module = dispatcher(router_for(tmp_path))
    module.shared_state().clock = lambda: 100.0
    assert fault(module.rpc_add, [1]) == "Invalid Parameters"
    assert fault(module.rpc_add, [1, "sip:127.0.0.1:58226"]) == "Ongoing reload"
    assert fault(module.rpc_remove, [1, "sip:127.0.0.1:58221"]) == "Ongoing reload"
    assert fault(module.rpc_reload, []) == "Ongoing reload"


# --------------------------------------------------------------------------- hash


def test_hash(tmp_path: Path) -> None:
    module = dispatcher(router_for(tmp_path))
    assert module.rpc_hash([4, "abc"]) == {"hashid": 7167810, "slot": 2}  # [verified]
    assert module.rpc_hash([0, "abc"]) == {"hashid": 7167810, "slot": 0}
    assert module.rpc_hash([7, "alice", "server.com"]) == {
        "hashid": 1412806172, "slot": 1412806172 % 7}
    assert module.rpc_hash(["3", 12345]) == {
        "hashid": ds_get_hash(b"12345"), "slot": ds_get_hash(b"12345") % 3}
    assert fault(module.rpc_hash, []) == "Invalid Parameters"
    assert fault(module.rpc_hash, [3]) == "Invalid Parameters"
