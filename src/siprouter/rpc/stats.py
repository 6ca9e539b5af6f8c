"""Statistics of every process, summed in shared memory.

Each process counts in its own memory (``router.stats.values`` for the core
group, ``module.stat_values()`` for the modules): no locking on the message
path. :class:`SharedStats` is an anonymous shared map created before the fork
with one block per process; a process's :class:`StatsPublisher` copies its
counters into its block every ~200 ms, and the control process sums the blocks.

Block layout (8-byte signed slots): ``[pid, value_0, ..., value_n-1]`` per
process, then one baseline slot per statistic: the totals at the last
``stats.reset_statistics``, subtracted when reading (counters of running
processes are never written from outside).

A module may list gauge statistics (current values rather than counts, e.g.
transactions in memory) in a class attribute ``stat_gauges``: gauges are not
reset, and a restarted process does not carry its predecessor's value.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..routing.router import Router

StatKey = tuple[str, str]          # (group, name)


def stat_sources(router: Router) -> list[tuple[str, Callable[[], Mapping[str, int]]]]:
    """(group, getter of this process's values) for the core and every loaded module."""
    stats = router.stats
    sources: list[tuple[str, Callable[[], Mapping[str, int]]]] = [
        ("core", lambda: stats.values)]
    for name, module in router.modules.items():
        if name == "core":
            continue
        if module.exports.stats or type(module).stat_values is not _base_stat_values():
            sources.append((module.exports.name, module.stat_values))
    return sources


def _base_stat_values() -> object:
    from ..modules.base import Module

    return Module.stat_values


def gauge_names(router: Router) -> set[StatKey]:
    """Statistics that are current values, not counters (``stat_gauges`` of modules)."""
    found: set[StatKey] = set()
    for module in router.modules.values():
        for stat in getattr(module, "stat_gauges", ()):
            found.add((module.exports.name, stat))
    return found


def stat_keys(router: Router) -> list[StatKey]:
    """Every statistic of the router: declared names plus what stat_values() returns now."""
    keys: list[StatKey] = []
    seen: set[StatKey] = set()
    for group, getter in stat_sources(router):
        names = list(getter())
        if group == "core":
            declared: Iterable[str] = ()
        else:
            declared = router.modules[group].exports.stats if group in router.modules else ()
        for name in [*declared, *names]:
            if (group, name) not in seen:
                seen.add((group, name))
                keys.append((group, name))
    return keys


class SharedStats:
    """Per-process statistic blocks in one anonymous shared map (create before fork)."""

    def __init__(self, keys: list[StatKey], processes: int,
                 gauges: set[StatKey] | None = None) -> None:
        self.keys = keys
        self.index = {key: i for i, key in enumerate(keys)}
        self.processes = processes
        self.width = len(keys) + 1
        self.gauges = [key in (gauges or set()) for key in keys]
        self.baseline_at = self.width * processes
        self.size = 8 * (self.baseline_at + len(keys) + 1)
        self.map = mmap.mmap(-1, self.size)
        self.slots = memoryview(self.map).cast("q")

    @classmethod
    def create(cls, router: Router, children: int) -> SharedStats:
        """Blocks for rank 0 (single process), workers 1..children and the control process."""
        return cls(stat_keys(router), children + 2, gauge_names(router))

    def block(self, rank: int) -> int:
        """Block index of a process rank (-1, the control process, is the last block)."""
        return rank if rank >= 0 else self.processes - 1

    def rank_of(self, block: int) -> int:
        return -1 if block == self.processes - 1 else block

    def pid(self, block: int) -> int:
        return int(self.slots[block * self.width])

    # ------------------------------------------------------------ reading
    def raw_totals(self) -> list[int]:
        """Sum over the process blocks, without the baseline."""
        slots = self.slots
        width = self.width
        totals = [0] * len(self.keys)
        for block in range(self.processes):
            base = block * width + 1
            for i in range(len(totals)):
                totals[i] += slots[base + i]
        return totals

    def totals(self) -> dict[StatKey, int]:
        """Current value of every statistic, summed over processes, minus the reset baseline."""
        raw = self.raw_totals()
        slots = self.slots
        at = self.baseline_at
        return {key: raw[i] - (0 if self.gauges[i] else slots[at + i])
                for i, key in enumerate(self.keys)}

    def reset(self, keys: Iterable[StatKey]) -> None:
        """Make the given counters read 0 from now on (gauges are left alone)."""
        raw = self.raw_totals()
        for key in keys:
            i = self.index.get(key)
            if i is not None and not self.gauges[i]:
                self.slots[self.baseline_at + i] = raw[i]

    # ------------------------------------------------------------ writing
    def publisher(self, router: Router, rank: int) -> StatsPublisher:
        """The publisher of this process (create it once per process, after the fork)."""
        return StatsPublisher(self, router, rank)


class StatsPublisher:
    """Copies one process's counters into its block (``publish()``: cheap, every ~200 ms)."""

    def __init__(self, stats: SharedStats, router: Router, rank: int) -> None:
        self.slots = stats.slots
        self.base = stats.block(rank) * stats.width
        base = self.base
        slots = self.slots
        slots[base] = os.getpid()
        # a restarted process continues the counts of the process it replaces
        self.carry = [0 if stats.gauges[i] else slots[base + 1 + i]
                      for i in range(len(stats.keys))]
        self.sources: list[tuple[Callable[[], Mapping[str, int]], list[tuple[str, int]]]] = []
        for group, getter in stat_sources(router):
            pairs = [(name, base + 1 + i) for (g, name), i in stats.index.items() if g == group]
            if pairs:
                self.sources.append((getter, pairs))
        self.publish()

    def publish(self) -> None:
        slots = self.slots
        carry = self.carry
        first = self.base + 1
        for getter, pairs in self.sources:
            values = getter()
            for name, slot in pairs:
                slots[slot] = carry[slot - first] + values.get(name, 0)
