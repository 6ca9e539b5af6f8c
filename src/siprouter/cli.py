"""The ``siprouter`` command: ``run -f FILE``, ``check -f FILE``, ``ctl METHOD``, ``--version``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__
from .config.errors import CfgError, CfgErrors

if TYPE_CHECKING:
    from .routing.router import Router

log = logging.getLogger("siprouter.main")

# Kamailio debug levels -> Python logging levels
_LEVELS = {-5: logging.CRITICAL, -4: logging.CRITICAL, -3: logging.CRITICAL,
           -2: logging.ERROR, -1: logging.ERROR, 0: logging.WARNING, 1: 25,
           2: logging.INFO, 3: logging.DEBUG}
logging.addLevelName(25, "NOTICE")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "pid": record.process,
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        callid = getattr(record, "callid", None)
        if callid:
            entry["callid"] = callid
        return json.dumps(entry)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        callid = getattr(record, "callid", None)
        return f"{text} [callid={callid}]" if callid else text


def setup_logging(debug: int, json_lines: bool = False) -> None:
    """Log to stderr at the level given by the cfg's ``debug=``."""
    level = _LEVELS.get(max(-5, min(3, debug)), logging.DEBUG if debug > 3 else logging.ERROR)
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter(
            "%(asctime)s %(process)d %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _defines(items: Sequence[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or ():
        name, _, value = item.partition("=")
        result[name] = value
    return result


def _report(err: CfgError) -> None:
    errors = err.errors if isinstance(err, CfgErrors) else [err]
    for one in errors:
        print(str(one), file=sys.stderr)


def _load(args: argparse.Namespace, shared: dict[str, object] | None = None) -> Router | None:
    """Load the cfg, or print its errors (``FILE:LINE:COL: reason``) and return None."""
    from .config.loader import load

    try:
        return load(args.file, _defines(args.define), shared)
    except CfgError as err:
        _report(err)
    except OSError as err:
        print(f"{args.file}:0:0: {err}", file=sys.stderr)
    return None


def cmd_check(args: argparse.Namespace) -> int:
    setup_logging(-1)
    if _load(args) is None:
        return 1
    print(f"{args.file}: configuration OK")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .transport.shared import SharedArea, SharedTimestamp
    from .transport.supervisor import run_single, supervise

    setup_logging(2, args.log_json)
    area = SharedArea()
    shared: dict[str, object] = {"area": area, "sl_last_reply": SharedTimestamp(area)}
    router = _load(args, shared)
    if router is None:
        return 1
    settings = router.settings
    setup_logging(settings.debug, args.log_json or settings.log_engine_type == "json")
    if settings.workdir:
        os.chdir(settings.workdir)
    children = args.children if args.children is not None else settings.children
    single = not settings.fork or children <= 0
    from .rpc.control import install_control

    try:   # control plane (ctl/jsonrpcs/xhttp): shared stats, sockets, worker hooks
        extra = install_control(router, 0 if single else children)
    except OSError as err:
        log.critical("%s", err)
        return 3
    if single:
        return run_single(router)
    return supervise(router, children, extra)


def cmd_ctl(args: argparse.Namespace) -> int:
    """``siprouter ctl [-s ADDR] METHOD [ARG...]``: one JSON-RPC call, like kamcmd.

    Exit status: 0 success, 1 RPC fault (``error: CODE - MESSAGE``), 2 bad
    argument, 3 the control socket cannot be reached.
    """
    from .rpc.client import call, parse_arg
    from .rpc.errors import RpcError

    try:
        params = [parse_arg(token) for token in args.params]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = call(args.socket, args.method, params, timeout=args.timeout)
    except RpcError as err:
        print(f"error: {err.code} - {err.message}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot reach {args.socket}: {err}", file=sys.stderr)
        return 3
    try:
        print(json.dumps(result, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:      # `siprouter ctl ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siprouter", description="Kamailio-compatible SIP proxy and load balancer")
    parser.add_argument("--version", action="version", version=f"siprouter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "run a cfg file in the foreground"),
                            ("check", "parse and compile a cfg file, report errors")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-f", "--file", required=True, help="cfg file")
        cmd.add_argument("-D", "--define", action="append", metavar="NAME[=VALUE]",
                         help="preprocessor define (like #!define)")
        if name == "run":
            cmd.add_argument("--children", type=int, default=None,
                             help="worker processes (overrides children=)")
            cmd.add_argument("--log-json", action="store_true", help="log JSON lines")
    from .rpc.addresses import DEFAULT_CTL

    ctl = sub.add_parser("ctl", help="call a JSON-RPC method of a running siprouter (kamcmd)")
    ctl.add_argument("-s", "--socket", default=DEFAULT_CTL, metavar="ADDR",
                     help=f"control address: unix:PATH, tcp:IP:PORT, udp:IP:PORT "
                          f"(default {DEFAULT_CTL})")
    ctl.add_argument("-t", "--timeout", type=float, default=30.0, metavar="SEC",
                     help="seconds to wait for the answer (default 30)")
    ctl.add_argument("method", help="RPC method, e.g. core.uptime or dispatcher.list")
    ctl.add_argument("params", nargs=argparse.REMAINDER, metavar="ARG",
                     help="arguments: digits are integers, s:TEXT forces a string")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "ctl":
        return cmd_ctl(args)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
