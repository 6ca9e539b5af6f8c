"""Which worker owns a call: the table that keeps a call's requests in one process.

With tm and several workers, every request of a transaction (retransmissions,
the ACK of a negative reply, CANCEL) must reach the worker that holds the
transaction. The first worker to receive a request of a Call-ID takes the
call's bucket (``crc32(Call-ID)`` modulo the table size) for a lease; the lease
is renewed while the call's requests keep arriving there, and it outlasts the
longest transaction (tm's ``max_inv_lifetime`` plus the wait time). A request
whose bucket another worker holds is handed over to it; that includes other
calls that share the bucket, so a call is never split between two workers (at
the price of an occasional hand-over).

Replies need no table: our Via branch carries the rank of the worker that sent
the request (``z9hG4bKsr<rank>.``).

The table is plain bytes (an ``mmap`` shared by the workers, created by the
supervisor before it forks, or a ``bytearray`` in tests): 8 bytes a bucket,
``lease end in ms << 8 | rank``. Two workers taking the same free bucket within
the same microsecond is not locked against; the later write wins and the
earlier worker's transaction is then only found for its replies.
"""

from __future__ import annotations

import mmap
import struct
import zlib

_SLOT = struct.Struct("<Q")
DEFAULT_BUCKETS = 1 << 21        # 16 MiB of shared pages, touched as buckets are used
DEFAULT_LEASE = 185.0            # seconds: tm's default max_inv_lifetime + wait + slack


class CallOwners:
    """The bucket table: ``owner(callid, rank, now)`` says who handles a request."""

    def __init__(self, buf: mmap.mmap | bytearray, lease: float = DEFAULT_LEASE) -> None:
        self.buf = buf
        self.mask = len(buf) // 8 - 1
        if self.mask < 0 or (self.mask + 1) & self.mask:
            raise ValueError("the table needs a power-of-two number of 8-byte buckets")
        self.lease_ms = int(lease * 1000)

    @classmethod
    def shared(cls, buckets: int = DEFAULT_BUCKETS, lease: float = DEFAULT_LEASE) -> CallOwners:
        """A table in anonymous shared memory (create before forking the workers)."""
        return cls(mmap.mmap(-1, buckets * 8), lease)

    def _offset(self, callid: str) -> int:
        return (zlib.crc32(callid.encode("latin-1", "replace")) & self.mask) * 8

    def owner(self, callid: str, rank: int, now: float) -> int:
        """The rank that must handle a request of ``callid`` received by ``rank``.

        Free or expired buckets are taken by ``rank``; the holder's lease is
        renewed when less than half of it is left.
        """
        offset = self._offset(callid)
        value: int = _SLOT.unpack_from(self.buf, offset)[0]
        holder = value & 0xFF
        now_ms = int(now * 1000)
        expiry = value >> 8
        if holder and holder != rank and expiry > now_ms:
            return holder
        if holder != rank or expiry - now_ms < self.lease_ms // 2:
            _SLOT.pack_into(self.buf, offset, ((now_ms + self.lease_ms) << 8) | (rank & 0xFF))
        return rank

    def holder(self, callid: str, now: float) -> int:
        """The rank holding ``callid``'s bucket now (0: nobody)."""
        value: int = _SLOT.unpack_from(self.buf, self._offset(callid))[0]
        return value & 0xFF if value >> 8 > int(now * 1000) else 0

    def assign(self, callid: str, rank: int, now: float) -> None:
        """Give ``callid``'s bucket to ``rank`` for a lease (tests, hand-over)."""
        _SLOT.pack_into(self.buf, self._offset(callid),
                        ((int(now * 1000) + self.lease_ms) << 8) | (rank & 0xFF))
