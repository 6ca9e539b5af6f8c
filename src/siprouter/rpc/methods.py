"""Core RPC methods (Kamailio's names and result shapes) and the method table.

``build_dispatcher(router)`` collects every loaded module's ``Exports.rpc``
(method name -> bound method) plus the core methods below.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import __version__
from .control import ControlState, all_totals, control_state, runtime_cfg
from .errors import RpcError
from .jsonrpc import RpcDispatcher
from .stats import StatKey

if TYPE_CHECKING:
    from ..routing.router import Router


def version_text() -> str:
    """``core.version``: like Kamailio's ``kamailio 5.6.3 (x86_64/linux)``."""
    return f"siprouter {__version__} ({platform.machine()}/{platform.system().lower()})"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shmem_stats(router: Router) -> dict[StatKey, int]:
    """The shmem group: the shared maps created before the fork (sizes in bytes)."""
    total = used = 0
    area = router.shared.get("area")
    if area is not None:
        total += 8 * int(getattr(area, "slots", 0))
        used += 8 * int(getattr(area, "next_slot", 0))
    state = control_state(router)
    if state is not None:
        total += state.stats.size
        used += state.stats.size
    runtime = runtime_cfg(router)
    if runtime is not None:
        size = len(runtime.map)
        total += size
        used += size
    return {("shmem", "total_size"): total, ("shmem", "used_size"): used,
            ("shmem", "real_used_size"): used, ("shmem", "max_used_size"): used,
            ("shmem", "free_size"): total - used}


class CoreMethods:
    """core.*, stats.* and system.* methods of one router (run in the control process)."""

    def __init__(self, router: Router, dispatcher: RpcDispatcher) -> None:
        self.router = router
        self.dispatcher = dispatcher
        self.started = time.time()

    @property
    def state(self) -> ControlState | None:
        return control_state(self.router)

    # ------------------------------------------------------------ core.*
    def version(self, params: list[Any]) -> str:
        return version_text()

    def uptime(self, params: list[Any]) -> dict[str, Any]:
        state = self.state
        started = state.started if state is not None else self.started
        now = time.time()
        return {"now": time.ctime(now), "up_since": time.ctime(started),
                "uptime": int(now - started)}

    def processes(self) -> list[tuple[int, str]]:
        """(pid, description) of the running processes, Kamailio-style descriptions."""
        state = self.state
        socks = " ".join(f"{s.host}:{s.port}" for s in self.router.settings.listen
                         if s.proto == "udp")
        if state is None or state.children <= 0:
            return [(os.getpid(), f"main process - udp receiver sock={socks}")]
        table = [(state.main_pid, "main process - attendant")]
        stats = state.stats
        for rank in range(1, state.children + 1):
            pid = stats.pid(stats.block(rank))
            if _alive(pid):
                table.append((pid, f"udp receiver child={rank - 1} sock={socks}"))
        control = stats.pid(stats.block(-1))
        table.append((control if _alive(control) else os.getpid(), "ctl handler"))
        return table

    def ps(self, params: list[Any]) -> list[Any]:
        flat: list[Any] = []
        for pid, description in self.processes():
            flat += [pid, description]
        return flat

    def psx(self, params: list[Any]) -> list[dict[str, Any]]:
        return [{"IDX": i, "PID": pid, "DSC": description}
                for i, (pid, description) in enumerate(self.processes())]

    def echo(self, params: list[Any]) -> list[Any]:
        return params

    # ------------------------------------------------------------ stats.*
    def _totals(self) -> dict[StatKey, int]:
        totals = all_totals(self.router)
        totals.update(shmem_stats(self.router))
        return totals

    @staticmethod
    def _select(keys: Iterable[StatKey], wanted: str) -> list[StatKey]:
        """Statistics named by ``all``, ``GROUP:``, ``NAME`` or ``GROUP:NAME``."""
        if wanted == "all":
            return list(keys)
        group, sep, name = wanted.partition(":")
        if sep and not name:
            return [key for key in keys if key[0] == group]
        if sep:
            return [key for key in keys if key == (group, name)]
        return [key for key in keys if key[1] == wanted]

    def get_statistics(self, params: list[Any]) -> list[str]:
        if not params:
            raise RpcError(400, "Please provide which stats to retrieve")
        totals = self._totals()
        keys = sorted(totals, key=lambda key: f"{key[0]}:{key[1]}")
        lines: list[str] = []
        for wanted in params:
            for key in self._select(keys, str(wanted)):
                lines.append(f"{key[0]}:{key[1]} = {totals[key]}")
        return lines

    def reset_statistics(self, params: list[Any]) -> dict[str, Any]:
        if not params:
            raise RpcError(400, "Please provide stats name")
        state = self.state
        if state is None:
            raise RpcError(500, "statistics are not shared (no control plane prepared)")
        keys = state.stats.keys
        for wanted in params:
            state.stats.reset(self._select(keys, str(wanted)))
        return {}

    def clear_statistics(self, params: list[Any]) -> list[str]:
        """Return the selected statistics, then reset them."""
        lines = self.get_statistics(params)
        self.reset_statistics(params)
        return lines

    # ------------------------------------------------------------ system.*
    def list_methods(self, params: list[Any]) -> list[str]:
        return self.dispatcher.names()

    def register(self) -> None:
        for name, method in (
            ("core.version", self.version), ("core.uptime", self.uptime),
            ("core.ps", self.ps), ("core.psx", self.psx), ("core.echo", self.echo),
            ("stats.get_statistics", self.get_statistics),
            ("stats.reset_statistics", self.reset_statistics),
            ("stats.clear_statistics", self.clear_statistics),
            ("system.listMethods", self.list_methods),
        ):
            self.dispatcher.add(name, method)


def build_dispatcher(router: Router, pretty: bool = False) -> RpcDispatcher:
    """Every loaded module's RPC methods plus the core ones."""
    runtime = runtime_cfg(router)
    dispatcher = RpcDispatcher(before_call=runtime.sync if runtime is not None else None,
                               pretty=pretty)
    for module in router.modules.values():
        for name, attribute in module.exports.rpc:
            dispatcher.add(name, getattr(module, attribute))
    CoreMethods(router, dispatcher).register()
    return dispatcher
