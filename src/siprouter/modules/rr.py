"""rr: record_route() and loose_route() (RFC 3261 section 16.12)."""

from __future__ import annotations

from ..routing.context import Context
from ..sip.errors import SipError
from ..sip.headers import NameAddr, split_commas, unfold
from .base import REQUEST_ROUTES, Exports, Function, Module, Param


class RrModule(Module):
    exports = Exports(
        name="rr",
        params=(
            Param("append_fromtag", int, 1),
            Param("enable_double_rr", int, 1),
            Param("enable_full_lr", int, 0),
        ),
        functions=(
            Function("record_route", "record_route", (), ("str",), kemi=("record_route",),
                     routes=REQUEST_ROUTES),
            Function("loose_route", "loose_route", (), kemi=("loose_route",),
                     routes=REQUEST_ROUTES),
        ),
        kemi_module="rr",
    )

    def record_route(self, ctx: Context, params: str = "") -> int:
        """Insert our Record-Route as the first header of the forwarded request."""
        msg = ctx.msg
        ip, port = ctx.local
        host = f"[{ip}]" if ":" in ip else ip
        extra = ""
        if self.params["append_fromtag"]:
            try:
                from_ = msg.from_
            except SipError:
                return -1
            if from_ is not None and from_.tag:
                extra = f";ftag={from_.tag}"
        transport = "" if ctx.proto == "udp" else f";transport={ctx.proto}"
        lr = ";lr=on" if self.params["enable_full_lr"] else ";lr"
        first = msg.headers_start
        msg.insert(first, f"Record-Route: <sip:{host}:{port}{transport}{lr}{extra}{params}>\r\n")
        return 1

    def loose_route(self, ctx: Context) -> int:
        """Consume our own Route entries; route by the next one ($du) or by the R-URI."""
        msg = ctx.msg
        routes = msg.headers_named("route")
        if not routes:
            return -1
        entries: list[tuple[int, str]] = []  # (header index, route value)
        for i, hdr in enumerate(routes):
            for part in split_commas(unfold(hdr.value)):
                entries.append((i, part))
        removed = 0
        router = self.router
        for _index, value in entries:
            try:
                uri = NameAddr(value).uri
            except SipError:
                return -1
            if not router.is_myself(uri.host, uri.port, uri.scheme):
                break
            removed += 1
        if removed == 0:
            # first Route is not ours: preloaded route, send to it
            try:
                target = NameAddr(entries[0][1]).uri
            except SipError:
                return -1
            ctx.dst_uri = target.raw
            return 1
        self._remove_entries(ctx, entries, removed)
        if removed < len(entries):
            try:
                nxt = NameAddr(entries[removed][1]).uri
            except SipError:
                return -1
            if nxt.has_param("lr"):
                ctx.dst_uri = nxt.raw
            else:  # strict router next: it becomes the R-URI
                ctx.set_ruri(nxt.raw)
        return 1

    @staticmethod
    def _remove_entries(ctx: Context, entries: list[tuple[int, str]], count: int) -> None:
        msg = ctx.msg
        routes = msg.headers_named("route")
        removed_per_header: dict[int, list[str]] = {}
        for index, value in entries[:count]:
            removed_per_header.setdefault(index, []).append(value)
        for index, values in removed_per_header.items():
            hdr = routes[index]
            remaining = [v for (i, v) in entries if i == index and v not in values]
            if not remaining:
                msg.add_edit(hdr.start, hdr.end, "")
            else:
                start, end = hdr.value_span(msg.text)
                msg.add_edit(start, end, ", ".join(remaining))
