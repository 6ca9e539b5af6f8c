"""The control server: JSON-RPC 2.0 over HTTP (aiohttp) and over datagrams, ``/metrics``.

Stream endpoints (unix and tcp ctl sockets, xhttp listeners) serve
``POST /RPC`` and ``GET /metrics``; udp ctl sockets take one JSON-RPC message
per datagram. RPC methods run one at a time on a single executor thread, so a
slow method (a database reload) does not stall the event loop and methods never
run concurrently with each other.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .control import Endpoint, control_state
from .methods import build_dispatcher
from .metrics import metrics_registry, render

if TYPE_CHECKING:
    from ..routing.router import Router

log = logging.getLogger("siprouter.rpc")

MAX_DATAGRAM = 65535


class _DatagramRpc(asyncio.DatagramProtocol):
    """JSON-RPC over udp: the answer goes back to the sender in one datagram."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:  # type: ignore[override]
        asyncio.ensure_future(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: Any) -> None:
        reply = await self.server.run(self.server.dispatcher.handle, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply[:MAX_DATAGRAM], addr)


class ControlServer:
    """Serves the router's control endpoints on the running asyncio loop."""

    def __init__(self, router: Router) -> None:
        state = control_state(router)
        if state is None:
            raise RuntimeError("prepare_control() was not called before starting the control "
                               "server")
        self.router = router
        self.endpoints: list[Endpoint] = state.endpoints
        jsonrpcs = router.modules.get("jsonrpcs")
        pretty = bool(jsonrpcs.params["pretty_format"]) if jsonrpcs is not None else False
        self.serve_http_rpc = jsonrpcs is not None
        self.dispatcher = build_dispatcher(router, pretty)
        self.registry = metrics_registry(router, self.dispatcher)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rpc")
        self.runners: list[web.AppRunner] = []
        self.transports: list[asyncio.BaseTransport] = []

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the RPC thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ------------------------------------------------------------ HTTP
    async def handle_rpc(self, request: web.Request) -> web.Response:
        body = await request.read()
        reply = await self.run(self.dispatcher.handle, body)
        if reply is None:
            return web.Response(status=204)
        return web.Response(body=reply, content_type="application/json")

    async def handle_metrics(self, request: web.Request) -> web.Response:
        data = await self.run(render, self.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self, rpc: bool) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        if rpc:
            app.router.add_post("/RPC", self.handle_rpc)
        app.router.add_get("/metrics", self.handle_metrics)
        return app

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        stream = [e for e in self.endpoints if e.address.kind != "udp"]
        for rpc in (True, False):
            group = [e for e in stream if (not e.http or self.serve_http_rpc) == rpc]
            if not group:
                continue
            runner = web.AppRunner(self.app(rpc), access_log=None)
            await runner.setup()
            self.runners.append(runner)
            for endpoint in group:
                await web.SockSite(runner, endpoint.sock, shutdown_timeout=1.0).start()
        for endpoint in self.endpoints:
            if endpoint.address.kind == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _DatagramRpc(self), sock=endpoint.sock)
                self.transports.append(transport)
        log.info("control plane on %s", ", ".join(
            f"{e.address}{' (http)' if e.http else ''}" for e in self.endpoints))

    async def stop(self) -> None:
        for transport in self.transports:
            transport.close()
        for runner in self.runners:
            await runner.cleanup()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def serve(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def serve_forked(router: Router) -> int:
    """The control process's main loop: serve until SIGTERM/SIGINT."""
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ControlServer(router).serve(stop)

    asyncio.run(main())
    return 0


class ControlThread(threading.Thread):
    """``fork=no``: the control server on its own loop in a daemon thread."""

    def __init__(self, router: Router) -> None:
        super().__init__(name="control", daemon=True)
        self.router = router
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            server = ControlServer(self.router)
            try:
                await server.start()
            finally:
                self.ready.set()
            try:
                await self.stop_event.wait()
            finally:
                await server.stop()

        try:
            asyncio.run(main())
        except BaseException as err:  # noqa: BLE001 - reported to the starter
            self.error = err
            self.ready.set()
            log.exception("control thread failed")

    def start(self) -> None:
        super().start()
        self.ready.wait(10)

    def stop(self) -> None:
        loop, event = self.loop, self.stop_event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        self.join(5)
