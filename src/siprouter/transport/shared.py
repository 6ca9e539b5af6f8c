"""State shared by all worker processes, in an anonymous shared memory map.

Created by the supervisor before it forks the workers, so every worker maps
the same pages. Holds the sl "last stateless reply" timestamp; modules can
allocate further slots (the dispatcher's round-robin pointers) with
:meth:`SharedArea.alloc`.
"""

from __future__ import annotations

import mmap
import multiprocessing
import struct

_DOUBLE = struct.Struct("d")


class SharedArea:
    """A fixed-size shared memory area handed out in 8-byte slots."""

    def __init__(self, slots: int = 1 << 16) -> None:  # 512 KiB, touched lazily
        self.buf = mmap.mmap(-1, slots * 8)
        self.slots = slots
        self.next_slot = 0
        self.lock = multiprocessing.Lock()

    def alloc(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive slots; returns the byte offset of the first."""
        if self.next_slot + count > self.slots:
            raise MemoryError("shared area exhausted")
        offset = self.next_slot * 8
        self.next_slot += count
        return offset


class SharedTimestamp:
    """A float in shared memory (the sl module's last-reply time)."""

    def __init__(self, area: SharedArea) -> None:
        self.buf = area.buf
        self.offset = area.alloc()
        self.set(-1e18)

    def get(self) -> float:
        value: float = _DOUBLE.unpack_from(self.buf, self.offset)[0]
        return value

    def set(self, value: float) -> None:
        _DOUBLE.pack_into(self.buf, self.offset, value)
