"""Recursive-descent parser for the Kamailio cfg language.

Entry points: :func:`parse_file`, :func:`parse_text` (whole configs) and
:func:`parse_expression` (a single expression, handy for tests and tools).
Syntax errors raise :class:`~.errors.CfgError` (one error) or
:class:`~.errors.CfgErrors` (several; the parser recovers at statement and
top-level boundaries to report as many as it reasonably can).

The grammar follows Kamailio 5.6's ``cfg.y``; see :mod:`.ast` for the
normalisations applied. Expressions are also type-checked the way
Kamailio's ``rve_check_type`` does at load time (``1 + "2"`` is an error).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping

from . import ast as A
from .ast import Pos
from .errors import CfgError, raise_errors
from .lexer import CAST, EOF, ID, INT, IP4, IP6, OP, PV, STR, Lexer, PVSpec, Token, tokenize_text
from .preprocess import Preprocessed, Preprocessor

__all__ = ["Parser", "parse_expression", "parse_file", "parse_text"]

MAX_ERRORS = 50

# Binary operators and their precedence (higher binds tighter), cfg.y order.
BINARY_PREC: dict[str, int] = {
    "||": 1, "or": 1,
    "&&": 2, "and": 2,
    "|": 3,
    "&": 4,
    "^": 5,
    "<<": 6,
    ">>": 7,
    "==": 8, "!=": 8, "=~": 8, "eq": 8, "ne": 8, "ieq": 8, "ine": 8,
    "<": 9, ">": 9, "<=": 9, ">=": 9,
    "+": 10, "-": 10,
    "*": 11, "/": 11, "mod": 11,
}  # fmt: skip
_WORD_OPS = frozenset({"or", "and", "eq", "ne", "ieq", "ine", "mod"})
_OP_ALIASES = {"or": "||", "and": "&&"}
_EQ_PREC = 8
_CMP_PREC = 9
# Operators whose operands must not be strings (rve_check_type).
_INT_OPS = frozenset(
    "- * / mod | & ^ << >> && || < > <= >= ieq ine".split()
)  # fmt: skip
_NULL_NOT_DEFINED = frozenset({"==", "=~", "eq", "ieq"})
_NULL_DEFINED = frozenset({"!=", "ne", "ine"})

BOOL_WORDS = {
    "yes": 1, "true": 1, "on": 1, "enable": 1,
    "no": 0, "false": 0, "off": 0, "disable": 0,
}  # fmt: skip
AF_WORDS = {"inet": 2, "INET": 2, "inet6": 10, "INET6": 10}
PROTO_NAMES = frozenset(
    {"udp", "UDP", "tcp", "TCP", "tls", "TLS", "sctp", "SCTP", "ws", "WS", "wss", "WSS"}
)

# Legacy match keywords by operand class.
LEGACY_STR = frozenset({"method", "uri", "status", "from_uri", "to_uri"})
LEGACY_INT = frozenset({"src_port", "dst_port", "af", "snd_port", "to_port", "snd_af", "to_af"})
LEGACY_PROTO = frozenset({"proto", "snd_proto", "to_proto"})
LEGACY_IP = frozenset({"src_ip", "dst_ip", "snd_ip", "to_ip"})
LEGACY = LEGACY_STR | LEGACY_INT | LEGACY_PROTO | LEGACY_IP
_MYSELF_TARGETS = frozenset({"uri", "status", "from_uri", "to_uri"}) | LEGACY_IP
_STR_MATCH_OPS = ("==", "!=", "=~", "eq", "ne")
_INT_MATCH_OPS = ("==", "!=", "eq", "ne", "<", ">", "<=", ">=")
_EQ_MATCH_OPS = ("==", "!=", "eq", "ne")

# Words that start something other than a bare-word value.
_EXPR_WORDS = (
    frozenset({"defined", "strlen", "strempty", "not", "myself", "route"})
    | BOOL_WORDS.keys()
    | AF_WORDS.keys()
    | LEGACY
)

# Core actions Kamailio accepts without parentheses.
PARENLESS_ACTIONS = frozenset(
    {"force_rport", "add_rport", "add_local_rport", "force_tcp_alias", "add_tcp_alias",
     "revert_uri", "clear_branches"}
)  # fmt: skip

_ROUTE_WORDS = frozenset(
    {"request_route", "route", "reply_route", "onreply_route", "failure_route", "branch_route",
     "onsend_route", "event_route"}
)  # fmt: skip
_TOP_WORDS = _ROUTE_WORDS | {"loadmodule", "modparam", "cfgengine", "loadpath", "mpath"}
_STMT_WORDS = frozenset({"if", "while", "switch", "return", "exit", "drop", "break"})
_EVENT_NAME_RE = re.compile(r"[a-zA-Z][0-9a-zA-Z-]*(:[a-zA-Z][0-9a-zA-Z_-]*)+")


class _TooManyErrors(Exception):
    """Raised to stop parsing once MAX_ERRORS errors were collected."""


class Parser:
    """Parses a token list; errors are collected in :attr:`errors`."""

    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.prev = tokens[0]
        self.errors: list[CfgError] = []
        self._eof_reported = False
        # what parse_config collects
        self._globals: list[A.GlobalParam] = []
        self._loadmodules: list[A.LoadModule] = []
        self._modparams: list[A.ModParam] = []
        self._routes: dict[str, dict[str, A.Route]] = {k: {} for k in A.ROUTE_KINDS}
        self._cfgengine: str | None = None

    # ------------------------------------------------------------------
    # token helpers
    # ------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != EOF:
            self.i += 1
        self.prev = tok
        return tok

    def error(self, where: Token | Pos, reason: str) -> CfgError:
        """Build an error at a token (or position); the caller raises it."""
        return CfgError.at(where.pos if isinstance(where, Token) else where, reason)

    def unexpected(self, expected: str) -> CfgError:
        """Error for the current token when ``expected`` was wanted."""
        tok = self.tok
        if tok.kind == STR and self.prev.kind == STR and self.i > 0:
            return self.error(
                tok, "adjacent strings can only be concatenated when both use double quotes"
            )
        if tok.is_op("%"):
            return self.error(tok, "'%' is not an operator in the cfg language; use 'mod'")
        return self.error(tok, f"expected {expected}, found {tok.describe()}")

    def expect_op(self, op: str, expected: str | None = None) -> Token:
        if not self.tok.is_op(op):
            raise self.unexpected(expected or f"'{op}'")
        return self.advance()

    def expect_kind(self, kind: str, expected: str) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected(expected)
        return self.advance()

    def expect_semicolon(self, after: str) -> None:
        if self.tok.is_op(";"):
            self.advance()
            return
        if self.tok.is_op("%"):
            raise self.unexpected("';'")
        raise self.error(self.prev.end, f"expected ';' after {after}")

    def record(self, err: CfgError) -> None:
        self.errors.append(err)
        if len(self.errors) >= MAX_ERRORS:
            raise _TooManyErrors

    # ------------------------------------------------------------------
    # error recovery
    # ------------------------------------------------------------------

    def sync_statement(self, start: int, stop_words: frozenset[str] = frozenset()) -> None:
        """Skip to the end of the broken statement (``;`` or a balanced block)."""
        depth = 0
        while self.tok.kind != EOF:
            tok = self.tok
            if depth == 0 and tok.kind == ID and tok.text in stop_words and self.i > start:
                break
            if tok.is_op("{"):
                depth += 1
            elif tok.is_op("}"):
                if depth == 0:
                    break
                depth -= 1
                if depth == 0:
                    self.advance()
                    break
            elif tok.is_op(";") and depth == 0:
                self.advance()
                break
            self.advance()
        if self.i == start and self.tok.kind != EOF and not self.tok.is_op("}"):
            self.advance()

    def sync_top(self, start: int) -> None:
        """Skip to something that can start a top-level item."""
        depth = 0
        while self.tok.kind != EOF:
            tok = self.tok
            if depth == 0 and self.i > start and tok.kind == ID:
                if tok.text in _TOP_WORDS or self.peek().is_op("="):
                    return
            if tok.is_op("{"):
                depth += 1
            elif tok.is_op("}"):
                depth = max(depth - 1, 0)
            self.advance()

    # ------------------------------------------------------------------
    # top level
    # ------------------------------------------------------------------

    def parse_config(self, defines: Mapping[str, str] | None = None) -> A.Config:
        """Parse a whole config; errors end up in :attr:`errors`."""
        first = self.tok
        try:
            while self.tok.kind != EOF:
                start = self.i
                try:
                    self.top_item()
                except CfgError as err:
                    self.record(err)
                    self.sync_top(start)
        except _TooManyErrors:
            pass
        return A.Config(
            tuple(self._globals),
            tuple(self._loadmodules),
            tuple(self._modparams),
            self._routes,
            self._cfgengine,
            dict(defines or {}),
            first.pos,
        )

    def top_item(self) -> None:
        tok = self.tok
        if tok.is_op(";"):
            self.advance()
            return
        if tok.kind != ID:
            raise self.error(
                tok,
                f"unexpected {tok.describe()} at top level; expected a global parameter, "
                "loadmodule, modparam or a route block",
            )
        word = tok.text
        if word in _ROUTE_WORDS:
            self.route_block()
        elif word == "loadmodule":
            self.advance()
            path = self.expect_kind(STR, "a module name in quotes after 'loadmodule'")
            self._loadmodules.append(A.LoadModule(str(path.value), tok.pos))
        elif word in ("loadpath", "mpath"):
            self.advance()
            if self.tok.is_op("="):
                self.advance()
            path = self.expect_kind(STR, f"a directory in quotes after '{word}'")
            self._globals.append(A.GlobalParam(word, str(path.value), tok.pos))
        elif word == "modparam":
            self._modparams.append(self.modparam())
        elif word == "cfgengine":
            self.advance()
            if self.tok.is_op("="):
                self.advance()
            self._cfgengine = str(self.expect_kind(STR, "an engine name in quotes").value)
        elif word in ("flags", "avpflags", "bool"):
            raise self.error(tok, f"'{word}' declarations are not supported")
        elif self.peek().is_op("=") or (self.peek().is_op(".") and self.peek(2).kind == ID):
            self._globals.append(self.global_param())
        else:
            raise self.error(
                tok,
                f"unexpected '{word}' at top level; expected a global parameter (name=value), "
                "loadmodule, modparam or a route block",
            )
        if self.tok.is_op(";"):
            self.advance()

    def modparam(self) -> A.ModParam:
        kw = self.advance()
        self.expect_op("(", "'(' after 'modparam'")
        module = self.expect_kind(STR, "the module name in quotes")
        self.expect_op(",", "',' after the module name")
        param = self.expect_kind(STR, "the parameter name in quotes")
        self.expect_op(",", "',' after the parameter name")
        value = self.modparam_value()
        self.expect_op(")", "')' to close modparam")
        return A.ModParam(str(module.value), str(param.value), value, kw.pos)

    def modparam_value(self) -> int | str:
        tok = self.tok
        if tok.kind == STR:
            return str(self.advance().value)
        number = self.int_value()
        if number is not None:
            return number
        if tok.kind == ID:
            raise self.error(tok, f"'{tok.text}' is not a string or a number (a missing #!define?)")
        raise self.unexpected("a string or a number as modparam value")

    def int_value(self) -> int | None:
        """Parse ``[-]NUMBER`` or a yes/no keyword if present."""
        tok = self.tok
        if tok.kind == INT:
            self.advance()
            return tok.number
        if tok.is_op("-") and self.peek().kind == INT:
            self.advance()
            return -self.advance().number
        if tok.kind == ID and tok.text in BOOL_WORDS:
            self.advance()
            return BOOL_WORDS[tok.text]
        return None

    def global_param(self) -> A.GlobalParam:
        name_tok = self.advance()
        name = name_tok.text
        is_cfg_var = False
        if self.tok.is_op("."):
            self.advance()
            name += "." + self.expect_kind(ID, "a variable name after '.'").text
            is_cfg_var = True
        self.expect_op("=", f"'=' after '{name}'")
        value: A.GlobalValue
        if name in ("listen", "alias"):
            value = self.listen_value(name)
        else:
            value = self.global_value(name)
        if is_cfg_var and self.tok.is_id("description", "descr", "desc"):
            self.advance()
            self.expect_kind(STR, "a description string")
        return A.GlobalParam(name, value, name_tok.pos)

    def global_value(self, name: str) -> int | str:
        tok = self.tok
        number = self.int_value()
        if number is not None:
            return number
        if tok.kind == STR:
            return str(self.advance().value)
        if tok.kind == ID and tok.text in AF_WORDS:
            self.advance()
            return AF_WORDS[tok.text]
        is_keyword = tok.kind == ID and (tok.text in _TOP_WORDS or self.peek().is_op("="))
        if (tok.kind in (ID, IP4, IP6) or tok.is_op("[")) and not is_keyword:
            return self.host()
        raise self.unexpected(f"a value for '{name}'")

    # -- listen / alias -----------------------------------------------------

    def listen_value(self, name: str) -> tuple[A.ListenAddr, ...]:
        socks = [self.socket_spec()]
        while self.continues_listen_list():
            socks.append(self.socket_spec())
        adv_host: str | None = None
        adv_port: int | None = None
        sock_name: str | None = None
        while True:
            if self.tok.is_id("advertise", "ADVERTISE"):
                self.advance()
                adv_host = self.host()
                adv_port = self.port() if self.tok.is_op(":") else None
            elif self.tok.is_id("name") and self.peek().kind == STR:
                self.advance()
                sock_name = str(self.advance().value)
            else:
                break
        return tuple(
            A.ListenAddr(proto, host, port, adv_host, adv_port, sock_name, pos)
            for proto, host, port, pos in socks
        )

    def continues_listen_list(self) -> bool:
        """Another socket on the same line (``listen=udp:a:5060 tcp:a:5060``)."""
        tok = self.tok
        if tok.pos.line != self.prev.end.line or tok.pos.file != self.prev.end.file:
            return False
        if tok.is_id("advertise", "ADVERTISE", "name") or self.peek().is_op("="):
            return False
        return tok.kind in (ID, INT, IP4, IP6, STR) or tok.is_op("[", "*")

    def socket_spec(self) -> tuple[str | None, str, int | None, Pos]:
        start = self.tok
        proto = None
        if (
            start.kind == ID and start.text in PROTO_NAMES or start.is_op("*")
        ) and self.peek().is_op(":"):
            proto = start.text.lower()
            self.advance()
            self.advance()
        host = self.host()
        port = self.port() if self.tok.is_op(":") else None
        return proto, host, port, start.pos

    def port(self) -> int:
        self.expect_op(":")
        if self.tok.is_op("*"):
            self.advance()
            return 0
        tok = self.expect_kind(INT, "a port number")
        return tok.number

    def host(self) -> str:
        """An IP (``[v6]`` unbracketed), a quoted name, or ``a.b-c.d`` host/interface."""
        tok = self.tok
        if tok.kind == STR:
            return str(self.advance().value)
        if tok.kind in (IP4, IP6) or tok.is_op("["):
            return self.ip_literal(allow_mask=False).addr
        if tok.is_op("*"):
            self.advance()
            return "*"
        if tok.kind not in (ID, INT):
            raise self.unexpected("an IP address, interface name or host name")
        parts = [self.advance().text]
        while (
            self.tok.is_op(".", "-")
            and not self.tok.ws_before
            and self.peek().kind in (ID, INT)
            and not self.peek().ws_before
        ):
            parts.append(self.advance().text)
            parts.append(self.advance().text)
        return "".join(parts)

    def ip_literal(self, allow_mask: bool) -> A.IPLit:
        tok = self.tok
        if tok.is_op("["):
            self.advance()
            addr_tok = self.expect_kind(IP6, "an IPv6 address after '['")
            self.expect_op("]", "']' after the IPv6 address")
        else:
            addr_tok = self.advance()
        addr = addr_tok.text
        if addr_tok.kind == IP4 and any(int(p) > 255 for p in addr.split(".")):
            raise self.error(addr_tok, f"invalid IPv4 address '{addr}'")
        mask = None
        if allow_mask and self.tok.is_op("/"):
            self.advance()
            mask = self.netmask(addr)
        return A.IPLit(addr, mask, tok.pos)

    def netmask(self, addr: str) -> int:
        tok = self.tok
        bits = 32 if ":" not in addr else 128
        if tok.kind == INT and 0 <= tok.number <= bits:
            self.advance()
            return tok.number
        if tok.kind in (IP4, IP6):
            self.advance()
            try:
                return ipaddress.ip_network(f"{addr}/{tok.text}", strict=False).prefixlen
            except ValueError:
                raise self.error(tok, f"invalid netmask '{tok.text}'") from None
        raise self.unexpected(f"a netmask (bit count 0-{bits} or address)")

    # -- route blocks -------------------------------------------------------

    def route_block(self) -> None:
        kw = self.advance()
        word = kw.text
        name = ""
        if self.tok.is_op("["):
            if word in ("request_route", "reply_route"):
                raise self.error(self.tok, f"'{word}' takes no name")
            self.advance()
            name = self.event_name() if word == "event_route" else self.route_name()
            self.expect_op("]", "']' after the route name")
        elif word == "event_route":
            raise self.unexpected("'[' and an event name (group:name) after 'event_route'")
        kind = _route_kind(word, name)
        if kind == A.REPLY:
            name = ""
        body = self.block()
        self.add_route(A.Route(kind, name, body, kw.pos), kw)

    def add_route(self, route: A.Route, kw: Token) -> None:
        table = self._routes[route.kind]
        old = table.get(route.name)
        if old is None:
            table[route.name] = route
        elif route.name:
            self.record(self.error(kw, f"duplicate route: {kw.text}[{route.name}]"))
        else:
            # Kamailio appends the actions of repeated unnamed blocks.
            body = A.Block(old.body.stmts + route.body.stmts, old.body.pos)
            table[""] = A.Route(old.kind, "", body, old.pos)

    def route_name(self) -> str:
        tok = self.tok
        if tok.kind in (ID, STR):
            self.advance()
            return str(tok.value)
        if tok.kind == INT:
            self.advance()
            return str(tok.value)
        raise self.unexpected("a route name (identifier, number or string)")

    def event_name(self) -> str:
        first = self.tok
        parts: list[str] = []
        while not self.tok.is_op("]") and self.tok.kind != EOF:
            if parts and self.tok.ws_before:
                break
            parts.append(self.advance().text)
        name = "".join(parts)
        if not _EVENT_NAME_RE.fullmatch(name):
            raise self.error(first, f"invalid event route name '{name}' (expected group:name)")
        return name

    # ------------------------------------------------------------------
    # statements
    # ------------------------------------------------------------------

    def block(self) -> A.Block:
        lbrace = self.expect_op("{", "'{'")
        stmts = self.statements(lambda t: t.is_op("}"), lbrace)
        if self.tok.is_op("}"):
            self.advance()
        return A.Block(tuple(stmts), lbrace.pos)

    def statements(
        self,
        stop: Callable[[Token], bool],
        opener: Token,
        stop_words: frozenset[str] = frozenset(),
    ) -> list[A.Stmt]:
        """Statements up to ``stop`` (not consumed), recovering from errors."""
        stmts: list[A.Stmt] = []
        while not stop(self.tok):
            if self.tok.kind == EOF:
                self.report_unclosed(opener)
                break
            start = self.i
            try:
                stmt = self.statement()
            except CfgError as err:
                self.record(err)
                self.sync_statement(start, stop_words)
                continue
            if stmt is not None:
                stmts.append(stmt)
        return stmts

    def report_unclosed(self, opener: Token) -> None:
        """Report (once) a block left open at end of file."""
        if self._eof_reported:
            return
        self._eof_reported = True
        where = f"line {opener.pos.line}, column {opener.pos.col}"
        if opener.pos.file != self.tok.pos.file:
            where += f" of {opener.pos.file}"
        self.record(self.error(self.tok, f"missing '}}' to close the block opened at {where}"))

    def statement(self) -> A.Stmt | None:
        tok = self.tok
        if tok.is_op(";"):
            self.advance()
            return None
        if tok.is_op("{"):
            return self.block()
        if tok.kind == PV:
            return self.assignment()
        if tok.kind != ID:
            raise self.unexpected("a statement")
        word = tok.text
        nxt = self.peek()
        if word in _STMT_WORDS:
            return self.keyword_statement(word)
        if word == "route" and nxt.is_op("("):
            call = self.route_call()
            self.expect_semicolon("route(...)")
            return call
        if word in ("case", "default"):
            raise self.error(tok, f"'{word}' outside of a switch")
        if word == "else":
            raise self.error(tok, "'else' without a matching 'if'")
        if nxt.is_op("("):
            self.advance()
            args = self.call_args(word)
            self.expect_semicolon(f"function call '{word}(...)'")
            return A.Call(word, args, tok.pos)
        if word in PARENLESS_ACTIONS:
            self.advance()
            self.expect_semicolon(f"'{word}'")
            return A.Call(word, (), tok.pos)
        if nxt.is_op(";"):
            raise self.error(nxt, f"missing '(...)' after function name '{word}'")
        if nxt.is_op("=", ":="):
            raise self.error(
                tok, f"'{word}' is not a pseudo-variable; did you mean '$var({word})'?"
            )
        raise self.error(tok, f"unexpected '{word}': expected a statement")

    def keyword_statement(self, word: str) -> A.Stmt:
        if word == "if":
            return self.if_statement()
        if word == "while":
            kw = self.advance()
            cond = self.expr()
            return A.While(cond, self.body(), kw.pos)
        if word == "switch":
            return self.switch_statement()
        kw = self.advance()
        if word == "break":
            self.expect_semicolon("'break'")
            return A.Break(kw.pos)
        value: A.Expr | None = None
        if self.tok.is_op("(") and self.peek().is_op(")"):
            self.advance()
            self.advance()
        elif self.starts_expr(self.tok):
            value = self.expr()
        self.expect_semicolon(f"'{word}'")
        if word == "return":
            return A.Return(value, kw.pos)
        return A.Exit(value, kw.pos) if word == "exit" else A.Drop(value, kw.pos)

    @staticmethod
    def starts_expr(tok: Token) -> bool:
        """Whether ``tok`` can begin an expression (used after return/exit/drop)."""
        if tok.kind in (INT, STR, PV, CAST):
            return True
        if tok.kind == ID:
            return tok.text not in _STMT_WORDS and tok.text not in ("case", "default", "else")
        return tok.is_op("(", "!", "-", "~")

    def if_statement(self) -> A.If:
        kw = self.advance()
        cond = self.expr()
        then = self.body()
        orelse = None
        if self.tok.is_id("else"):
            self.advance()
            orelse = self.body()
        return A.If(cond, then, orelse, kw.pos)

    def body(self) -> A.Block:
        """A block, or a single statement wrapped in a Block."""
        if self.tok.is_op("{"):
            return self.block()
        tok = self.tok
        if tok.kind == EOF:
            raise self.unexpected("a statement or '{'")
        stmt = self.statement()
        return A.Block((stmt,) if stmt is not None else (), tok.pos)

    def switch_statement(self) -> A.Switch:
        kw = self.advance()
        value = self.expr()
        lbrace = self.expect_op("{", "'{' after the switch expression")
        cases: list[A.Case] = []
        while not self.tok.is_op("}"):
            if self.tok.kind == EOF:
                self.report_unclosed(lbrace)
                break
            try:
                cases.append(self.case(lbrace))
            except CfgError as err:
                self.record(err)
                self.sync_switch()
        self.advance()
        self.check_cases(cases)
        return A.Switch(value, tuple(cases), kw.pos)

    def sync_switch(self) -> None:
        """Skip to the next ``case``/``default`` label or the switch's ``}``."""
        depth = 0
        while self.tok.kind != EOF:
            if depth == 0 and (self.tok.is_id("case", "default") or self.tok.is_op("}")):
                return
            if self.tok.is_op("{"):
                depth += 1
            elif self.tok.is_op("}"):
                depth -= 1
            self.advance()

    def case(self, opener: Token) -> A.Case:
        tok = self.tok
        value: A.IntLit | A.StrLit | None = None
        is_regex = False
        if tok.is_id("case"):
            self.advance()
            if self.tok.is_op("/"):
                self.advance()
                is_regex = True
            value = self.case_value(is_regex)
            self.expect_op(":", "':' after the case value")
        elif tok.is_id("default"):
            self.advance()
            self.expect_op(":", "':' after 'default'")
        else:
            raise self.unexpected("'case' or 'default'")
        stop_words = frozenset({"case", "default"})

        def stop(t: Token) -> bool:
            return t.is_op("}") or t.is_id("case", "default")

        body = self.statements(stop, opener, stop_words)
        return A.Case(value, tuple(body), is_regex, tok.pos)

    def case_value(self, is_regex: bool) -> A.IntLit | A.StrLit:
        tok = self.tok
        value = self.expr()
        if isinstance(value, A.StrLit) or (isinstance(value, A.IntLit) and not is_regex):
            return value
        what = "a string (regular expression)" if is_regex else "a constant number or string"
        raise self.error(tok, f"case value must be {what}")

    def check_cases(self, cases: list[A.Case]) -> None:
        """Record (not raise: the switch is complete) bad label combinations."""
        defaults = [c for c in cases if c.value is None]
        if len(defaults) > 1:
            self.record(self.error(defaults[1].pos, "too many 'default:' labels in switch"))
        ints = [c for c in cases if isinstance(c.value, A.IntLit)]
        strs = [c for c in cases if isinstance(c.value, A.StrLit)]
        if ints and strs:
            bad = max(ints[0], strs[0], key=lambda c: (c.pos.line, c.pos.col))
            self.record(self.error(bad.pos, "mixed integer and string/regex cases in switch"))

    def assignment(self) -> A.Assign:
        pv_tok = self.advance()
        target = self.pv_ref(pv_tok)
        if not isinstance(target, A.PVRef):
            raise self.error(pv_tok, "cannot assign to $null")
        if target.transforms:
            raise self.error(pv_tok, "a pseudo-variable with transformations cannot be assigned")
        op = self.tok
        if op.is_op("+="):
            raise self.error(op, "'+=' is not supported; write '$x = $x + value'")
        if not op.is_op("=", ":="):
            raise self.unexpected(f"'=' after {pv_tok.describe()}")
        self.advance()
        value = self.expr()
        self.expect_semicolon("assignment")
        return A.Assign(target, op.text, value, pv_tok.pos)

    def route_call(self) -> A.RouteCall:
        kw = self.advance()
        self.expect_op("(", "'(' after 'route'")
        tok = self.tok
        name: str | A.Expr
        if self.peek().is_op(")") and (
            tok.kind in (STR, INT) or (tok.kind == ID and tok.text not in _EXPR_WORDS)
        ):
            name = str(self.advance().value)
        else:
            name = self.expr()
        self.expect_op(")", "')' after the route name")
        return A.RouteCall(name, kw.pos)

    def call_args(self, name: str) -> tuple[A.Expr, ...]:
        self.expect_op("(")
        args: list[A.Expr] = []
        if not self.tok.is_op(")"):
            while True:
                args.append(self.call_arg())
                if not self.tok.is_op(","):
                    break
                self.advance()
        self.expect_op(")", f"',' or ')' in the arguments of '{name}'")
        return tuple(args)

    def call_arg(self) -> A.Expr:
        """A function argument: an expression, a bare IP or a bare word."""
        tok = self.tok
        nxt = self.peek()
        if tok.kind in (IP4, IP6) or (tok.is_op("[") and nxt.kind == IP6):
            return self.ip_literal(allow_mask=False)
        if tok.is_id("uri") and nxt.is_op(":") and self.peek(2).is_id("host", "port"):
            self.advance()
            self.advance()
            return A.Ident("uri:" + self.advance().text, tok.pos)
        if tok.kind == ID and tok.text not in _EXPR_WORDS and not nxt.is_op("("):
            start = self.i
            name = self.host()
            if self.tok.is_op(",", ")"):
                return A.Ident(name, tok.pos)
            self.i = start  # not a lone word: re-read it as an expression
            self.prev = self.toks[start - 1] if start else self.toks[0]
        return self.expr()

    # ------------------------------------------------------------------
    # expressions
    # ------------------------------------------------------------------

    def expr(self) -> A.Expr:
        """A full, type-checked expression."""
        value = self.binary(1)
        check_types(value)
        return value

    def binary_op(self) -> str | None:
        tok = self.tok
        if tok.kind == OP and tok.text in BINARY_PREC:
            return tok.text
        if tok.kind == ID and tok.text in _WORD_OPS:
            return tok.text
        return None

    def binary(self, min_prec: int) -> A.Expr:
        left = self.unary()
        while True:
            op = self.binary_op()
            if op is None or BINARY_PREC[op] < min_prec:
                return left
            op_tok = self.advance()
            right = self.binary(BINARY_PREC[op] + 1)
            left = make_binop(_OP_ALIASES.get(op, op), left, right, op_tok.pos)

    def unary(self) -> A.Expr:
        tok = self.tok
        if tok.is_op("!") or tok.is_id("not"):
            self.advance()
            return A.UnaryOp("!", self.unary(), tok.pos)
        if tok.is_op("-"):
            self.advance()
            operand = self.unary()
            if isinstance(operand, A.IntLit):
                return A.IntLit(-operand.value, tok.pos)
            return A.UnaryOp("-", operand, tok.pos)
        if tok.is_op("~"):
            self.advance()
            return A.UnaryOp("~", self.unary(), tok.pos)
        if tok.is_id("defined"):
            self.advance()
            return A.Defined(self.unary(), tok.pos)
        if tok.kind == CAST:
            self.advance()
            return A.Cast(str(tok.value), self.unary(), tok.pos)
        return self.primary()

    def primary(self) -> A.Expr:
        tok = self.tok
        if tok.kind == INT:
            self.advance()
            return A.IntLit(tok.number, tok.pos)
        if tok.kind == STR:
            self.advance()
            if self.tok.kind == STR:
                raise self.unexpected("an operator")
            return A.StrLit(str(tok.value), tok.pos)
        if tok.kind == PV:
            self.advance()
            return self.pv_ref(tok)
        if tok.is_op("("):
            self.advance()
            inner = self.binary(1)
            self.expect_op(")", "')'")
            return inner
        if tok.kind == ID:
            return self.word_expr()
        if tok.kind in (IP4, IP6):
            raise self.error(
                tok,
                "a bare IP address is only allowed in comparisons with src_ip/dst_ip "
                "or as a function argument; quote it",
            )
        if tok.is_op("@"):
            raise self.error(tok, "select expressions (@...) are not supported")
        if tok.is_op("{"):
            raise self.error(tok, "a '{ ... }' block is not supported inside an expression")
        raise self.unexpected("an expression")

    def word_expr(self) -> A.Expr:
        """An expression starting with an identifier."""
        tok = self.tok
        word = tok.text
        nxt = self.peek()
        if word in BOOL_WORDS:
            self.advance()
            return A.IntLit(BOOL_WORDS[word], tok.pos)
        if word in AF_WORDS:
            self.advance()
            return A.IntLit(AF_WORDS[word], tok.pos)
        if word in ("strlen", "strempty"):
            self.advance()
            self.expect_op("(", f"'(' after '{word}'")
            inner = self.binary(1)
            self.expect_op(")", "')'")
            return (A.StrLen if word == "strlen" else A.StrEmpty)(inner, tok.pos)
        if word in LEGACY or (word == "msg" and nxt.is_op(":") and self.peek(2).is_id("len")):
            return self.legacy_match()
        if word == "myself":
            return self.myself_match()
        if word == "route" and nxt.is_op("("):
            return self.route_call()
        if nxt.is_op("("):
            self.advance()
            return A.FuncCallExpr(word, self.call_args(word), tok.pos)
        if word in _STMT_WORDS or word in ("case", "default", "else"):
            raise self.unexpected("an expression")
        raise self.error(
            tok, f"unexpected word '{word}' in expression (missing '(...)' or quotes?)"
        )

    def pv_ref(self, tok: Token) -> A.PVRef | A.Null:
        spec = tok.value
        assert isinstance(spec, PVSpec)
        if spec.name == "null" and spec.arg is None and spec.index is None and not spec.transforms:
            return A.Null(tok.pos)
        return A.PVRef(spec.name, spec.arg, spec.index, spec.transforms, spec.text, tok.pos)

    def legacy_match(self) -> A.LegacyMatch:
        kw = self.advance()
        keyword = kw.text
        if keyword == "msg":
            self.advance()
            self.advance()
            keyword = "msg:len"
        if keyword in LEGACY_STR or keyword in LEGACY_IP:
            ops: tuple[str, ...] = _STR_MATCH_OPS
        elif keyword in LEGACY_PROTO:
            ops = _EQ_MATCH_OPS
        else:
            ops = _INT_MATCH_OPS
        op_tok = self.tok
        op = self.binary_op()
        if op not in ops:
            raise self.error(
                op_tok, f"invalid operator after '{keyword}': expected one of {', '.join(ops)}"
            )
        self.advance()
        op = {"eq": "==", "ne": "!="}.get(op, op)
        value = self.legacy_value(keyword, op)
        return A.LegacyMatch(keyword, op, value, kw.pos)

    def legacy_value(self, keyword: str, op: str) -> A.Expr:
        tok = self.tok
        nxt = self.peek()
        bare_word = tok.kind == ID and tok.text not in _EXPR_WORDS and not nxt.is_op("(")
        if tok.is_id("myself"):
            if keyword not in _MYSELF_TARGETS:
                raise self.error(tok, f"'{keyword}' cannot be compared with 'myself'")
            self.advance()
            return A.Myself(tok.pos)
        if keyword in LEGACY_PROTO and (
            tok.kind == ID and tok.text in PROTO_NAMES or tok.is_op("*")
        ):
            self.advance()
            return A.Ident(tok.text, tok.pos)
        if keyword == "method" and bare_word:
            self.advance()
            return A.StrLit(tok.text, tok.pos)
        if keyword in LEGACY_IP:
            if tok.kind in (IP4, IP6) or (tok.is_op("[") and nxt.kind == IP6):
                return self.ip_literal(allow_mask=True)
            if bare_word:
                return A.Ident(self.host(), tok.pos)
        prec = _CMP_PREC + 1 if op in ("<", ">", "<=", ">=") else _EQ_PREC + 1
        value = self.binary(prec)
        check_types(value)
        return value

    def myself_match(self) -> A.LegacyMatch:
        tok = self.advance()
        op_tok = self.tok
        op = self.binary_op()
        target = self.peek()
        if op not in _EQ_MATCH_OPS or target.kind != ID or target.text not in _MYSELF_TARGETS:
            raise self.error(
                tok,
                "'myself' can only be compared with uri, from_uri, to_uri, src_ip or dst_ip "
                "(e.g. 'uri == myself')",
            )
        self.advance()
        self.advance()
        op = {"eq": "==", "ne": "!="}.get(op_tok.text, op_tok.text)
        return A.LegacyMatch(target.text, op, A.Myself(tok.pos), tok.pos)


# --------------------------------------------------------------------------
# expression helpers
# --------------------------------------------------------------------------


def make_binop(op: str, left: A.Expr, right: A.Expr, pos: Pos) -> A.Expr:
    """Build a BinOp, rewriting comparisons with ``$null`` like Kamailio."""
    if isinstance(right, A.Null):
        if op in _NULL_NOT_DEFINED:
            return A.UnaryOp("!", A.Defined(left, pos), pos)
        if op in _NULL_DEFINED:
            return A.Defined(left, pos)
    return A.BinOp(op, left, right, pos)


def start_pos(expr: A.Expr) -> Pos:
    """Position where an expression starts (BinOp.pos is its operator)."""
    while isinstance(expr, A.BinOp):
        expr = expr.left
    return expr.pos


def _mismatch(expr: A.Expr, found: str, expected: str) -> CfgError:
    return CfgError.at(start_pos(expr), f"type mismatch: {found} instead of {expected}")


def check_types(expr: A.Expr) -> str | None:
    """Static type check of an expression (Kamailio's ``rve_check_type``).

    Returns ``"int"``, ``"str"`` or None (known only at run time); raises
    :class:`CfgError` on a mismatch such as ``1 + "2"`` or ``"a" - 1``.
    """
    if isinstance(expr, A.IntLit):
        return "int"
    if isinstance(expr, A.StrLit):
        return "str"
    if isinstance(expr, (A.FuncCallExpr, A.RouteCall, A.LegacyMatch)):
        return "int"
    if isinstance(expr, A.Cast):
        return expr.to
    if isinstance(expr, A.UnaryOp):
        if check_types(expr.operand) == "str":
            raise _mismatch(expr.operand, "str", "int")
        return "int"
    if isinstance(expr, (A.Defined, A.StrLen, A.StrEmpty)):
        if check_types(expr.expr) == "int":
            raise _mismatch(expr.expr, "int", "str")
        return "int"
    if isinstance(expr, A.BinOp):
        return _check_binop(expr)
    return None


def _check_binop(expr: A.BinOp) -> str | None:
    left_type = check_types(expr.left)
    if expr.op in _INT_OPS:
        if left_type == "str":
            raise _mismatch(expr.left, "str", "int")
        if check_types(expr.right) == "str":
            raise _mismatch(expr.right, "str", "int")
        return "int"
    right_type = check_types(expr.right)
    if left_type and right_type and left_type != right_type and left_type != "str":
        raise _mismatch(expr.right, right_type, left_type)
    if expr.op in ("eq", "ne", "=~") and left_type == "int":
        raise _mismatch(expr.left, "int", "str")
    return left_type if expr.op == "+" else "int"


def _route_kind(word: str, name: str) -> str:
    if word in ("request_route", "route"):
        return A.ROUTE if name else A.REQUEST
    if word == "reply_route":
        return A.REPLY
    if word == "onreply_route":
        return A.ONREPLY if name and name != "0" else A.REPLY
    return {
        "failure_route": A.FAILURE,
        "branch_route": A.BRANCH,
        "onsend_route": A.ONSEND,
        "event_route": A.EVENT,
    }[word]


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------


def _parse(pp: Preprocessed, filename: str) -> A.Config:
    lexer = Lexer(pp.chunks, filename)
    tokens = lexer.run()
    parser = Parser(tokens)
    config = parser.parse_config(pp.defines)
    errors = list(pp.errors) + list(lexer.errors)
    # Skip parser errors that merely echo a lexer error (same place, or the
    # end of file after an unterminated string/comment swallowed the rest).
    seen = {(e.file, e.line, e.col) for e in errors}
    if lexer.errors:
        eof = tokens[-1].pos
        seen.add((eof.file, eof.line, eof.col))
    errors += [e for e in parser.errors if (e.file, e.line, e.col) not in seen]
    raise_errors(errors)
    return config


def parse_file(path: str, defines: dict[str, str] | None = None) -> A.Config:
    """Preprocess, lex and parse the cfg file at ``path``.

    ``defines`` are extra ``#!define`` s, as given with ``-A NAME[=VALUE]``.
    Raises :class:`CfgError` (or ``CfgErrors``) on errors.
    """
    return _parse(Preprocessor(defines).run_file(path), path)


def parse_text(
    text: str, filename: str = "<string>", defines: dict[str, str] | None = None
) -> A.Config:
    """Like :func:`parse_file` for cfg text; ``filename`` is used in positions
    and as the base directory of relative ``include_file`` paths."""
    return _parse(Preprocessor(defines).run_text(text, filename), filename)


def parse_expression(text: str, filename: str = "<expr>") -> A.Expr:
    """Parse (and type-check) a single expression, without preprocessing."""
    parser = Parser(tokenize_text(text, filename))
    value = parser.expr()
    if parser.tok.kind != EOF:
        raise parser.unexpected("end of expression")
    return value
