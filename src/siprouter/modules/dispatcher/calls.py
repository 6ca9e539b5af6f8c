"""Call-load bookkeeping for algorithm 10 (Kamailio's ``ds_ht``), sans-IO.

Each selected INVITE leaves a :class:`CallCell` keyed by Call-ID: the set, the
destination's ``duid`` and a state (INIT until a 2xx, then CONFIRMED). The
per-destination load counters themselves live in the shared state; this table
is per process: with tm every request of a call (and every reply) is handled
by the worker that owns its Call-ID, so the INVITE, its 2xx, the BYE and the
expiry timer all meet here. :class:`ExpiryTimer` drops entries older than
``ds_hash_expire`` (or still INIT after ``ds_hash_initexpire``) every
``ds_hash_check_interval`` seconds and gives their load back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...routing.context import Outgoing

LOAD_INIT = 0
LOAD_CONFIRMED = 1


@dataclass(slots=True)
class CallCell:
    """One call counted on a destination."""

    setid: int
    duid: str
    expire: float
    initexpire: float
    state: int = LOAD_INIT


class CallLoadTable:
    """Call-ID -> :class:`CallCell` (``ds_hash_size`` > 0 enables it)."""

    def __init__(self, expire: float, initexpire: float) -> None:
        self.expire = expire
        self.initexpire = initexpire
        self.cells: dict[str, CallCell] = {}

    def __len__(self) -> int:
        return len(self.cells)

    def add(self, callid: str, setid: int, duid: str, now: float) -> bool:
        """Store a new call; False if the Call-ID is already there."""
        if callid in self.cells:
            return False
        self.cells[callid] = CallCell(setid, duid, now + self.expire, now + self.initexpire)
        return True

    def get(self, callid: str) -> CallCell | None:
        return self.cells.get(callid)

    def remove(self, callid: str) -> CallCell | None:
        return self.cells.pop(callid, None)

    def expired(self, now: float) -> list[CallCell]:
        """Remove and return the cells past ``expire`` (or INIT past ``initexpire``)."""
        gone = [cid for cid, cell in self.cells.items()
                if cell.expire < now or (cell.state == LOAD_INIT and cell.initexpire < now)]
        return [self.cells.pop(cid) for cid in gone]


class ExpiryTimer:
    """Timer source: every ``interval`` s, drop expired cells via ``release``."""

    def __init__(self, table: CallLoadTable, interval: float,
                 release: Callable[[CallCell], None]) -> None:
        self.table = table
        self.interval = max(interval, 1.0)
        self.release = release
        self.next_check: float | None = None

    def next_deadline(self) -> float | None:
        return 0.0 if self.next_check is None else self.next_check

    def on_deadline(self, now: float) -> list[Outgoing]:
        if self.next_check is not None and now >= self.next_check:
            for cell in self.table.expired(now):
                self.release(cell)
        if self.next_check is None or now >= self.next_check:
            self.next_check = now + self.interval
        return []
