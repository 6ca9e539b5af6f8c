"""corex: append_branch()."""

from __future__ import annotations

from ..routing.context import Branch, Context
from .base import REQUEST_ROUTES, Exports, Function, Module


class CorexModule(Module):
    exports = Exports(
        name="corex",
        functions=(
            Function("append_branch", "append_branch", (), ("str", "str"),
                     kemi=("append_branch", "append_branch_uri", "append_branch_uri_q"),
                     routes=REQUEST_ROUTES),
        ),
        kemi_module="corex",
    )

    def append_branch(self, ctx: Context, uri: str = "", q: str = "") -> int:
        """Add a branch to the destination set (-1 when max_branches is reached)."""
        if len(ctx.branches) >= self.router.settings.max_branches - 1:
            return -1
        if q:
            try:
                qv = float(q)
            except ValueError:
                return -1
            if not 0 <= qv <= 1:
                return -1
        if uri:
            # Kamailio gives the new branch the current $du too (it stays set)
            ctx.branches.append(Branch(uri, q or None, ctx.dst_uri))
        else:
            ctx.branches.append(Branch(ctx.ruri, q or ctx.ruri_q, ctx.dst_uri, ctx.flags))
            ctx.dst_uri = None
        return 1

    # KEMI variants
    def append_branch_uri(self, ctx: Context, uri: str) -> int:
        return self.append_branch(ctx, uri)

    def append_branch_uri_q(self, ctx: Context, uri: str, q: str) -> int:
        return self.append_branch(ctx, uri, q)
