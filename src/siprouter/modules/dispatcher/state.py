"""Dispatcher state shared by every process: the list, destination states, counters.

Kamailio keeps the destination sets in shared memory; here each process has
its own :class:`DispatcherList` objects and a :class:`SharedState` keeps what
must be common in a shared memory area (``router.shared["area"]``, allocated
before the workers fork):

* a header: a change generation (bumped by every state change and reload),
  the list generation, the active bank, the keepalive switch
  (``dispatcher.ping_active``) and the last reload time (``reload_delta``);
* two *banks*, one per list version (double buffering): the list itself as
  a serialised blob, the per-set counters (round-robin pointer, weight table
  positions) and one record per destination (flags, failure/success counter,
  call load, latency statistics).

A reload serialises the new list into the inactive bank, initialises its
records and flips the bank under the lock. Every dispatcher function first
calls :meth:`SharedState.sync`: one read of the change generation; when it
moved, the process re-reads the flags (and rebuilds its list from the blob if
the list generation moved too). The hot path therefore costs one shared
memory read, plus the lock for the algorithms that move a shared pointer.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .destinations import (
    DISABLED,
    INACTIVE,
    PROBING,
    STATE_MASK,
    TRYING,
    UNUSABLE,
    Destination,
    DispatcherList,
)
from .selection import COUNTERS_PER_SET, SlotCounters

if TYPE_CHECKING:
    from ...transport.shared import SharedArea

log = logging.getLogger("siprouter.dispatcher")

# header slots
H_GEN = 0  # bumped by every change of a destination state and by every reload
H_LIST_GEN = 1  # bumped by every reload (new list in the active bank)
H_BANK = 2  # active bank, 0 or 1
H_BLOB_LEN = 3  # 3 and 4: blob length of bank 0 and 1
H_PING_ACTIVE = 5  # dispatcher.ping_active (1 at start)
H_RELOAD_TIME = 6  # wall-clock second of the last reload (0: none yet)
HEADER_SLOTS = 8

# destination record slots (ints unless marked float)
R_FLAGS = 0
R_COUNT = 1  # failures (TRYING) or successes (INACTIVE) counted by the state machine
R_LOAD = 2  # active calls (alg 10)
R_LAT_COUNT = 3
R_LAT_AVG = 4  # float
R_LAT_STD = 5  # float
R_LAT_EST = 6  # float
R_LAT_M2 = 7  # float
R_LAT_MAX = 8
R_LAT_MIN = 9
R_LAT_TIMEOUT = 10
RECORD_SLOTS = 12

LATENCY_TRAINING_COUNT = 10000
LATENCY_COUNT_LIMIT = 2097152

MIN_DESTINATIONS = 256
MIN_SETS = 64
MIN_BLOB_BYTES = 64 * 1024


class CapacityError(ValueError):
    """The list does not fit in the shared memory reserved at start."""


@dataclass(slots=True)
class Latency:
    """Kamailio's ``ds_latency_stats_t`` (milliseconds)."""

    count: int = 0
    average: float = 0.0
    stdev: float = 0.0
    estimate: float = 0.0
    m2: float = 0.0
    max: int = 0
    min: int = 0
    timeout: int = 0

    @classmethod
    def initial(cls, latency: int | None) -> Latency:
        """Stats at load: the ``latency`` attr primes them as if trained."""
        if latency is None:
            return cls()
        return cls(LATENCY_TRAINING_COUNT, float(latency), 0.0, float(latency), 0.0,
                   latency, latency)

    def update(self, latency: int, alpha: float) -> None:
        """Add one keepalive round-trip time (``latency_stats_update``)."""
        if self.count < LATENCY_COUNT_LIMIT:
            self.count += 1
        else:  # the sum of squares decays once the count is capped
            self.m2 -= self.m2 / max(self.count, 1)
        if self.count == 1:
            self.stdev = self.m2 = 0.0
            self.max = self.min = latency
            self.average = self.estimate = float(latency)
        if 10 < self.count < LATENCY_TRAINING_COUNT and self.stdev < 0.5:
            self.count = LATENCY_TRAINING_COUNT  # stable: train the estimator at once
        self.min = min(self.min, latency)
        self.max = max(self.max, latency)
        if self.count > 1:
            delta = latency - self.average
            self.average += delta / self.count
            self.m2 += delta * (latency - self.average)
            self.stdev = math.sqrt(self.m2 / (self.count - 1))
        if self.count < 10:
            self.estimate = self.average
        else:
            self.estimate = self.estimate * alpha + latency * (1 - alpha)


@dataclass(frozen=True, slots=True)
class StateChange:
    """Result of the state machine: old and new flags of one destination."""

    dest: Destination
    old: int
    new: int

    @property
    def went_down(self) -> bool:
        return not self.old & UNUSABLE and bool(self.new & UNUSABLE)

    @property
    def came_up(self) -> bool:
        return bool(self.old & UNUSABLE) and not self.new & UNUSABLE


def next_state(old: int, requested: int, count: int, probing_threshold: int,
               inactive_threshold: int) -> tuple[int, int]:
    """Kamailio's ``ds_update_state`` (5.6): (new flags, new counter).

    Used by keepalive results and ``ds_mark_dst``; see spec/dispatcher.md §11.3.
    """
    flags = old & ~STATE_MASK
    state = requested
    if state & TRYING and old & INACTIVE:  # inactive does not go back to trying
        state = (state & ~TRYING) | INACTIVE
    flags |= DISABLED if state & DISABLED else state
    if state & TRYING:
        count += 1
        if count >= probing_threshold:
            flags = (flags & ~TRYING) | INACTIVE
            count = 0
    elif not requested & TRYING and old & INACTIVE:  # a success while inactive
        count += 1
        if count < inactive_threshold:
            flags |= INACTIVE
            if old & PROBING:
                flags |= PROBING
        else:
            count = 0
    else:
        count = 0
    return flags, count


def encode_list(dlist: DispatcherList) -> bytes:
    """The blob other processes rebuild the list from (same order, same seed)."""
    rows = [
        [d.setid, d.uri, d.flags, d.priority, d.attrs.body, d.ip,
         list(d.send_socket) if d.send_socket is not None else None]
        for d in dlist.load_order()
    ]
    return json.dumps({"seed": dlist.seed, "d": rows}, separators=(",", ":")).encode()


def decode_list(blob: bytes) -> DispatcherList:
    """Inverse of :func:`encode_list`."""
    data = json.loads(blob)
    dests = []
    for setid, uri, flags, priority, attrs, ip, sock in data["d"]:
        dest = Destination.create(uri, setid, flags, priority, attrs)
        dest.ip = ip
        dest.send_socket = (sock[0], sock[1], sock[2]) if sock is not None else None
        dests.append(dest)
    return DispatcherList.build(dests, seed=data["seed"])


class SharedState:
    """The dispatcher's cross-process state (see the module docstring).

    ``counters`` is the :class:`~.selection.SharedCounters` of the selection
    code: counter ``i`` is slot ``i`` of the active bank's counter block.
    """

    def __init__(self, area: SharedArea | None, *, max_sets: int = MIN_SETS,
                 max_destinations: int = MIN_DESTINATIONS, blob_bytes: int = MIN_BLOB_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        from ...transport.shared import SharedArea

        self.max_sets = max_sets
        self.max_destinations = max_destinations
        self.blob_bytes = -(-blob_bytes // 8) * 8
        bank_slots = (max_sets * COUNTERS_PER_SET + max_destinations * RECORD_SLOTS
                      + self.blob_bytes // 8)
        total = HEADER_SLOTS + 2 * bank_slots
        offset = -1
        if area is not None:
            try:
                offset = area.alloc(total)
            except MemoryError:
                log.warning("shared area too small for the dispatcher (%d slots needed): "
                            "using a separate shared mapping", total)
        if offset < 0:
            area = SharedArea(total)
            offset = area.alloc(total)
        assert area is not None
        self.buf = area.buf
        self.ints = memoryview(area.buf).cast("q")
        self.floats = memoryview(area.buf).cast("d")
        self.lock = multiprocessing.Lock()
        self.clock = clock
        base = offset // 8
        self.header = base
        self.gen_slot = base + H_GEN
        banks = base + HEADER_SLOTS
        self.counter_base = (banks, banks + bank_slots)
        self.record_base = tuple(b + max_sets * COUNTERS_PER_SET for b in self.counter_base)
        self.blob_offset = tuple(
            (r + max_destinations * RECORD_SLOTS) * 8 for r in self.record_base)
        self.ints[base + H_PING_ACTIVE] = 1
        self.counters = SlotCounters(self.ints, self.counter_base[0],
                                     max_sets * COUNTERS_PER_SET, self.lock)
        # this process's view
        self.dlist = DispatcherList()
        self.bank = 0
        self.list_gen = 0
        self.seen_gen = 0

    # ------------------------------------------------------------ syncing
    def sync(self) -> None:
        """Bring this process's list and flags up to date (one read when nothing moved)."""
        if self.ints[self.gen_slot] != self.seen_gen:
            with self.lock:
                self._sync_locked()

    def _sync_locked(self) -> None:
        ints = self.ints
        gen = ints[self.header + H_GEN]
        list_gen = ints[self.header + H_LIST_GEN]
        if list_gen != self.list_gen:
            bank = ints[self.header + H_BANK]
            length = ints[self.header + H_BLOB_LEN + bank]
            start = self.blob_offset[bank]
            self.dlist = decode_list(bytes(self.buf[start:start + length]))
            self.bank = bank
            self.counters.base = self.counter_base[bank]
            self.list_gen = list_gen
        records = self.record_base[self.bank]
        for dest in self.dlist.all:
            dest.flags = ints[records + dest.slot * RECORD_SLOTS + R_FLAGS]
        self.seen_gen = gen

    def _bump(self) -> None:
        """Record a change (the lock is held)."""
        self.ints[self.gen_slot] += 1
        self.seen_gen = self.ints[self.gen_slot]

    def _record(self, dest: Destination) -> int | None:
        """Slot index of ``dest``'s record, after a sync (lock held); None if gone."""
        if self.ints[self.gen_slot] != self.seen_gen:
            self._sync_locked()
        current = self.dlist.all
        if not (0 <= dest.slot < len(current) and current[dest.slot] is dest):
            found = self.dlist.find(dest.setid, dest.uri)
            if found is None:
                return None
            dest = found
        return self.record_base[self.bank] + dest.slot * RECORD_SLOTS

    # ------------------------------------------------------------ publishing lists
    def check_capacity(self, dlist: DispatcherList, blob: bytes) -> None:
        if len(dlist.sets) > self.max_sets:
            raise CapacityError(f"{len(dlist.sets)} sets exceed the {self.max_sets} "
                                "reserved in shared memory at start")
        if len(dlist.all) > self.max_destinations:
            raise CapacityError(f"{len(dlist.all)} destinations exceed the "
                                f"{self.max_destinations} reserved in shared memory at start")
        if len(blob) > self.blob_bytes:
            raise CapacityError(f"the list needs {len(blob)} bytes, {self.blob_bytes} "
                                "were reserved in shared memory at start")

    def publish(self, dlist: DispatcherList) -> None:
        """Make ``dlist`` (fresh from the file/DB: its flags) the list of every process.

        Raises :class:`CapacityError` when it does not fit (the old list stays).
        """
        with self.lock:
            self._publish_locked(dlist, {})

    def rebuild(self, change: Callable[[DispatcherList], DispatcherList | None]) -> bool:
        """``dispatcher.add``/``remove``: replace the current list by ``change(current)``.

        Destinations present in both keep their flags, call load and latency
        statistics; pointers start again. False when ``change`` returns None.
        """
        with self.lock:
            self._sync_locked()
            records = self.record_base[self.bank]
            carried: dict[tuple[int, str], list[tuple[int, int, Latency]]] = {}
            for dest in self.dlist.all:
                rec = records + dest.slot * RECORD_SLOTS
                carried.setdefault((dest.setid, dest.uri), []).append(
                    (self.ints[rec + R_FLAGS], self.ints[rec + R_LOAD], self._latency_at(rec)))
            new = change(self.dlist)
            if new is None:
                return False
            self._publish_locked(new, carried)
            return True

    def _publish_locked(self, dlist: DispatcherList,
                        carried: dict[tuple[int, str], list[tuple[int, int, Latency]]]) -> None:
        blob = encode_list(dlist)
        self.check_capacity(dlist, blob)
        ints = self.ints
        first = ints[self.header + H_LIST_GEN] == 0
        bank = 0 if first else 1 - ints[self.header + H_BANK]
        start = self.blob_offset[bank]
        self.buf[start:start + len(blob)] = blob
        ints[self.header + H_BLOB_LEN + bank] = len(blob)
        counters = self.counter_base[bank]
        for i in range(len(dlist.sets) * COUNTERS_PER_SET):
            ints[counters + i] = 0
        records = self.record_base[bank]
        for dest in dlist.all:
            rec = records + dest.slot * RECORD_SLOTS
            kept = carried.get((dest.setid, dest.uri))
            if kept:
                flags, load, latency = kept.pop(0)
                dest.flags = flags
            else:
                load, latency = 0, Latency.initial(dest.attrs.latency)
            ints[rec + R_FLAGS] = dest.flags
            ints[rec + R_COUNT] = 0
            ints[rec + R_LOAD] = load
            self._store_latency(rec, latency)
        ints[self.header + H_BANK] = bank
        ints[self.header + H_LIST_GEN] += 1
        self.dlist = dlist
        self.bank = bank
        self.counters.base = self.counter_base[bank]
        self.list_gen = ints[self.header + H_LIST_GEN]
        self._bump()

    # ------------------------------------------------------------ states
    def flags_of(self, dest: Destination) -> int:
        """Current flags of ``dest`` straight from shared memory (0 if it is gone)."""
        with self.lock:
            rec = self._record(dest)
            return 0 if rec is None else self.ints[rec + R_FLAGS]

    def count_of(self, dest: Destination) -> int:
        """The state machine's failure/success counter of ``dest``."""
        with self.lock:
            rec = self._record(dest)
            return 0 if rec is None else self.ints[rec + R_COUNT]

    def update_state(self, setid: int, uri: str, requested: int, probing_threshold: int,
                     inactive_threshold: int) -> StateChange | None:
        """Run the state machine on destination ``uri`` of ``setid``; None if not found."""
        with self.lock:
            self._sync_locked()
            dest = self.dlist.find(setid, uri)
            if dest is None:
                return None
            rec = self.record_base[self.bank] + dest.slot * RECORD_SLOTS
            old = self.ints[rec + R_FLAGS]
            new, count = next_state(old, requested, self.ints[rec + R_COUNT],
                                    probing_threshold, inactive_threshold)
            self.ints[rec + R_FLAGS] = new
            self.ints[rec + R_COUNT] = count
            dest.flags = new
            self._bump()
            return StateChange(dest, old, new)

    def reinit_state(self, setid: int, state: int,
                     match: Callable[[Destination], bool] | None = None) -> int:
        """Administrative change: flags := (flags without bits 1-16) | state.

        ``match`` None changes every destination of the set. Returns how many
        changed, -1 when the set does not exist. No events, counters kept.
        """
        with self.lock:
            self._sync_locked()
            dset = self.dlist.get(setid)
            if dset is None:
                return -1
            records = self.record_base[self.bank]
            changed = 0
            for dest in dset:
                if match is not None and not match(dest):
                    continue
                rec = records + dest.slot * RECORD_SLOTS
                dest.flags = (self.ints[rec + R_FLAGS] & ~STATE_MASK) | state
                self.ints[rec + R_FLAGS] = dest.flags
                changed += 1
                if match is not None:
                    break  # Kamailio stops at the first match
            self._bump()
            return changed

    # ------------------------------------------------------------ call load
    def load_of(self, dest: Destination) -> int:
        """Active calls of ``dest`` (alg 10); reads shared memory without the lock."""
        if 0 <= dest.slot < len(self.dlist.all) and self.dlist.all[dest.slot] is dest:
            return self.ints[self.record_base[self.bank] + dest.slot * RECORD_SLOTS + R_LOAD]
        return 0

    def add_load(self, dest: Destination, delta: int) -> None:
        """Change the call load of ``dest`` (never below 0)."""
        with self.lock:
            rec = self._record(dest)
            if rec is not None:
                self.ints[rec + R_LOAD] = max(0, self.ints[rec + R_LOAD] + delta)

    # ------------------------------------------------------------ latency
    def _latency_at(self, rec: int) -> Latency:
        ints, floats = self.ints, self.floats
        return Latency(ints[rec + R_LAT_COUNT], floats[rec + R_LAT_AVG],
                       floats[rec + R_LAT_STD], floats[rec + R_LAT_EST],
                       floats[rec + R_LAT_M2], ints[rec + R_LAT_MAX], ints[rec + R_LAT_MIN],
                       ints[rec + R_LAT_TIMEOUT])

    def _store_latency(self, rec: int, lat: Latency) -> None:
        ints, floats = self.ints, self.floats
        ints[rec + R_LAT_COUNT] = lat.count
        floats[rec + R_LAT_AVG] = lat.average
        floats[rec + R_LAT_STD] = lat.stdev
        floats[rec + R_LAT_EST] = lat.estimate
        floats[rec + R_LAT_M2] = lat.m2
        ints[rec + R_LAT_MAX] = lat.max
        ints[rec + R_LAT_MIN] = lat.min
        ints[rec + R_LAT_TIMEOUT] = lat.timeout

    def latency_of(self, dest: Destination) -> Latency:
        """A copy of ``dest``'s latency statistics."""
        with self.lock:
            rec = self._record(dest)
            return Latency() if rec is None else self._latency_at(rec)

    def estimates(self, dests: Iterable[Destination]) -> list[tuple[float, float]]:
        """(estimate, average) per destination, for alg 13 (no lock: a snapshot)."""
        floats = self.floats
        records = self.record_base[self.bank]
        out = []
        for dest in dests:
            rec = records + dest.slot * RECORD_SLOTS
            out.append((floats[rec + R_LAT_EST], floats[rec + R_LAT_AVG]))
        return out

    def record_latency(self, setid: int, uri: str, code: int, latency_ms: int | None,
                       alpha: float) -> None:
        """A keepalive result for ``ds_ping_latency_stats`` (``ds_update_latency``).

        Only destinations that are PROBING are measured; a 408 counts as a
        timeout and adds no sample.
        """
        with self.lock:
            self._sync_locked()
            dest = self.dlist.find(setid, uri)
            if dest is None:
                return
            rec = self.record_base[self.bank] + dest.slot * RECORD_SLOTS
            if not self.ints[rec + R_FLAGS] & PROBING:
                return
            lat = self._latency_at(rec)
            if code == 408:
                lat.timeout += 1
            elif latency_ms is not None:
                lat.update(latency_ms, alpha)
            self._store_latency(rec, lat)

    # ------------------------------------------------------------ switches
    @property
    def ping_active(self) -> int:
        return self.ints[self.header + H_PING_ACTIVE]

    @ping_active.setter
    def ping_active(self, value: int) -> None:
        self.ints[self.header + H_PING_ACTIVE] = value

    def begin_reload(self, delta: int) -> bool:
        """``reload_delta``: False if the last reload was less than ``delta`` s ago.

        Otherwise the reload time is set to now (Kamailio's ``time(NULL)``).
        """
        with self.lock:
            slot = self.header + H_RELOAD_TIME
            last = self.ints[slot]
            now = int(self.clock())
            if last != 0 and last > now - delta:
                return False
            self.ints[slot] = now
            return True

    def snapshot(self) -> list[dict[str, Any]]:
        """Per destination (slot order): flags, count, load, latency (for RPC/metrics)."""
        with self.lock:
            self._sync_locked()
            records = self.record_base[self.bank]
            out = []
            for dest in self.dlist.all:
                rec = records + dest.slot * RECORD_SLOTS
                out.append({"flags": self.ints[rec + R_FLAGS],
                            "count": self.ints[rec + R_COUNT],
                            "load": self.ints[rec + R_LOAD],
                            "latency": self._latency_at(rec)})
            return out


def capacity_for(dlist: DispatcherList) -> tuple[int, int, int]:
    """(sets, destinations, blob bytes) to reserve at start: room to grow 4-fold."""
    blob = len(encode_list(dlist))
    return (max(MIN_SETS, 4 * len(dlist.sets)), max(MIN_DESTINATIONS, 4 * len(dlist.all)),
            max(MIN_BLOB_BYTES, 4 * blob))
