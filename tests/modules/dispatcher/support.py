"""Helpers for the dispatcher tests: routers built from cfg text, requests, forks.

The routers listen on 127.0.0.1:58200 (this module's port range is
58200-58399); destinations are 127.0.0.1:582xx but nothing is bound there:
Router.handle() returns the datagrams instead of sending them.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.modules.dispatcher.module import DispatcherModule
from siprouter.routing.context import Context, Outgoing
from siprouter.routing.router import Router
from siprouter.sip.message import parse_message
from siprouter.transport.shared import SharedArea

LOCAL = ("127.0.0.1", 58200)
CLIENT = ("127.0.0.1", 58250)


def make_router(tmp_path: Path, route: str, list_text: str, modparams: str = "",
                modules: str = "", shared: bool = True) -> Router:
    """A router for ``route`` with dispatcher (list ``list_text``), sl, pv, xlog."""
    listfile = tmp_path / "dispatcher.list"
    listfile.write_text(list_text)
    text = "\n".join([
        f"listen=udp:{LOCAL[0]}:{LOCAL[1]}", "auto_aliases=no",
        'loadmodule "sl.so"', 'loadmodule "pv.so"', 'loadmodule "xlog.so"',
        'loadmodule "textops.so"', 'loadmodule "corex.so"', modules,
        'loadmodule "dispatcher.so"',
        f'modparam("dispatcher", "list_file", "{listfile}")',
        modparams, route])
    area: dict[str, object] = {"area": SharedArea()} if shared else {}
    return build_router(parse_text(text), tmp_path, area)


def dispatcher(router: Router) -> DispatcherModule:
    module = router.modules["dispatcher"]
    assert isinstance(module, DispatcherModule)
    return module


def request(user: str = "u", method: str = "INVITE", *, callid: str = "call-1",
            extra: str = "", cseq: int = 1, totag: str = "") -> bytes:
    to_tag = f";tag={totag}" if totag else ""
    return (f"{method} sip:{user}@127.0.0.1:58200 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:58250;branch=z9hG4bK-{callid}-{cseq}\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\n"
            f"To: <sip:{user}@example.com>{to_tag}\r\n"
            f"Call-ID: {callid}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Max-Forwards: 70\r\n"
            f"{extra}"
            "Content-Length: 0\r\n\r\n").encode()


def reply(code: int, reason: str, method: str = "INVITE", *, callid: str = "call-1") -> bytes:
    return (f"SIP/2.0 {code} {reason}\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:58200;branch=z9hG4bK-x\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:58250;branch=z9hG4bK-y\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\n"
            "To: <sip:u@example.com>;tag=b2\r\n"
            f"Call-ID: {callid}\r\n"
            f"CSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def send(router: Router, data: bytes, now: float = 0.0) -> list[Outgoing]:
    return router.handle(data, CLIENT, LOCAL, now)


def context(router: Router, data: bytes | None = None, now: float = 0.0) -> Context:
    """A request context for calling module functions directly."""
    msg = parse_message((data or request()).decode())
    return Context(router, msg, CLIENT, LOCAL, "udp", now,
                   "request" if msg.is_request else "reply")


def sent_to(outs: list[Outgoing]) -> list[int]:
    """Destination ports of the datagrams."""
    return [out.dst[1] for out in outs]


def top_line(out: Outgoing) -> str:
    return out.data.decode().split("\r\n", 1)[0]


def in_child(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child process; return its (picklable) result.

    The child shares every mapping created before the fork, like a worker.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        code = 0
        try:
            payload = pickle.dumps(("ok", fn()))
        except BaseException as err:  # noqa: BLE001 - report everything to the parent
            payload = pickle.dumps(("error", repr(err)))
            code = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    if status != "ok":
        raise AssertionError(f"child failed: {value}")
    return value


def listing(module: DispatcherModule, mode: str | None = None) -> dict[str, Any]:
    """``dispatcher.list`` as JSON would carry it."""
    result = module.rpc_list([mode] if mode else [])
    return json.loads(json.dumps(result))


def flags_by_uri(module: DispatcherModule) -> dict[str, str]:
    out = {}
    for record in listing(module)["RECORDS"]:
        for target in record["SET"]["TARGETS"]:
            out[target["DEST"]["URI"]] = target["DEST"]["FLAGS"]
    return out
