"""Modules: each file declares its exports (see base.py); REGISTRY maps Kamailio names."""

from __future__ import annotations

from .base import Module
from .core import CoreModule
from .corex import CorexModule
from .maxfwd import MaxfwdModule
from .rr import RrModule
from .siputils import SiputilsModule
from .sl import SlModule
from .textops import TextopsModule
from .xlog import XlogModule


class _NoExports(Module):
    """Modules whose features siprouter provides in the core (pv, kex, the DB drivers)."""


def _empty(name: str) -> type[Module]:
    from .base import Exports

    return type(f"{name.capitalize()}Module", (_NoExports,), {"exports": Exports(name=name)})


def registry() -> dict[str, type[Module]]:
    """Kamailio module name -> implementing class."""
    from ..kemi.app_python3 import AppPython3Module
    from .cfg_rpc import CfgRpcModule
    from .ctl import CtlModule
    from .dispatcher.module import DispatcherModule
    from .jsonrpcs import JsonrpcsModule
    from .sanity import SanityModule
    from .tm import TmModule
    from .xhttp import XhttpModule

    return {
        "sl": SlModule, "maxfwd": MaxfwdModule, "sanity": SanityModule,
        "dispatcher": DispatcherModule, "corex": CorexModule, "xlog": XlogModule,
        "textops": TextopsModule, "siputils": SiputilsModule, "rr": RrModule,
        "pv": _empty("pv"), "kex": _empty("kex"),
        "app_python3": AppPython3Module, "kemix": _empty("kemix"), "tm": TmModule,
        "ctl": CtlModule, "jsonrpcs": JsonrpcsModule, "xhttp": XhttpModule,
        "cfg_rpc": CfgRpcModule,
        # database drivers: the dispatcher opens db_url itself (modules/dispatcher/db.py)
        "db_sqlite": _empty("db_sqlite"), "db_postgres": _empty("db_postgres"),
    }


def module_name(path: str) -> str:
    """``"/usr/lib/kamailio/modules/sl.so"`` -> ``"sl"``."""
    base = path.rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".so") else base


__all__ = ["CoreModule", "Module", "module_name", "registry"]
