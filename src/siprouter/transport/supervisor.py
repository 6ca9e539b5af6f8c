"""Process supervision: fork ``children`` workers, stop them on SIGTERM/SIGINT.

The router is built (cfg compiled, modules initialised, lists loaded) in the
supervisor before forking, so every worker starts from the same state; state
that must stay common at run time lives in a :class:`SharedArea`.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence

from ..routing.context import Address
from ..routing.owners import CallOwners
from ..routing.router import Router
from .shared import SharedArea, SharedTimestamp
from .udp import bind_sockets
from .worker import SteeringChannels, Worker

log = logging.getLogger("siprouter.main")


def run_worker(router: Router, rank: int, sockets: dict[Address, socket.socket],
               steering: SteeringChannels | None = None,
               heartbeat: SharedTimestamp | None = None) -> None:
    """Body of one worker process: serve until SIGTERM/SIGINT."""
    router.rank = rank
    for module in router.modules.values():
        module.child_init(rank)
    # Start-up objects never become garbage: keep the collector off them, and
    # collect less often (per-message objects are acyclic and freed by refcount).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    worker = Worker(router, sockets, steering, standby=rank > 1, heartbeat=heartbeat)
    for hook in WORKER_SETUP:
        hook(worker)

    def stop(signum: int, _frame: object) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve()


# Functions called with each Worker before it serves (the control plane adds its
# statistics publisher and runtime-cfg sync here).
WORKER_SETUP: list[Callable[[Worker], None]] = []

# Extra processes the supervisor forks next to the workers: (name, body). The
# control plane registers its RPC/metrics server here when the cfg asks for it.
ExtraProcess = tuple[str, Callable[[Router], None]]


def supervise(router: Router, children: int, extra: Sequence[ExtraProcess] = ()) -> int:
    """Fork ``children`` workers (and the ``extra`` processes) and wait.

    Returns the exit status. Workers have ranks 1..children; extra processes
    get ranks -1, -2, ...
    """
    pids: dict[int, int] = {}
    stopping = False
    try:
        sockets = bind_sockets(router)
    except OSError as err:
        log.critical("cannot bind listen sockets: %s", err)
        return 3
    router.children = children
    steering = SteeringChannels(children) if children > 1 else None
    heartbeat = SharedTimestamp(SharedArea(1)) if children > 1 else None   # worker 1's
    if steering is not None and router.steer_requests:
        router.call_owners = CallOwners.shared(lease=router.call_lease)

    def spawn(rank: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if rank > 0:
                    run_worker(router, rank, sockets, steering, heartbeat)
                else:
                    router.rank = rank
                    extra[-rank - 1][1](router)
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
        # waitpid() is retried after a signal: the children's exit ends the wait
        for child in list(pids):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for rank in range(1, children + 1):
        spawn(rank)
    for index in range(len(extra)):
        spawn(-index - 1)
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
        if pid not in pids or stopping:
            pids.pop(pid, None)
            continue
        rank = pids.pop(pid)
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
        log.error("%s (pid %d) exited with %d; restarting it",
                  f"worker {rank}" if rank > 0 else extra[-rank - 1][0], pid, code)
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
    """``fork=no``: serve in this process (rank 0)."""
    try:
        sockets = bind_sockets(router)
    except OSError as err:
        log.critical("cannot serve: %s", err)
        return 3
    run_worker(router, 0, sockets)
    return 0


__all__ = ["WORKER_SETUP", "run_single", "run_worker", "supervise"]
