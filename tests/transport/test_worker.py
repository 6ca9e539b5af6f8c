"""The worker loop: both serving modes, steering between workers, timers.

Real UDP sockets and real forked worker processes (transport/worker.py,
transport/supervisor.run_worker); the router is built from cfg text.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import zlib
from collections.abc import Iterator

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.context import Outgoing
from siprouter.routing.router import Router
from siprouter.transport.supervisor import run_worker
from siprouter.transport.udp import bind_sockets
from siprouter.transport.worker import SteeringChannels, decode_steered, encode_steered

PORT = 58710
# every request is answered with the pid of the worker that ran the script
ANSWER_PID = 'request_route { sl_send_reply("200", "pid $pp"); exit; }'


def make_router(route: str = ANSWER_PID, port: int = PORT) -> Router:
    text = f'listen=udp:127.0.0.1:{port}\nauto_aliases=no\nloadmodule "sl.so"\n{route}\n'
    return build_router(parse_text(text))


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
    pids: dict[int, int] = {}
    for rank in range(1, children + 1):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                run_worker(router, rank, sockets, steering)
            finally:
                os._exit(0)
        pids[rank] = pid
    for sock in sockets.values():
        sock.close()
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


def test_steering_hands_each_call_to_its_owner(client: socket.socket) -> None:
    """With steer_requests, worker 1 + crc32(Call-ID) % 2 answers, whoever received it."""
    router = make_router()
    router.steer_requests = True
    gen = start_workers(router, 2)
    pids = next(gen)
    try:
        seen: dict[int, int] = {}
        for i in range(40):
            callid = f"steer-{i}"
            reply = ask(client, options(callid))
            pid = int(reply.split(b"\r\n", 1)[0].rsplit(b" ", 1)[1])
            owner = 1 + zlib.crc32(callid.encode()) % 2
            assert pid == pids[owner], (callid, pid, pids)
            seen[owner] = seen.get(owner, 0) + 1
        assert set(seen) == {1, 2}
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
