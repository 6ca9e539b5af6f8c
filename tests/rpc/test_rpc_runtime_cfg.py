"""Runtime cfg parameters: cfg.set range checks and the change reaching another process."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest

from siprouter.config.loader import load
from siprouter.modules.cfg_rpc import CfgRpcModule
from siprouter.routing.router import Router
from siprouter.rpc.errors import RpcError

CFG = """
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "cfg_rpc.so"
modparam("maxfwd", "max_limit", 50)
request_route { sl_send_reply("200", "OK"); }
"""


@pytest.fixture
def router(tmp_path: Path) -> Router:
    cfg = tmp_path / "runtime.cfg"
    cfg.write_text(CFG)
    return load(cfg)


def cfg_rpc(router: Router) -> CfgRpcModule:
    module = router.modules["cfg_rpc"]
    assert isinstance(module, CfgRpcModule)
    return module


def test_get_set_and_list(router: Router) -> None:
    rpc = cfg_rpc(router)
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 50
    assert rpc.rpc_set(["maxfwd", "max_limit", 20]) == {}
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 20
    assert router.modules["maxfwd"].params["max_limit"] == 20
    assert rpc.rpc_get(["maxfwd"]) == {"max_limit": 20}
    assert "maxfwd: max_limit" in rpc.rpc_list([])
    assert rpc.rpc_list(["maxfwd"]) == ["maxfwd: max_limit"]
    assert rpc.rpc_help(["maxfwd", "max_limit"]) == "(parameter type is integer)"


@pytest.mark.parametrize("value", [256, -1, "abc", "300"])
def test_out_of_range_keeps_the_old_value(router: Router, value: object) -> None:
    rpc = cfg_rpc(router)
    rpc.rpc_set(["maxfwd", "max_limit", 30])
    with pytest.raises(RpcError) as err:
        rpc.rpc_set(["maxfwd", "max_limit", value])
    assert (err.value.code, err.value.message) == (400, "Failed to set the variable")
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 30
    assert router.modules["maxfwd"].params["max_limit"] == 30


def test_limits_are_inclusive_and_digit_strings_accepted(router: Router) -> None:
    rpc = cfg_rpc(router)
    rpc.rpc_set(["maxfwd", "max_limit", 255])
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 255
    rpc.rpc_set(["maxfwd", "max_limit", "0"])
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 0


@pytest.mark.parametrize(("params", "message"), [
    (["maxfwd", "nope", 3], "Failed to set the variable"),
    (["nope", "max_limit", 3], "Failed to set the variable"),
    (["maxfwd"], "Too few parameters"),
    (["maxfwd", "max_limit"], "Too few parameters"),
])
def test_set_faults(router: Router, params: list[object], message: str) -> None:
    with pytest.raises(RpcError) as err:
        cfg_rpc(router).rpc_set(params)
    assert err.value.message == message


def test_unknown_variable_get(router: Router) -> None:
    with pytest.raises(RpcError, match="Failed to get the variable"):
        cfg_rpc(router).rpc_get(["maxfwd", "nope"])


def test_delayed_changes_wait_for_commit(router: Router) -> None:
    rpc = cfg_rpc(router)
    rpc.rpc_set_delayed(["maxfwd", "max_limit", 40])
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 50
    assert rpc.rpc_diff([]) == [{"group name": "maxfwd", "variable name": "max_limit",
                                 "old value": 50, "new value": 40}]
    rpc.rpc_commit([])
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 40
    rpc.rpc_set_delayed(["maxfwd", "max_limit", 41])
    rpc.rpc_rollback([])
    rpc.rpc_commit([])
    assert rpc.rpc_get(["maxfwd", "max_limit"]) == 40


def test_core_debug_is_runtime(router: Router) -> None:
    rpc = cfg_rpc(router)
    rpc.rpc_set(["core", "debug", 3])
    assert router.settings.debug == 3
    assert rpc.rpc_get(["core", "debug"]) == 3


def test_a_change_reaches_another_process_at_its_next_sync(router: Router) -> None:
    """A forked 'worker' syncs in a loop; cfg.set in this process changes its max_limit."""
    runtime = cfg_rpc(router).runtime
    assert runtime is not None
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:   # report every value the worker's maxfwd sees, until 7
            params = router.modules["maxfwd"].params
            value = params["max_limit"]
            os.write(to_parent_w, f"{value};".encode())
            deadline = time.monotonic() + 20
            while value != 7 and time.monotonic() < deadline:
                runtime.sync()
                if params["max_limit"] != value:
                    value = params["max_limit"]
                    os.write(to_parent_w, f"{value};".encode())
                time.sleep(0.001)
            code = 0
        finally:
            os._exit(code)

    def next_value() -> str:
        assert select.select([to_parent_r], [], [], 20)[0], "the worker did not report"
        text = b""
        while not text.endswith(b";"):
            text += os.read(to_parent_r, 1)
        return text[:-1].decode()

    try:
        assert next_value() == "50"
        rpc = cfg_rpc(router)
        rpc.rpc_set(["maxfwd", "max_limit", 20])
        assert next_value() == "20"
        with pytest.raises(RpcError):
            rpc.rpc_set(["maxfwd", "max_limit", 999])
        rpc.rpc_set(["maxfwd", "max_limit", 7])
        assert next_value() == "7"
    finally:
        os.waitpid(pid, 0)
        os.close(to_parent_r)
        os.close(to_parent_w)
