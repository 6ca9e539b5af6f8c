"""AST of the Kamailio native cfg language.

Every node is a frozen, slotted dataclass with a ``pos`` (file, line, col)
field. ``pos`` is excluded from equality, so trees can be compared
structurally (handy in tests). Child sequences are tuples.

Normalisations done by the parser (so the compiler sees one form only):

* ``and``/``or``/``not`` become ``&&``/``||``/``!``; ``-<number>`` becomes a
  negative :class:`IntLit`; ``yes/true/on/enable`` -> ``IntLit(1)``,
  ``no/false/off/disable`` -> ``IntLit(0)``; ``INET``/``INET6`` -> ``IntLit(2)``
  / ``IntLit(10)`` (Linux AF_* values, as Kamailio's lexer does).
* ``X == $null`` (also ``=~ eq ieq``) becomes ``UnaryOp('!', Defined(X))`` and
  ``X != $null`` (also ``ne ine``) becomes ``Defined(X)``, exactly as
  Kamailio's grammar does. A ``$null`` elsewhere is a :class:`Null`.
* ``if``/``else``/``while`` bodies are always :class:`Block` s.
* ``myself == uri`` becomes ``LegacyMatch('uri', '==', Myself())``; in
  legacy matches ``eq``/``ne`` become ``==``/``!=``.
* ``$hdr(X[1])`` is read like ``$(hdr(X)[1])`` (index split off the argument).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Pos:
    """A source position: file name, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOPOS = Pos("<none>", 0, 0)


def _pos() -> Pos:
    """A ``pos`` field: defaults to NOPOS and is ignored by ``==``."""
    return field(default=NOPOS, compare=False)


# --------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntLit:
    """Integer literal (decimal, hex, octal, binary, yes/no keywords)."""

    value: int
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class StrLit:
    """String literal: ``"..."`` escapes decoded and adjacent ``"..."`` joined;
    ``'...'`` is raw (Kamailio decodes no escapes in single quotes).

    The value may still contain PV references (``"$ru"``); expanding them is
    up to the function that receives the string.
    """

    value: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class PVRef:
    """A pseudo-variable reference such as ``$ru``, ``$var(x)``, ``$(hdr(X)[1]{s.int})``.

    * ``name``: class name (``ru``, ``var``, ``hdr``, ``xavp``, ``?``...).
    * ``arg``: raw text inside the parentheses (``x``, ``a[0]=>b``) or None.
    * ``index``: raw index text (``1``, ``-1``, ``*``, ``$var(i)``) from
      ``$(name(arg)[index])``, or from a trailing ``[N]`` inside a plain
      argument (``$hdr(X[1])`` is read as arg ``X``, index ``1``); else None.
    * ``transforms``: raw transformation bodies without braces
      (``("s.int", "s.substr,1,2")``).
    * ``text``: the PV exactly as written.
    """

    name: str
    arg: str | None = None
    index: str | None = None
    transforms: tuple[str, ...] = ()
    text: str = field(default="", compare=False)
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Null:
    """``$null``."""

    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class UnaryOp:
    """Prefix operator: ``!`` (logical not), ``-`` (negation), ``~`` (bitwise not)."""

    op: str
    operand: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class BinOp:
    """Binary operator; ``pos`` is the operator's position.

    ``op`` is one of ``* / mod + - < > <= >= == != =~ eq ne ieq ine >> << ^ & | && ||``.
    """

    op: str
    left: Expr
    right: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Cast:
    """``(int)expr`` or ``(str)expr``; ``to`` is ``"int"`` or ``"str"``."""

    to: str
    expr: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Defined:
    """``defined expr``: true if the value is not ``$null``."""

    expr: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class StrLen:
    """``strlen(expr)``."""

    expr: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class StrEmpty:
    """``strempty(expr)``."""

    expr: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Myself:
    """The ``myself`` keyword (only as a legacy-match value)."""

    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class IPLit:
    """Bare IP address or network: ``1.2.3.4``, ``[::1]``, ``10.0.0.0/8``.

    ``mask`` is the prefix length (a dotted netmask is converted) or None.
    Only appears as a legacy-match value or a function argument.
    """

    addr: str
    mask: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Ident:
    """A bare word used as a value, e.g. ``UDP`` in ``proto == UDP``,
    a host name (``forward(sip.example.com)``, ``src_ip == host.example.com``),
    a flag name (``setflag(FLAG)``) or ``uri:host`` / ``uri:port``.

    Only appears as a legacy-match value or a function argument.
    """

    name: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class LegacyMatch:
    """Keyword match such as ``method == "INVITE"``, ``uri == myself``,
    ``src_ip == 10.0.0.0/8``, ``proto == UDP``, ``src_port > 5000``.

    ``keyword``: method, uri, status, from_uri, to_uri, src_ip, src_port,
    dst_ip, dst_port, snd_ip, snd_port, snd_proto, snd_af, to_ip, to_port,
    proto, af, msg:len (aliases ``to_proto``/``to_af`` are kept as written).
    ``op``: ``== != =~ < > <= >=`` (``eq``/``ne`` are normalised to ``==``/``!=``).
    ``value``: an expression, :class:`Myself`, :class:`IPLit` or
    :class:`Ident` (bare protocol names / host names; a bare word after
    ``method`` becomes a :class:`StrLit`).
    """

    keyword: str
    op: str
    value: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class FuncCallExpr:
    """A function call used as an expression (value: 1 if it returned > 0, else 0)."""

    name: str
    args: tuple[Expr, ...] = ()
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class RouteCall:
    """``route(NAME)``, as a statement or an expression.

    ``name`` is the route name as a string for ``route(X)``, ``route(1)``,
    ``route("X")``; an expression (e.g. a :class:`PVRef`) for dynamic names.
    """

    name: str | Expr
    pos: Pos = _pos()


Expr: TypeAlias = (
    IntLit
    | StrLit
    | PVRef
    | Null
    | UnaryOp
    | BinOp
    | Cast
    | Defined
    | StrLen
    | StrEmpty
    | Myself
    | IPLit
    | Ident
    | LegacyMatch
    | FuncCallExpr
    | RouteCall
)


# --------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """``{ stmt* }`` (also the normalised body of if/else/while)."""

    stmts: tuple[Stmt, ...] = ()
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Call:
    """Function call statement ``name(args);`` (module or core function)."""

    name: str
    args: tuple[Expr, ...] = ()
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Assign:
    """``pv = expr;`` or ``pv := expr;`` (``op`` is ``"="`` or ``":="``)."""

    pv: PVRef
    op: str
    expr: Expr
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class If:
    """``if (cond) then [else orelse]``; ``else if`` is an If inside ``orelse``."""

    cond: Expr
    then: Block
    orelse: Block | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class While:
    """``while (cond) body``."""

    cond: Expr
    body: Block
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Case:
    """One ``case value:`` (``value`` None for ``default:``) with its statements.

    ``value`` is an :class:`IntLit` or :class:`StrLit`; ``is_regex`` is set
    for ``case /"regex":``. Cases fall through like in C.
    """

    value: IntLit | StrLit | None
    body: tuple[Stmt, ...] = ()
    is_regex: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Switch:
    """``switch (expr) { case ...: ... default: ... }``."""

    expr: Expr
    cases: tuple[Case, ...] = ()
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Return:
    """``return [expr];`` (None means ``return;`` / ``return();``)."""

    expr: Expr | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Exit:
    """``exit [expr];``."""

    expr: Expr | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Drop:
    """``drop [expr];``."""

    expr: Expr | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Break:
    """``break;``."""

    pos: Pos = _pos()


Stmt: TypeAlias = (
    Block | Call | Assign | If | While | Switch | Return | Exit | Drop | Break | RouteCall
)


# --------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenAddr:
    """One socket of a ``listen=`` / ``alias=`` line.

    ``proto`` is lower case (``udp``, ``tcp``, ``tls``, ``sctp``, ``ws``,
    ``wss``, ``*``) or None; ``host`` is an IP (IPv6 without brackets), host
    or interface name, or ``*``; ``port`` None when absent (``*`` -> 0).
    ``advertise_*`` and ``name`` come from ``advertise host[:port]`` and
    ``name "x"`` and are shared by all sockets of the line.
    """

    proto: str | None
    host: str
    port: int | None = None
    advertise_host: str | None = None
    advertise_port: int | None = None
    name: str | None = None
    pos: Pos = _pos()


GlobalValue: TypeAlias = int | str | tuple[ListenAddr, ...]


@dataclass(frozen=True, slots=True)
class GlobalParam:
    """``name = value``; value is int, str, or a tuple of ListenAddr for listen/alias.

    The name is kept as written (``mpath``/``loadpath``, ``workdir``/``wdir``...),
    ``group.var`` for custom cfg vars. ``loadpath "dir"`` is stored here too.
    """

    name: str
    value: GlobalValue
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class LoadModule:
    """``loadmodule "path"``."""

    path: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class ModParam:
    """``modparam("module", "param", value)``; ``module`` may be a regex."""

    module: str
    param: str
    value: int | str
    pos: Pos = _pos()


# Route kinds (keys of Config.routes).
REQUEST = "request"  # request_route { } / route { }          name ""
ROUTE = "route"  # route[NAME] { }                            sub-routes
REPLY = "reply"  # reply_route { } / onreply_route { }        name ""
ONREPLY = "onreply"  # onreply_route[NAME] { }                 tm reply routes
FAILURE = "failure"  # failure_route[NAME] { }
BRANCH = "branch"  # branch_route[NAME] { }
ONSEND = "onsend"  # onsend_route { }                          name ""
EVENT = "event"  # event_route[group:name] { }                name "group:name"
ROUTE_KINDS = (REQUEST, ROUTE, REPLY, ONREPLY, FAILURE, BRANCH, ONSEND, EVENT)


@dataclass(frozen=True, slots=True)
class Route:
    """A route block; ``name`` is ``""`` for the unnamed ones."""

    kind: str
    name: str
    body: Block
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Config:
    """A whole parsed configuration (includes already spliced in).

    ``routes[kind][name]``; every kind of :data:`ROUTE_KINDS` is present.
    ``defines`` is the final preprocessor define table.
    """

    globals: tuple[GlobalParam, ...]
    loadmodules: tuple[LoadModule, ...]
    modparams: tuple[ModParam, ...]
    routes: dict[str, dict[str, Route]]
    cfgengine: str | None = None
    defines: dict[str, str] = field(default_factory=dict, compare=False)
    pos: Pos = _pos()

    def global_values(self, name: str) -> list[GlobalValue]:
        """All values assigned to global parameter ``name``, in file order."""
        return [g.value for g in self.globals if g.name == name]


Node: TypeAlias = (
    Expr | Stmt | Case | ListenAddr | GlobalParam | LoadModule | ModParam | Route | Config
)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def iter_nodes(node: object) -> Iterator[object]:
    """Yield ``node`` and all AST nodes below it, depth first, in source order."""
    if not dataclasses.is_dataclass(node) or isinstance(node, (type, Pos)):
        return
    yield node
    for f in dataclasses.fields(node):
        if f.name == "pos":
            continue
        yield from _iter_value(getattr(node, f.name))


def _iter_value(value: object) -> Iterator[object]:
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _iter_value(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _iter_value(item)
    else:
        yield from iter_nodes(value)


def dump(node: object) -> str:
    """Compact s-expression of an expression/statement, for tests and debugging.

    ``$var(f) & 4 == 4`` dumps as ``(& $var(f) (== 4 4))``.
    """
    if isinstance(node, IntLit):
        return str(node.value)
    if isinstance(node, StrLit):
        return '"' + node.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(node, PVRef):
        return _dump_pv(node)
    if isinstance(node, Null):
        return "$null"
    if isinstance(node, Myself):
        return "myself"
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, IPLit):
        return node.addr if node.mask is None else f"{node.addr}/{node.mask}"
    if isinstance(node, UnaryOp):
        return f"({node.op} {dump(node.operand)})"
    if isinstance(node, BinOp):
        return f"({node.op} {dump(node.left)} {dump(node.right)})"
    if isinstance(node, LegacyMatch):
        return f"({node.op} {node.keyword} {dump(node.value)})"
    if isinstance(node, Cast):
        return f"(({node.to}) {dump(node.expr)})"
    if isinstance(node, (Defined, StrLen, StrEmpty)):
        word = {Defined: "defined", StrLen: "strlen", StrEmpty: "strempty"}[type(node)]
        return f"({word} {dump(node.expr)})"
    if isinstance(node, (FuncCallExpr, Call)):
        return f"{node.name}(" + ", ".join(dump(a) for a in node.args) + ")"
    if isinstance(node, RouteCall):
        name = node.name if isinstance(node.name, str) else dump(node.name)
        return f"route({name})"
    return _dump_stmt(node)


def _dump_pv(pv: PVRef) -> str:
    inner = pv.name + (f"({pv.arg})" if pv.arg is not None else "")
    if pv.index is None and not pv.transforms:
        return "$" + inner
    index = f"[{pv.index}]" if pv.index is not None else ""
    return "$(" + inner + index + "".join("{" + t + "}" for t in pv.transforms) + ")"


def _dump_stmt(node: object) -> str:
    if isinstance(node, Block):
        return "{" + " ".join(_dump_stmt_term(s) for s in node.stmts) + "}"
    if isinstance(node, Assign):
        return f"{dump(node.pv)} {node.op} {dump(node.expr)}"
    if isinstance(node, If):
        text = f"if {dump(node.cond)} {dump(node.then)}"
        return text + (f" else {dump(node.orelse)}" if node.orelse is not None else "")
    if isinstance(node, While):
        return f"while {dump(node.cond)} {dump(node.body)}"
    if isinstance(node, Switch):
        cases = " ".join(_dump_case(c) for c in node.cases)
        return f"switch {dump(node.expr)} {{{cases}}}"
    if isinstance(node, (Return, Exit, Drop)):
        word = type(node).__name__.lower()
        return word if node.expr is None else f"{word} {dump(node.expr)}"
    if isinstance(node, Break):
        return "break"
    return repr(node)


def _dump_stmt_term(node: object) -> str:
    text = dump(node)
    return text if isinstance(node, (Block, If, While, Switch)) else text + ";"


def _dump_case(case: Case) -> str:
    if case.value is None:
        label = "default:"
    else:
        label = "case " + ("/" if case.is_regex else "") + dump(case.value) + ":"
    return " ".join([label, *(_dump_stmt_term(s) for s in case.body)])
