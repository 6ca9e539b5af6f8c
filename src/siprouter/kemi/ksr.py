"""The ``KSR`` object of KEMI scripts, as Kamailio's app_python3 exports it.

The facade is derived from the routers's module exports, not hand-listed:
every loaded module with ``exports.kemi_module`` gets a namespace
``KSR.<kemi_module>`` (``""`` = ``KSR`` itself) and each of its
:class:`~siprouter.modules.base.Function` KEMI names is bound to
``impl(current_ctx, *args)``. Arguments are checked against the declared
kinds (``int`` / ``str``); ``kemi_bool`` functions return ``True``/``False``,
the others the int return code, and a 0 return has no "exit" meaning.

On top of that comes the part of Kamailio's core KEMI API that is not a
module function here (spec/cfg-language.md section 9): the method tests
(``KSR.is_INVITE()`` ...), logging (``KSR.info()`` ...), ``is_myself*``,
``KSR.route()``, ``KSR.set_drop()``, ``KSR.forward_uri()``, ``KSR.pv``,
``KSR.kx``, ``KSR.hdr.get*`` and ``KSR.x.modf()``.

The message a KSR function works on is the "current context", set by the
route wrappers of :mod:`.app_python3` for the duration of each call (one
message at a time per worker process). Outside a route (``mod_init``,
``child_init``) a faked OPTIONS request stands in, as in Kamailio.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..modules.base import Function, Module
from ..modules.textops import KEMI_METHOD_LETTERS, TextopsModule, method_of
from ..modules.xlog import LEVELS
from ..routing.context import Context, RouteReturn, ScriptExit
from ..routing.pv import PV, PVError, Value, compile_format, compile_pv, scan_pv
from ..sip.errors import SipError
from ..sip.headers import canonical_name
from ..sip.message import FAKED_REQUEST, parse_message
from ..sip.uri import parse_uri

if TYPE_CHECKING:
    from ..routing.router import Router

log = logging.getLogger("siprouter.kemi")
script_log = logging.getLogger("siprouter.script")

# KEMI namespaces that Kamailio's core provides without any loadmodule, and the
# module class that implements them here when no loaded module declares them.
CORE_NAMESPACES: dict[str, type[Module]] = {"hdr": TextopsModule}


NULL_PRINT = "<<null>>"     # what the getw() variants return for $null
_CACHE_LIMIT = 4096

_PROTO_IDS = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}

# KSR.is_<METHOD>() tests of Kamailio 5.6's core
METHOD_TESTS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE",
                "NOTIFY", "PUBLISH", "MESSAGE", "INFO", "PRACK", "REFER", "UPDATE", "KDMQ",
                "GET", "POST", "PUT", "DELETE")
_STANDARD_METHODS = frozenset(METHOD_TESTS)

# ------------------------------------------------------------------ current context
_current: Context | None = None


def current_context() -> Context | None:
    """The context KSR functions act on, or None outside a route."""
    return _current


def set_current(ctx: Context | None) -> Context | None:
    """Make ``ctx`` the current context; returns the previous one (to restore it)."""
    global _current
    previous = _current
    _current = ctx
    return previous


def _safe_callid(ctx: Context) -> str:
    try:
        return ctx.msg.callid
    except SipError:
        return ""


# ------------------------------------------------------------------ argument checks
def _check_arg(qual: str, index: int, kind: str, value: Any) -> Any:
    """Check one argument against its declared kind, like PyArg_ParseTuple 'i' / 's'."""
    if kind == "int":
        if isinstance(value, int):
            return int(value)
        raise TypeError(f"{qual}() argument {index + 1} must be int, not {type(value).__name__}")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise TypeError(f"{qual}() argument {index + 1} must be str, not {type(value).__name__}")
    return value


def _arity_error(qual: str, fn_min: int, fn_max: int, got: int) -> TypeError:
    expected = str(fn_min) if fn_min == fn_max else f"{fn_min} to {fn_max}"
    return TypeError(f"{qual}() takes {expected} argument(s) ({got} given)")


# ------------------------------------------------------------------ the facade
class Ksr:
    """Builds and serves the ``KSR`` module object for one router."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.module = types.ModuleType("KSR", "Kamailio KEMI exports (siprouter)")
        self.namespaces: dict[str, types.ModuleType] = {"": self.module}
        # (namespace, name) -> the module Function it calls (exports-derived bindings)
        self.bindings: dict[tuple[str, str], Function] = {}
        self._handwritten: set[tuple[str, str]] = set()
        self._pvs: dict[str, PV | None] = {}
        self._formats: dict[str, Callable[[Context], str]] = {}
        self._cfg_functions: dict[str, tuple[Function, Callable[..., int]]] = {}
        self._core_modules: dict[str, Module] = {}
        self._build()

    # ---------------------------------------------------------------- plumbing
    def namespace(self, name: str) -> types.ModuleType:
        """``KSR`` (name ``""``) or the sub-module ``KSR.<name>``, created on demand."""
        ns = self.namespaces.get(name)
        if ns is None:
            ns = types.ModuleType(f"KSR.{name}")
            self.namespaces[name] = ns
            setattr(self.module, name, ns)
        return ns

    def context(self) -> Context:
        """The current context, or a faked request outside of routes."""
        ctx = _current
        if ctx is not None:
            return ctx
        try:
            local = self.router.first_socket
        except IndexError:
            local = ("127.0.0.1", 5060)
        return Context(self.router, parse_message(FAKED_REQUEST), ("127.0.0.1", 5060), local)

    def _define(self, ns_name: str, name: str, fn: Callable[..., Any]) -> None:
        qual = f"KSR.{ns_name}.{name}" if ns_name else f"KSR.{name}"
        fn.__name__ = name
        fn.__qualname__ = qual
        setattr(self.namespace(ns_name), name, fn)
        self._handwritten.add((ns_name, name))

    # ---------------------------------------------------------------- building
    def _build(self) -> None:
        self._build_core()
        self._build_pv()
        self._build_kx()
        self._build_hdr_getters()
        self._build_x()
        provided: set[str] = set()
        for module in self.router.modules.values():
            ns_name = module.exports.kemi_module
            if ns_name is None:
                continue
            provided.add(ns_name)
            self._bind_module(ns_name, module)
        for ns_name, cls in CORE_NAMESPACES.items():
            if ns_name not in provided:
                module = cls(self.router)
                self._core_modules[ns_name] = module
                self._bind_module(ns_name, module)
        for module in self.router.modules.values():
            for fn in module.exports.functions:
                for name in (fn.name, *fn.aliases):
                    if name:
                        self._cfg_functions.setdefault(name, (fn, getattr(module, fn.method)))

    def _bind_module(self, ns_name: str, module: Module) -> None:
        for fn in module.exports.functions:
            for kname in fn.kemi:
                key = (ns_name, kname)
                if key in self._handwritten or key in self.bindings:
                    log.warning("KSR%s.%s of module '%s' clashes with an existing export; "
                                "keeping the first one", f".{ns_name}" if ns_name else "",
                                kname, module.exports.name)
                    continue
                setattr(self.namespace(ns_name), kname,
                        self._make_call(ns_name, kname, fn, getattr(module, fn.method)))
                self.bindings[key] = fn

    def _make_call(self, ns_name: str, kname: str, fn: Function,
                   impl: Callable[..., int]) -> Callable[..., Any]:
        kinds = fn.args + fn.optional
        low, high = len(fn.args), len(kinds)
        qual = f"KSR.{ns_name}.{kname}" if ns_name else f"KSR.{kname}"
        as_bool = fn.kemi_bool
        expand = fn.kemi_fmt

        def call(*args: Any) -> int | bool:
            if not low <= len(args) <= high:
                raise _arity_error(qual, low, high, len(args))
            values = [_check_arg(qual, i, kinds[i], a) for i, a in enumerate(args)]
            ctx = self.context()
            if expand and values:
                values[-1] = self.format(str(values[-1]))(ctx)
            code = impl(ctx, *values)
            return code > 0 if as_bool else code

        call.__name__ = kname
        call.__qualname__ = qual
        call.__doc__ = f"{qual}(): cfg function {fn.name or '(KEMI only)'}() of " \
                       f"module {getattr(impl, '__self__', None).__class__.__name__}"
        return call

    # ---------------------------------------------------------------- helpers
    def format(self, text: str) -> Callable[[Context], str]:
        """Compiled PV format string (cached)."""
        fmt = self._formats.get(text)
        if fmt is None:
            fmt = compile_format(text, self.router)
            if len(self._formats) < _CACHE_LIMIT:
                self._formats[text] = fmt
        return fmt

    def pv(self, name: str) -> PV | None:
        """Compile a PV name such as ``$ru`` or ``$var(x)`` (cached); None if invalid."""
        if name in self._pvs:
            return self._pvs[name]
        spec: PV | None = None
        scanned = scan_pv(name, 0) if name.startswith("$") else None
        if scanned is None or scanned[4] != len(name):
            log.error("invalid pv [%s]", name)
        else:
            pv_name, arg, index, transforms, _end = scanned
            try:
                spec = compile_pv(pv_name, arg, index, transforms, self.router)
            except PVError as err:
                log.error("cannot get pv spec for [%s]: %s", name, err)
        if len(self._pvs) < _CACHE_LIMIT:
            self._pvs[name] = spec
        return spec

    def emit(self, level: int, text: str) -> int:
        """Write a log line at a Kamailio level if ``debug`` lets it through."""
        if level <= self.router.settings.debug:
            ctx = _current
            extra = {"callid": _safe_callid(ctx)} if ctx is not None else None
            script_log.log(LEVELS.get(level, logging.ERROR), "%s%s",
                           self.router.settings.log_prefix, text.rstrip("\n"), extra=extra)
        return 0

    def is_myself_text(self, text: str | None) -> bool:
        """Kamailio's sr_kemi_core_is_myself(): a URI without port matches any port."""
        if not text:
            return False
        if len(text) > 4 and text.startswith(("sip:", "sips:")):
            try:
                uri = parse_uri(text)
            except SipError:
                log.error("failed to parse uri [%s]", text)
                return False
            return self.check_self(uri.host, uri.port)
        return self.check_self(text, None)

    def check_self(self, host: str, port: int | None) -> bool:
        """check_self(host, port): port None (0 in Kamailio) ignores the port."""
        router = self.router
        key = host.strip("[]").lower()
        if port is None:
            return key in router._myself_hosts
        return (key, port) in router._myself

    # ---------------------------------------------------------------- KSR.*
    def _build_core(self) -> None:
        define = self._define

        for level_name, level in (("dbg", 3), ("info", 2), ("notice", 1), ("warn", 0),
                                  ("err", -1), ("crit", -3)):
            def log_fn(text: str, _level: int = level) -> int:
                return self.emit(_level, _check_arg("KSR.log", 0, "str", text))
            define("", level_name, log_fn)

        log_levels = {"dbg": 3, "info": 2, "notice": 1, "warn": 0, "err": -1, "crit": -3}

        def log_any(level: str, text: str) -> int:
            _check_arg("KSR.log", 0, "str", level)
            return self.emit(log_levels.get(level.lower(), -1),
                             _check_arg("KSR.log", 1, "str", text))
        define("", "log", log_any)

        def set_drop() -> int:
            ctx = _current
            if ctx is not None:
                ctx.dropped = True
            return 0
        define("", "set_drop", set_drop)

        def get_debug() -> int:
            return self.router.settings.debug
        define("", "get_debug", get_debug)

        # ------------------------------------------------ method tests
        def is_method(methods: str) -> bool:
            _check_arg("KSR.is_method", 0, "str", methods)
            if not methods:
                return False
            try:
                method = method_of(self.context())
            except SipError:
                return False
            if "|" not in methods:
                return method.upper() == methods.upper()
            wanted = {m.strip().upper() for m in methods.split("|")}
            if not wanted <= _STANDARD_METHODS:
                log.error("unknown method in list [%s] - use only standard SIP methods",
                          methods)
                return False
            return method.upper() in wanted and method.upper() in _STANDARD_METHODS
        define("", "is_method", is_method)

        def is_method_in(letters: str) -> bool:
            _check_arg("KSR.is_method_in", 0, "str", letters)
            try:
                method = method_of(self.context())
            except SipError:
                return False
            for letter in letters:
                name = KEMI_METHOD_LETTERS.get(letter.upper())
                if name is None:
                    log.warning("unsupported method flag: %s", letter)
                elif name == method.upper():
                    return True
            return False
        define("", "is_method_in", is_method_in)

        for method_name in METHOD_TESTS:
            def is_that(_method: str = method_name) -> bool:
                try:
                    return method_of(self.context()).upper() == _method
                except SipError:
                    return False
            define("", f"is_{method_name}", is_that)

        # ------------------------------------------------ transport tests
        for test, protos in (("UDP", ("udp",)), ("TCP", ("tcp",)), ("TLS", ("tls",)),
                             ("SCTP", ("sctp",)), ("WS", ("ws",)), ("WSS", ("wss",)),
                             ("WSX", ("ws", "wss"))):
            def is_proto(_protos: tuple[str, ...] = protos) -> bool:
                return self.context().proto in _protos
            define("", f"is_{test}", is_proto)

        def is_ipv4() -> bool:
            return ":" not in self.context().local[0]

        def is_ipv6() -> bool:
            return ":" in self.context().local[0]
        define("", "is_IPv4", is_ipv4)
        define("", "is_IPv6", is_ipv6)

        def is_src_port(port: int) -> bool:
            return _check_arg("KSR.is_src_port", 0, "int", port) == self.context().src[1]

        def is_dst_port(port: int) -> bool:
            return _check_arg("KSR.is_dst_port", 0, "int", port) == self.context().local[1]
        define("", "is_src_port", is_src_port)
        define("", "is_dst_port", is_dst_port)

        # ------------------------------------------------ myself
        def is_myself(uri: str) -> bool:
            return self.is_myself_text(_check_arg("KSR.is_myself", 0, "str", uri))
        define("", "is_myself", is_myself)

        def is_myself_ruri() -> bool:
            ctx = self.context()
            return ctx.msg.is_request and self.is_myself_text(ctx.ruri)

        def is_myself_duri() -> bool:
            return self.is_myself_text(self.context().dst_uri)

        def is_myself_nhuri() -> bool:
            ctx = self.context()
            if ctx.dst_uri:
                return self.is_myself_text(ctx.dst_uri)
            return is_myself_ruri()

        def is_myself_furi() -> bool:
            addr = self.context().msg.from_
            return addr is not None and self.is_myself_text(addr.uri_text)

        def is_myself_turi() -> bool:
            addr = self.context().msg.to
            return addr is not None and self.is_myself_text(addr.uri_text)

        def is_myself_suri() -> bool:
            return self.is_myself_text(_src_uri(self.context()))

        def is_myself_srcip() -> bool:
            return self.check_self(self.context().src[0], None)
        for fn in (is_myself_ruri, is_myself_duri, is_myself_nhuri, is_myself_furi,
                   is_myself_turi, is_myself_suri, is_myself_srcip):
            def safe(_fn: Callable[[], bool] = fn) -> bool:
                try:
                    return _fn()
                except SipError:
                    return False
            define("", fn.__name__, safe)

        # ------------------------------------------------ destination / forwarding
        def forward_uri(uri: str) -> int:
            _check_arg("KSR.forward_uri", 0, "str", uri)
            core = self.router.modules.get("core")
            ctx = self.context()
            if core is None:
                from ..routing.forward import forward_request
                return forward_request(ctx, uri or None)
            result: int = core.forward(ctx, uri)  # type: ignore[attr-defined]
            return result
        define("", "forward_uri", forward_uri)

        def setdsturi(uri: str) -> bool:
            self.context().dst_uri = _check_arg("KSR.setdsturi", 0, "str", uri) or None
            return True

        def resetdsturi() -> bool:
            self.context().dst_uri = None
            return True

        def isdsturiset() -> bool:
            return bool(self.context().dst_uri)
        define("", "setdsturi", setdsturi)
        define("", "resetdsturi", resetdsturi)
        define("", "isdsturiset", isdsturiset)

        # ------------------------------------------------ native routes
        def route(name: str) -> int:
            _check_arg("KSR.route", 0, "str", name)
            target = self.router.script.named.get(name)
            if target is None:
                return -1
            ctx = self.context()
            try:
                target(ctx)
                code = 0 if ctx.stop else 1   # Kamailio: exit -> KSR.route() returns 0
            except RouteReturn as ret:
                code = ret.code
            except ScriptExit:
                code = 0     # Kamailio: EXIT_R_F set -> KSR.route() returns 0
            ctx.stop = False
            ctx.retcode = code
            return code
        define("", "route", route)

    # ---------------------------------------------------------------- KSR.pv
    def _build_pv(self) -> None:
        define = self._define

        def get_value(name: str, qual: str) -> Value:
            _check_arg(qual, 0, "str", name)
            spec = self.pv(name)
            if spec is None:
                return None
            try:
                return spec.get(self.context())
            except SipError:
                log.error("unable to get pv value for [%s]", name)
                return None

        def get(name: str) -> Value:
            return get_value(name, "KSR.pv.get")

        def gete(name: str) -> int | str:
            value = get_value(name, "KSR.pv.gete")
            return "" if value is None else value

        def getw(name: str) -> int | str:
            value = get_value(name, "KSR.pv.getw")
            return NULL_PRINT if value is None else value

        def getvs(name: str, default: str) -> int | str:
            _check_arg("KSR.pv.getvs", 1, "str", default)
            value = get_value(name, "KSR.pv.getvs")
            return default if value is None else value

        def getvn(name: str, default: int) -> int | str:
            _check_arg("KSR.pv.getvn", 1, "int", default)
            value = get_value(name, "KSR.pv.getvn")
            return default if value is None else value

        def set_value(name: str, value: Value, qual: str) -> bool:
            _check_arg(qual, 0, "str", name)
            spec = self.pv(name)
            if spec is None:
                return False
            if spec.set is None:
                log.error("unable to set pv [%s]: read-only", name)
                return False
            try:
                spec.set(self.context(), value)
            except (SipError, ValueError) as err:
                log.error("unable to set pv [%s]: %s", name, err)
                return False
            return True

        def sets(name: str, value: str) -> bool:
            return set_value(name, _check_arg("KSR.pv.sets", 1, "str", value), "KSR.pv.sets")

        def seti(name: str, value: int) -> bool:
            return set_value(name, _check_arg("KSR.pv.seti", 1, "int", value), "KSR.pv.seti")

        def unset(name: str) -> bool:
            return set_value(name, None, "KSR.pv.unset")

        def is_null(name: str) -> bool:
            _check_arg("KSR.pv.is_null", 0, "str", name)
            spec = self.pv(name)
            if spec is None:
                return True
            try:
                return spec.get(self.context()) is None
            except SipError:
                return True

        for fn in (get, gete, getw, getvs, getvn, sets, seti, unset, is_null):
            define("pv", fn.__name__, fn)

    # ---------------------------------------------------------------- KSR.kx
    def _build_kx(self) -> None:
        define = self._define

        def request_only(fn: Callable[[Context], Value]) -> Callable[[Context], Value]:
            return lambda ctx: fn(ctx) if ctx.msg.is_request else None

        def addr_part(key: str, part: str) -> Callable[[Context], Value]:
            def pick(ctx: Context) -> Value:
                addr = ctx.msg.name_addr(key)
                if addr is None:
                    return None
                if part == "uri":
                    return addr.uri_text
                uri = addr.uri
                return uri.user if part == "user" else (uri.host or None)
            return pick

        # name -> getter; string getters also get gete_/getw_ variants where Kamailio has them
        strings: dict[str, Callable[[Context], Value]] = {
            "ruri": request_only(lambda ctx: ctx.ruri),
            "ouri": request_only(lambda ctx: ctx.msg.ruri),
            "nhuri": request_only(lambda ctx: ctx.dst_uri or ctx.ruri),
            "duri": lambda ctx: ctx.dst_uri,
            "furi": addr_part("from", "uri"),
            "turi": addr_part("to", "uri"),
            "ruser": request_only(lambda ctx: ctx.uri.user),
            "rhost": request_only(lambda ctx: ctx.uri.host or None),
            "fuser": addr_part("from", "user"),
            "fhost": addr_part("from", "host"),
            "tuser": addr_part("to", "user"),
            "thost": addr_part("to", "host"),
            "body": lambda ctx: ctx.msg.body or None,
        }
        with_variants = ("ruser", "rhost", "fuser", "fhost", "tuser", "thost", "body")
        others: dict[str, Callable[[Context], Value]] = {
            "srcip": lambda ctx: ctx.src[0],
            "srcport": lambda ctx: ctx.src[1],
            "srcuri": _src_uri,
            "rcvip": lambda ctx: ctx.local[0],
            "rcvport": lambda ctx: ctx.local[1],
            "proto": lambda ctx: ctx.proto,
            "protoid": lambda ctx: _PROTO_IDS.get(ctx.proto, 0),
            "method": lambda ctx: method_of(ctx),
            "status": lambda ctx: -1 if ctx.msg.is_request else ctx.msg.status,
            "callid": lambda ctx: ctx.msg.header_value("call-id"),
            "ua": lambda ctx: ctx.msg.header_value("user-agent"),
            "bodylen": lambda ctx: len(ctx.msg.body),
            "msgbuf": lambda ctx: ctx.msg.text,
            "msglen": lambda ctx: len(ctx.msg.text),
            "msgtype": lambda ctx: 1 if ctx.msg.is_request else 2,
            "timestamp": lambda ctx: int(time.time()),
        }

        def getter(fn: Callable[[Context], Value], null: Value) -> Callable[[], Value]:
            def get() -> Value:
                try:
                    value = fn(self.context())
                except SipError:
                    value = None
                return null if value is None else value
            return get

        for name, fn in strings.items():
            define("kx", f"get_{name}", getter(fn, None))
            if name in with_variants:
                define("kx", f"gete_{name}", getter(fn, ""))
                define("kx", f"getw_{name}", getter(fn, NULL_PRINT))
        for name, fn in others.items():
            define("kx", f"get_{name}", getter(fn, None))

    # ---------------------------------------------------------------- KSR.hdr.get*
    def _build_hdr_getters(self) -> None:
        def get_header(name: str, index: int, null: str | None, qual: str) -> str | None:
            _check_arg(qual, 0, "str", name)
            found = self.context().msg.headers_named(canonical_name(name.strip()))
            try:
                return found[index].value
            except IndexError:
                return null

        for prefix, null in (("get", None), ("gete", ""), ("getw", NULL_PRINT)):
            def get(name: str, _null: str | None = null, _p: str = prefix) -> str | None:
                return get_header(name, 0, _null, f"KSR.hdr.{_p}")

            def get_idx(name: str, index: int, _null: str | None = null,
                        _p: str = prefix) -> str | None:
                qual = f"KSR.hdr.{_p}_idx"
                return get_header(name, _check_arg(qual, 1, "int", index), _null, qual)
            self._define("hdr", prefix, get)
            self._define("hdr", f"{prefix}_idx", get_idx)

    # ---------------------------------------------------------------- KSR.x
    def _build_x(self) -> None:
        def modf(fname: str, *args: Any) -> int:
            return self.call_cfg_function(self.context(), fname, args)
        self._define("x", "modf", modf)

    def call_cfg_function(self, ctx: Context, fname: str, args: tuple[Any, ...]) -> int:
        """``KSR.x.modf()``: run any cfg function by name; string args may contain PVs."""
        _check_arg("KSR.x.modf", 0, "str", fname)
        found = self._cfg_functions.get(fname)
        if found is None:
            raise RuntimeError(f"KSR.x.modf(): no such function '{fname}'")
        fn, impl = found
        if len(args) not in fn.arities:
            raise _arity_error(f"KSR.x.modf('{fname}')", len(fn.args),
                               len(fn.args) + len(fn.optional), len(args))
        if ctx.route_type not in fn.routes:
            log.error("function '%s' cannot be used in %s routes", fname, ctx.route_type)
            return -1
        values: list[Any] = []
        for index, arg in enumerate(args):
            kind = fn.kind_of(index)
            if not isinstance(arg, (int, str)):
                raise TypeError(f"KSR.x.modf() argument {index + 2} must be str or int, "
                                f"not {type(arg).__name__}")
            if isinstance(arg, str) and "$" in arg:
                arg = self.format(arg)(ctx)
            if kind == "int" and isinstance(arg, str):
                try:
                    arg = int(arg.strip(), 0)
                except ValueError:
                    raise TypeError(f"KSR.x.modf('{fname}') argument {index + 2}: "
                                    f"expected an integer, got {arg!r}") from None
            elif kind == "str" and isinstance(arg, int):
                arg = str(arg)
            values.append(arg)
        code = impl(ctx, *values)
        ctx.retcode = code
        return code


def _src_uri(ctx: Context) -> str:
    ip, port = ctx.src
    host = f"[{ip}]" if ":" in ip else ip
    suffix = "" if ctx.proto == "udp" else f";transport={ctx.proto}"
    return f"sip:{host}:{port}{suffix}"


def build_ksr(router: Router) -> types.ModuleType:
    """The ``KSR`` module object for ``router`` (see :class:`Ksr`)."""
    return Ksr(router).module


__all__ = ["CORE_NAMESPACES", "Ksr", "build_ksr", "current_context", "set_current"]
