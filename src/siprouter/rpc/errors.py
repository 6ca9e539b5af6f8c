"""The fault a JSON-RPC method raises (Kamailio's ``rpc->fault(ctx, code, text)``)."""

from __future__ import annotations


class RpcError(Exception):
    """An RPC fault: ``code`` and ``message`` go to the client as the JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} - {message}")
        self.code = code
        self.message = message
