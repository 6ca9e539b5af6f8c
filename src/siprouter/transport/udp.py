"""UDP transport: a thin asyncio layer around the sans-IO :class:`Router`.

Each worker process opens its own socket per ``listen=`` address with
SO_REUSEPORT, so the kernel spreads datagrams over the workers by source
address and no worker is woken for a datagram another one reads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from ..routing.context import Address, Outgoing
from ..routing.router import Router
from ..routing.settings import Listen

log = logging.getLogger("siprouter.udp")

RECV_BUFFER = 4 * 1024 * 1024


def open_udp_socket(listen: Listen, reuse_port: bool = True) -> socket.socket:
    """A non-blocking UDP socket bound to the listen address (in a reuseport group)."""
    host = listen.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # No SO_REUSEADDR: on Linux it lets a second UDP socket bind the same
    # address, so a second siprouter would start and silently steal traffic.
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, RECV_BUFFER)
        except OSError:
            pass
    sock.bind((host, listen.port))
    sock.setblocking(False)
    return sock


class UdpProtocol(asyncio.DatagramProtocol):
    """Feeds received datagrams to the router and sends what it returns."""

    def __init__(self, router: Router, local: Address, senders: dict[Address, UdpProtocol]):
        self.router = router
        self.local = local
        self.senders = senders
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        out = self.router.handle(data, (addr[0], addr[1]), self.local, time.monotonic())
        if out:
            self.send_all(out)

    def send_all(self, out: list[Outgoing]) -> None:
        for item in out:
            sender = self.senders.get(item.local, self)
            transport = sender.transport
            if transport is None:
                continue
            try:
                transport.sendto(item.data, item.dst)
            except OSError as err:  # pragma: no cover - depends on the network
                log.error("sendto %s:%d failed: %s", item.dst[0], item.dst[1], err)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error: %s", exc)


def _factory(protocol: UdpProtocol) -> Callable[[], UdpProtocol]:
    return lambda: protocol


async def serve_udp(router: Router, stop: asyncio.Event) -> None:
    """Serve every UDP listen socket of the router until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    senders: dict[Address, UdpProtocol] = {}
    transports = []
    for listen in router.settings.listen:
        if listen.proto != "udp":
            continue
        sock = open_udp_socket(listen)
        local = listen.address
        protocol = UdpProtocol(router, local, senders)
        senders[local] = protocol
        transport, _ = await loop.create_datagram_endpoint(_factory(protocol), sock=sock)
        transports.append(transport)
    try:
        await stop.wait()
    finally:
        for transport in transports:
            transport.close()
