"""Process supervision: fork ``children`` workers, stop them on SIGTERM/SIGINT.

The router is built (cfg compiled, modules initialised, lists loaded) in the
supervisor before forking, so every worker starts from the same state; state
that must stay common at run time lives in a :class:`SharedArea`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time

from ..routing.context import Address
from ..routing.router import Router

log = logging.getLogger("siprouter.main")


def _install_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def run_worker(router: Router, rank: int, sockets: dict[Address, socket.socket] | None) -> None:
    """Body of one worker process: serve until SIGTERM/SIGINT.

    With ``sockets`` (bound by the supervisor) the worker blocks in recvfrom();
    without, it runs an asyncio loop with its own SO_REUSEPORT sockets.
    """
    from .udp import serve_udp

    router.rank = rank
    for module in router.modules.values():
        module.child_init(rank)
    # Start-up objects never become garbage: keep the collector off them, and
    # collect less often (per-message objects are acyclic and freed by refcount).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    if sockets is not None:
        from .blocking import serve_blocking

        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGINT, _exit_on_signal)
        try:
            serve_blocking(router, sockets, threading.Event())
        except SystemExit:
            pass
        return
    _install_loop_policy()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_udp(router, stop)

    asyncio.run(main())


def io_mode() -> str:
    """``blocking`` (default) or ``asyncio``, from SIPROUTER_IO."""
    mode = os.environ.get("SIPROUTER_IO", "blocking")
    return mode if mode in ("blocking", "asyncio") else "blocking"


def supervise(router: Router, children: int) -> int:
    """Fork ``children`` workers and wait; returns the exit status."""
    pids: dict[int, int] = {}
    stopping = False
    sockets: dict[Address, socket.socket] | None = None
    if io_mode() == "blocking":
        from .blocking import bind_sockets

        try:
            sockets = bind_sockets(router)
        except OSError as err:
            log.critical("cannot bind listen sockets: %s", err)
            return 3

    def spawn(rank: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                run_worker(router, rank, sockets)
            except OSError as err:
                log.critical("worker %d cannot serve: %s", rank, err)
                code = 3
            except BaseException:  # noqa: BLE001
                log.exception("worker %d crashed", rank)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        pids[pid] = rank

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for rank in range(1, children + 1):
        spawn(rank)
    log.info("siprouter started: %d worker(s) on %s", children,
             ", ".join(f"{s.proto}:{s.host}:{s.port}" for s in router.settings.listen))
    status = 0
    recent_failures: list[float] = []
    while not stopping:
        try:
            pid, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        rank = pids.pop(pid, -1)
        if rank < 0 or stopping:
            continue
        code = os.waitstatus_to_exitcode(wstatus)
        if code == 3:
            log.critical("worker %d could not bind its sockets; stopping", rank)
            status = 3
            break
        now = time.monotonic()
        recent_failures = [t for t in recent_failures if now - t < 10] + [now]
        if len(recent_failures) > 5:
            log.critical("workers keep dying; stopping")
            status = 1
            break
        log.error("worker %d (pid %d) exited with %d; restarting it", rank, pid, code)
        spawn(rank)
    _stop_children(pids)
    log.info("siprouter stopped")
    return status


def _stop_children(pids: dict[int, int]) -> None:
    for pid in list(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pids.pop(pid, None)
    deadline = time.monotonic() + 1.5
    while pids and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.02)
            continue
        pids.pop(pid, None)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def run_single(router: Router) -> int:
    """``fork=no``: serve in this process."""
    try:
        sockets = None
        if io_mode() == "blocking":
            from .blocking import bind_sockets

            sockets = bind_sockets(router)
        run_worker(router, 0, sockets)
    except OSError as err:
        log.critical("cannot serve: %s", err)
        return 3
    return 0


__all__ = ["io_mode", "run_single", "run_worker", "supervise", "sys"]
