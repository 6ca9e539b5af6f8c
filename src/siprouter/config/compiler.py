"""Compile a parsed cfg (:mod:`.ast`) into Python callables, once, at start-up.

Every statement becomes a closure ``stmt(ctx) -> int`` returning the action's
return code (Kamailio's ``do_action()`` value: a sub-route that falls off its
end returns the code of its last action), and every expression a closure
``expr(ctx) -> int | str | None``. Control flow uses exceptions:
:class:`ScriptExit` (return 0, a function returning 0),
:class:`RouteReturn` (return N from a route) and :class:`_Break`.
Nothing is re-interpreted per message.

Semantics follow spec/cfg-language.md sections 5 and 6 and Kamailio 5.6's
``rvalue.c`` / ``action.c`` (checked against a running 5.6.3, see
tests/config/test_compiler.py):

* integers are C ``int`` (32 bits, wrapping); a string converts to an int
  only when it is entirely a decimal number in range or ``0x`` hex, else 0;
* ``!``, ``&&``, ``||`` are C operators (non-zero is true, result 0/1);
  ``if`` takes its branch for values > 0, ``while`` loops while non-zero;
* ``<``, ``>``, ``<=``, ``>=`` always compare integers;
* string literals inside expressions are not PV-expanded;
* the load-time optimiser of Kamailio is reproduced where it changes results
  (``X && 1`` -> ``(int)X``, ``X || 0`` -> ``(int)X``, ``X == ""`` ->
  ``strempty(X)``, ``X * 0`` -> ``0`` without evaluating ``X``...).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Callable
from typing import Any, Final, cast

from ..modules.base import Function, Module
from ..modules.core import CoreModule
from ..routing.context import Context, RouteReturn, ScriptExit
from ..routing.pv import PVError, Value, compile_format, compile_pv, has_pv, scan_pv
from ..routing.router import RouteFn, Router, Script
from ..sip.errors import SipError
from . import ast
from .errors import CfgError

log: Final = logging.getLogger("siprouter.cfg")

Stmt = Callable[[Context], int]
Expr = Callable[[Context], Value]
IntExpr = Callable[[Context], int]

MAX_ROUTE_DEPTH: Final = 256
# functions that report the error left by the previous action (Kamailio's prev_ser_error)
_READS_PREVIOUS_ERROR: Final = frozenset(("sl_reply_error", "send_reply_error"))
INT_MIN: Final = -0x80000000
INT_MAX: Final = 0x7FFFFFFF


class _Break(Exception):
    """``break`` out of the innermost while/switch (or the current route)."""


class _ExprError(Exception):
    """An expression could not be evaluated (division by zero...).

    Kamailio then skips the assignment, takes the ``else`` branch of an
    ``if``, ends a ``while`` and uses the ``default`` of a ``switch``.
    """


# ------------------------------------------------------------------ conversions
def wrap32(value: int) -> int:
    """Truncate to a signed 32-bit C int."""
    if INT_MIN <= value <= INT_MAX:
        return value
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


_DECIMAL: Final = re.compile(r"[+-]?[0-9]*\Z")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def str_to_int(text: str) -> int | None:
    """Kamailio's string to int conversion (``rval_get_int``); None if not numeric.

    An optional sign and decimal digits only (no blanks), within the signed
    32-bit range; otherwise ``0x``/``0X`` followed by hex digits (wrapping at
    32 bits). ``""`` is 0.
    """
    if not text:
        return 0
    if _DECIMAL.match(text):
        digits = text[1:] if text[0] in "+-" else text
        value = int(digits) if digits else 0
        if text[0] == "-":
            value = -value
        if INT_MIN <= value <= INT_MAX:
            return value
    if len(text) > 2 and text[0] == "0" and text[1] in "xX" and \
            all(ch in _HEX_DIGITS for ch in text[2:]):
        return wrap32(int(text[2:], 16))
    return None


def to_int(value: Value) -> int:
    """Kamailio's rvalue-to-int: None -> 0, numeric strings -> int, others -> 0."""
    if isinstance(value, int):
        return value if INT_MIN <= value <= INT_MAX else wrap32(value)
    if value is None:
        return 0
    converted = str_to_int(value)
    return 0 if converted is None else converted


def to_str(value: Value) -> str:
    if value is None:
        return ""
    return str(value)


def truth(value: Value) -> bool:
    """``if`` is taken only for values > 0."""
    return to_int(value) > 0


def _const(value: Any) -> Callable[[Context], Any]:
    return lambda ctx: value


def _ret1(ctx: Context) -> int:
    return 1


# ------------------------------------------------------------------ operators
def _add(a: Value, b: Value) -> Value:
    """``+``: the left operand decides; undefined on the left concatenates."""
    if isinstance(a, int):
        return wrap32(a + to_int(b))
    return to_str(a) + to_str(b)


def _eq(a: Value, b: Value) -> bool:
    """``==``: typed by the left operand; an undefined left takes the right's type."""
    if isinstance(a, int):
        return a == to_int(b)
    if a is None:
        if isinstance(b, int):
            return b == 0
        return b is None or b == ""
    return a == to_str(b)


def _div(a: int, b: int) -> int:
    if b == 0:
        raise _ExprError("division by zero")
    quotient = abs(a) // abs(b)
    return wrap32(-quotient if (a < 0) != (b < 0) else quotient)


def _mod(a: int, b: int) -> int:
    if b == 0:
        raise _ExprError("modulo by zero")
    return wrap32(a - b * _div(a, b))


_INT_OPS: Final[dict[str, Callable[[int, int], int]]] = {
    "-": lambda a, b: wrap32(a - b),
    "*": lambda a, b: wrap32(a * b),
    "/": _div,
    "mod": _mod,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
    # x86 masks the shift count to 5 bits
    "<<": lambda a, b: wrap32(a << (b & 31)),
    ">>": lambda a, b: a >> (b & 31),
    "<": lambda a, b: int(a < b),
    ">": lambda a, b: int(a > b),
    "<=": lambda a, b: int(a <= b),
    ">=": lambda a, b: int(a >= b),
    "ieq": lambda a, b: int(a == b),
    "ine": lambda a, b: int(a != b),
}

# ------------------------------------------------------------------ regular expressions
_POSIX_CLASSES: Final = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f",
    "punct": "".join("\\" + ch for ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "cntrl": "\\x00-\\x1f\\x7f", "print": "\\x20-\\x7e", "graph": "\\x21-\\x7e",
    "word": "a-zA-Z0-9_",
}


def posix_to_python(pattern: str) -> str:
    """Translate a POSIX extended regex (glibc ``regcomp``) to Python ``re`` syntax.

    Handles bracket expressions (``[[:upper:]]``, a literal ``\\`` or ``]``
    inside brackets) and the GNU word boundaries ``\\<`` / ``\\>``.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < n else ""
            out.append("\\b" if nxt in ("<", ">") and nxt else pattern[i:i + 2] or "\\\\")
            i += 2
            continue
        if ch != "[":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        items: list[str] = []
        if j < n and pattern[j] == "^":
            items.append("^")
            j += 1
        if j < n and pattern[j] == "]":
            items.append("\\]")
            j += 1
        while j < n and pattern[j] != "]":
            if pattern.startswith("[:", j):
                end = pattern.find(":]", j + 2)
                if end > 0:
                    items.append(_POSIX_CLASSES.get(pattern[j + 2:end], ""))
                    j = end + 2
                    continue
            if pattern.startswith(("[=", "[."), j):
                end = pattern.find(pattern[j + 1] + "]", j + 2)
                if end > 0:
                    items.append(re.escape(pattern[j + 2:end]))
                    j = end + 2
                    continue
            c = pattern[j]
            items.append(c if c.isalnum() or c == "-" else "\\" + c)
            j += 1
        if j >= n:
            raise re.error("unterminated bracket expression")
        out.append("[" + "".join(items) + "]")
        i = j + 1
    return "".join(out)


def compile_regex(pattern: str, pos: ast.Pos, icase: bool = True) -> re.Pattern[str]:
    """POSIX extended regex, unanchored; case-insensitive for ``=~``."""
    flags = re.DOTALL | (re.IGNORECASE if icase else 0)
    try:
        return re.compile(posix_to_python(pattern), flags)
    except re.error as err:
        raise CfgError.at(pos, f"bad regular expression {pattern!r}: {err}") from None


_REGEX_CACHE: Final[dict[str, re.Pattern[str] | None]] = {}


def runtime_regex(pattern: str) -> re.Pattern[str] | None:
    """A regex built at run time (``=~ $var(re)``), cached; None when invalid."""
    found = _REGEX_CACHE.get(pattern, False)
    if found is not False:
        return found  # type: ignore[return-value]
    try:
        compiled: re.Pattern[str] | None = re.compile(
            posix_to_python(pattern), re.IGNORECASE | re.DOTALL)
    except re.error:
        log.error("bad regular expression %r", pattern)
        compiled = None
    if len(_REGEX_CACHE) > 1000:
        _REGEX_CACHE.clear()
    _REGEX_CACHE[pattern] = compiled
    return compiled


# expressions whose value is always 0 or 1
_ZERO_ONE: Final = (ast.FuncCallExpr, ast.RouteCall, ast.LegacyMatch, ast.Defined, ast.StrEmpty)
_ZERO_ONE_OPS: Final = frozenset(("&&", "||", "==", "!=", "eq", "ne", "ieq", "ine", "=~",
                                  "<", ">", "<=", ">="))


# ------------------------------------------------------------------ static typing helpers
def guess_type(node: object) -> str | None:
    """Kamailio's ``rve_guess_type``: "int", "str" or None (known at run time only)."""
    if isinstance(node, ast.IntLit):
        return "int"
    if isinstance(node, ast.StrLit):
        return "str"
    if isinstance(node, ast.Cast):
        return node.to
    if isinstance(node, ast.BinOp):
        return guess_type(node.left) if node.op == "+" else "int"
    if isinstance(node, (ast.UnaryOp, ast.Defined, ast.StrLen, ast.StrEmpty, ast.LegacyMatch,
                         ast.FuncCallExpr, ast.RouteCall)):
        return "int"
    return None


def is_constant(node: object) -> bool:
    """Kamailio's ``rve_is_constant``: built only from literals."""
    if isinstance(node, (ast.IntLit, ast.StrLit)):
        return True
    if isinstance(node, ast.UnaryOp):
        return is_constant(node.operand)
    if isinstance(node, ast.BinOp):
        return is_constant(node.left) and is_constant(node.right)
    if isinstance(node, (ast.Cast, ast.Defined, ast.StrLen, ast.StrEmpty)):
        return is_constant(node.expr)
    return False


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
        for name in routes.get(ast.ROUTE, {}):
            self._subroutes[name] = self._placeholder(name)
        for name, sub in routes.get(ast.ROUTE, {}).items():
            self.route_kind = ast.ROUTE
            body = _catch_break(self.block(sub.body))
            self._subroutes[name].__dict__["target"] = body
            script.named[name] = cast(RouteFn, body)
        for kind, target in ((ast.REQUEST, "request"), (ast.REPLY, "reply"),
                             (ast.ONSEND, "onsend")):
            route = routes.get(kind, {}).get("")
            if route is not None:
                self.route_kind = kind
                wrap = _reply_route if kind == ast.REPLY else _top_level
                setattr(script, target, wrap(self.block(route.body)))
        for kind, table in ((ast.FAILURE, script.failure), (ast.ONREPLY, script.onreply),
                            (ast.BRANCH, script.branch), (ast.EVENT, script.event)):
            for name, route in routes.get(kind, {}).items():
                self.route_kind = kind
                table[name] = _top_level(self.block(route.body))
        return script

    @staticmethod
    def _placeholder(name: str) -> Stmt:
        def call(ctx: Context) -> int:
            result: int = call.target(ctx)  # type: ignore[attr-defined]
            return result
        call.target = None  # type: ignore[attr-defined]
        return call

    def error(self, pos: ast.Pos, reason: str) -> None:
        self.errors.append(CfgError.at(pos, reason))

    # ---------------------------------------------------------------- statements
    def block(self, block: ast.Block) -> Stmt:
        """A statement list; its value is the value of the last statement run (1 if empty)."""
        stmts = [s for s in (self.stmt(node) for node in block.stmts) if s is not None]
        if not stmts:
            return _ret1
        if len(stmts) == 1:
            return stmts[0]
        seq = tuple(stmts)

        def run(ctx: Context) -> int:
            ret = 1
            for stmt in seq:
                ret = stmt(ctx)
                if ctx.stop:    # exit/drop ran below
                    return ret
            return ret
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
            return self.route_call(node)
        if isinstance(node, ast.While):
            return self.while_stmt(node)
        if isinstance(node, ast.Switch):
            return self.switch_stmt(node)
        if isinstance(node, ast.Break):
            def brk(ctx: Context) -> int:
                raise _Break()
            return brk
        self.error(getattr(node, "pos", ast.NOPOS), f"unsupported statement {type(node).__name__}")
        return None

    def if_stmt(self, node: ast.If) -> Stmt:
        cond = self.condition(node.cond)
        then = self.block(node.then)
        orelse = self.block(node.orelse) if node.orelse is not None else _ret1

        def run_if(ctx: Context) -> int:
            ctx.last_error = -1
            try:
                taken = cond(ctx)
            except _ExprError:
                taken = False
            if ctx.stop:
                return 0
            return then(ctx) if taken else orelse(ctx)
        return run_if

    def condition(self, node: ast.Expr) -> Callable[[Context], bool]:
        """A boolean test with Kamailio's ``> 0`` rule."""
        node = self.optimize(node)
        zero_one = isinstance(node, _ZERO_ONE) or \
            isinstance(node, ast.UnaryOp) and node.op == "!" or \
            isinstance(node, ast.BinOp) and node.op in _ZERO_ONE_OPS
        if zero_one:
            return self._bool(node)   # the value is 0 or 1: > 0 is != 0
        value = self._int(node)
        return lambda ctx: value(ctx) > 0

    def _bool(self, node: Any) -> Callable[[Context], bool]:
        """C truth (``!= 0``) of an optimised expression, without building 0/1 ints."""
        if isinstance(node, ast.FuncCallExpr):
            call = self.call_expr_raw(node.name, node.args, node.pos)
            return lambda ctx: call(ctx) > 0
        if isinstance(node, ast.RouteCall):
            route = _stop_aborts(self.route_call(node))
            return lambda ctx: route(ctx) > 0
        if isinstance(node, ast.UnaryOp) and node.op == "!":
            inner = self._bool(node.operand)
            return lambda ctx: not inner(ctx)
        if isinstance(node, ast.BinOp) and node.op in ("&&", "||"):
            left, right = self._bool(node.left), self._bool(node.right)
            if node.op == "&&":
                return lambda ctx: left(ctx) and right(ctx)
            return lambda ctx: left(ctx) or right(ctx)
        if isinstance(node, ast.BinOp) and node.op in ("==", "!="):
            left_v, right_v = self._expr(node.left), self._expr(node.right)
            if node.op == "==":
                return lambda ctx: _eq(left_v(ctx), right_v(ctx))
            return lambda ctx: not _eq(left_v(ctx), right_v(ctx))
        value = self._int(node)
        return lambda ctx: value(ctx) != 0

    def assign(self, node: ast.Assign) -> Stmt | None:
        pv = self.pv(node.pv)
        if pv is None:
            return None
        setter = pv.set
        if setter is None:
            self.error(node.pos, f"pseudo-variable {node.pv.text or pv.text} is read-only")
            return None
        expr: Expr
        rhs = self.optimize(node.expr)
        if isinstance(rhs, ast.FuncCallExpr):
            # a function alone on the right side gives its raw return code
            expr = self.call_expr_raw(rhs.name, rhs.args, rhs.pos)
        elif isinstance(rhs, ast.RouteCall):
            expr = _stop_aborts(self.route_call(rhs))
        else:
            expr = self._expr(rhs)
        if node.op == ":=" and node.pv.name == "avp":
            name = (node.pv.arg or "").strip()

            def replace(ctx: Context) -> int:
                try:
                    value = expr(ctx)
                except _ExprError:
                    return -1
                ctx.avps.pop(name, None)
                setter(ctx, value)
                return 1
            return replace

        def run(ctx: Context) -> int:
            ctx.last_error = -1
            try:
                value = expr(ctx)
            except _ExprError:
                return -1
            setter(ctx, value)
            return 1
        return run

    def _code(self, expr: ast.Expr | None, default: int) -> IntExpr:
        if expr is None:
            return _const(default)
        value = self.int_expr(self.optimize(expr))

        def code(ctx: Context) -> int:
            try:
                return value(ctx)
            except _ExprError:
                return -1
        return code

    def exit_stmt(self, expr: ast.Expr | None) -> Stmt:
        code = self._code(expr, 1)   # ``exit;`` ends the script with code 1

        def run(ctx: Context) -> int:
            ctx.exit_code = code(ctx)
            ctx.stop = True
            return ctx.exit_code
        return run

    def drop_stmt(self, expr: ast.Expr | None) -> Stmt:
        def run(ctx: Context) -> int:
            ctx.dropped = True
            ctx.exit_code = 0
            ctx.stop = True
            return 0
        return run

    def return_stmt(self, expr: ast.Expr | None) -> Stmt:
        code = self._code(expr, 1)

        def run(ctx: Context) -> int:
            value = code(ctx)
            if value == 0:
                raise ScriptExit(0)
            raise RouteReturn(value)
        return run

    def while_stmt(self, node: ast.While) -> Stmt:
        cond = self.int_expr(self.optimize(node.cond))
        body = self.block(node.body)
        settings = self.router.settings

        def run(ctx: Context) -> int:
            ctx.last_error = -1
            ret = 1
            count = 0
            limit = settings.max_while_loops
            while True:
                try:
                    if cond(ctx) == 0 or ctx.stop:
                        break
                except _ExprError:
                    break
                if limit > 0:
                    count += 1
                    if count > limit:
                        # Kamailio: the while action fails (-1), the route goes on
                        log.error("runaway while: more than %d loops", limit)
                        return -1
                try:
                    ret = body(ctx)
                except _Break:
                    return 0
                if ctx.stop:
                    return ret
            return ret
        return run

    def switch_stmt(self, node: ast.Switch) -> Stmt:
        """C-like switch: int cases compare ints, string/regex cases compare strings."""
        bodies: list[Stmt] = []
        labels: list[tuple[object, int]] = []
        default: int | None = None
        string_switch = any(case.value is not None and
                            (case.is_regex or isinstance(case.value, ast.StrLit))
                            for case in node.cases)
        for index, case in enumerate(node.cases):
            bodies.append(self.block(ast.Block(case.body, case.pos)))
            if case.value is None:
                if default is None:
                    default = index
                continue
            label: object
            if case.is_regex:
                # switch regexes are case-sensitive (unlike =~) [Kamailio 5.6]
                label = compile_regex(str(case.value.value), case.pos, icase=False)
            elif string_switch:
                label = str(case.value.value)
            else:
                label = case.value.value
            labels.append((label, index))
        if string_switch:
            value_str = self.expr(node.expr)

            def select(ctx: Context) -> int | None:
                text = to_str(value_str(ctx))
                for label, index in labels:
                    if label == text if isinstance(label, str) else \
                            label.search(text):  # type: ignore[attr-defined]
                        return index
                return default
        else:
            value_int = self.int_expr(self.optimize(node.expr))
            table: dict[object, int] = {}
            for label, index in labels:
                table.setdefault(label, index)

            def select(ctx: Context) -> int | None:
                return table.get(value_int(ctx), default)

        def run(ctx: Context) -> int:
            ctx.last_error = -1
            try:
                start = select(ctx)
            except _ExprError:
                start = default
            if start is None or ctx.stop:
                return 1
            ret = 1
            try:
                for body in bodies[start:]:
                    ret = body(ctx)
                    if ctx.stop:
                        return ret
            except _Break:
                return 0
            return ret
        return run

    # ---------------------------------------------------------------- routes
    def route_call(self, node: ast.RouteCall) -> Callable[[Context], int]:
        """``route(X)``: runs the sub-route; returns its return code."""
        if not isinstance(node.name, str):
            name_expr = self.expr(node.name)
            named = self.script.named

            def dynamic(ctx: Context) -> int:
                target = named.get(to_str(name_expr(ctx)))
                if target is None:
                    log.error("route(%s) does not exist", name_expr(ctx))
                    return -1
                return _run_subroute(cast(Stmt, target), ctx)
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
    def lookup(self, name: str, nargs: int,
               pos: ast.Pos) -> tuple[Function, Callable[..., int]] | None:
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

    def arg(self, node: ast.Expr, kind: str, pv_first: bool = False) -> tuple[bool, Any]:
        """Compile an argument: (is_constant, value or evaluator).

        ``pv_first``: Kamailio's ``fixup_var_*`` / ``fixup_igp`` rule. A string
        that starts with a pseudo-variable *is* that variable; the rest of the
        string is ignored. An int parameter needs an int-valued variable and a
        string parameter a defined one; otherwise the function gets None.
        """
        if isinstance(node, ast.StrLit):
            text = node.value
            scanned = scan_pv(text, 0) if pv_first and text.startswith("$") else None
            if scanned is not None:
                # $rp / $op are "str+int" in Kamailio: usable as int parameters too
                strint = scanned[0] in ("rp", "op") and not scanned[3]
                return False, _fparam(self._leading_pv(text), kind, strint)
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

    def _leading_pv(self, text: str) -> Expr:
        """The pseudo-variable at the start of ``text`` (unknown ones read as $null)."""
        scanned = scan_pv(text, 0)
        assert scanned is not None
        name, arg, index, transforms, _end = scanned
        try:
            pv = compile_pv(name, arg, index, transforms, self.router)
        except PVError:
            log.warning("unknown pseudo-variable at the start of %r", text)
            return _const(None)
        getter = pv.get

        def get(ctx: Context) -> Value:
            try:
                return getter(ctx)
            except SipError:
                return None
        return get

    def call_expr_raw(self, name: str, args: tuple[ast.Expr, ...],
                      pos: ast.Pos) -> Callable[[Context], int]:
        """A call returning the function's int result.

        A module function sets ``$rc`` and a 0 result ends the script. Core
        functions (``forward``, ``setflag``, ``force_rport``...) are actions of
        Kamailio's core: they change neither ``$rc`` nor stop the script
        [verified on 5.6.3]. Every call starts by clearing the internal error
        code, except ``sl_reply_error()`` which reports the previous action's.
        """
        found = self.lookup(name, len(args), pos)
        if found is None:
            return lambda ctx: -1
        fn, impl = found
        core = isinstance(getattr(impl, "__self__", None), CoreModule)
        keep_error = fn.name in _READS_PREVIOUS_ERROR
        compiled = [self.arg(a, fn.kind_of(i), i in fn.pv_first) for i, a in enumerate(args)]
        if all(const for const, _ in compiled):
            values = tuple(v for _, v in compiled)
            if core:
                return self._core_call(impl, values)
            if keep_error:
                def call_keep(ctx: Context) -> int:
                    code: int = impl(ctx, *values)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call_keep
            if not values:
                def call0(ctx: Context) -> int:
                    ctx.last_error = -1
                    code: int = impl(ctx)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call0
            if len(values) == 1:
                v0 = values[0]

                def call1(ctx: Context) -> int:
                    ctx.last_error = -1
                    code: int = impl(ctx, v0)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call1
            if len(values) == 2:
                v0, v1 = values

                def call2(ctx: Context) -> int:
                    ctx.last_error = -1
                    code: int = impl(ctx, v0, v1)
                    ctx.retcode = code
                    if code == 0:
                        raise ScriptExit(0)
                    return code
                return call2

            def calln(ctx: Context) -> int:
                ctx.last_error = -1
                code: int = impl(ctx, *values)
                ctx.retcode = code
                if code == 0:
                    raise ScriptExit(0)
                return code
            return calln
        getters = [v if not const else _const(v) for const, v in compiled]

        def call_dyn(ctx: Context) -> int:
            if not keep_error:
                ctx.last_error = -1
            try:
                args = [g(ctx) for g in getters]
            except _ExprError:
                return -1
            code: int = impl(ctx, *args)
            if core:
                return code
            ctx.retcode = code
            if code == 0:
                raise ScriptExit(0)
            return code
        return call_dyn

    @staticmethod
    def _core_call(impl: Callable[..., int], values: tuple[Any, ...]) -> Callable[[Context], int]:
        """A core function with constant arguments (no $rc, no script end on 0)."""
        if not values:
            def call_core0(ctx: Context) -> int:
                ctx.last_error = -1
                return impl(ctx)
            return call_core0
        if len(values) == 1:
            v0 = values[0]

            def call_core1(ctx: Context) -> int:
                ctx.last_error = -1
                return impl(ctx, v0)
            return call_core1

        def call_core(ctx: Context) -> int:
            ctx.last_error = -1
            return impl(ctx, *values)
        return call_core

    def call_stmt(self, name: str, args: tuple[ast.Expr, ...], pos: ast.Pos) -> Stmt:
        return self.call_expr_raw(name, args, pos)

    # ---------------------------------------------------------------- optimiser
    def optimize(self, node: Any) -> Any:
        """Reproduce the rewrites of Kamailio's ``rve_optimize`` that change results.

        Bottom-up, for an operator with exactly one constant operand:
        ``X && 0`` / ``X * 0`` / ``X & 0`` / ``0 / X`` / ``0 mod X`` -> 0 and
        ``X || 1`` -> 1 (X is not evaluated); ``X && 1``, ``X || 0``, ``X * 1``,
        ``X | 0``, ``X - 0``, ``X / 1`` and ``int + 0`` -> ``(int)X`` (so
        ``$x && 1`` is -1 for ``$x = -1``, and ``$v = f() + 0`` assigns the raw
        code of ``f()``); ``X == ""`` / ``X eq ""`` -> ``strempty(X)`` (so
        ``0 == ""`` is false).
        """
        replace = dataclasses.replace
        if isinstance(node, ast.UnaryOp):
            return replace(node, operand=self.optimize(node.operand))
        if isinstance(node, (ast.Cast, ast.Defined, ast.StrLen, ast.StrEmpty)):
            return replace(node, expr=self.optimize(node.expr))
        if not isinstance(node, ast.BinOp):
            return node
        node = replace(node, left=self.optimize(node.left), right=self.optimize(node.right))
        op = node.op
        if op not in ("&&", "||", "*", "/", "mod", "&", "|", "+", "-", "==", "eq"):
            return node
        left_const, right_const = is_constant(node.left), is_constant(node.right)
        if left_const == right_const:
            return node
        const_node, var_node = (node.right, node.left) if right_const else (node.left, node.right)
        try:
            value = self._expr(const_node)(self._constant_context())
        except Exception:  # noqa: BLE001 - not foldable: leave it alone
            return node
        pos = node.pos
        if isinstance(value, int):
            zero = ast.IntLit(0, pos)
            if value == 0 and (op in ("*", "&", "&&") or op in ("/", "mod") and left_const):
                return zero
            neutral = (op == "&&" and value == 1 or op == "||" and value == 0
                       or op == "*" and value == 1 or op == "|" and value == 0
                       or op == "/" and right_const and value == 1
                       or op == "-" and right_const and value == 0
                       or op == "+" and value == 0 and guess_type(node.left) == "int")
            if neutral:
                # (int)X, or X itself when X is known to be an int: so a lone
                # function call stays a function call (``$v = f() + 0`` is raw)
                return var_node if guess_type(var_node) == "int" else ast.Cast("int", var_node, pos)
            if op == "||" and value == 1:
                return ast.IntLit(1, pos)
        elif value == "" and op in ("==", "eq"):
            if not (op == "==" and right_const and guess_type(node.left) == "int"):
                return ast.StrEmpty(var_node, pos)
        return node

    def _constant_context(self) -> Context:
        """A context for evaluating constant expressions (they never look at it)."""
        from ..sip.message import SipMessage

        return Context(self.router, SipMessage(""), ("0.0.0.0", 0), ("0.0.0.0", 0))

    # ---------------------------------------------------------------- expressions
    def pv(self, node: ast.PVRef) -> Any:
        index: int | str | None = None
        if node.index is not None:
            if node.index.strip() == "*" and node.name in ("avp", "xavp"):
                index = "*"
            else:
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
        """A value-producing expression (after the load-time optimisations)."""
        return self._expr(self.optimize(node))

    def _expr(self, node: object) -> Expr:
        if isinstance(node, ast.IntLit):
            return _const(node.value)
        if isinstance(node, ast.StrLit):
            # Kamailio does not expand pseudo-variables in string literals of expressions
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
        if isinstance(node, ast.BinOp) and node.op == "+":
            left, right = self._expr(node.left), self._expr(node.right)
            if node.op == "+" and isinstance(node.left, ast.IntLit) and \
                    isinstance(node.right, ast.StrLit):
                self.error(node.pos, "cannot add a string to an integer")
            return lambda ctx: _add(left(ctx), right(ctx))
        if isinstance(node, ast.Cast) and node.to == "str":
            inner = self._expr(node.expr)
            return lambda ctx: to_str(inner(ctx))
        if isinstance(node, ast.Ident):
            defined = self.config.defines.get(node.name)
            return _const(defined if defined is not None else node.name)
        if isinstance(node, ast.IPLit):
            return _const(node.addr)
        if isinstance(node, (ast.UnaryOp, ast.BinOp, ast.Cast, ast.Defined, ast.StrLen,
                             ast.StrEmpty, ast.LegacyMatch, ast.FuncCallExpr, ast.RouteCall)):
            value: Expr = self._int(node)
            return value
        self.error(getattr(node, "pos", ast.NOPOS),
                   f"unsupported expression {type(node).__name__}")
        return _const(None)

    def int_expr(self, node: object) -> IntExpr:
        """The integer value of an (optimised) expression (``rval_expr_eval_int``)."""
        return self._int(node)

    def _int(self, node: object) -> IntExpr:
        if isinstance(node, ast.IntLit):
            return _const(wrap32(node.value))
        if isinstance(node, ast.FuncCallExpr):
            call = self.call_expr_raw(node.name, node.args, node.pos)
            return lambda ctx: 1 if call(ctx) > 0 else 0
        if isinstance(node, ast.RouteCall):
            route = _stop_aborts(self.route_call(node))
            return lambda ctx: 1 if route(ctx) > 0 else 0
        if isinstance(node, ast.UnaryOp):
            inner = self._int(node.operand)
            if node.op == "!":
                return lambda ctx: 0 if inner(ctx) else 1
            if node.op == "-":
                return lambda ctx: wrap32(-inner(ctx))
            if node.op == "~":
                return lambda ctx: ~inner(ctx)
            self.error(node.pos, f"unknown operator {node.op}")
            return _const(0)
        if isinstance(node, ast.BinOp):
            return self._int_binop(node)
        if isinstance(node, ast.Cast):
            if node.to == "int":
                return self._int(node.expr)
            as_str = self._expr(node)
            return lambda ctx: to_int(as_str(ctx))
        if isinstance(node, ast.Defined):
            target = node.expr
            if isinstance(target, ast.Null):
                return _const(0)
            if not isinstance(target, ast.PVRef):
                return _const(1)   # only a variable can be undefined
            inner_pv = self._expr(target)
            return lambda ctx: 0 if inner_pv(ctx) is None else 1
        if isinstance(node, ast.StrLen):
            inner_v = self._expr(node.expr)
            return lambda ctx: len(to_str(inner_v(ctx)))
        if isinstance(node, ast.StrEmpty):
            inner_v = self._expr(node.expr)
            return lambda ctx: 0 if to_str(inner_v(ctx)) else 1
        if isinstance(node, ast.LegacyMatch):
            return self.legacy(node)
        value = self._expr(node)
        return lambda ctx: to_int(value(ctx))

    def _int_binop(self, node: ast.BinOp) -> IntExpr:
        op = node.op
        if op == "+":
            added = self._expr(node)
            return lambda ctx: to_int(added(ctx))
        if op in ("&&", "||"):
            left_i, right_i = self._int(node.left), self._int(node.right)
            if op == "&&":
                return lambda ctx: 1 if left_i(ctx) and right_i(ctx) else 0
            return lambda ctx: 1 if left_i(ctx) or right_i(ctx) else 0
        if op == "=~":
            return self._match(node)
        if op in ("==", "!="):
            left, right = self._expr(node.left), self._expr(node.right)
            if op == "==":
                return lambda ctx: 1 if _eq(left(ctx), right(ctx)) else 0
            return lambda ctx: 0 if _eq(left(ctx), right(ctx)) else 1
        if op in ("eq", "ne"):
            left, right = self._expr(node.left), self._expr(node.right)
            if op == "eq":
                return lambda ctx: 1 if to_str(left(ctx)) == to_str(right(ctx)) else 0
            return lambda ctx: 1 if to_str(left(ctx)) != to_str(right(ctx)) else 0
        int_op = _INT_OPS.get(op)
        if int_op is None:
            self.error(node.pos, f"unknown operator {op}")
            return _const(0)
        left_i, right_i = self._int(node.left), self._int(node.right)
        return lambda ctx: int_op(left_i(ctx), right_i(ctx))

    def _match(self, node: ast.BinOp) -> IntExpr:
        left = self._expr(node.left)
        if isinstance(node.right, ast.StrLit):
            regex = compile_regex(node.right.value, node.pos)
            return lambda ctx: 1 if regex.search(to_str(left(ctx))) else 0
        right = self._expr(node.right)

        def dyn_match(ctx: Context) -> int:
            compiled = runtime_regex(to_str(right(ctx)))
            if compiled is None:
                raise _ExprError("bad regular expression")
            return 1 if compiled.search(to_str(left(ctx))) else 0
        return dyn_match

    # ---------------------------------------------------------------- legacy matches
    def legacy(self, node: ast.LegacyMatch) -> IntExpr:
        """Keyword matches (``method == "X"``, ``uri == myself``...): case-insensitive."""
        keyword = node.keyword
        value = node.value
        subject = self._legacy_subject(keyword, node.pos)
        if isinstance(value, ast.Myself):
            return self._myself(keyword, node.op, node.pos)
        if isinstance(value, ast.IPLit) and keyword in ("src_ip", "dst_ip", "snd_ip", "to_ip"):
            return self._ip_match(subject, value, node.op)
        if node.op == "=~":
            if isinstance(value, ast.StrLit):
                regex = compile_regex(value.value, node.pos)
                return lambda ctx: 1 if regex.search(to_str(subject(ctx))) else 0
            dyn = self.expr(value)

            def dyn_match(ctx: Context) -> int:
                compiled = runtime_regex(to_str(dyn(ctx)))
                return 1 if compiled is not None and compiled.search(to_str(subject(ctx))) else 0
            return dyn_match
        right = self.expr(value)
        if keyword in ("src_port", "dst_port", "status", "af", "msg:len", "snd_port",
                       "to_port", "snd_af"):
            compare = _INT_OPS.get(node.op) if node.op in ("<", ">", "<=", ">=") else None
            if compare is not None:
                cmp = compare
                return lambda ctx: cmp(to_int(subject(ctx)), to_int(right(ctx)))
            if keyword == "status":
                def status_eq(ctx: Context) -> int:
                    return 1 if to_str(subject(ctx)) == to_str(right(ctx)) else 0
                return status_eq if node.op in ("==", "eq") else \
                    (lambda ctx: 0 if status_eq(ctx) else 1)

            def num_eq(ctx: Context) -> int:
                return 1 if to_int(subject(ctx)) == to_int(right(ctx)) else 0
            return num_eq if node.op in ("==", "eq") else (lambda ctx: 0 if num_eq(ctx) else 1)

        def str_eq(ctx: Context) -> int:
            return 1 if to_str(subject(ctx)).lower() == to_str(right(ctx)).lower() else 0
        if node.op in ("==", "eq"):
            return str_eq
        if node.op in ("!=", "ne"):
            return lambda ctx: 0 if str_eq(ctx) else 1
        self.error(node.pos, f"operator {node.op} not supported with {keyword}")
        return _const(0)

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

    def _myself(self, keyword: str, op: str, pos: ast.Pos) -> IntExpr:
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

    def _ip_match(self, subject: Expr, value: ast.IPLit, op: str) -> IntExpr:
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


def _catch_break(body: Stmt) -> Stmt:
    """A route body: a ``break`` outside any loop ends the route with 0."""
    def route(ctx: Context) -> int:
        try:
            return body(ctx)
        except _Break:
            return 0
    return route


def _stop_aborts(call: Callable[[Context], int]) -> Callable[[Context], int]:
    """A route call inside an expression: an ``exit`` in the route ends the script
    here, before the rest of the expression is evaluated."""
    def run(ctx: Context) -> int:
        code = call(ctx)
        if ctx.stop:
            raise ScriptExit(ctx.exit_code)
        return code
    return run


def _top_level(body: Stmt) -> Callable[[Context], None]:
    """A top-level route; a ``break`` outside any loop ends it (code 0)."""
    def route(ctx: Context) -> None:
        ctx.retcode = 0
        try:
            body(ctx)
        except _Break:
            raise RouteReturn(0) from None
    return route


def _reply_route(body: Stmt) -> Callable[[Context], None]:
    """The core ``reply_route``: the reply is relayed only if the route's code is > 0.

    Kamailio 5.6 drops it for ``drop``, ``exit 0``/``exit -1``, ``return 0``,
    ``return -1`` and when the last action run returned <= 0 (e.g. a failing
    ``isflagset()`` or a ``break``); ``exit``, ``return`` and falling off the end
    after a successful action relay it [verified on 5.6.3]. The decision is
    passed to the core as the drop flag.
    """
    def route(ctx: Context) -> None:
        ctx.retcode = 0
        try:
            code = body(ctx)
            if ctx.stop:
                code = ctx.exit_code
        except _Break:
            code = 0
        except ScriptExit as stop:
            code = stop.code
        except RouteReturn as ret:
            code = ret.code
        if code <= 0:
            ctx.dropped = True
    return route


def _fparam(getter: Expr, kind: str, strint: bool = False) -> Callable[[Context], Any]:
    """Value of a ``pv_first`` parameter: None when the variable has the wrong type."""
    if kind == "int":
        def as_int(ctx: Context) -> int | None:
            value = getter(ctx)
            if isinstance(value, int):
                return value
            if strint and isinstance(value, str) and value.isdigit():
                return int(value)
            return None
        return as_int

    def as_str(ctx: Context) -> str | None:
        value = getter(ctx)
        return None if value is None else str(value)
    return as_str


def _run_subroute(route: Stmt, ctx: Context) -> int:
    """Run a named route: ``return N`` gives N, falling off the end the last action's code."""
    ctx.last_error = -1
    ctx.depth += 1
    if ctx.depth > MAX_ROUTE_DEPTH:
        # Kamailio: the route() action fails, the calling route goes on
        ctx.depth -= 1
        log.error("too many nested routes (%d)", MAX_ROUTE_DEPTH)
        ctx.retcode = -1
        return -1
    try:
        code = route(ctx)
    except RouteReturn as ret:
        code = ret.code
    except RecursionError:
        log.error("route nesting too deep for the Python stack")
        code = -1
    finally:
        ctx.depth -= 1
    ctx.retcode = code
    return code


def compile_script(router: Router, config: ast.Config) -> tuple[Script, list[CfgError]]:
    """Compile all routes; returns the script and the errors found."""
    # a sub-route level costs a few Python frames: leave room for MAX_ROUTE_DEPTH levels
    if sys.getrecursionlimit() < 16 * MAX_ROUTE_DEPTH:
        sys.setrecursionlimit(16 * MAX_ROUTE_DEPTH)
    compiler = Compiler(router, config)
    script = compiler.compile()
    return script, compiler.errors
