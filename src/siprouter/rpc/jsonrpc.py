"""JSON-RPC 2.0 request handling (transport-free): bytes in, bytes out.

Positional ``params`` only (Kamailio's RPC interface is positional). A method
is ``fn(params: list) -> result`` and raises :class:`RpcError` for a fault,
which becomes ``{"code": code, "message": message}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .errors import RpcError

log = logging.getLogger("siprouter.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

Method = Callable[[list[Any]], Any]


def _error(code: int, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}


class RpcDispatcher:
    """A table of methods and the JSON-RPC 2.0 envelope around them."""

    def __init__(self, methods: dict[str, Method] | None = None,
                 before_call: Callable[[], None] | None = None, pretty: bool = False) -> None:
        self.methods: dict[str, Method] = dict(methods or {})
        self.before_call = before_call
        self.pretty = pretty

    def add(self, name: str, method: Method) -> None:
        self.methods[name] = method

    def names(self) -> list[str]:
        return sorted(self.methods)

    # ------------------------------------------------------------ calls
    def call(self, method: str, params: list[Any]) -> Any:
        """Run one method; raises RpcError (code -32601 when it does not exist)."""
        fn = self.methods.get(method)
        if fn is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        if self.before_call is not None:
            self.before_call()
        return fn(params)

    def handle_request(self, request: Any) -> dict[str, Any] | None:
        """One request object -> its response object (None for a notification)."""
        if not isinstance(request, dict):
            return _error(INVALID_REQUEST, "Invalid Request")
        request_id = request.get("id")
        notification = "id" not in request
        if not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
            return _error(INVALID_REQUEST, "Invalid Request")
        method = request.get("method")
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(INVALID_REQUEST, "Invalid Request", request_id)
        params = request.get("params", [])
        if not isinstance(params, list):
            return _error(INVALID_PARAMS, "Invalid params: positional (array) params only",
                          request_id)
        try:
            result = self.call(method, params)
        except RpcError as err:
            response = _error(err.code, err.message, request_id)
        except Exception:  # noqa: BLE001 - a failing method must not stop the control plane
            log.exception("RPC method %s failed", method)
            response = _error(INTERNAL_ERROR, "Internal error", request_id)
        else:
            response = {"jsonrpc": "2.0", "result": result, "id": request_id}
        return None if notification else response

    def handle(self, body: bytes | str) -> bytes | None:
        """A JSON-RPC message (single or batch) -> the response bytes (None: nothing to send)."""
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self.encode(_error(PARSE_ERROR, "Parse error"))
        if isinstance(message, list):
            if not message:
                return self.encode(_error(INVALID_REQUEST, "Invalid Request"))
            responses = [r for r in map(self.handle_request, message) if r is not None]
            return self.encode(responses) if responses else None
        response = self.handle_request(message)
        return None if response is None else self.encode(response)

    def encode(self, response: Any) -> bytes:
        if self.pretty:
            return (json.dumps(response, indent=2, default=str) + "\n").encode()
        return json.dumps(response, separators=(",", ":"), default=str).encode()
