"""xlog: log lines with pseudo-variables expanded."""

from __future__ import annotations

import logging

from ..routing.context import Context
from .base import Exports, Function, Module

log = logging.getLogger("siprouter.script")

# Kamailio level numbers (debug=N prints levels <= N) -> Python logging levels
LEVELS = {-5: logging.CRITICAL, -4: logging.CRITICAL, -3: logging.CRITICAL,
          -2: logging.ERROR, -1: logging.ERROR, 0: logging.WARNING, 1: logging.WARNING - 5,
          2: logging.INFO, 3: logging.DEBUG}
_BY_LETTER = {"A": -5, "B": -4, "C": -3, "E": -1, "W": 0, "N": 1, "I": 2, "D": 3}


def level_number(name: str) -> int:
    """Kamailio level from ``L_INFO``-style names (the third character decides)."""
    text = name.strip()
    if len(text) >= 3 and text[:2].upper() == "L_":
        return _BY_LETTER.get(text[2].upper(), -1)
    try:
        return int(text)
    except ValueError:
        return -1


class XlogModule(Module):
    exports = Exports(
        name="xlog",
        functions=(
            Function("xlog", "xlog", ("str",), ("str",), kemi=("xlog",), kemi_fmt=True),
            Function("xdbg", "xdbg", ("str",), kemi=("xdbg",), kemi_fmt=True),
            Function("xinfo", "xinfo", ("str",), kemi=("xinfo",), kemi_fmt=True),
            Function("xnotice", "xnotice", ("str",), kemi=("xnotice",), kemi_fmt=True),
            Function("xwarn", "xwarn", ("str",), kemi=("xwarn",), kemi_fmt=True),
            Function("xerr", "xerr", ("str",), kemi=("xerr",), kemi_fmt=True),
            Function("xbug", "xbug", ("str",), kemi=("xbug",), kemi_fmt=True),
            Function("xcrit", "xcrit", ("str",), kemi=("xcrit",), kemi_fmt=True),
            Function("xalert", "xalert", ("str",), kemi=("xalert",), kemi_fmt=True),
        ),
        kemi_module="xlog",
    )

    def emit(self, ctx: Context, level: int, text: str) -> int:
        if level <= self.router.settings.debug:
            prefix = self.router.settings.log_prefix
            log.log(LEVELS.get(level, logging.ERROR), "%s%s", prefix, text.rstrip("\n"),
                    extra={"callid": ctx.msg.callid})
        return 1

    def xlog(self, ctx: Context, first: str, second: str | None = None) -> int:
        if second is None:
            return self.emit(ctx, -1, first)
        return self.emit(ctx, level_number(first), second)

    def xdbg(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, 3, text)

    def xinfo(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, 2, text)

    def xnotice(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, 1, text)

    def xwarn(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, 0, text)

    def xerr(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, -1, text)

    def xbug(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, -4, text)

    def xcrit(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, -3, text)

    def xalert(self, ctx: Context, text: str) -> int:
        return self.emit(ctx, -5, text)
