"""Pseudo-variables (``$ru``, ``$var(x)``, ``$hdr(Name)``...) and format strings.

:func:`compile_pv` turns a PV reference into a :class:`PV` with a getter and,
for writable PVs, a setter, once at cfg compile time. :func:`compile_format`
turns a string such as ``"from $si:$sp\\n"`` into a callable that renders it.
A getter returns ``int``, ``str`` or ``None`` (``$null``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sip.errors import SipError
from ..sip.headers import canonical_name
from ..sip.uri import parse_uri
from .context import Context

if TYPE_CHECKING:
    from .router import Router

Value = int | str | None
Getter = Callable[[Context], Value]
Setter = Callable[[Context, Value], None]


class PVError(ValueError):
    """Unknown pseudo-variable, bad argument, or write to a read-only PV."""


@dataclass(frozen=True, slots=True)
class PV:
    """A compiled pseudo-variable."""

    text: str
    get: Getter
    set: Setter | None = None
    name: str = ""


# ------------------------------------------------------------------ helpers
def _safe(fn: Callable[[Context], Value]) -> Getter:
    """Wrap a getter so that a message parse error yields $null."""
    def get(ctx: Context) -> Value:
        try:
            return fn(ctx)
        except SipError:
            return None
    return get


def _uri_part(part: str) -> Callable[[Any], Value]:
    def pick(uri: Any) -> Value:
        if part == "user":
            return uri.user
        if part == "host":
            return uri.host or None
        if part == "port":
            return uri.port_str or None
        return str(uri)
    return pick


def _ruri_set_part(part: str) -> Setter:
    """Setter for $rU / $rd / $rp: rebuild the R-URI with one part replaced."""
    def setter(ctx: Context, value: Value) -> None:
        uri = ctx.uri
        user = uri.user
        host = uri.host
        port = uri.port_str
        if part == "user":
            user = None if value is None else str(value)
        elif part == "host":
            host = "" if value is None else str(value)
        else:
            port = "" if value is None else str(value)
        userinfo = ""
        if user:
            userinfo = user + (f":{uri.password}" if uri.password is not None else "") + "@"
        params = "".join(f";{k}" + (f"={v}" if v is not None else "") for k, v in uri.params)
        headers = f"?{uri.headers}" if uri.headers else ""
        hostport = f"{host}:{port}" if port else host
        ctx.set_ruri(f"{uri.scheme}:{userinfo}{hostport}{params}{headers}")
    return setter


def _set_ruri(ctx: Context, value: Value) -> None:
    ctx.set_ruri(None if value is None else str(value))


def _set_du(ctx: Context, value: Value) -> None:
    ctx.dst_uri = None if value in (None, "") else str(value)


def _name_addr_getter(key: str, what: str) -> Getter:
    def get(ctx: Context) -> Value:
        addr = ctx.msg.name_addr(key)
        if addr is None:
            return None
        if what == "tag":
            return addr.tag
        if what == "uri":
            return addr.uri_text
        if what == "display":
            return addr.display or None
        uri = addr.uri
        return uri.user if what == "user" else (uri.host or None)
    return _safe(get)


def _first_line_reason(ctx: Context) -> Value:
    return ctx.msg.reason if not ctx.msg.is_request else None


def _status(ctx: Context) -> Value:
    return ctx.msg.status if not ctx.msg.is_request else None


def _method(ctx: Context) -> Value:
    msg = ctx.msg
    if msg.is_request:
        return msg.method
    try:
        return msg.cseq.method
    except SipError:
        return None


def _cseq_number(ctx: Context) -> Value:
    return ctx.msg.cseq.number


def _header_body(name: str) -> Getter:
    key = canonical_name(name)
    return lambda ctx: ctx.msg.header_value(key)


def _hdr_getter(arg: str, index: int | None) -> Getter:
    key = canonical_name(arg.strip())
    if index is None:
        return lambda ctx: ctx.msg.header_value(key)

    def get(ctx: Context) -> Value:
        found = ctx.msg.headers_named(key)
        try:
            return found[index].value
        except IndexError:
            return None
    return get


def _var(arg: str) -> tuple[Getter, Setter]:
    def get(ctx: Context) -> Value:
        value = ctx.router.var_store.get(arg, 0)
        return value  # type: ignore[return-value]

    def set_(ctx: Context, value: Value) -> None:
        ctx.router.var_store[arg] = 0 if value is None else value
    return get, set_


def _avp(arg: str, index: int | None) -> tuple[Getter, Setter]:
    name = arg.strip()
    if name.startswith("s:") or name.startswith("i:"):
        name = name[2:]

    def get(ctx: Context) -> Value:
        stack = ctx.avps.get(name)
        if not stack:
            return None
        try:
            value: Value = stack[0 if index is None else index]
        except IndexError:
            return None
        return value

    def set_(ctx: Context, value: Value) -> None:
        if value is None:
            ctx.avps.pop(name, None)
        else:
            ctx.avps.setdefault(name, []).insert(0, value)
    return get, set_


_XAVP_RE = re.compile(r"^\s*([\w.]+)(?:\[(-?\d+)\])?\s*(?:=>\s*([\w.]+)(?:\[(-?\d+)\])?)?\s*$")


def _xavp(arg: str) -> tuple[Getter, Setter]:
    match = _XAVP_RE.match(arg)
    if match is None:
        raise PVError(f"bad $xavp name {arg!r}")
    name, idx, field, _fidx = match.groups()
    index = int(idx) if idx else 0

    def get(ctx: Context) -> Value:
        items = ctx.xavps.get(name)
        if not items:
            return None
        try:
            item = items[index]
        except IndexError:
            return None
        if field is None:
            return f"<<xavp:{name}>>"
        value: Value = item.get(field)
        return value

    def set_(ctx: Context, value: Value) -> None:
        if field is None:
            if value is None:
                ctx.xavps.pop(name, None)
            return
        items = ctx.xavps.setdefault(name, [])
        if not items:
            items.append({})
        items[index if index < len(items) else -1][field] = value
    return get, set_


# name -> getter for PVs without an argument
def _simple_pvs() -> dict[str, tuple[Getter, Setter | None]]:
    def ruri_part(part: str) -> Getter:
        pick = _uri_part(part)
        return _safe(lambda ctx: pick(ctx.uri))

    def ouri_part(part: str) -> Getter:
        pick = _uri_part(part)
        return _safe(lambda ctx: pick(ctx.msg.uri))

    return {
        "si": (lambda ctx: ctx.src[0], None),
        "sp": (lambda ctx: ctx.src[1], None),
        "Ri": (lambda ctx: ctx.local[0], None),
        "Rp": (lambda ctx: ctx.local[1], None),
        "proto": (lambda ctx: ctx.proto, None),
        "pr": (lambda ctx: ctx.proto, None),
        "rm": (_safe(_method), None),
        "ru": (lambda ctx: ctx.ruri if ctx.msg.is_request else None, _set_ruri),
        "rU": (ruri_part("user"), _ruri_set_part("user")),
        "rd": (ruri_part("host"), _ruri_set_part("host")),
        "rp": (ruri_part("port"), _ruri_set_part("port")),
        "rz": (_safe(lambda ctx: ctx.uri.scheme), None),
        "ou": (lambda ctx: ctx.msg.ruri if ctx.msg.is_request else None, None),
        "oU": (ouri_part("user"), None),
        "od": (ouri_part("host"), None),
        "op": (ouri_part("port"), None),
        "fu": (_name_addr_getter("from", "uri"), None),
        "fU": (_name_addr_getter("from", "user"), None),
        "fd": (_name_addr_getter("from", "host"), None),
        "fn": (_name_addr_getter("from", "display"), None),
        "ft": (_name_addr_getter("from", "tag"), None),
        "tu": (_name_addr_getter("to", "uri"), None),
        "tU": (_name_addr_getter("to", "user"), None),
        "td": (_name_addr_getter("to", "host"), None),
        "tn": (_name_addr_getter("to", "display"), None),
        "tt": (_name_addr_getter("to", "tag"), None),
        "ci": (lambda ctx: ctx.msg.header_value("call-id"), None),
        "cs": (_safe(_cseq_number), None),
        "cl": (_header_body("content-length"), None),
        "ct": (_header_body("contact"), None),
        "ua": (_header_body("user-agent"), None),
        "mf": (lambda ctx: ctx.flags, None),
        "du": (lambda ctx: ctx.dst_uri, _set_du),
        "rs": (_status, None),
        "rr": (_first_line_reason, None),
        "rc": (lambda ctx: ctx.retcode, None),
        "retcode": (lambda ctx: ctx.retcode, None),
        "?": (lambda ctx: ctx.retcode, None),
        "null": (lambda ctx: None, None),
        "mb": (lambda ctx: ctx.msg.text, None),
        "ml": (lambda ctx: len(ctx.msg.text), None),
        "pp": (lambda ctx: os.getpid(), None),
        "Ts": (lambda ctx: int(time.time()), None),
        "br": (lambda ctx: ctx.branches[0].uri if ctx.branches else None, None),
        "bR": (lambda ctx: ",".join(b.uri for b in ctx.branches) or None, None),
    }


_SIMPLE = _simple_pvs()


def _transform(spec: str) -> Callable[[Value], Value]:
    """One ``{class.name[,args]}`` transformation."""
    name, *args = [part.strip() for part in spec.split(",")]
    if name == "s.int":
        def to_int(value: Value) -> Value:
            if value is None:
                return 0
            if isinstance(value, int):
                return value
            match = re.match(r"\s*-?\d+", value)
            return int(match.group()) if match else 0
        return to_int
    if name == "s.len":
        return lambda v: 0 if v is None else len(str(v))
    if name == "s.tolower":
        return lambda v: None if v is None else str(v).lower()
    if name == "s.toupper":
        return lambda v: None if v is None else str(v).upper()
    if name == "s.trim":
        return lambda v: None if v is None else str(v).strip()
    if name == "s.md5":
        import hashlib
        return lambda v: None if v is None else hashlib.md5(
            str(v).encode("latin-1")).hexdigest()
    if name == "s.substr" and len(args) == 2:
        start, length = int(args[0]), int(args[1])
        return lambda v: None if v is None else (
            str(v)[start:] if length == 0 else str(v)[start:start + length])
    if name in ("uri.user", "uri.host", "uri.port", "uri.scheme"):
        attr = name.split(".")[1]

        def uri_part(value: Value) -> Value:
            if value is None:
                return None
            try:
                uri = parse_uri(str(value).strip("<>"))
            except SipError:
                return None
            return {"user": uri.user, "host": uri.host, "port": uri.port_str,
                    "scheme": uri.scheme}[attr]
        return uri_part
    if name == "nameaddr.uri":
        from ..sip.headers import NameAddr

        def na_uri(value: Value) -> Value:
            try:
                return None if value is None else NameAddr(str(value)).uri_text
            except SipError:
                return None
        return na_uri
    raise PVError(f"unsupported transformation {{{spec}}}")


def compile_pv(name: str, arg: str | None = None, index: int | None = None,
               transforms: list[str] | None = None, router: Router | None = None) -> PV:
    """Compile a PV reference; raises :class:`PVError` for an unknown PV."""
    text = "$" + name + (f"({arg})" if arg is not None else "")
    getter: Getter
    setter: Setter | None = None
    if arg is None and name in _SIMPLE:
        getter, setter = _SIMPLE[name]
    elif name == "hdr" and arg is not None:
        getter = _hdr_getter(arg, index)
    elif name == "var" and arg is not None:
        getter, setter = _var(arg.strip())
    elif name == "avp" and arg is not None:
        getter, setter = _avp(arg, index)
    elif name == "xavp" and arg is not None:
        getter, setter = _xavp(arg)
    elif router is not None and (module_pv := _module_pv(router, name, arg)) is not None:
        getter = module_pv
    else:
        raise PVError(f"unknown pseudo-variable {text}")
    if transforms:
        steps = [_transform(spec) for spec in transforms]
        base = getter

        def getter(ctx: Context) -> Value:
            value = base(ctx)
            for step in steps:
                value = step(value)
            return value
        setter = None
    return PV(text, getter, setter, name)


def _module_pv(router: Router, name: str, arg: str | None) -> Getter | None:
    for module in router.modules.values():
        for spec in module.exports.pvs:
            if spec.name == name:
                factory = getattr(module, spec.method)
                getter: Getter = factory(arg or "")
                return getter
    return None


# ------------------------------------------------------------------ format strings
_PV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\?")


def scan_pv(text: str, pos: int) -> tuple[str, str | None, int | None, list[str], int] | None:
    """Scan a PV starting at ``text[pos] == '$'``.

    Returns (name, arg, index, transforms, end) or None when no PV starts here.
    Handles ``$name``, ``$name(arg)``, ``$name(arg[i])`` and ``$(name(arg){tr})``.
    """
    i = pos + 1
    if i < len(text) and text[i] == "(":  # $(name(arg)[i]{tr}...)
        depth = 0
        j = i
        while j < len(text):
            if text[j] == "(":
                depth += 1
            elif text[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= len(text):
            return None
        inner = text[i + 1:j]
        transforms = re.findall(r"\{([^}]*)\}", inner)
        inner = re.sub(r"\{[^}]*\}", "", inner)
        scanned = scan_pv("$" + inner, 0)
        if scanned is None:
            return None
        name, arg, index, _tr, _end = scanned
        return name, arg, index, transforms, j + 1
    match = _PV_NAME.match(text, i)
    if match is None:
        return None
    name = match.group()
    end = match.end()
    arg = None
    index = None
    if end < len(text) and text[end] == "(" and name != "?":
        close = text.find(")", end)
        if close < 0:
            return None
        arg = text[end + 1:close]
        end = close + 1
        idx = re.match(r"^(.*)\[(-?\d+)\]$", arg)
        if idx and name in ("hdr", "avp"):
            arg, index = idx.group(1), int(idx.group(2))
    return name, arg, index, [], end


def compile_format(text: str, router: Router | None = None) -> Callable[[Context], str]:
    """Compile a string with embedded PVs; $null renders as ``<null>`` as in xlog."""
    pieces: list[str | PV] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$":
            scanned = scan_pv(text, i)
            if scanned is not None:
                name, arg, index, transforms, end = scanned
                try:
                    pv = compile_pv(name, arg, index, transforms, router)
                except PVError:
                    pv = None
                if pv is not None:
                    if literal:
                        pieces.append("".join(literal))
                        literal = []
                    pieces.append(pv)
                    i = end
                    continue
        literal.append(ch)
        i += 1
    if literal:
        pieces.append("".join(literal))
    if not any(isinstance(p, PV) for p in pieces):
        constant = "".join(p for p in pieces if isinstance(p, str))
        return lambda ctx: constant

    def render(ctx: Context) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                value = piece.get(ctx)
                out.append("<null>" if value is None else str(value))
        return "".join(out)
    return render


def has_pv(text: str) -> bool:
    """True when the string contains something that looks like a PV."""
    return "$" in text
