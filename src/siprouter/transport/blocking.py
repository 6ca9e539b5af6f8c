"""Blocking UDP workers: Kamailio's process model.

The supervisor binds each UDP socket once, before forking; every worker then
blocks in ``recvfrom()`` on the same sockets. The kernel wakes exactly one
waiting worker per datagram, so a datagram costs one wake-up and one system
call to receive, which is measurably cheaper than an event loop (see
docs/performance.md). With several listen sockets each worker serves them
from one thread per socket.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from ..routing.context import Address
from ..routing.router import Router
from .udp import open_udp_socket

log = logging.getLogger("siprouter.udp")

MAX_DATAGRAM = 65535


def bind_sockets(router: Router) -> dict[Address, socket.socket]:
    """Bind every UDP listen address (in the supervisor, before forking)."""
    sockets: dict[Address, socket.socket] = {}
    for listen in router.settings.listen:
        if listen.proto != "udp":
            log.warning("listen=%s:%s:%d is not served: only UDP is implemented so far",
                        listen.proto, listen.host, listen.port)
            continue
        sock = open_udp_socket(listen, reuse_port=False)
        sock.setblocking(True)
        sockets[listen.address] = sock
    return sockets


def serve_socket(router: Router, local: Address, sockets: dict[Address, socket.socket],
                 stop: threading.Event) -> None:
    """Receive loop of one socket in one worker."""
    sock = sockets[local]
    recvfrom = sock.recvfrom
    handle = router.handle
    monotonic = time.monotonic
    while not stop.is_set():
        try:
            data, addr = recvfrom(MAX_DATAGRAM)
        except InterruptedError:
            continue
        except OSError as err:
            if stop.is_set():
                return
            log.error("recvfrom failed: %s", err)
            continue
        out = handle(data, (addr[0], addr[1]), local, monotonic())
        for item in out:
            sender = sockets.get(item.local, sock)
            try:
                sender.sendto(item.data, item.dst)
            except OSError as err:
                log.error("sendto %s:%d failed: %s", item.dst[0], item.dst[1], err)


def serve_blocking(router: Router, sockets: dict[Address, socket.socket],
                   stop: threading.Event) -> None:
    """Serve all sockets until ``stop`` is set (one thread per extra socket)."""
    locals_ = list(sockets)
    threads = [threading.Thread(target=serve_socket, args=(router, local, sockets, stop),
                                daemon=True, name=f"udp-{local[0]}:{local[1]}")
               for local in locals_[1:]]
    for thread in threads:
        thread.start()
    serve_socket(router, locals_[0], sockets, stop)
