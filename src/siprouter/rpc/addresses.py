"""Control addresses as written in a cfg or on the command line.

``unix:/path`` (or a bare absolute path), ``tcp:IP[:PORT]``, ``udp:IP[:PORT]``;
the port defaults to 2049 like Kamailio's ctl module. Stream addresses (unix,
tcp) speak JSON-RPC 2.0 over HTTP (``POST /RPC``); ``udp`` carries one JSON-RPC
request per datagram and answers with one datagram.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

DEFAULT_CTL = "unix:/run/siprouter/siprouter_ctl"
DEFAULT_PORT = 2049


@dataclass(frozen=True)
class ControlAddress:
    """One control endpoint: ``kind`` is ``unix``, ``tcp`` or ``udp``."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}:{host}:{self.port}"


def parse_address(text: str) -> ControlAddress:
    """Parse a control address; raises ValueError with a reason."""
    value = text.strip()
    scheme, sep, rest = value.partition(":")
    if value.startswith("/"):
        return ControlAddress("unix", path=value)
    if not sep:
        raise ValueError(f"bad control address {text!r} (expected unix:PATH, tcp:IP:PORT "
                         "or udp:IP:PORT)")
    scheme = scheme.lower()
    if scheme in ("unix", "unixs", "unixd"):
        if not rest:
            raise ValueError(f"missing path in control address {text!r}")
        return ControlAddress("unix", path=rest)
    if scheme not in ("tcp", "udp"):
        raise ValueError(f"unsupported control address {text!r} (unix:, tcp: or udp:)")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"bad IPv6 address in control address {text!r}")
        host, port_text = rest[1:end], rest[end + 1:].lstrip(":")
    else:
        host, _, port_text = rest.partition(":")
    if not host:
        raise ValueError(f"missing address in control address {text!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in control address {text!r}")
        port = int(port_text)
    else:
        port = DEFAULT_PORT
    return ControlAddress(scheme, host=host, port=port)


def bind_address(address: ControlAddress, mode: int = 0o600) -> socket.socket:
    """Bind (and for streams listen on) a control address; raises OSError.

    A stale unix socket file left by a previous run is replaced; its directory is
    created when missing.
    """
    if address.kind == "unix":
        path = address.path
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, mode)
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        return sock
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    kind = socket.SOCK_STREAM if address.kind == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
