"""Compile a parsed cfg (:mod:`.ast`) into Python callables, once, at start-up.

Every statement becomes a closure ``stmt(ctx) -> None`` and every expression a
closure ``expr(ctx) -> int | str | None``. Control flow uses exceptions:
:class:`ScriptExit` (exit, drop, return 0, a function returning 0),
:class:`RouteReturn` (return N from a route) and :class:`_Break`.
Nothing is re-interpreted per message.

Semantics follow spec/cfg-language.md sections 5 and 6.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from ..modules.base import Function, Module
from ..routing.context import Context, RouteReturn, ScriptExit
from ..routing.pv import PVError, Value, compile_format, compile_pv, has_pv
from ..routing.router import Router, Script
from ..sip.errors import SipError
from . import ast
from .errors import CfgError

log = logging.getLogger("siprouter.cfg")

Stmt = Callable[[Context], None]
Expr = Callable[[Context], Value]

MAX_ROUTE_DEPTH = 256


class _Break(Exception):
    """``break`` out of the innermost while/switch."""


# ------------------------------------------------------------------ conversions
def to_int(value: Value) -> int:
    """Kamailio's rvalue-to-int: None -> 0, numeric strings -> int, others -> 0."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        return 0


def to_str(value: Value) -> str:
    if value is None:
        return ""
    return str(value)


def truth(value: Value) -> bool:
    """``if`` is taken only for values > 0."""
    return to_int(value) > 0


def _const(value: Value) -> Expr:
    return lambda ctx: value


# ------------------------------------------------------------------ operators
def _add(a: Value, b: Value) -> Value:
    if isinstance(a, str):
        return a + to_str(b)
    return to_int(a) + to_int(b)


def _eq(a: Value, b: Value) -> bool:
    if a is None:
        if b is None:
            return True
        a = "" if isinstance(b, str) else 0
    if isinstance(a, int):
        return a == to_int(b)
    return a == to_str(b)


def _cmp(op: str) -> Callable[[Value, Value], bool]:
    import operator

    fn = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}[op]

    def compare(a: Value, b: Value) -> bool:
        if isinstance(a, str) and isinstance(b, str):
            return bool(fn(a, b))
        return bool(fn(to_int(a), to_int(b)))
    return compare


def _div(a: Value, b: Value) -> Value:
    divisor = to_int(b)
    if divisor == 0:
        raise ZeroDivisionError("division by zero in cfg expression")
    return int(to_int(a) / divisor)


def _mod(a: Value, b: Value) -> Value:
    divisor = to_int(b)
    if divisor == 0:
        raise ZeroDivisionError("modulo by zero in cfg expression")
    x = to_int(a)
    return x - divisor * int(x / divisor)


_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "<<": lambda a, b: a << b, ">>": lambda a, b: a >> b,
}


def compile_regex(pattern: str, pos: ast.Pos) -> re.Pattern[str]:
    """POSIX extended regex, case-insensitive, unanchored (``=~``)."""
    try:
        return re.compile(pattern, re.IGNORECASE | re.DOTALL)
    except re.error as err:
        raise CfgError.at(pos, f"bad regular expression {pattern!r}: {err}") from None


# ------------------------------------------------------------------ compiler
class Compiler:
    """Compiles the routes of one cfg against a router's modules."""

    def __init__(self, router: Router, config: ast.Config) -> None:
        self.router = router
        self.config = config
        self.script = Script()
        self.errors: list[CfgError] = []
        self.functions: dict[str, tuple[Function, Module]] = {}
        for module in router.modules.values():
            for fn in module.exports.functions:
                for name in (fn.name, *fn.aliases):
                    self.functions.setdefault(name, (fn, module))
        self.route_kind = ast.REQUEST
        # named sub-routes are compiled lazily, so route(X) can come before route[X]
        self._subroutes: dict[str, Stmt] = {}

    # ---------------------------------------------------------------- routes
    def compile(self) -> Script:
        routes = self.config.routes
        script = self.script
        for name, route in routes.get(ast.ROUTE, {}).items():
            self._subroutes[name] = self._placeholder(name)
        for name, route in routes.get(ast.ROUTE, {}).items():
            self.route_kind = ast.ROUTE
            body = self.block(route.body)
            self._subroutes[name].__dict__["target"] = body  # type: ignore[attr-defined]
            script.named[name] = body
        for kind, target in ((ast.REQUEST, "request"), (ast.REPLY, "reply"),
                             (ast.ONSEND, "onsend")):
            route = routes.get(kind, {}).get("")
            if route is not None:
                self.route_kind = kind
                setattr(script, target, self.block(route.body))
        for kind, table in ((ast.FAILURE, script.failure), (ast.ONREPLY, script.onreply),
                            (ast.BRANCH, script.branch), (ast.EVENT, script.event)):
            for name, route in routes.get(kind, {}).items():
                self.route_kind = kind
                table[name] = self.block(route.body)
        return script

    @staticmethod
    def _placeholder(name: str) -> Stmt:
        def call(ctx: Context) -> None:
            call.target(ctx)  # type: ignore[attr-defined]
        call.target = None  # type: ignore[attr-defined]
        return call

    def error(self, pos: ast.Pos, reason: str) -> None:
        self.errors.append(CfgError.at(pos, reason))

    # ---------------------------------------------------------------- statements
    def block(self, block: ast.Block) -> Stmt:
        stmts = [s for s in (self.stmt(node) for node in block.stmts) if s is not None]
        if not stmts:
            return lambda ctx: None
        if len(stmts) == 1:
            return stmts[0]
        seq = tuple(stmts)

        def run(ctx: Context) -> None:
            for stmt in seq:
                stmt(ctx)
        return run

    def stmt(self, node: object) -> Stmt | None:
        if isinstance(node, ast.Call):
            return self.call_stmt(node.name, node.args, node.pos)
        if isinstance(node, ast.If):
            return self.if_stmt(node)
        if isinstance(node, ast.Block):
            return self.block(node)
        if isinstance(node, ast.Assign):
            return self.assign(node)
        if isinstance(node, ast.Exit):
            return self.exit_stmt(node.expr)
        if isinstance(node, ast.Drop):
            return self.drop_stmt(node.expr)
        if isinstance(node, ast.Return):
            return self.return_stmt(node.expr)
        if isinstance(node, ast.RouteCall):
            call = self.route_call(node)

            def route_stmt(ctx: Context) -> None:
                call(ctx)
            return route_stmt
        if isinstance(node, ast.While):
            return self.while_stmt(node)
        if isinstance(node, ast.Switch):
            return self.switch_stmt(node)
        if isinstance(node, ast.Break):
            def brk(ctx: Context) -> None:
                raise _Break()
            return brk
        self.error(getattr(node, "pos", ast.NOPOS), f"unsupported statement {type(node).__name__}")
        return None

    def if_stmt(self, node: ast.If) -> Stmt:
        cond = self.condition(node.cond)
        then = self.block(node.then)
        orelse = self.block(node.orelse) if node.orelse is not None else None
        if orelse is None:
            def run_if(ctx: Context) -> None:
                if cond(ctx):
                    then(ctx)
            return run_if

        def run_if_else(ctx: Context) -> None:
            if cond(ctx):
                then(ctx)
            else:
                orelse(ctx)
        return run_if_else

    def condition(self, node: ast.Expr) -> Callable[[Context], bool]:
        """A boolean test with Kamailio's ``> 0`` rule, specialised for common shapes."""
        if isinstance(node, ast.UnaryOp) and node.op == "!":
            inner = self.condition(node.operand)
            return lambda ctx: not inner(ctx)
        if isinstance(node, ast.BinOp) and node.op == "&&":
            left, right = self.condition(node.left), self.condition(node.right)
            return lambda ctx: left(ctx) and right(ctx)
        if isinstance(node, ast.BinOp) and node.op == "||":
            left, right = self.condition(node.left), self.condition(node.right)
            return lambda ctx: left(ctx) or right(ctx)
        if isinstance(node, ast.FuncCallExpr):
            call = self.call_expr_raw(node.name, node.args, node.pos)
            return lambda ctx: call(ctx) > 0
        expr = self.expr(node)
        return lambda ctx: truth(expr(ctx))

    def assign(self, node: ast.Assign) -> Stmt | None:
        pv = self.pv(node.pv)
        if pv is None:
            return None
        setter = pv.set
        if setter is None:
            self.error(node.pos, f"pseudo-variable {node.pv.text or pv.text} is read-only")
            return None
        expr = self.expr(node.expr)
        if node.op == ":=" and node.pv.name == "avp":
            name = (node.pv.arg or "").strip()

            def replace(ctx: Context) -> None:
                ctx.avps.pop(name, None)
                setter(ctx, expr(ctx))
            return replace

        def run(ctx: Context) -> None:
            setter(ctx, expr(ctx))
        return run

    def _code(self, expr: ast.Expr | None, default: int) -> Expr:
        return _const(default) if expr is None else self.expr(expr)

    def exit_stmt(self, expr: ast.Expr | None) -> Stmt:
        code = self._code(expr, 0)

        def run(ctx: Context) -> None:
            raise ScriptExit(to_int(code(ctx)))
        return run

    def drop_stmt(self, expr: ast.Expr | None) -> Stmt:
        def run(ctx: Context) -> None:
            ctx.dropped = True
            raise ScriptExit(0)
        return run

    def return_stmt(self, expr: ast.Expr | None) -> Stmt:
        code = self._code(expr, 1)

        def run(ctx: Context) -> None:
            value = to_int(code(ctx))
            if value == 0:
                raise ScriptExit(0)
            raise RouteReturn(value)
        return run

    def while_stmt(self, node: ast.While) -> Stmt:
        cond = self.expr(node.cond)
        body = self.block(node.body)
        limit = self.router.settings.max_while_loops

        def run(ctx: Context) -> None:
            count = 0
            try:
                while to_int(cond(ctx)) != 0:
                    count += 1
                    if count > limit:
                        log.error("while loop exceeded max_while_loops (%d)", limit)
                        raise ScriptExit(-1)
                    body(ctx)
            except _Break:
                pass
        return run

    def switch_stmt(self, node: ast.Switch) -> Stmt:
        expr = self.expr(node.expr)
        labels: list[tuple[Value | re.Pattern[str] | None, int]] = []
        bodies: list[Stmt] = []
        for index, case in enumerate(node.cases):
            label: Value | re.Pattern[str] | None
            if case.value is None:
                label = None
            elif case.is_regex:
                label = compile_regex(str(case.value.value), case.pos)
            else:
                label = case.value.value
            labels.append((label, index))
            bodies.append(self.block(ast.Block(case.body, case.pos)))
        default = next((i for label, i in labels if label is None), None)

        def run(ctx: Context) -> None:
            value = expr(ctx)
            start = default
            for label, index in labels:
                if label is None:
                    continue
                if isinstance(label, re.Pattern):
                    if label.search(to_str(value)):
                        start = index
                        break
                elif isinstance(label, int):
                    if isinstance(value, int) and value == label or \
                            not isinstance(value, int) and to_int(value) == label and \
                            to_str(value).strip().lstrip("-").isdigit():
                        start = index
                        break
                elif to_str(value) == label:
                    start = index
                    break
            if start is None:
                return
            try:
                for body in bodies[start:]:
                    body(ctx)
            except _Break:
                pass
        return run

    # ---------------------------------------------------------------- routes
    def route_call(self, node: ast.RouteCall) -> Callable[[Context], int]:
        """``route(X)``: runs the sub-route; returns its return code (1 by default)."""
        if not isinstance(node.name, str):
            name_expr = self.expr(node.name)
            named = self.script.named

            def dynamic(ctx: Context) -> int:
                target = named.get(to_str(name_expr(ctx)))
                if target is None:
                    log.error("route(%s) does not exist", name_expr(ctx))
                    return -1
                return _run_subroute(target, ctx)
            return dynamic
        target = self._subroutes.get(node.name)
        if target is None:
            self.error(node.pos, f"route '{node.name}' is not defined")
            return lambda ctx: -1
        sub = target

        def call(ctx: Context) -> int:
            return _run_subroute(sub, ctx)
        return call

    # ---------------------------------------------------------------- function calls
    def lookup(self, name: str, nargs: int, pos: ast.Pos) -> tuple[Function, Callable[..., int]] | None:
        found = self.functions.get(name)
        if found is None:
            self.error(pos, f"unknown function '{name}' (is its module loaded?)")
            return None
        fn, module = found
        if nargs not in fn.arities:
            expected = (str(len(fn.args)) if not fn.optional
                        else f"{len(fn.args)} to {len(fn.args) + len(fn.optional)}")
            self.error(pos, f"function '{name}' takes {expected} argument(s), got {nargs}")
            return None
        kind = self.route_kind
        if kind not in (ast.ROUTE,) and kind not in fn.routes:
            self.error(pos, f"function '{name}' cannot be used in {kind} routes")
            return None
        return fn, getattr(module, fn.method)

    def arg(self, node: ast.Expr, kind: str) -> tuple[bool, Any]:
        """Compile an argument: (is_constant, value or evaluator)."""
        if isinstance(node, ast.StrLit):
            text = node.value
            if has_pv(text):
                fmt = compile_format(text, self.router)
                if kind == "int":
                    return False, lambda ctx: to_int(fmt(ctx))
                return False, fmt
            if kind == "int":
                try:
                    return True, int(text.strip(), 0)
                except ValueError:
                    self.error(node.pos, f"expected an integer argument, got {text!r}")
                    return True, 0
            return True, text
        if isinstance(node, ast.IntLit):
            return True, node.value if kind == "int" else str(node.value)
        if isinstance(node, (ast.Ident, ast.IPLit)):
            text = node.name if isinstance(node, ast.Ident) else node.addr
            defined = self.config.defines.get(text) if isinstance(node, ast.Ident) else None
            value = defined if defined is not None else text
            if kind == "int":
                return True, to_int(value)
            return True, value
        expr = self.expr(node)
        if kind == "int":
            return False, lambda ctx: to_int(expr(ctx))
        return False, lambda ctx: to_str(expr(ctx))

    def call_expr_raw(self, name: str, args: tuple[ast.Expr, ...],
                      pos: ast.Pos) -> Callable[[Context], int]:
        """A call returning the function's int result; a 0 result ends the script."""
        found = self.lookup(name, len(args), pos)
        if found is None:
            return lambda ctx: -1
        fn, impl = found
        compiled = [self.arg(a, fn.kind_of(i)) for i, a in enumerate(args)]
        if all(const for const, _ in compiled):
            values = tuple(v for _, v in compiled)
            if not values:
                def call0(ctx: Context) -> int:
                    code = impl(ctx)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call0
            if len(values) == 1:
                v0 = values[0]

                def call1(ctx: Context) -> int:
                    code = impl(ctx, v0)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call1
            if len(values) == 2:
                v0, v1 = values

                def call2(ctx: Context) -> int:
                    code = impl(ctx, v0, v1)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call2

            def calln(ctx: Context) -> int:
                code = impl(ctx, *values)
                ctx.retcode = code
                if code == 0:
                    raise ScriptExit(0)
                return code
            return calln
        getters = [v if not const else _const(v) for const, v in compiled]

        def call_dyn(ctx: Context) -> int:
            code = impl(ctx, *[g(ctx) for g in getters])
            ctx.retcode = code
            if code == 0:
                raise ScriptExit(0)
            return code
        return call_dyn

    def call_stmt(self, name: str, args: tuple[ast.Expr, ...], pos: ast.Pos) -> Stmt:
        call = self.call_expr_raw(name, args, pos)

        def run(ctx: Context) -> None:
            call(ctx)
        return run

    # ---------------------------------------------------------------- expressions
    def pv(self, node: ast.PVRef) -> Any:
        index: int | None = None
        if node.index is not None:
            try:
                index = int(node.index)
            except ValueError:
                self.error(node.pos, f"unsupported index [{node.index}] in {node.text}")
                return None
        try:
            return compile_pv(node.name, node.arg, index, list(node.transforms), self.router)
        except PVError as err:
            self.error(node.pos, str(err))
            return None

    def expr(self, node: object) -> Expr:
        if isinstance(node, ast.IntLit):
            return _const(node.value)
        if isinstance(node, ast.StrLit):
            if has_pv(node.value):
                return compile_format(node.value, self.router)
            return _const(node.value)
        if isinstance(node, ast.PVRef):
            pv = self.pv(node)
            if pv is None:
                return _const(None)
            getter = pv.get

            def get_pv(ctx: Context) -> Value:
                try:
                    return getter(ctx)
                except SipError:
                    return None
            return get_pv
        if isinstance(node, ast.Null):
            return _const(None)
        if isinstance(node, ast.FuncCallExpr):
            call = self.call_expr_raw(node.name, node.args, node.pos)
            return lambda ctx: 1 if call(ctx) > 0 else 0
        if isinstance(node, ast.RouteCall):
            route = self.route_call(node)
            return lambda ctx: 1 if route(ctx) > 0 else 0
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.Defined):
            inner = self.expr(node.expr)
            return lambda ctx: 0 if inner(ctx) is None else 1
        if isinstance(node, ast.StrLen):
            inner = self.expr(node.expr)
            return lambda ctx: len(to_str(inner(ctx)))
        if isinstance(node, ast.StrEmpty):
            inner = self.expr(node.expr)
            return lambda ctx: 1 if not to_str(inner(ctx)) else 0
        if isinstance(node, ast.Cast):
            inner = self.expr(node.expr)
            if node.to == "int":
                return lambda ctx: to_int(inner(ctx))
            return lambda ctx: to_str(inner(ctx))
        if isinstance(node, ast.LegacyMatch):
            return self.legacy(node)
        if isinstance(node, ast.Ident):
            defined = self.config.defines.get(node.name)
            return _const(defined if defined is not None else node.name)
        if isinstance(node, ast.IPLit):
            return _const(node.addr)
        self.error(getattr(node, "pos", ast.NOPOS),
                   f"unsupported expression {type(node).__name__}")
        return _const(None)

    def unary(self, node: ast.UnaryOp) -> Expr:
        inner = self.expr(node.operand)
        if node.op == "!":
            return lambda ctx: 0 if truth(inner(ctx)) else 1
        if node.op == "-":
            return lambda ctx: -to_int(inner(ctx))
        if node.op == "~":
            return lambda ctx: ~to_int(inner(ctx))
        self.error(node.pos, f"unknown operator {node.op}")
        return _const(None)

    def binop(self, node: ast.BinOp) -> Expr:
        op = node.op
        if op in ("&&", "||"):
            cond = self.condition(node)
            return lambda ctx: 1 if cond(ctx) else 0
        if op == "+" and isinstance(node.left, ast.IntLit) and isinstance(node.right, ast.StrLit):
            self.error(node.pos, "cannot add a string to an integer")
        left = self.expr(node.left)
        if op == "=~":
            if isinstance(node.right, ast.StrLit) and not has_pv(node.right.value):
                regex = compile_regex(node.right.value, node.pos)
                return lambda ctx: 1 if regex.search(to_str(left(ctx))) else 0
            right_re = self.expr(node.right)

            def dyn_match(ctx: Context) -> Value:
                try:
                    return 1 if re.search(to_str(right_re(ctx)), to_str(left(ctx)),
                                          re.IGNORECASE) else 0
                except re.error:
                    return 0
            return dyn_match
        right = self.expr(node.right)
        if op == "==":
            return lambda ctx: 1 if _eq(left(ctx), right(ctx)) else 0
        if op == "!=":
            return lambda ctx: 0 if _eq(left(ctx), right(ctx)) else 1
        if op == "eq":
            return lambda ctx: 1 if to_str(left(ctx)) == to_str(right(ctx)) else 0
        if op == "ne":
            return lambda ctx: 1 if to_str(left(ctx)) != to_str(right(ctx)) else 0
        if op == "ieq":
            return lambda ctx: 1 if to_int(left(ctx)) == to_int(right(ctx)) else 0
        if op == "ine":
            return lambda ctx: 1 if to_int(left(ctx)) != to_int(right(ctx)) else 0
        if op in ("<", ">", "<=", ">="):
            compare = _cmp(op)
            return lambda ctx: 1 if compare(left(ctx), right(ctx)) else 0
        if op == "+":
            return lambda ctx: _add(left(ctx), right(ctx))
        if op == "/":
            return lambda ctx: _div(left(ctx), right(ctx))
        if op == "mod":
            return lambda ctx: _mod(left(ctx), right(ctx))
        int_op = _INT_OPS.get(op)
        if int_op is not None:
            return lambda ctx: int_op(to_int(left(ctx)), to_int(right(ctx)))
        self.error(node.pos, f"unknown operator {op}")
        return _const(None)

    # ---------------------------------------------------------------- legacy matches
    def legacy(self, node: ast.LegacyMatch) -> Expr:
        keyword = node.keyword
        value = node.value
        subject = self._legacy_subject(keyword, node.pos)
        if isinstance(value, ast.Myself):
            return self._myself(keyword, node.op, node.pos)
        if isinstance(value, ast.IPLit) and keyword in ("src_ip", "dst_ip", "snd_ip", "to_ip"):
            return self._ip_match(subject, value, node.op)
        if node.op == "=~":
            if isinstance(value, ast.StrLit) and not has_pv(value.value):
                regex = compile_regex(value.value, node.pos)
                return lambda ctx: 1 if regex.search(to_str(subject(ctx))) else 0
            dyn = self.expr(value)
            return lambda ctx: 1 if re.search(to_str(dyn(ctx)), to_str(subject(ctx)),
                                              re.IGNORECASE) else 0
        right = self.expr(value)
        if keyword in ("src_port", "dst_port", "status", "af", "msg:len", "snd_port",
                       "to_port", "snd_af"):
            compare = _cmp(node.op) if node.op in ("<", ">", "<=", ">=") else None
            if compare is not None:
                return lambda ctx: 1 if compare(to_int(subject(ctx)), to_int(right(ctx))) else 0
            if keyword == "status":
                def status_eq(ctx: Context) -> Value:
                    return 1 if to_str(subject(ctx)) == to_str(right(ctx)) else 0
                return status_eq if node.op in ("==", "eq") else \
                    (lambda ctx: 0 if status_eq(ctx) else 1)

            def num_eq(ctx: Context) -> Value:
                return 1 if to_int(subject(ctx)) == to_int(right(ctx)) else 0
            return num_eq if node.op in ("==", "eq") else (lambda ctx: 0 if num_eq(ctx) else 1)

        def str_eq(ctx: Context) -> Value:
            return 1 if to_str(subject(ctx)).lower() == to_str(right(ctx)).lower() else 0
        if node.op in ("==", "eq"):
            return str_eq
        if node.op in ("!=", "ne"):
            return lambda ctx: 0 if str_eq(ctx) else 1
        self.error(node.pos, f"operator {node.op} not supported with {keyword}")
        return _const(None)

    def _legacy_subject(self, keyword: str, pos: ast.Pos) -> Expr:
        def from_uri(ctx: Context) -> Value:
            addr = ctx.msg.from_
            return addr.uri_text if addr is not None else None

        def to_uri(ctx: Context) -> Value:
            addr = ctx.msg.to
            return addr.uri_text if addr is not None else None

        def method(ctx: Context) -> Value:
            return ctx.msg.method if ctx.msg.is_request else ctx.msg.cseq.method

        subjects: dict[str, Expr] = {
            "method": method,
            "uri": lambda ctx: ctx.ruri,
            "status": lambda ctx: str(ctx.msg.status) if not ctx.msg.is_request else None,
            "from_uri": from_uri,
            "to_uri": to_uri,
            "src_ip": lambda ctx: ctx.src[0],
            "src_port": lambda ctx: ctx.src[1],
            "dst_ip": lambda ctx: ctx.local[0],
            "dst_port": lambda ctx: ctx.local[1],
            "proto": lambda ctx: ctx.proto,
            "af": lambda ctx: 10 if ":" in ctx.src[0] else 2,
            "msg:len": lambda ctx: len(ctx.msg.text),
        }
        subject = subjects.get(keyword)
        if subject is None:
            self.error(pos, f"unsupported match keyword '{keyword}'")
            return _const(None)

        def safe(ctx: Context) -> Value:
            try:
                return subject(ctx)
            except SipError:
                return None
        return safe

    def _myself(self, keyword: str, op: str, pos: ast.Pos) -> Expr:
        router = self.router
        from ..sip.uri import parse_uri

        def uri_text(ctx: Context) -> str | None:
            if keyword == "uri":
                return ctx.ruri
            addr = ctx.msg.from_ if keyword == "from_uri" else ctx.msg.to
            return addr.uri_text if addr is not None else None

        def match(ctx: Context) -> bool:
            if keyword in ("src_ip", "dst_ip"):
                ip = ctx.src[0] if keyword == "src_ip" else ctx.local[0]
                return any(h.strip("[]") == ip for h, _ in router._myself)
            try:
                if keyword == "uri":
                    uri = ctx.uri
                else:
                    text = uri_text(ctx)
                    if text is None:
                        return False
                    uri = parse_uri(text)
            except SipError:
                return False
            return router.is_myself(uri.host, uri.port, uri.scheme)
        if keyword not in ("uri", "from_uri", "to_uri", "src_ip", "dst_ip"):
            self.error(pos, f"'{keyword}' cannot be compared with myself")
        if op in ("!=", "ne"):
            return lambda ctx: 0 if match(ctx) else 1
        return lambda ctx: 1 if match(ctx) else 0

    def _ip_match(self, subject: Expr, value: ast.IPLit, op: str) -> Expr:
        import ipaddress

        network = ipaddress.ip_network(
            value.addr.strip("[]") + (f"/{value.mask}" if value.mask is not None else ""),
            strict=False)

        def match(ctx: Context) -> bool:
            try:
                return ipaddress.ip_address(to_str(subject(ctx))) in network
            except ValueError:
                return False
        if op in ("!=", "ne"):
            return lambda ctx: 0 if match(ctx) else 1
        return lambda ctx: 1 if match(ctx) else 0


def _run_subroute(route: Stmt, ctx: Context) -> int:
    """Run a named route; ``return N`` gives N; falling off the end gives 1."""
    ctx.depth += 1
    if ctx.depth > MAX_ROUTE_DEPTH:
        ctx.depth -= 1
        log.error("too many nested routes (%d)", MAX_ROUTE_DEPTH)
        raise ScriptExit(-1)
    try:
        route(ctx)
        code = 1
    except RouteReturn as ret:
        code = ret.code
    finally:
        ctx.depth -= 1
    ctx.retcode = code
    return code


def compile_script(router: Router, config: ast.Config) -> tuple[Script, list[CfgError]]:
    """Compile all routes; returns the script and the errors found."""
    compiler = Compiler(router, config)
    script = compiler.compile()
    return script, compiler.errors
