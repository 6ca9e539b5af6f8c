"""Module export declarations, in the spirit of Kamailio's ``module_exports``.

Each module declares in one place its parameters, its functions (cfg names,
KEMI names, arities, argument kinds), its pseudo-variables, RPC commands and
statistics. The cfg compiler and the KEMI facade bind to these declarations.

A function implementation is a method ``impl(ctx, *args) -> int`` where
``args`` are already evaluated Python values (``int`` for ``"int"`` kinds,
``str`` for ``"str"`` kinds). Return codes follow Kamailio: > 0 success,
< 0 failure, 0 stops the script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from ..routing.context import Context
    from ..routing.router import Router

ArgKind = str  # "int" | "str" | "any"

REQUEST_ROUTES = frozenset(("request", "failure", "branch"))
ANY_ROUTE = frozenset(("request", "failure", "branch", "reply", "onreply", "event",
                       "onsend", "local"))


class ParamError(ValueError):
    """A module's init() error about one parameter: reported at that modparam's line."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Param:
    """A module parameter set with ``modparam``."""

    name: str
    kind: type  # int or str
    default: Any
    multi: bool = False          # may be given several times (collects a list)
    runtime: bool = False        # changeable at run time (cfg.set)
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Function:
    """A script function exported by a module."""

    name: str                              # cfg name
    method: str                            # name of the implementing method on the module
    args: tuple[ArgKind, ...] = ()         # kinds of the mandatory arguments
    optional: tuple[ArgKind, ...] = ()     # kinds of optional trailing arguments
    aliases: tuple[str, ...] = ()          # other cfg names
    kemi: tuple[str, ...] = ()             # KEMI names (KSR.<module>.<name>)
    routes: frozenset[str] = ANY_ROUTE
    kemi_bool: bool = False                # KEMI returns True/False instead of an int
    kemi_fmt: bool = False                 # KEMI expands PVs in the last argument (xlog)
    # cfg argument indexes with Kamailio's fixup_var_* / fixup_igp rule: a string that
    # starts with a pseudo-variable is that variable alone (the rest is ignored); an
    # "int" argument needs an int-valued variable, a "str" one a defined variable,
    # otherwise the function receives None.
    pv_first: tuple[int, ...] = ()

    @property
    def arities(self) -> range:
        return range(len(self.args), len(self.args) + len(self.optional) + 1)

    def kind_of(self, index: int) -> ArgKind:
        kinds = self.args + self.optional
        return kinds[index] if index < len(kinds) else "str"


@dataclass(frozen=True)
class PseudoVar:
    """A module pseudo-variable ``$name(arg)``: ``factory(module, arg)`` returns a getter."""

    name: str
    method: str


@dataclass(frozen=True)
class Exports:
    """Everything a module exports."""

    name: str
    params: tuple[Param, ...] = ()
    functions: tuple[Function, ...] = ()
    pvs: tuple[PseudoVar, ...] = ()
    rpc: tuple[tuple[str, str], ...] = ()     # (rpc method name, implementing method)
    stats: tuple[str, ...] = ()               # statistic names in the module's group
    kemi_module: str | None = None            # KSR sub-module name ('' = top level KSR)
    depends: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()             # cfgengine names the module provides (KEMI)


# Compiled (setup.py), Module is a native class: the modules' own state (router,
# params, statistics...) is read from fixed slots, not from an instance dict.
# Modules that stay interpreted (and test doubles) subclass it all the same.
@mypyc_attr(allow_interpreted_subclasses=True)
class Module:
    """Base class of all modules. One instance per router."""

    exports: ClassVar[Exports]

    def __init__(self, router: Router) -> None:
        self.router = router
        self.params: dict[str, Any] = {
            p.name: ([] if p.multi else p.default) for p in self.exports.params
        }

    # ------------------------------------------------------------ lifecycle
    def set_param(self, name: str, value: Any) -> None:
        """Set a modparam; raises ValueError with a reason on a bad name or value."""
        spec = next((p for p in self.exports.params if p.name == name), None)
        if spec is None:
            raise ValueError(f"unknown parameter '{name}' of module '{self.exports.name}'")
        # a runtime (cfg framework) variable is range-checked only when changed at run
        # time: Kamailio 5.6 takes modparam("maxfwd", "max_limit", 300) [verified]
        value = coerce_param(spec, value, check_range=not spec.runtime)
        if spec.multi:
            self.params[name].append(value)
        else:
            self.params[name] = value

    def init(self) -> None:
        """Called once after all modparams are set (mod_init). Raise ValueError on error."""

    def child_init(self, rank: int) -> None:
        """Called in each worker process after fork."""

    def post_compile(self) -> None:
        """Called once the cfg routes are compiled into ``router.script``.

        A KEMI engine module installs its route wrappers here. Raise ValueError on error.
        """

    def stat_values(self) -> dict[str, int]:
        """Current statistics of this process (name -> value)."""
        return {}

    def function(self, name: str) -> tuple[Function, Callable[..., int]] | None:
        for fn in self.exports.functions:
            if name == fn.name or name in fn.aliases:
                return fn, getattr(self, fn.method)
        return None

    def event(self, ctx: Context) -> None:  # pragma: no cover - optional hook
        """Hook for modules that need to see every received message."""


def coerce_param(spec: Param, value: Any, check_range: bool = True) -> Any:
    """Convert a modparam value to the declared type, as Kamailio does."""
    if spec.kind is int:
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text, 0)
            except ValueError:
                raise ValueError(
                    f"parameter '{spec.name}' expects an integer, got {value!r}") from None
        if not isinstance(value, int):
            raise ValueError(f"parameter '{spec.name}' expects an integer")
        if check_range and (spec.minimum is not None and value < spec.minimum or
                            spec.maximum is not None and value > spec.maximum):
            raise ValueError(
                f"parameter '{spec.name}' value {value} out of range "
                f"{spec.minimum}..{spec.maximum}")
        return value
    if isinstance(value, int):
        return str(value)
    return value


@dataclass
class Stats:
    """A per-process counter table for one statistics group."""

    group: str
    names: tuple[str, ...]
    values: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.names:
            self.values.setdefault(name, 0)

    def inc(self, name: str, by: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + by
