"""Destination selection for ``ds_select*``: Kamailio 5.6 algorithms, sans-IO.

:func:`select` returns the failover-ordered destinations (the chosen one first,
then the usable ones after it, then those before it) or None when nothing usable
is left. It follows Kamailio 5.6 except for the deliberate divergence
**D1 (fair dispatch)**: the hash algorithms (0, 1, 2, 3, 5, 7) and weighted alg 9
spread an unusable destination's share over the usable ones instead of handing
it all to the next destination (see the conformance README).

State that Kamailio keeps per set in shared memory (round-robin pointer, weight
and relative-weight table positions) lives in a :class:`SharedCounters`; pass
the same instance to every worker process. The module uses :class:`SlotCounters`
in the dispatcher's shared state (``state.py``); :class:`ProcessSharedCounters`
and :class:`LocalCounters` serve standalone use. Algorithms 10 (call load) and
13 (latency) also read per-destination figures through a :class:`Runtime`.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from itertools import chain
from multiprocessing.context import BaseContext
from typing import Any, Final, Protocol, TypeVar

from .destinations import WEIGHT_SLOTS, Destination, DestinationSet

T = TypeVar("T")

ALG_HASH_CALLID: Final = 0
ALG_HASH_FROM_URI: Final = 1
ALG_HASH_TO_URI: Final = 2
ALG_HASH_RURI: Final = 3
ALG_ROUND_ROBIN: Final = 4
ALG_HASH_AUTH_USER: Final = 5
ALG_RANDOM: Final = 6
ALG_HASH_PV: Final = 7
ALG_SERIAL: Final = 8
ALG_WEIGHT: Final = 9
ALG_CALL_LOAD: Final = 10
ALG_RELATIVE_WEIGHT: Final = 11
ALG_PARALLEL: Final = 12
ALG_LATENCY: Final = 13

HASH_ALGS: Final = frozenset({0, 1, 2, 3, 5, 7})

# Counters kept per set, addressed as set.index * COUNTERS_PER_SET + counter.
RR_POINTER: Final = 0
WEIGHT_POINTER: Final = 1
RWEIGHT_POINTER: Final = 2
COUNTERS_PER_SET: Final = 3

KeyFn = Callable[[], int | None]


class Runtime(Protocol):
    """Run-time figures some algorithms need (the shared state provides them)."""

    def load_of(self, dest: Destination) -> int:
        """Active calls of ``dest`` (alg 10)."""

    def estimates(self, dests: list[Destination]) -> list[tuple[float, float]]:
        """(latency estimate, average) per destination, in ms (alg 13)."""


# --------------------------------------------------------------------------- counters


class SharedCounters(ABC):
    """Integer counters updated atomically by every selector of a process group."""

    @abstractmethod
    def update(self, index: int, fn: Callable[[int], tuple[int, T]]) -> T:
        """Under the lock: ``new, result = fn(old)``, store ``new``, return ``result``."""

    @abstractmethod
    def reset(self) -> None:
        """Set every counter to 0 (e.g. after a list reload)."""

    def get(self, index: int) -> int:
        return self.update(index, lambda value: (value, value))


class LocalCounters(SharedCounters):
    """Counters for one process (thread-safe); any index is valid."""

    def __init__(self) -> None:
        self._values: dict[int, int] = {}
        self._lock = threading.Lock()

    def update(self, index: int, fn: Callable[[int], tuple[int, T]]) -> T:
        with self._lock:
            new, result = fn(self._values.get(index, 0))
            self._values[index] = new
        return result

    def reset(self) -> None:
        with self._lock:
            self._values.clear()


class ProcessSharedCounters(SharedCounters):
    """Counters in a shared-memory array (``RawArray``) guarded by a multiprocessing lock.

    Create it in the parent before forking the workers, or pass it to them as a
    ``Process`` argument with the spawn/forkserver start methods. ``size`` must
    cover ``COUNTERS_PER_SET`` counters per set (1024 sets by default).
    """

    def __init__(self, size: int = COUNTERS_PER_SET * 1024, ctx: BaseContext | None = None) -> None:
        ctx = ctx or multiprocessing.get_context()
        self.size = size
        self._values = ctx.RawArray(ctypes.c_int64, size)
        self._lock = ctx.Lock()

    def update(self, index: int, fn: Callable[[int], tuple[int, T]]) -> T:
        if not 0 <= index < self.size:
            raise IndexError(f"counter {index} outside 0..{self.size - 1}")
        with self._lock:
            new, result = fn(self._values[index])
            self._values[index] = new
        return result

    def reset(self) -> None:
        with self._lock:
            ctypes.memset(self._values, 0, ctypes.sizeof(self._values))


class SlotCounters(SharedCounters):
    """Counters in 8-byte slots of shared memory (``memoryview.cast("q")``) under ``lock``.

    ``base`` is the slot of counter 0; the dispatcher's shared state moves it
    when a reload switches to the other bank.
    """

    def __init__(self, words: memoryview, base: int, size: int, lock: Any) -> None:
        self.words = words
        self.base = base
        self.size = size
        self.lock = lock

    def update(self, index: int, fn: Callable[[int], tuple[int, T]]) -> T:
        if not 0 <= index < self.size:
            raise IndexError(f"counter {index} outside 0..{self.size - 1}")
        lock = self.lock     # acquire/release: no Python-level __enter__ of multiprocessing's Lock
        lock.acquire()
        try:
            slot = self.base + index
            new, result = fn(self.words[slot])
            self.words[slot] = new
        finally:
            lock.release()
        return result

    def reset(self) -> None:
        with self.lock:
            for i in range(self.size):
                self.words[self.base + i] = 0


def counter_index(dset: DestinationSet, counter: int) -> int:
    """Where ``counter`` (RR_POINTER, WEIGHT_POINTER...) of ``dset`` lives."""
    return dset.index * COUNTERS_PER_SET + counter


# --------------------------------------------------------------------------- index rules


def _fallback(dests: list[Destination], use_default: bool) -> int | None:
    """Nothing usable among the candidates: the default entry if allowed and usable."""
    if use_default and dests[-1].usable:
        return len(dests) - 1
    return None


def skip_forward(dests: list[Destination], h: int, n: int, use_default: bool) -> int | None:
    """Kamailio: start at ``h % n`` and move to the next usable index, wrapping."""
    start = i = h % n
    while not dests[i].usable:
        i = (i + 1) % n
        if i == start:
            return _fallback(dests, use_default)
    return i


def _spread_hash(dests: list[Destination], h: int, n: int, use_default: bool) -> int | None:
    """D1: ``h % n`` if usable, else ``usable[h % len(usable)]`` (same hash)."""
    i = h % n
    if dests[i].usable:
        return i
    usable = [j for j in range(n) if dests[j].usable]
    if usable:
        return usable[h % len(usable)]
    return _fallback(dests, use_default)


def _round_robin(
    dset: DestinationSet, n: int, shared: SharedCounters, use_default: bool
) -> int | None:
    """Alg 4: pick from the pointer under the lock, then point past the one used."""
    nr = len(dset.destinations)

    def advance(last: int) -> tuple[int, int | None]:
        i = skip_forward(dset.destinations, last, n, use_default)
        return (last + 1 if i is None else i + 1) % nr, i

    return shared.update(counter_index(dset, RR_POINTER), advance)


def _next_slot(dset: DestinationSet, shared: SharedCounters, counter: int) -> int:
    """Current position in a 100-slot table, advancing it."""
    return shared.update(
        counter_index(dset, counter),
        lambda pos: ((pos + 1) % WEIGHT_SLOTS, pos % WEIGHT_SLOTS),
    )


def least_loaded(dests: list[Destination], runtime: Runtime) -> int | None:
    """Alg 10: the usable destination with the fewest calls and room under ``maxload``."""
    best: int | None = None
    best_load = 0x7FFFFFFF
    for j, dest in enumerate(dests):
        if not dest.usable:
            continue
        load = runtime.load_of(dest)
        maxload = dest.attrs.maxload
        if (maxload == 0 or load < maxload) and load < best_load:
            best, best_load = j, load
    return best


def latency_order(
    dset: DestinationSet, shared: SharedCounters, runtime: Runtime, use_default: bool
) -> tuple[int | None, list[int]]:
    """Alg 13 (``ds_manage_route_algo13``): (selected index, failover indices).

    Starting at the round-robin pointer, each usable destination gets the
    priority ``p - latency // p`` when its latency exceeds ``p > 0`` (at least
    1), unusable ones -1; a stable sort by that priority gives the order, the
    first is selected and the pointer moves past it. ``latency`` is the
    estimate, or estimate minus average with ``cc=1``. The failover indices
    leave out unusable entries and the default one (``use_default``).
    """
    dests = dset.destinations
    nr = len(dests)
    wrap = nr - 1 if use_default and nr != 1 else nr

    def pick(last: int) -> tuple[int, tuple[int, list[tuple[int, int, bool]]]]:
        latencies = runtime.estimates(dests)
        ranked: list[tuple[int, int, bool]] = []  # (priority, index, usable)
        z = last % nr
        for _ in range(nr):
            dest = dests[z]
            if dest.usable:
                estimate, average = latencies[z]
                latency = int(estimate - average) if dest.attrs.cc else int(estimate)
                prio = dest.priority
                if latency > prio > 0:
                    prio -= latency // prio
                    prio = max(prio, 1)
                ranked.append((prio, z, True))
            else:
                ranked.append((-1, -1, False))
            z = (z + 1) % wrap
        ranked.sort(key=lambda entry: -entry[0])
        chosen = ranked[0][1]
        return (chosen + 1) % nr, (chosen, ranked)

    chosen, ranked = shared.update(counter_index(dset, RR_POINTER), pick)
    default = nr - 1 if use_default else -1
    order = [j for _prio, j, usable in ranked if usable and j >= 0 and j != default]
    return (chosen if chosen >= 0 else None), order


# --------------------------------------------------------------------------- selection


def failover_indices(
    dests: list[Destination],
    chosen: int,
    *,
    use_default: bool = False,
    runtime: Runtime | None = None,
) -> list[int]:
    """Chosen first, then usable entries after it, then before it (indices).

    With ``use_default`` the last entry is only appended at the end (unchecked).
    With ``runtime`` (alg 10), destinations at their ``maxload`` are left out.
    """
    default = len(dests) - 1 if use_default else -1
    order = [chosen]
    for j in chain(range(chosen + 1, len(dests)), range(chosen)):
        dest = dests[j]
        if j == default or not dest.usable:
            continue
        if runtime is not None and dest.attrs.maxload and (
            runtime.load_of(dest) >= dest.attrs.maxload
        ):
            continue
        order.append(j)
    if default >= 0 and chosen != default:
        order.append(default)
    return order


def failover_order(
    dests: list[Destination],
    chosen: int,
    *,
    use_default: bool = False,
    limit: int = 0,
    runtime: Runtime | None = None,
) -> list[Destination]:
    """:func:`failover_indices` as destinations; ``limit`` > 0 caps the list."""
    order = [
        dests[j]
        for j in failover_indices(dests, chosen, use_default=use_default, runtime=runtime)
    ]
    return order[:limit] if limit > 0 else order


def select(
    dset: DestinationSet,
    alg: int,
    key_fn: KeyFn | None,
    shared: SharedCounters,
    *,
    use_default: bool = False,
    limit: int = 0,
    rng: random.Random | None = None,
    runtime: Runtime | None = None,
) -> list[Destination] | None:
    """Select from ``dset`` with algorithm ``alg``; None when nothing usable.

    ``key_fn`` is called (only) by the hash algorithms and returns the hash from
    :mod:`.hashing`, or None when the key is missing: that fails algs 0-3 and 7
    and makes alg 5 fall back to round robin. Unknown algorithms use index 0
    like Kamailio. Algs 10 (least loaded, no load accounting here) and 13
    need ``runtime``; alg 12 selects like alg 8 (the caller adds the branches).
    """
    dests = dset.destinations
    if alg == ALG_LATENCY:
        if runtime is None:
            raise ValueError("algorithm 13 needs the run-time latency figures")
        chosen13, order = latency_order(dset, shared, runtime, use_default)
        if chosen13 is None:
            return None
        picked = [dests[j] for j in order]
        if use_default and chosen13 != len(dests) - 1:
            picked.append(dests[-1])
        return picked[:limit] if limit > 0 else picked
    n = len(dests) - 1 if use_default and len(dests) > 1 else len(dests)
    chosen = choose_index(dset, alg, key_fn, shared, n, use_default, rng, runtime)
    if chosen is None:
        return None
    return failover_order(
        dests,
        chosen,
        use_default=use_default,
        limit=limit,
        runtime=runtime if alg == ALG_CALL_LOAD else None,
    )


def choose_index(
    dset: DestinationSet,
    alg: int,
    key_fn: KeyFn | None,
    shared: SharedCounters,
    n: int,
    use_default: bool,
    rng: random.Random | None,
    runtime: Runtime | None = None,
) -> int | None:
    """Index of the selected destination (before the failover list is built).

    ``n`` is the number of candidates (the set size, minus the default entry
    with ``use_default``). Alg 13 is not handled here (see :func:`latency_order`).
    """
    dests = dset.destinations
    if alg in HASH_ALGS:
        h = key_fn() if key_fn is not None else None
        if h is not None:
            return _spread_hash(dests, h, n, use_default)
        if alg != ALG_HASH_AUTH_USER:
            return None
        return _round_robin(dset, n, shared, use_default)
    if alg == ALG_ROUND_ROBIN:
        return _round_robin(dset, n, shared, use_default)
    if alg == ALG_RANDOM:
        h = rng.getrandbits(31) if rng is not None else random.getrandbits(31)
        return skip_forward(dests, h, n, use_default)
    if alg == ALG_WEIGHT:
        slot = _next_slot(dset, shared, WEIGHT_POINTER)
        return skip_forward(dests, dset.weight_slots(n)[slot], n, use_default)  # D1 inside
    if alg == ALG_RELATIVE_WEIGHT:
        slot = _next_slot(dset, shared, RWEIGHT_POINTER)
        return skip_forward(dests, dset.rweight_slots()[slot], n, use_default)
    if alg == ALG_CALL_LOAD:
        if runtime is None:
            raise ValueError("algorithm 10 needs the run-time call loads")
        least = least_loaded(dests, runtime)
        return None if least is None else skip_forward(dests, least, n, use_default)
    return skip_forward(dests, 0, n, use_default)  # 8 (serial), 12 and unknown algorithms
