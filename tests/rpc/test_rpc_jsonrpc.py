"""The JSON-RPC 2.0 envelope: results, faults, the spec's error codes, batches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from siprouter.rpc.errors import RpcError
from siprouter.rpc.jsonrpc import RpcDispatcher


def _fault(params: list[Any]) -> Any:
    raise RpcError(500, "No Destination Sets")


def _crash(params: list[Any]) -> Any:
    raise KeyError("bug")


@pytest.fixture
def dispatcher() -> RpcDispatcher:
    return RpcDispatcher({"echo.args": lambda params: params, "ds.fault": _fault,
                          "bug.crash": _crash})


def rpc(dispatcher: RpcDispatcher, body: Any) -> Any:
    raw = dispatcher.handle(body if isinstance(body, bytes) else json.dumps(body))
    return None if raw is None else json.loads(raw)


def request(method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    return message


def test_result_carries_the_request_id(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, request("echo.args", [1, "a"], "x7")) == \
        {"jsonrpc": "2.0", "result": [1, "a"], "id": "x7"}


def test_missing_params_means_no_arguments(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, request("echo.args"))["result"] == []


def test_rpc_error_becomes_code_and_message(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, request("ds.fault", [], 4)) == {
        "jsonrpc": "2.0", "error": {"code": 500, "message": "No Destination Sets"}, "id": 4}


def test_unknown_method(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, request("no.such"))["error"] == \
        {"code": -32601, "message": "Method not found"}


def test_parse_error_has_null_id(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, b'{"jsonrpc": "2.0", "method"') == \
        {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}


@pytest.mark.parametrize("message", [
    {"method": "echo.args", "id": 1},                        # no jsonrpc member
    {"jsonrpc": "1.0", "method": "echo.args", "id": 1},
    {"jsonrpc": "2.0", "id": 1},                             # no method
    {"jsonrpc": "2.0", "method": 7, "id": 1},
    {"jsonrpc": "2.0", "method": "echo.args", "id": {"a": 1}},
    "just a string",
    [],
])
def test_invalid_request(dispatcher: RpcDispatcher, message: Any) -> None:
    assert rpc(dispatcher, message)["error"]["code"] == -32600


def test_named_params_are_refused(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, request("echo.args", {"a": 1}))["error"]["code"] == -32602


def test_a_crashing_method_is_an_internal_error(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, request("bug.crash"))["error"] == \
        {"code": -32603, "message": "Internal error"}


def test_notification_gets_no_answer(dispatcher: RpcDispatcher) -> None:
    assert rpc(dispatcher, {"jsonrpc": "2.0", "method": "echo.args", "params": [1]}) is None


def test_batch(dispatcher: RpcDispatcher) -> None:
    answer = rpc(dispatcher, [request("echo.args", [1], 1),
                              {"jsonrpc": "2.0", "method": "echo.args"},   # notification
                              request("no.such", [], 3)])
    assert [item["id"] for item in answer] == [1, 3]
    assert answer[0]["result"] == [1]
    assert answer[1]["error"]["code"] == -32601


def test_before_call_runs_before_each_method() -> None:
    calls: list[str] = []
    dispatcher = RpcDispatcher({"a.b": lambda params: calls.append("method")},
                               before_call=lambda: calls.append("sync"))
    rpc(dispatcher, request("a.b"))
    assert calls == ["sync", "method"]
