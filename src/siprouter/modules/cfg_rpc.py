"""cfg_rpc: ``cfg.*`` RPC methods over the runtime-changeable parameters.

Runtime parameters are the ``Param(runtime=True)`` of the loaded modules (e.g.
``maxfwd max_limit``) and ``core debug``. Their values live in shared memory
(:class:`siprouter.rpc.runtime.RuntimeCfg`, created here before the fork); a
change is range-checked (out of range: fault 400, the old value stays) and every
worker applies it before its next message. Results and fault texts follow
Kamailio 5.6's cfg_rpc.
"""

from __future__ import annotations

from typing import Any

from ..rpc.errors import RpcError
from ..rpc.runtime import RuntimeCfg, RuntimeVar
from .base import Exports, Module


def _str(params: list[Any], index: int) -> str:
    if len(params) <= index:
        raise RpcError(400, "Too few parameters")
    return str(params[index])


class CfgRpcModule(Module):
    exports = Exports(
        name="cfg_rpc",
        rpc=(
            ("cfg.get", "rpc_get"), ("cfg.set", "rpc_set"), ("cfg.set_now_int", "rpc_set"),
            ("cfg.set_now_string", "rpc_set"), ("cfg.seti", "rpc_set"), ("cfg.sets", "rpc_set"),
            ("cfg.set_delayed", "rpc_set_delayed"),
            ("cfg.set_delayed_int", "rpc_set_delayed"),
            ("cfg.set_delayed_string", "rpc_set_delayed"),
            ("cfg.commit", "rpc_commit"), ("cfg.rollback", "rpc_rollback"),
            ("cfg.diff", "rpc_diff"), ("cfg.list", "rpc_list"), ("cfg.help", "rpc_help"),
            ("cfg.reset", "rpc_reset"),
        ),
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.runtime: RuntimeCfg | None = None
        self.pending: list[tuple[RuntimeVar, Any]] = []   # set_delayed, until commit

    def init(self) -> None:
        self.runtime = RuntimeCfg(self.router)

    def _runtime(self) -> RuntimeCfg:
        if self.runtime is None:
            self.runtime = RuntimeCfg(self.router)
        return self.runtime

    def _var(self, params: list[Any], fault: str) -> RuntimeVar:
        var = self._runtime().find(_str(params, 0), _str(params, 1))
        if var is None:
            raise RpcError(400, fault)
        return var

    # ------------------------------------------------------------ get / set
    def rpc_get(self, params: list[Any]) -> Any:
        runtime = self._runtime()
        if len(params) == 1:
            found = runtime.group_vars(_str(params, 0))
            if not found:
                raise RpcError(400, "Failed to get the variable")
            return {var.name: runtime.get(var) for var in found}
        return runtime.get(self._var(params, "Failed to get the variable"))

    def rpc_set(self, params: list[Any]) -> dict[str, Any]:
        var = self._var(params, "Failed to set the variable")
        if len(params) < 3:
            raise RpcError(400, "Too few parameters")
        try:
            self._runtime().set(var, params[2])
        except ValueError:
            raise RpcError(400, "Failed to set the variable") from None
        return {}

    def rpc_set_delayed(self, params: list[Any]) -> dict[str, Any]:
        var = self._var(params, "Failed to set the variable")
        if len(params) < 3:
            raise RpcError(400, "Too few parameters")
        from .base import coerce_param

        try:
            value = coerce_param(var.spec, params[2], check_range=True)
        except ValueError:
            raise RpcError(400, "Failed to set the variable") from None
        self.pending = [(v, x) for v, x in self.pending if v is not var] + [(var, value)]
        return {}

    def rpc_commit(self, params: list[Any]) -> dict[str, Any]:
        pending, self.pending = self.pending, []
        for var, value in pending:
            try:
                self._runtime().set(var, value)
            except ValueError:
                raise RpcError(400, "Failed to commit the changes") from None
        return {}

    def rpc_rollback(self, params: list[Any]) -> dict[str, Any]:
        self.pending = []
        return {}

    def rpc_diff(self, params: list[Any]) -> list[dict[str, Any]]:
        runtime = self._runtime()
        return [{"group name": var.group, "variable name": var.name,
                 "old value": runtime.get(var), "new value": value}
                for var, value in self.pending]

    def rpc_reset(self, params: list[Any]) -> dict[str, Any]:
        runtime = self._runtime()
        found = runtime.group_vars(_str(params, 0))
        if not found:
            raise RpcError(400, "Failed to reset the group")
        for var in found:
            runtime.set(var, var.spec.default)
        return {}

    # ------------------------------------------------------------ listing
    def rpc_list(self, params: list[Any]) -> list[str]:
        group = str(params[0]) if params else None
        return [f"{var.group}: {var.name}" for var in self._runtime().vars
                if group is None or var.group == group]

    def rpc_help(self, params: list[Any]) -> str:
        var = self._var(params, "Failed to get the variable")
        return f"(parameter type is {'integer' if var.is_int else 'string'})"
