"""xhttp: the HTTP listener of the control plane (``/RPC`` with jsonrpcs, ``/metrics``).

Where it listens, in this order:

* ``modparam("xhttp", "listen", "tcp:IP:PORT")`` (siprouter extension, may be
  repeated);
* otherwise every ``listen=tcp:IP:PORT`` socket of the cfg, which is how a
  Kamailio cfg gets HTTP (xhttp answers on the SIP TCP listeners; siprouter does
  not serve SIP over TCP, so its control process owns those sockets).

``event_route[xhttp:request]`` is compiled but not run: the control process
serves ``POST /RPC`` (when jsonrpcs is loaded) and ``GET /metrics`` itself and
answers 404 to anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..routing.context import Context
from .base import Exports, Function, Module, Param, PseudoVar

log = logging.getLogger("siprouter.rpc")


class XhttpModule(Module):
    exports = Exports(
        name="xhttp",
        params=(
            Param("listen", str, "", multi=True),
            Param("url_match", str, ""),
            Param("url_skip", str, ""),
            Param("event_callback", str, ""),
        ),
        functions=(
            Function("xhttp_reply", "xhttp_reply", ("str", "str", "str", "str"),
                     kemi=("xhttp_reply",)),
        ),
        pvs=(PseudoVar("hu", "pv_hu"),),
        kemi_module="xhttp",
    )

    def init(self) -> None:
        from ..rpc.control import http_addresses

        if not http_addresses(self.router):           # ValueError: reported at load time
            log.warning("xhttp: no HTTP listener: add listen=tcp:IP:PORT (with TCP enabled) "
                        "or modparam(\"xhttp\", \"listen\", \"tcp:IP:PORT\")")

    def xhttp_reply(self, ctx: Context, code: str, reason: str, ctype: str, body: str) -> int:
        """No-op: HTTP requests never reach the cfg routes."""
        return 1

    def pv_hu(self, arg: str) -> Callable[[Context], str | None]:
        """``$hu``: the HTTP URL (never set: no HTTP request runs a route)."""
        return lambda ctx: None
