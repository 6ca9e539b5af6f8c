"""jsonrpcs: JSON-RPC 2.0 over HTTP at ``/RPC`` on the xhttp listeners.

Kamailio dispatches it from ``event_route[xhttp:request]`` with
``jsonrpc_dispatch()``; siprouter's control process answers ``POST /RPC``
directly, so that route is compiled but not run. The FIFO and datagram
transports of Kamailio's module are not served (their parameters are accepted).
"""

from __future__ import annotations

from ..routing.context import Context
from .base import Exports, Function, Module, Param


class JsonrpcsModule(Module):
    exports = Exports(
        name="jsonrpcs",
        params=(
            Param("pretty_format", int, 1),
            Param("transport", int, 0),
            Param("fifo_name", str, ""),
            Param("fifo_mode", int, 0o660),
            Param("fifo_group", str, ""),
            Param("fifo_user", str, ""),
            Param("fifo_reply_dir", str, "/tmp/"),
            Param("dgram_socket", str, ""),
            Param("dgram_workers", int, 1),
            Param("dgram_timeout", int, 2000),
            Param("dgram_mode", int, 0o660),
            Param("dgram_group", str, ""),
            Param("dgram_user", str, ""),
        ),
        functions=(
            Function("jsonrpc_dispatch", "jsonrpc_dispatch", (), kemi=("dispatch",)),
        ),
        kemi_module="jsonrpcs",
    )

    def jsonrpc_dispatch(self, ctx: Context) -> int:
        """No-op: /RPC is answered by the control process before any route runs."""
        return 1
