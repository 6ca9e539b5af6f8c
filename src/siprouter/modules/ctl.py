"""ctl: the control socket ``siprouter ctl`` talks to (spec/operations.md).

Kamailio's ctl speaks binrpc for kamcmd; siprouter serves JSON-RPC 2.0 on the
same addresses (HTTP ``POST /RPC`` over ``unix:`` and ``tcp:``, one datagram per
message over ``udp:``). The sockets are bound before the workers are forked and
served by the control process (see siprouter.rpc.control).
"""

from __future__ import annotations

from ..rpc.addresses import parse_address
from .base import Exports, Module, Param


class CtlModule(Module):
    exports = Exports(
        name="ctl",
        params=(
            Param("binrpc", str, "", multi=True),   # unix:PATH | tcp:IP:PORT | udp:IP:PORT
            Param("mode", int, 0o600),               # permissions of unix sockets
            Param("user", str, ""),
            Param("group", str, ""),
            Param("fifo", str, ""),                   # accepted, not served
            Param("autoconversion", int, 0),
            Param("binrpc_buffer_size", int, 1024),
            Param("binrpc_max_body_size", int, 32),
            Param("binrpc_struct_max_body_size", int, 8),
        ),
    )

    def init(self) -> None:
        for text in self.params["binrpc"]:
            parse_address(text)                       # ValueError: reported at load time
