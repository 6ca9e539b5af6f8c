"""Turn a cfg file into a ready :class:`Router`: parse, set globals, load modules, compile.

Every problem is reported as a :class:`CfgError` with file, line and column;
:func:`load` collects as many as it can and raises them together.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..modules import CoreModule, module_name, registry
from ..modules.base import Module, ParamError
from ..routing.router import Router
from ..routing.settings import CoreSettings
from . import ast
from .compiler import compile_script
from .errors import CfgError, raise_errors
from .parser import parse_file

log = logging.getLogger("siprouter.cfg")


def _global_value(param: ast.GlobalParam) -> list[object]:
    """A global's value(s) in the form CoreSettings.apply() takes."""
    value = param.value
    if isinstance(value, tuple):
        specs = []
        for addr in value:
            host = f"[{addr.host}]" if ":" in addr.host else addr.host
            text = (f"{addr.proto}:" if addr.proto else "") + host
            if addr.port is not None:
                text += f":{addr.port}"
            if addr.advertise_host:
                text += f" advertise {addr.advertise_host}"
                if addr.advertise_port:
                    text += f":{addr.advertise_port}"
            specs.append(text)
        return list(specs)
    return [value]


def build_settings(config: ast.Config, errors: list[CfgError]) -> CoreSettings:
    settings = CoreSettings()
    for param in config.globals:
        for value in _global_value(param):
            try:
                warning = settings.apply(param.name, value)
            except ValueError as err:
                errors.append(CfgError.at(param.pos, f"{param.name}: {err}"))
                continue
            if warning:
                log.warning("%s: %s", param.pos, warning)
    if config.cfgengine:
        settings.cfgengine = config.cfgengine
    try:
        settings.finish()
    except ValueError as err:
        pos = next((g.pos for g in config.globals if g.name == "listen"), config.pos)
        errors.append(CfgError.at(pos, str(err)))
        settings.listen = []
    return settings


def load_modules(config: ast.Config, router: Router, errors: list[CfgError]) -> None:
    """Instantiate the loaded modules (core first) and apply modparams."""
    known = registry()
    modules: dict[str, Module] = {"core": CoreModule(router)}
    positions: dict[str, ast.Pos] = {}
    param_positions: dict[tuple[str, str], ast.Pos] = {}
    for load in config.loadmodules:
        name = module_name(load.path)
        cls = known.get(name)
        if cls is None:
            errors.append(CfgError.at(load.pos, f"module '{name}' is not available in siprouter"))
            continue
        if name not in modules:
            modules[name] = cls(router)
            positions[name] = load.pos
    router.modules = modules
    for param in config.modparams:
        try:
            pattern = re.compile(f"^({param.module})$", re.IGNORECASE)
        except re.error:
            errors.append(CfgError.at(param.pos, f"bad module name pattern {param.module!r}"))
            continue
        targets = [m for n, m in modules.items() if n != "core" and pattern.match(n)]
        if not targets:
            errors.append(CfgError.at(
                param.pos, f"modparam for module '{param.module}' which is not loaded"))
            continue
        for module in targets:
            param_positions[(module.exports.name, param.param)] = param.pos
            try:
                module.set_param(param.param, param.value)
            except ValueError as err:
                errors.append(CfgError.at(param.pos, str(err)))
    for name, module in modules.items():
        for dep in module.exports.depends:
            if dep not in modules:
                errors.append(CfgError.at(positions.get(name, config.pos),
                                          f"module '{name}' needs module '{dep}'"))
    router.module_positions = positions
    router.param_positions = param_positions


def init_modules(router: Router, errors: list[CfgError], config: ast.Config) -> None:
    positions = router.module_positions
    for name, module in router.modules.items():
        try:
            module.init()
        except (ValueError, OSError) as err:
            pos = positions.get(name, config.pos)
            if isinstance(err, ParamError):
                pos = router.param_positions.get((name, err.param), pos)
            errors.append(CfgError.at(pos, f"module '{name}' failed to initialise: {err}"))


def post_compile(router: Router, errors: list[CfgError], config: ast.Config) -> None:
    """Let modules see the compiled script (KEMI engines install their routes here)."""
    positions = router.module_positions
    for name, module in router.modules.items():
        try:
            module.post_compile()
        except ValueError as err:
            errors.append(CfgError.at(positions.get(name, config.pos), f"module '{name}': {err}"))
    engine = (router.settings.cfgengine or "").strip().lower()
    if engine and engine != "native" and not any(
            engine in module.exports.engines for module in router.modules.values()):
        errors.append(CfgError.at(config.pos, f"cfgengine '{router.settings.cfgengine}' is "
                                              "not provided by any loaded module"))


def load(path: str | os.PathLike[str], defines: dict[str, str] | None = None,
         shared: dict[str, object] | None = None) -> Router:
    """Parse and compile ``path`` into a Router; raises CfgError/CfgErrors."""
    config = parse_file(str(path), defines)
    return build_router(config, Path(path).parent, shared)


def build_router(config: ast.Config, base_dir: Path | None = None,
                 shared: dict[str, object] | None = None) -> Router:
    errors: list[CfgError] = []
    settings = build_settings(config, errors)
    router = Router(settings)
    if shared:
        router.shared.update(shared)
    load_modules(config, router, errors)
    raise_errors(errors)
    init_modules(router, errors, config)
    raise_errors(errors)
    router.refresh_myself()
    script, compile_errors = compile_script(router, config)
    raise_errors(compile_errors)
    router.script = script
    post_compile(router, errors, config)
    raise_errors(errors)
    if settings.cfgengine is None and script.request is None:
        log.warning("the cfg has no request_route: every request is dropped")
    return router
