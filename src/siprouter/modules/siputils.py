"""siputils: has_totag()."""

from __future__ import annotations

from ..routing.context import Context
from ..sip.errors import SipError
from .base import Exports, Function, Module


class SiputilsModule(Module):
    exports = Exports(
        name="siputils",
        functions=(Function("has_totag", "has_totag", (), kemi=("has_totag",)),),
        kemi_module="siputils",
    )

    def has_totag(self, ctx: Context) -> int:
        try:
            to = ctx.msg.to
        except SipError:
            return -1
        return 1 if to is not None and to.tag else -1
