"""The worker loop: both serving modes, steering between workers, timers.

Real UDP sockets and real forked worker processes (transport/worker.py,
transport/supervisor.run_worker); the router is built from cfg text. Worker 1
reads the sockets, the others stand by until the receive queue grows.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.context import Outgoing
from siprouter.routing.owners import CallOwners
from siprouter.routing.router import Router
from siprouter.transport import worker as worker_module
from siprouter.transport.shared import SharedArea, SharedTimestamp
from siprouter.transport.supervisor import run_worker
from siprouter.transport.udp import bind_sockets
from siprouter.transport.worker import SteeringChannels, decode_steered, encode_steered

PORT = 58710
# every request is answered with the pid of the worker that ran the script
ANSWER_PID = 'request_route { sl_send_reply("200", "pid $pp"); exit; }'


def make_router(route: str = ANSWER_PID, port: int = PORT) -> Router:
    text = f'listen=udp:127.0.0.1:{port}\nauto_aliases=no\nloadmodule "sl.so"\n{route}\n'
    return build_router(parse_text(text))


def unlimited_loops_router(route: str) -> Router:
    """A router for ``route`` without Kamailio's while-loop limit (slow routes)."""
    return build_router(parse_text(
        f'listen=udp:127.0.0.1:{PORT}\nauto_aliases=no\nmax_while_loops=0\n'
        f'loadmodule "sl.so"\nloadmodule "pv.so"\n{route}\n'))


def options(callid: str, port: int = PORT) -> bytes:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:58790;branch=z9hG4bK-w\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n"
            f"Call-ID: {callid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def start_workers(router: Router, children: int) -> Iterator[dict[int, int]]:
    """Fork ``children`` workers on the router's sockets; yield rank -> pid."""
    sockets = bind_sockets(router)
    router.children = children
    steering = SteeringChannels(children) if children > 1 else None
    heartbeat = SharedTimestamp(SharedArea(1)) if children > 1 else None
    started = time.monotonic()
    pids: dict[int, int] = {}
    for rank in range(1, children + 1):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                run_worker(router, rank, sockets, steering, heartbeat)
            finally:
                os._exit(0)
        pids[rank] = pid
    for sock in sockets.values():
        sock.close()
    if heartbeat is not None:      # until worker 1 serves (standbys would step in)
        deadline = time.monotonic() + 10
        while heartbeat.get() < started and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        yield pids
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGTERM)
        for pid in pids.values():
            os.waitpid(pid, 0)


def ask(client: socket.socket, data: bytes, port: int = PORT) -> bytes:
    client.sendto(data, ("127.0.0.1", port))
    reply, _ = client.recvfrom(65535)
    return reply


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 58790))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_envelope_round_trip() -> None:
    item = Outgoing(b"SIP/2.0 200 OK\r\n\r\n", ("10.0.0.1", 5070), ("127.0.0.1", 5060), "udp", 2)
    assert decode_steered(encode_steered(item)) == (
        b"SIP/2.0 200 OK\r\n\r\n", ("10.0.0.1", 5070), ("127.0.0.1", 5060), "udp")


def test_blocking_mode_answers_and_stops_on_sigterm(client: socket.socket) -> None:
    router = make_router()
    gen = start_workers(router, 1)
    pids = next(gen)
    assert ask(client, options("c1")).startswith(f"SIP/2.0 200 pid {pids[1]}".encode())
    started = time.monotonic()
    with pytest.raises(StopIteration):
        next(gen)      # SIGTERM + waitpid
    assert time.monotonic() - started < 3


def reply_pid(reply: bytes) -> int:
    return int(reply.split(b"\r\n", 1)[0].rsplit(b" ", 1)[1])


def test_the_first_worker_takes_the_load_while_it_keeps_up(client: socket.socket) -> None:
    """Worker 2 stands by: requests one at a time are all answered by worker 1."""
    gen = start_workers(make_router(), 2)
    pids = next(gen)
    try:
        answered = {reply_pid(ask(client, options(f"one-{i}"))) for i in range(30)}
        assert answered == {pids[1]}
    finally:
        with pytest.raises(StopIteration):
            next(gen)


# a route that keeps a worker busy for a millisecond or more per request (no loop limit)
SLOW_ROUTE = ('request_route { $var(i) = 0; while ($var(i) < 2000) { $var(i) = $var(i) + 1; }'
              ' sl_send_reply("200", "pid $pp"); exit; }')


def test_a_standby_worker_leaves_the_shared_socket_blocking(client: socket.socket) -> None:
    """O_NONBLOCK is shared by every process: the standby must not set it under worker 1."""
    router = make_router()
    router.steer_requests = True           # worker 2 waits in epoll
    gen = start_workers(router, 2)
    pids = next(gen)
    try:
        # worker 1 answers, and its socket still blocks (it would spin otherwise)
        assert reply_pid(ask(client, options("blocking-1"))) == pids[1]
        flags = [int(line.split()[1], 8) for line in
                 open(f"/proc/{pids[1]}/fdinfo/{find_udp_fd(pids[1], PORT)}")
                 if line.startswith("flags:")]
        assert flags and not flags[0] & os.O_NONBLOCK
    finally:
        with pytest.raises(StopIteration):
            next(gen)


def find_udp_fd(pid: int, port: int) -> int:
    """The descriptor of ``pid``'s UDP socket bound to ``port``."""
    inodes = set()
    with open("/proc/net/udp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                inodes.add(fields[9])
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return int(fd)
    raise AssertionError(f"no UDP socket on port {port} in process {pid}")


def test_standby_workers_join_in_when_the_queue_grows(
        client: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst worker 1 cannot keep up with is shared: both workers answer, none is lost."""
    monkeypatch.setattr(worker_module, "OVERFLOW_HIGH", 32 * 1024)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    gen = start_workers(unlimited_loops_router(SLOW_ROUTE), 2)
    pids = next(gen)
    try:
        count = 300
        for i in range(count):
            client.sendto(options(f"burst-{i}"), ("127.0.0.1", PORT))
        answered: dict[int, int] = {}
        for _ in range(count):
            pid = reply_pid(client.recvfrom(65535)[0])
            answered[pid] = answered.get(pid, 0) + 1
        assert set(answered) == {pids[1], pids[2]}, answered
        assert sum(answered.values()) == count
        # and once the burst is over, worker 2 stands by again (within two checks)
        time.sleep(2 * worker_module.OVERFLOW_HOLD + 0.2)
        assert {reply_pid(ask(client, options(f"after-{i}"))) for i in range(10)} == {pids[1]}
    finally:
        with pytest.raises(StopIteration):
            next(gen)


# a request for "stall" keeps the worker busy for seconds (no while-loop limit)
STALL_ROUTE = ('request_route { if ($rU == "stall") { $var(i) = 0;'
               ' while ($var(i) < 4000000) { $var(i) = $var(i) + 1; } }'
               ' sl_send_reply("200", "pid $pp"); exit; }')


def stall_request(port: int = PORT) -> bytes:
    return options("stall-1").replace(f"OPTIONS sip:127.0.0.1:{port}".encode(),
                                      f"OPTIONS sip:stall@127.0.0.1:{port}".encode())


def test_a_standby_worker_takes_over_when_worker_1_is_stuck(client: socket.socket) -> None:
    """Worker 1 busy with one message for seconds: worker 2 answers the next ones."""
    gen = start_workers(unlimited_loops_router(STALL_ROUTE), 2)
    pids = next(gen)
    try:
        assert reply_pid(ask(client, options("before"))) == pids[1]
        client.sendto(stall_request(), ("127.0.0.1", PORT))
        time.sleep(0.05)              # worker 1 has taken it
        # answered by worker 2 while worker 1 is still in the loop (it would
        # answer with its own pid otherwise, after the loop)
        assert reply_pid(ask(client, options("during"))) == pids[2]
        # the stuck request is answered in the end, by worker 1
        client.settimeout(30)
        assert reply_pid(client.recvfrom(65535)[0]) == pids[1]
    finally:
        with pytest.raises(StopIteration):
            next(gen)


def test_requests_go_to_the_worker_holding_their_call(client: socket.socket) -> None:
    """With steer_requests, a call held by worker 2 is handed to it by worker 1."""
    router = make_router()
    router.steer_requests = True
    router.call_owners = owners = CallOwners.shared(buckets=1 << 12)
    now = time.monotonic()
    held = [f"held-{i}" for i in range(10)]
    for callid in held:
        owners.assign(callid, 2, now)
    gen = start_workers(router, 2)
    pids = next(gen)
    try:
        for callid in held:
            assert reply_pid(ask(client, options(callid))) == pids[2], callid
        fresh = [f"fresh-{i}" for i in range(10) if owners.holder(f"fresh-{i}", now) == 0]
        for callid in fresh:
            assert reply_pid(ask(client, options(callid))) == pids[1], callid
            assert owners.holder(callid, time.monotonic()) == 1
    finally:
        with pytest.raises(StopIteration):
            next(gen)


class CountdownTimer:
    """A timer source that sends one datagram to the client at a deadline."""

    def __init__(self, at: float, dst: tuple[str, int]) -> None:
        self.at: float | None = at
        self.dst = dst

    def next_deadline(self) -> float | None:
        return self.at

    def on_deadline(self, now: float) -> list[Outgoing]:
        self.at = None
        return [Outgoing(b"timer fired", self.dst, ("127.0.0.1", PORT))]


def test_event_mode_serves_timers(client: socket.socket) -> None:
    router = make_router()
    router.timers.append(CountdownTimer(time.monotonic() + 0.3, ("127.0.0.1", 58790)))
    gen = start_workers(router, 1)
    pids = next(gen)
    try:
        data, _ = client.recvfrom(100)
        assert data == b"timer fired"
        assert ask(client, options("c2")).startswith(f"SIP/2.0 200 pid {pids[1]}".encode())
    finally:
        with pytest.raises(StopIteration):
            next(gen)
