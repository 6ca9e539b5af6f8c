"""app_python3: KEMI routing logic written in Python (Kamailio's app_python3 module).

``init()`` imports the script named by ``modparam("app_python3", "load", ...)``
with the ``KSR`` facade (:mod:`.ksr`) injected into ``sys.modules`` so that
``import KSR as KSR`` works, and calls its ``mod_init()`` to get the handler
object. ``post_compile()`` installs route wrappers into ``router.script`` when
the cfg says ``cfgengine "python"``:

* requests -> ``handler.ksr_request_route(msg)``, only when the cfg has no
  native ``request_route`` (Kamailio 5.6 runs a native one if it exists);
* replies -> ``handler.ksr_reply_route(msg)`` (core param
  ``kemi.reply_route_callback``), used even if a native ``reply_route`` exists;
* onsend -> ``handler.ksr_onsend_route(msg)`` (``kemi.onsend_route_callback``);
* module event callbacks (``sl`` ``event_callback_*``, ``dispatcher``
  ``event_callback``) -> ``handler.<name>(msg, "<event name>")``.

KEMI semantics (spec/cfg-language.md 9.2): the return value of a route method
does not matter and a 0 from a KSR function does not stop anything;
``sys.exit()`` ends the route; any other exception is logged with the
Call-ID and the message processing ends there, never the worker.
``child_init(rank)`` of the handler runs in every worker.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..modules.base import Exports, Function, Module, Param
from ..routing.context import Address, Context, RouteReturn, ScriptExit
from ..sip.errors import SipError
from ..sip.headers import canonical_name
from .ksr import Ksr, set_current

log = logging.getLogger("siprouter.kemi")

DEFAULT_SCRIPT = "/usr/local/etc/kamailio/handler.py"

# (module, parameter) naming a KEMI callback -> the events it replaces
EVENT_CALLBACKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("sl", "event_callback_fl_ack", ("sl:filtered-ack",)),
    ("sl", "event_callback_lres_sent", ("sl:local-response",)),
    ("dispatcher", "event_callback", ("dispatcher:dst-down", "dispatcher:dst-up")),
)


class KemiMessage:
    """The opaque ``msg`` passed to ``ksr_*`` methods (app_python3's msgobject).

    It is only valid during the call it was passed to.
    """

    __slots__ = ("_ctx", "_ksr")

    def __init__(self, ctx: Context, ksr: Ksr) -> None:
        self._ctx: Context | None = ctx
        self._ksr = ksr

    def invalidate(self) -> None:
        self._ctx = None

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            raise RuntimeError("the message object is no longer valid")
        return self._ctx

    @property
    def Type(self) -> str:  # noqa: N802 - app_python3's attribute names
        return "SIP_REQUEST" if self.ctx.msg.is_request else "SIP_REPLY"

    @property
    def Method(self) -> str:  # noqa: N802
        msg = self.ctx.msg
        if not msg.is_request:
            raise TypeError("Not a request message - no method available.")
        return msg.method

    @property
    def Status(self) -> int:  # noqa: N802
        msg = self.ctx.msg
        if msg.is_request:
            raise TypeError("Not a non-reply message - no status available.")
        return msg.status

    @property
    def RURI(self) -> str:  # noqa: N802
        ctx = self.ctx
        if not ctx.msg.is_request:
            raise TypeError("Not a request message - RURI is not available.")
        return ctx.ruri

    @property
    def src_address(self) -> Address:
        return self.ctx.src

    @property
    def dst_address(self) -> Address:
        return self.ctx.local

    def getHeader(self, name: str) -> str | None:  # noqa: N802
        return self.ctx.msg.header_value(canonical_name(name.strip()))

    def rewrite_ruri(self, uri: str) -> None:
        ctx = self.ctx
        if not ctx.msg.is_request:
            raise TypeError("Not a request message - rewrite is not possible.")
        ctx.set_ruri(uri)

    def set_dst_uri(self, uri: str) -> None:
        ctx = self.ctx
        if not ctx.msg.is_request:
            raise TypeError("Not a request message - set destination is not possible.")
        ctx.dst_uri = uri or None

    def call_function(self, fname: str, *args: Any) -> int:
        return self._ksr.call_cfg_function(self.ctx, fname, args)

    def __repr__(self) -> str:
        if self._ctx is None:
            return "<KemiMessage (invalid)>"
        return f"<KemiMessage {self.Type} Call-ID {self._ctx.msg.callid!r}>"


class AppPython3Module(Module):
    exports = Exports(
        name="app_python3",
        params=(
            Param("load", str, DEFAULT_SCRIPT),
            Param("script_name", str, ""),          # older name of "load"
            Param("mod_init_function", str, "mod_init"),
            Param("child_init_method", str, "child_init"),
            Param("script_init", str, ""),
            Param("threads_mode", int, 0),
        ),
        functions=(
            # native cfg: python_exec("method" [, "param"]) runs a handler method
            Function("python_exec", "python_exec", ("str",), ("str",)),
        ),
        engines=("python",),
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.ksr: Ksr | None = None
        self.handler: Any = None
        self.script_module: Any = None

    def set_param(self, name: str, value: Any) -> None:
        super().set_param("load" if name == "script_name" else name, value)

    # ------------------------------------------------------------ lifecycle
    def init(self) -> None:
        self.ksr = Ksr(self.router)
        path = Path(str(self.params["load"]))
        if not path.is_file():
            raise ValueError(f"cannot read the python script '{path}'")
        self.script_module = self._import(path)
        init_name = str(self.params["mod_init_function"])
        mod_init = getattr(self.script_module, init_name, None)
        if not callable(mod_init):
            raise ValueError(f"'{path}' has no callable {init_name}()")
        try:
            handler = mod_init()
        except Exception as err:  # noqa: BLE001 - a broken script is a cfg error
            log.exception("%s() of %s failed", init_name, path)
            raise ValueError(f"{init_name}() of '{path}' failed: "
                             f"{type(err).__name__}: {err}") from None
        if handler is None:
            raise ValueError(f"{init_name}() of '{path}' returned None, not a handler object")
        self.handler = handler
        script_init = str(self.params["script_init"])
        if script_init:
            fn = getattr(self.script_module, script_init, None)
            if callable(fn):
                self._guarded(fn, f"{script_init}()")

    def _import(self, path: Path) -> Any:
        """Import the script as a module named after the file, with KSR importable."""
        assert self.ksr is not None
        sys.modules["KSR"] = self.ksr.module
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load the python script '{path}'")
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(name)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as err:  # noqa: BLE001 - includes SyntaxError and SystemExit
            if previous is not None:
                sys.modules[name] = previous
            else:
                sys.modules.pop(name, None)
            if isinstance(err, KeyboardInterrupt):
                raise
            log.exception("error loading %s", path)
            raise ValueError(f"error loading '{path}': {type(err).__name__}: {err}") from None
        return module

    def child_init(self, rank: int) -> None:
        if self.handler is None:
            return
        fn = getattr(self.handler, str(self.params["child_init_method"]), None)
        if not callable(fn):
            return
        result = self._guarded(lambda: fn(rank), f"child_init({rank})")
        if isinstance(result, int) and result < 0:
            log.error("child_init(%d) of the python script returned %d", rank, result)

    def _guarded(self, fn: Callable[[], Any], what: str) -> Any:
        previous = set_current(None)
        try:
            return fn()
        except SystemExit:
            return None
        except Exception:  # noqa: BLE001 - never kill the process for a script error
            log.exception("error in %s of the python script", what)
            return None
        finally:
            set_current(previous)

    def post_compile(self) -> None:
        settings = self.router.settings
        engine = (settings.cfgengine or "").strip().lower()
        if engine not in self.exports.engines:
            return
        script = self.router.script
        if script.request is None:
            script.request = self.route("ksr_request_route", required=True)
        else:
            log.info("the cfg has a native request_route: ksr_request_route() is not used")
        if settings.kemi_reply_route_callback:
            script.reply = self.route(settings.kemi_reply_route_callback)
        if settings.kemi_onsend_route_callback:
            script.onsend = self.route(settings.kemi_onsend_route_callback)
        for module_name, param, events in EVENT_CALLBACKS:
            module = self.router.modules.get(module_name)
            callback = str(module.params.get(param) or "") if module is not None else ""
            if callback:
                for event in events:
                    script.event[event] = self.route(callback, event)

    # ------------------------------------------------------------ running routes
    def route(self, method: str, param: str | None = None,
              required: bool = False) -> Callable[[Context], None]:
        """A route callable (for router.script) that runs ``handler.<method>``."""
        def run(ctx: Context) -> None:
            self.call(ctx, method, param, required)
        run.__name__ = f"kemi_{method}"
        run.__qualname__ = f"kemi:{method}"
        return run

    def call(self, ctx: Context, method: str, param: str | None = None,
             required: bool = True) -> int:
        """Run ``handler.<method>(msg[, param])`` with ``ctx`` current (Kamailio's apy_exec)."""
        assert self.ksr is not None
        fn = getattr(self.handler, method, None)
        if not callable(fn):
            if required:
                log.error("%s not found or is not callable", method)
                return -1
            log.debug("%s not found or is not callable", method)
            return 1
        msg = KemiMessage(ctx, self.ksr)
        previous = set_current(ctx)
        try:
            result = fn(msg) if param is None else fn(msg, param)
        except SystemExit:
            return -1   # sys.exit(): the end of the route
        except (ScriptExit, RouteReturn) as stop:
            return stop.code
        except Exception:  # noqa: BLE001 - a script error must not kill the worker
            log.exception("error in python %s() (Call-ID %s)", method, _callid(ctx))
            return -1
        finally:
            msg.invalidate()
            set_current(previous)
        return int(result) if isinstance(result, int) else -1

    def python_exec(self, ctx: Context, method: str, param: str | None = None) -> int:
        return self.call(ctx, method, param, required=True)


def _callid(ctx: Context) -> str:
    try:
        return ctx.msg.callid
    except SipError:
        return ""
