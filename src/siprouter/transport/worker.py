"""The receive loop of one worker process: the thin I/O layer around the Router.

The supervisor binds every UDP socket once, before forking; the workers share
the sockets and feed each datagram to the sans-IO :meth:`Router.handle`. Two
loops serve that:

* **blocking**: one UDP socket, no timers, no steering (a stateless cfg). The
  worker blocks in ``recvfrom()``: one system call per datagram. A kernel
  receive timeout (SO_RCVTIMEO) wakes it now and then for housekeeping.
* **event**: several sockets, or timers (tm retransmissions, dispatcher
  keepalives), or steering, or a standby worker. The worker waits in ``epoll`` (EPOLLEXCLUSIVE, so a
  datagram wakes one worker) on the UDP sockets and its own steering channel,
  with the earliest timer deadline as timeout.

Several workers: worker 1 reads the sockets all the time; the others stand by
(their steering channel and timers only) and check every ``OVERFLOW_CHECK``
seconds how many bytes wait in the socket's receive queue. Above
``OVERFLOW_HIGH`` (environment: ``SIPROUTER_OVERFLOW_QUEUE``, bytes; 0 = every
worker reads all the time, Kamailio's model) they join in, and they stand by
again when they were busy for less than ``OVERFLOW_LEAVE`` of the last
``OVERFLOW_HOLD`` seconds (the load fits in one worker again). They also join
in when datagrams wait and worker 1 has not gone round its loop for
``STALL_AFTER`` seconds (a heartbeat in shared memory): a worker stuck in one
message, or being restarted, does not hold the traffic up. One process takes
the whole load while it keeps up, which costs less CPU per message than several
processes sharing the wake-ups and cold caches (docs/performance.md measures
it); under overload every worker reads.

Steering: with tm and several workers, a message whose transaction lives in
another worker comes back from ``handle()`` as an ``Outgoing`` with ``steer``
set; it is passed, with its addresses, over that worker's unix datagram
channel (:class:`SteeringChannels`), and the owner handles it as if received.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..routing.context import Address, Outgoing
from ..routing.router import Router
from ..sip import speedup
from .shared import SharedTimestamp

log = logging.getLogger("siprouter.udp")


def _handlers_run_anyway() -> None:
    """Interpreted, this module runs signal handlers between its own bytecodes."""


# Compiled by mypyc, the loops below run no bytecode: nothing would run the Python
# handler of a SIGTERM that arrives between two system calls, so they call this
# (PyErr_CheckSignals in sip/_speedups.c) once per round.
check_signals: Callable[[], None] = speedup("check_signals") or _handlers_run_anyway

MAX_DATAGRAM = 65535
HOUSEKEEPING_INTERVAL = 0.2     # seconds between housekeeping runs (stats, cfg)
MAX_BATCH = 64                  # datagrams read per socket per wake-up
OVERFLOW_CHECK = 0.1            # seconds between a standby worker's queue checks (a wake-up costs ~0.1 ms)
OVERFLOW_HOLD = 0.5             # seconds a worker that joined in reads before re-checking
OVERFLOW_LEAVE = 0.4            # ... and it stands by again when it was less busy than that
OVERFLOW_HIGH = 256 * 1024      # queued bytes (kernel accounting) that call standbys in
# seconds without a heartbeat of worker 1 that call standbys in; well above the idle
# worker's beat period (HOUSEKEEPING_INTERVAL) and scheduling pauses under load
STALL_AFTER = 0.5
BEAT_INTERVAL = 0.01            # worker 1 writes its heartbeat at most this often
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)   # Linux; first field: receive queue bytes


class SteeringChannels:
    """One unix datagram channel per worker, created before the fork.

    ``send(rank, ...)`` may be called by any process; only worker ``rank``
    reads its channel (``reader(rank)``).
    """

    def __init__(self, workers: int) -> None:
        self._pairs: dict[int, tuple[socket.socket, socket.socket]] = {}
        for rank in range(1, workers + 1):
            writer, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            for sock in (writer, reader):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                except OSError:
                    pass
            writer.setblocking(False)
            reader.setblocking(False)
            self._pairs[rank] = (writer, reader)

    def reader(self, rank: int) -> socket.socket | None:
        pair = self._pairs.get(rank)
        return pair[1] if pair else None

    def send(self, item: Outgoing) -> None:
        """Hand a received datagram to worker ``item.steer``."""
        pair = self._pairs.get(item.steer)
        if pair is None:
            log.error("no worker %d to hand a message to; dropped", item.steer)
            return
        try:
            pair[0].send(encode_steered(item))
        except OSError as err:
            log.error("handing a message to worker %d failed: %s", item.steer, err)


_ENVELOPE = struct.Struct("!H")


def encode_steered(item: Outgoing) -> bytes:
    """Envelope: length-prefixed "src_ip src_port local_ip local_port proto", then the bytes."""
    head = f"{item.dst[0]} {item.dst[1]} {item.local[0]} {item.local[1]} {item.proto}".encode()
    return _ENVELOPE.pack(len(head)) + head + item.data


def decode_steered(packet: bytes) -> tuple[bytes, Address, Address, str]:
    """Inverse of :func:`encode_steered`: (data, src, local, proto)."""
    (size,) = _ENVELOPE.unpack_from(packet)
    src_ip, src_port, local_ip, local_port, proto = packet[2:2 + size].decode().split(" ")
    return packet[2 + size:], (src_ip, int(src_port)), (local_ip, int(local_port)), proto


@dataclass
class Worker:
    """The I/O state of one worker: its sockets, steering channels and hooks."""

    router: Router
    sockets: dict[Address, socket.socket]
    steering: SteeringChannels | None = None
    # called every HOUSEKEEPING_INTERVAL with the current time (stats publishing ...)
    housekeeping: list[Callable[[float], None]] = field(default_factory=list)
    # called before each received datagram is handled (runtime cfg sync)
    before_message: Callable[[], None] | None = None
    # a worker other than the first: reads the sockets only when their queue grows
    standby: bool = False
    # when worker 1 last went round its loop: it writes, the standbys read
    # (shared memory made before the fork; None: one worker)
    heartbeat: SharedTimestamp | None = None
    stopping: bool = False
    _next_housekeeping: float = 0.0
    _overflow_high: int = OVERFLOW_HIGH
    _last_beat: float = 0.0
    _stall_seen: bool = False

    # ------------------------------------------------------------ sending
    def send(self, out: list[Outgoing], default: socket.socket) -> None:
        sockets = self.sockets
        for item in out:
            if item.steer:
                if self.steering is not None:
                    self.steering.send(item)
                continue
            sender = default if len(sockets) == 1 else sockets.get(item.local, default)
            try:
                sender.sendto(item.data, item.dst)
            except OSError as err:
                log.error("sendto %s:%d failed: %s", item.dst[0], item.dst[1], err)

    def beat(self, now: float) -> None:
        """Worker 1: say it is alive (at most every BEAT_INTERVAL)."""
        if now - self._last_beat >= BEAT_INTERVAL:
            self._last_beat = now
            if self.heartbeat is not None:
                self.heartbeat.set(now)

    def run_housekeeping(self, now: float) -> None:
        self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
        for hook in self.housekeeping:
            try:
                hook(now)
            except Exception:  # noqa: BLE001 - housekeeping must not kill the worker
                log.exception("housekeeping failed")

    # ------------------------------------------------------------ loops
    def serve(self) -> None:
        """Serve until :attr:`stopping` is set (by a signal handler)."""
        router = self.router
        self._overflow_high = overflow_threshold()
        if self.standby and self._overflow_high <= 0:
            self.standby = False
        if self.standby and queued_bytes(next(iter(self.sockets.values()))) is None:
            log.warning("cannot read the receive queue's size: every worker reads the sockets")
            self.standby = False
        if not self.standby:
            self.beat(time.monotonic())      # serving from now on
        if not self.standby and len(self.sockets) == 1 and not router.timers \
                and not router.steer_requests and router.reply_owner is None:
            self._serve_blocking()
        else:
            self._serve_events()
        self.run_housekeeping(time.monotonic())

    def _serve_blocking(self) -> None:
        (local, sock), = self.sockets.items()
        sock.setblocking(True)
        timeout = struct.pack("ll", 0, int(HOUSEKEEPING_INTERVAL * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        recvfrom = sock.recvfrom
        handle = self.router.handle
        monotonic = time.monotonic
        while True:
            check_signals()
            if self.stopping:
                return
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                now = monotonic()
                self.beat(now)
                self.run_housekeeping(now)
                continue
            except OSError as err:
                if self.stopping:
                    return
                log.error("recvfrom failed: %s", err)
                continue
            now = monotonic()
            if now - self._last_beat >= BEAT_INTERVAL:
                self.beat(now)
            if self.before_message is not None:
                self.before_message()
            out = handle(data, (addr[0], addr[1]), local, now)
            if out:
                self.send(out, sock)
            if now >= self._next_housekeeping:
                self.run_housekeeping(now)

    def _serve_events(self) -> None:
        router = self.router
        poller = select.epoll()
        by_fd: dict[int, tuple[Address, socket.socket]] = {}
        exclusive = getattr(select, "EPOLLEXCLUSIVE", 0)
        # the sockets are shared with workers that may block on them (their
        # O_NONBLOCK flag is common to all processes): never block per call instead
        for local, sock in self.sockets.items():
            by_fd[sock.fileno()] = (local, sock)
        reading = not self.standby
        if reading:
            for fd in by_fd:
                poller.register(fd, select.EPOLLIN | exclusive)
        next_check = joined_at = busy = 0.0
        default_sock = next(iter(self.sockets.values()))
        steer_reader = self.steering.reader(router.rank) if self.steering else None
        steer_fd = -1
        if steer_reader is not None:
            steer_fd = steer_reader.fileno()
            poller.register(steer_fd, select.EPOLLIN)
        monotonic = time.monotonic
        handle = router.handle
        try:
            while True:
                check_signals()
                if self.stopping:
                    return
                now = monotonic()
                timeout = self._next_housekeeping - now
                for timer in router.timers:
                    deadline = timer.next_deadline()
                    if deadline is not None and deadline - now < timeout:
                        timeout = deadline - now
                if self.standby:
                    if now >= next_check:
                        share = busy / (now - joined_at) if reading and now > joined_at else 0.0
                        joined = self._overflowing(reading, share, now)
                        joined_at, busy = now, 0.0
                        if joined != reading:
                            for fd in by_fd:
                                if joined:
                                    poller.register(fd, select.EPOLLIN | exclusive)
                                else:
                                    poller.unregister(fd)
                            log.debug("worker %d %s", router.rank,
                                      "joins in" if joined else "stands by")
                            reading = joined
                        next_check = now + (OVERFLOW_HOLD if reading else OVERFLOW_CHECK)
                    timeout = min(timeout, next_check - now)
                try:
                    events = poller.poll(max(timeout, 0.0))
                except InterruptedError:
                    continue
                started = monotonic()
                if not self.standby:
                    self.beat(started)
                for fd, _mask in events:
                    if fd == steer_fd and steer_reader is not None:
                        self._drain_steered(steer_reader, default_sock)
                        continue
                    local, sock = by_fd[fd]
                    for _ in range(MAX_BATCH):
                        try:
                            data, addr = sock.recvfrom(MAX_DATAGRAM, socket.MSG_DONTWAIT)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError as err:
                            if err.errno not in (errno.ECONNREFUSED,):
                                log.error("recvfrom failed: %s", err)
                            break
                        if self.before_message is not None:
                            self.before_message()
                        out = handle(data, (addr[0], addr[1]), local, monotonic())
                        if out:
                            self.send(out, sock)
                now = monotonic()
                for timer in router.timers:
                    deadline = timer.next_deadline()
                    if deadline is not None and deadline <= now:
                        try:
                            out = timer.on_deadline(now)
                        except Exception:  # noqa: BLE001 - a timer bug must not kill us
                            log.exception("timer failed")
                            continue
                        if out:
                            self.send(out, default_sock)
                if now >= self._next_housekeeping:
                    self.run_housekeeping(now)
                busy += monotonic() - started
        finally:
            poller.close()

    def _overflowing(self, reading: bool, busy_share: float, now: float) -> bool:
        """Should this standby worker read the sockets (now)?

        It joins in when the queue is over the threshold, or when datagrams
        wait at two checks in a row while worker 1's heartbeat is older than
        ``STALL_AFTER``; it stands by again once neither holds and it was busy
        for less than ``OVERFLOW_LEAVE`` of the time since the last check (the
        load then fits in one worker again).
        """
        queued = max(queued_bytes(sock) or 0 for sock in self.sockets.values())
        if queued >= self._overflow_high:
            return True
        stalled = queued > 0 and self.heartbeat is not None \
            and now - self.heartbeat.get() > STALL_AFTER
        if stalled and self._stall_seen:
            return True
        self._stall_seen = stalled
        return reading and busy_share >= OVERFLOW_LEAVE

    def _drain_steered(self, reader: socket.socket, default_sock: socket.socket) -> None:
        handle = self.router.handle
        for _ in range(MAX_BATCH):
            try:
                packet = reader.recv(MAX_DATAGRAM + 512)
            except (BlockingIOError, InterruptedError):
                return
            try:
                data, src, local, proto = decode_steered(packet)
            except (ValueError, UnicodeDecodeError, struct.error):
                log.error("bad message on the steering channel; dropped")
                continue
            if self.before_message is not None:
                self.before_message()
            out = handle(data, src, local, time.monotonic(), proto, steered=True)
            if out:
                sock = self.sockets.get(local, default_sock)
                self.send(out, sock)


def overflow_threshold() -> int:
    """The queued bytes that call standby workers in (``SIPROUTER_OVERFLOW_QUEUE``)."""
    text = os.environ.get("SIPROUTER_OVERFLOW_QUEUE", "").strip()
    if not text:
        return OVERFLOW_HIGH
    try:
        return max(int(text), 0)
    except ValueError:
        log.warning("SIPROUTER_OVERFLOW_QUEUE=%r is not a number of bytes; using %d",
                    text, OVERFLOW_HIGH)
        return OVERFLOW_HIGH


_MEMINFO = struct.Struct("I")


def queued_bytes(sock: socket.socket) -> int | None:
    """Bytes in the socket's receive queue, as the kernel accounts them (None: unknown)."""
    try:
        return int(_MEMINFO.unpack_from(sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[0])
    except OSError:
        return None
