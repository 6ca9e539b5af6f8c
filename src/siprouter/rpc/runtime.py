"""Runtime-changeable parameters (Kamailio's cfg framework) shared by every process.

Every ``Param(runtime=True)`` of a loaded module, plus ``core debug``, gets a
slot in an anonymous shared map created before the fork (by cfg_rpc's init).
``cfg.set`` in the control process writes the slot and bumps a generation
counter; each worker calls :meth:`RuntimeCfg.sync` once per received datagram:
one shared read when nothing changed, otherwise it copies the changed values
into ``module.params`` (so a change applies to the next message of every
worker, as in Kamailio).

The generation works as a sequence lock: odd while a write is in progress.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..modules.base import Param, coerce_param

if TYPE_CHECKING:
    from ..routing.router import Router

STR_SLOTS = 32                      # 8 bytes length + 248 bytes of text
STR_MAX = 8 * (STR_SLOTS - 1)
# Kamailio's cfg variable names where they differ from the modparam name
CFG_PREFIXES = {"dispatcher": "ds_"}


@dataclass
class RuntimeVar:
    """One runtime variable: ``group name`` as cfg.* sees it, and where it lives."""

    group: str
    name: str
    spec: Param
    slot: int                                  # first slot index
    apply: Callable[[Any], None]               # store a new value in this process
    current: Callable[[], Any]                 # this process's value

    @property
    def is_int(self) -> bool:
        return self.spec.kind is int


def _set_debug(router: Router, value: int) -> None:
    from ..cli import _LEVELS

    router.settings.debug = value
    level = _LEVELS.get(max(-5, min(3, value)), logging.DEBUG if value > 3 else logging.ERROR)
    logging.getLogger().setLevel(level)


def runtime_vars(router: Router) -> list[tuple[str, str, Param, Callable[[Any], None],
                                               Callable[[], Any]]]:
    """(group, cfg name, spec, apply, current) of every runtime variable of the router."""
    found: list[tuple[str, str, Param, Callable[[Any], None], Callable[[], Any]]] = [
        ("core", "debug", Param("debug", int, 0, runtime=True),
         lambda value: _set_debug(router, value), lambda: router.settings.debug)]
    for module in router.modules.values():
        group = module.exports.name
        prefix = CFG_PREFIXES.get(group, "")
        for spec in module.exports.params:
            if not spec.runtime or spec.multi:
                continue
            name = spec.name[len(prefix):] if prefix and spec.name.startswith(prefix) \
                else spec.name
            found.append((group, name, spec, *_param_access(module.params, spec.name)))
    return found


def _param_access(params: dict[str, Any], name: str) -> tuple[Callable[[Any], None],
                                                               Callable[[], Any]]:
    """Setter and getter of one entry of a module's ``params``."""
    def apply(value: Any) -> None:
        params[name] = value

    def current() -> Any:
        return params[name]

    return apply, current


class RuntimeCfg:
    """Shared slots for the runtime variables, with a generation counter."""

    def __init__(self, router: Router) -> None:
        self.vars: list[RuntimeVar] = []
        slot = 1
        for group, name, spec, apply, current in runtime_vars(router):
            self.vars.append(RuntimeVar(group, name, spec, slot, apply, current))
            slot += 1 if spec.kind is int else STR_SLOTS
        self.by_name = {(v.group, v.name): v for v in self.vars}
        self.map = mmap.mmap(-1, 8 * slot)
        self.slots = memoryview(self.map).cast("q")
        for var in self.vars:
            self._store(var, var.current())
        self.seen = 0
        self.last: list[Any] = [self._load(var) for var in self.vars]

    # ------------------------------------------------------------ lookups
    def find(self, group: str, name: str) -> RuntimeVar | None:
        return self.by_name.get((group, name))

    def group_vars(self, group: str) -> list[RuntimeVar]:
        return [var for var in self.vars if var.group == group]

    # ------------------------------------------------------------ slots
    def _store(self, var: RuntimeVar, value: Any) -> None:
        if var.is_int:
            self.slots[var.slot] = int(value)
            return
        data = str(value).encode("utf-8")
        if len(data) > STR_MAX:
            raise ValueError(f"value longer than {STR_MAX} bytes")
        start = 8 * (var.slot + 1)
        self.map[start:start + len(data)] = data
        self.slots[var.slot] = len(data)

    def _load(self, var: RuntimeVar) -> Any:
        if var.is_int:
            return int(self.slots[var.slot])
        length = self.slots[var.slot]
        start = 8 * (var.slot + 1)
        return self.map[start:start + length].decode("utf-8", "replace")

    # ------------------------------------------------------------ control side
    def get(self, var: RuntimeVar) -> Any:
        """The value every worker uses (the shared one)."""
        return self._load(var)

    def set(self, var: RuntimeVar, value: Any) -> None:
        """Range-check and publish a new value; ValueError leaves the old one."""
        value = coerce_param(var.spec, value, check_range=True)
        if not var.is_int and len(str(value).encode("utf-8")) > STR_MAX:
            raise ValueError(f"value longer than {STR_MAX} bytes")
        generation = self.slots[0]
        self.slots[0] = generation + 1          # odd: write in progress
        try:
            self._store(var, value)
        finally:
            self.slots[0] = generation + 2
        self.sync()

    # ------------------------------------------------------------ worker side
    def sync(self) -> None:
        """Apply values changed since the last call (one shared read when none did)."""
        generation = self.slots[0]
        if generation == self.seen or generation & 1:
            return
        changed = []
        for i, var in enumerate(self.vars):
            value = self._load(var)
            if value != self.last[i]:
                changed.append((i, var, value))
        if self.slots[0] != generation:
            return                                # a write raced with us: retry next time
        for i, var, value in changed:
            var.apply(value)
            self.last[i] = value
        self.seen = generation
