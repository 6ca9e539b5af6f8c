"""The client side of ``siprouter ctl``: kamcmd argument typing and one JSON-RPC call.

unix and tcp addresses are reached with the standard library's HTTP client
(``POST /RPC``; for unix sockets the connection is opened on the socket path),
udp addresses with one datagram each way.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import socket
from typing import Any

from .addresses import ControlAddress, parse_address
from .errors import RpcError

_INT = re.compile(r"-?[0-9]+")
_ids = itertools.count(1)


def parse_arg(token: str) -> int | str:
    """kamcmd's typing: digits -> int, ``s:`` forces a string, ``i:`` forces an int.

    Raises ValueError for ``i:`` followed by something that is not an integer.
    """
    if token.startswith("s:"):
        return token[2:]
    if token.startswith("i:"):
        text = token[2:]
        if not _INT.fullmatch(text):
            raise ValueError(f"bad integer argument {token!r}")
        return int(text)
    if _INT.fullmatch(token):
        return int(token)
    return token


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection over a unix stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _post(address: ControlAddress, body: bytes, timeout: float) -> bytes:
    if address.kind == "udp":
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect((address.host, address.port))
            sock.send(body)
            return sock.recv(65535)
    conn: http.client.HTTPConnection
    if address.kind == "unix":
        conn = _UnixHTTPConnection(address.path, timeout)
    else:
        conn = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        conn.request("POST", "/RPC", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} {response.reason}")
        return data
    finally:
        conn.close()


def call(address: str | ControlAddress, method: str, params: list[Any],
         timeout: float = 30.0) -> Any:
    """Call one method; returns its result, raises RpcError (a fault) or OSError."""
    target = parse_address(address) if isinstance(address, str) else address
    request_id = next(_ids)
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                       "id": request_id}).encode()
    reply = json.loads(_post(target, body, timeout))
    if not isinstance(reply, dict):
        raise OSError(f"unexpected reply {reply!r}")
    error = reply.get("error")
    if error is not None:
        raise RpcError(int(error.get("code", 0)), str(error.get("message", "")))
    return reply.get("result")
