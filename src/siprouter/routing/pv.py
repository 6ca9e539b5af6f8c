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
from typing import TYPE_CHECKING, Any, Final

from ..sip.errors import SipError
from ..sip.headers import canonical_name
from ..sip.uri import parse_uri
from .context import Context
from .router import has_broken_headers

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
    """``$hdr(Name)``: needs every header parsed, so $null when Kamailio 5.6's parser
    fails on the message (a second Max-Forwards) [verified on 5.6.3]."""
    key = canonical_name(arg.strip())
    if index is None:
        def first(ctx: Context) -> Value:
            msg = ctx.msg
            if has_broken_headers(msg):
                return None
            return msg.header_value(key)
        return first

    def get(ctx: Context) -> Value:
        msg = ctx.msg
        if has_broken_headers(msg):
            return None
        found = msg.headers_named(key)
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


def _avp(arg: str, index: int | str | None) -> tuple[Getter, Setter]:
    """``$avp(name)``: a stack of values, newest first.

    Assigning adds a value on top (an index on the left side is ignored, as in
    Kamailio 5.6); assigning ``$null`` removes the newest value only, or every
    value with ``$(avp(name)[*])``.
    """
    name = arg.strip()
    if name.startswith("s:") or name.startswith("i:"):
        name = name[2:]
    position = 0 if index is None or index == "*" else int(index)

    def get(ctx: Context) -> Value:
        stack = ctx.avps.get(name)
        if not stack:
            return None
        if position < 0:
            # Kamailio 5.6 quirk: counting the values consumes the search state, so a
            # negative index only finds the newest value, and only for [-count]
            return stack[0] if position == -len(stack) else None
        try:
            value: Value = stack[position]
        except IndexError:
            return None
        return value

    def set_(ctx: Context, value: Value) -> None:
        if value is None:
            stack = ctx.avps.get(name)
            if stack and index != "*":
                del stack[0]
            if not stack or index == "*":
                ctx.avps.pop(name, None)
        else:
            ctx.avps.setdefault(name, []).insert(0, value)
    return get, set_


class XavpValues:
    """Several values of one field inside an xavp item, newest first.

    An item is a ``dict`` field -> value; a field holding more than one value
    stores an ``XavpValues`` (so single-valued items stay plain dicts).
    """

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def __repr__(self) -> str:
        return f"XavpValues({self.values!r})"


def _field_values(item: dict[str, Any], field: str) -> list[Any]:
    value = item.get(field, _MISSING)
    if value is _MISSING:
        return []
    if isinstance(value, XavpValues):
        return value.values
    return [value]


def _store_field(item: dict[str, Any], field: str, values: list[Any]) -> None:
    if not values:
        item.pop(field, None)
    elif len(values) == 1:
        item[field] = values[0]
    else:
        item[field] = XavpValues(values)


_MISSING: Final = object()
_XAVP_RE: Final = re.compile(
    r"^\s*([^\s=\[]+)\s*(?:\[\s*(-?\d+|\*)\s*\])?\s*"
    r"(?:=>\s*([^\s=\[]+)\s*(?:\[\s*(-?\d+|\*)\s*\])?)?\s*$")


def _fix_index(index: int, count: int) -> int:
    """Kamailio's pv_set_xavp index fix for negative indexes (``count + idx + 1``)."""
    return count + index + 1 if index < 0 else index


def _xavp(arg: str) -> tuple[Getter, Setter]:
    """``$xavp(name[i]=>field[j])`` with Kamailio 5.6 semantics (``pv_xavp.c``).

    * read: item ``i`` (default 0, negative from the end), value ``j`` of the
      field (``[*]`` joins all values with ``", "``);
    * ``$xavp(name=>f) = v`` pushes a new item ``{f: v}`` in front;
      ``$xavp(name[i]=>f) = v`` adds a value of ``f`` in front inside item ``i``
      (nothing if there is no item ``i``); ``$xavp(name[i]=>f[j]) = v``
      replaces value ``j``;
    * ``= $null`` removes the first item (``$xavp(name)``), the item at ``[i]``,
      or inside the item the first value of the field (``[j]``: that one,
      ``[*]``: all of them).
    """
    match = _XAVP_RE.match(arg)
    if match is None:
        raise PVError(f"bad $xavp name {arg!r}")
    name, idx_text, field, fidx_text = match.groups()
    root_all = idx_text == "*"
    root_index = int(idx_text) if idx_text and not root_all else None
    field_all = fidx_text == "*"
    field_index = int(fidx_text) if fidx_text and not field_all else None

    def get(ctx: Context) -> Value:
        items = ctx.xavps.get(name)
        if not items:
            return None
        index = root_index or 0
        if index < 0:
            index += len(items)
        if not 0 <= index < len(items):
            return None
        item = items[index]
        if field is None:
            return f"<<xavp:{name}>>" if isinstance(item, dict) else item
        if not isinstance(item, dict):
            return None
        values = _field_values(item, field)
        if field_all:
            if not values:
                return None
            if isinstance(values[-1], int):
                # Kamailio 5.6: the joined text keeps the type of the last value
                # read, so with an int the expression value is that int
                last: int = values[-1]
                return last
            return ", ".join(str(v) for v in values)
        position = field_index or 0
        if position < 0:
            position += len(values)
        if not 0 <= position < len(values):
            return None
        value: Value = values[position]
        return value

    def remove_field(item: Any) -> None:
        if not isinstance(item, dict) or field is None:
            return
        values = list(_field_values(item, field))
        if field_all:
            values = []
        elif field_index is None:
            values = values[1:]
        else:
            position = _fix_index(field_index, len(values))
            if 0 <= position < len(values):
                del values[position]
        _store_field(item, field, values)

    def set_field(item: dict[str, Any], value: Value) -> None:
        assert field is not None
        values = list(_field_values(item, field))
        if field_index is None:
            values.insert(0, value)
        else:
            position = _fix_index(field_index, len(values))
            if not 0 <= position < len(values):
                return
            values[position] = value
        _store_field(item, field, values)

    def set_(ctx: Context, value: Value) -> None:
        items = ctx.xavps.get(name)
        if value is None:
            if not items:
                return
            if field is None:
                if root_all:
                    items.clear()
                else:
                    position = _fix_index(root_index or 0, len(items))
                    if 0 <= position < len(items):
                        del items[position]
            elif root_all:
                for item in items:
                    remove_field(item)
            else:
                position = _fix_index(root_index or 0, len(items))
                if 0 <= position < len(items):
                    remove_field(items[position])
            if not items:
                ctx.xavps.pop(name, None)
            return
        if field is None:
            if root_index is None and not root_all:
                ctx.xavps.setdefault(name, []).insert(0, value)
            elif items and not root_all:
                position = _fix_index(root_index or 0, len(items))
                if 0 <= position < len(items):
                    items[position] = value
            return
        if root_index is None and not root_all:
            ctx.xavps.setdefault(name, []).insert(0, {field: value})
            return
        if not items or root_all:
            return
        position = _fix_index(root_index or 0, len(items))
        if 0 <= position < len(items) and isinstance(items[position], dict):
            set_field(items[position], value)
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


_SIMPLE: Final = _simple_pvs()


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


def compile_pv(name: str, arg: str | None = None, index: int | str | None = None,
               transforms: list[str] | None = None, router: Router | None = None) -> PV:
    """Compile a PV reference; raises :class:`PVError` for an unknown PV."""
    text = "$" + name + (f"({arg})" if arg is not None else "")
    getter: Getter
    setter: Setter | None = None
    if arg is None and name in _SIMPLE:
        getter, setter = _SIMPLE[name]
    elif name == "hdr" and arg is not None:
        getter = _hdr_getter(arg, index if isinstance(index, int) else None)
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
_PV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\?")


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
