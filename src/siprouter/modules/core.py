"""Core script functions: forward(), force_rport(), revert_uri(), flags, R-URI rewrites."""

from __future__ import annotations

from ..routing.context import Context
from ..routing.forward import forward_request
from ..sip.errors import SipError
from .base import REQUEST_ROUTES, Exports, Function, Module


class CoreModule(Module):
    """Functions of Kamailio's core, exported like a module so the compiler binds them alike."""

    exports = Exports(
        name="core",
        functions=(
            Function("forward", "forward", (), ("str", "int"), kemi=("forward",),
                     routes=REQUEST_ROUTES),
            Function("force_rport", "force_rport", (), kemi=("force_rport",), kemi_bool=True),
            Function("add_rport", "force_rport", ()),
            Function("revert_uri", "revert_uri", (), routes=REQUEST_ROUTES),
            Function("setflag", "setflag", ("int",), kemi=("setflag",), kemi_bool=True),
            Function("resetflag", "resetflag", ("int",), kemi=("resetflag",), kemi_bool=True),
            Function("isflagset", "isflagset", ("int",), kemi=("isflagset",), kemi_bool=True),
            Function("rewriteuri", "seturi", ("str",), aliases=("seturi",), kemi=("seturi",),
                     kemi_bool=True),
            Function("rewritehost", "sethost", ("str",), aliases=("sethost",), kemi=("sethost",),
                     kemi_bool=True),
            Function("rewriteuser", "setuser", ("str",), aliases=("setuser",), kemi=("setuser",),
                     kemi_bool=True),
            Function("rewriteport", "setport", ("str",), aliases=("setport",)),
        ),
        kemi_module="",
    )

    def forward(self, ctx: Context, target: str = "", port: int | None = None) -> int:
        uri = None
        if target:
            uri = target if target.startswith(("sip:", "sips:")) else f"sip:{target}"
            if port is not None:
                uri = f"{uri}:{port}"
        result = forward_request(ctx, uri)
        return result

    def force_rport(self, ctx: Context) -> int:
        ctx.force_rport = True
        return 1

    def revert_uri(self, ctx: Context) -> int:
        ctx.set_ruri(None)
        return 1

    def setflag(self, ctx: Context, flag: int) -> int:
        if not 0 <= flag <= 31:
            return -1
        ctx.flags |= 1 << flag
        return 1

    def resetflag(self, ctx: Context, flag: int) -> int:
        if not 0 <= flag <= 31:
            return -1
        ctx.flags &= ~(1 << flag)
        return 1

    def isflagset(self, ctx: Context, flag: int) -> int:
        if not 0 <= flag <= 31:
            return -1
        return 1 if ctx.flags & (1 << flag) else -1

    def seturi(self, ctx: Context, uri: str) -> int:
        ctx.set_ruri(uri)
        return 1

    def _rewrite(self, ctx: Context, part: str, value: str) -> int:
        from ..routing.pv import compile_pv

        setter = compile_pv({"user": "rU", "host": "rd", "port": "rp"}[part]).set
        assert setter is not None
        try:
            setter(ctx, value)
        except SipError:
            return -1
        return 1

    def sethost(self, ctx: Context, host: str) -> int:
        return self._rewrite(ctx, "host", host)

    def setuser(self, ctx: Context, user: str) -> int:
        return self._rewrite(ctx, "user", user)

    def setport(self, ctx: Context, port: str) -> int:
        return self._rewrite(ctx, "port", port)
