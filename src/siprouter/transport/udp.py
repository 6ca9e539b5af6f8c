"""UDP sockets: bound once by the supervisor, shared by every worker."""

from __future__ import annotations

import logging
import socket

from ..routing.context import Address
from ..routing.router import Router
from ..routing.settings import Listen

log = logging.getLogger("siprouter.udp")

SOCKET_BUFFER = 4 * 1024 * 1024


def open_udp_socket(listen: Listen) -> socket.socket:
    """A UDP socket bound to the listen address, with large kernel buffers."""
    host = listen.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # No SO_REUSEADDR/SO_REUSEPORT: on Linux they let a second UDP socket bind the
    # same address, so a second siprouter would start and silently steal traffic.
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass
    sock.bind((host, listen.port))
    return sock


def bind_sockets(router: Router) -> dict[Address, socket.socket]:
    """Bind every UDP listen address (in the supervisor, before forking)."""
    sockets: dict[Address, socket.socket] = {}
    for listen in router.settings.listen:
        if listen.proto != "udp":
            log.info("listen=%s:%s:%d: SIP is served over UDP only so far (a tcp socket "
                     "may still carry the HTTP control plane, see docs/control.md)",
                     listen.proto, listen.host, listen.port)
            continue
        sockets[listen.address] = open_udp_socket(listen)
    if not sockets:
        raise OSError("no UDP listen socket")
    return sockets
