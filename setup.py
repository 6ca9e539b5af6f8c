"""Optional compiled build: ``SIPROUTER_MYPYC=1 pip install --no-build-isolation .``
(with mypy installed) compiles the
per-message hot path (message layer, routing engine, core modules) to C with
mypyc. The pure-Python package is the default and behaves the same; see
docs/performance.md for what the compiled build buys.
"""

import os

from setuptools import Extension, setup

# Modules on the per-message path. They must stay free of dynamic attribute
# tricks (mypyc classes are closed); tests/test_compiled.py runs on this build.
HOT_MODULES = [
    "src/siprouter/sip/errors.py",
    "src/siprouter/sip/uri.py",
    "src/siprouter/sip/headers.py",
    "src/siprouter/sip/message.py",
    "src/siprouter/routing/context.py",
    "src/siprouter/routing/router.py",
    "src/siprouter/routing/forward.py",
    "src/siprouter/routing/replies.py",
    "src/siprouter/routing/pv.py",
    "src/siprouter/routing/settings.py",
    "src/siprouter/config/compiler.py",
    "src/siprouter/modules/base.py",
    "src/siprouter/modules/core.py",
    "src/siprouter/modules/sl.py",
    "src/siprouter/modules/maxfwd.py",
    "src/siprouter/modules/sanity.py",
    "src/siprouter/modules/textops.py",
    "src/siprouter/modules/siputils.py",
    "src/siprouter/modules/rr.py",
    "src/siprouter/modules/dispatcher/hashing.py",
    "src/siprouter/modules/dispatcher/selection.py",
    "src/siprouter/modules/dispatcher/module.py",
    "src/siprouter/tm/messages.py",
    "src/siprouter/tm/transaction.py",
    "src/siprouter/tm/table.py",
    "src/siprouter/modules/tm.py",
    # the receive loop: compiled, it runs no bytecode, so it calls check_signals()
    # (sip/_speedups.c) once per round for the Python signal handlers to run
    "src/siprouter/transport/shared.py",
    "src/siprouter/transport/worker.py",
]

ext_modules = []
if os.environ.get("SIPROUTER_MYPYC") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(HOT_MODULES, opt_level="3")
    # hand-written C versions of the parser's fast paths (sip/_speedups.c)
    ext_modules.append(Extension("siprouter.sip._speedups", ["src/siprouter/sip/_speedups.c"],
                                 extra_compile_args=["-O2"]))
    # Calls into libpython through the GOT instead of PLT stubs: one cache line
    # fewer per distinct C-API function a message touches (docs/performance.md).
    for ext in ext_modules:
        ext.extra_compile_args = [*ext.extra_compile_args, "-fno-plt"]

setup(ext_modules=ext_modules)
