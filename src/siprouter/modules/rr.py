"""rr: record_route() and loose_route() (RFC 3261 section 16.12)."""

from __future__ import annotations

import logging
from typing import Any, Final

from ..routing.context import Context
from ..routing.forward import host_port
from ..sip.errors import SipError
from ..sip.headers import NameAddr, split_commas, unfold
from .base import REQUEST_ROUTES, Exports, Function, Module, Param

log: Final = logging.getLogger("siprouter.rr")

RR_DRIVEN: Final = 1
RR_PRELOADED: Final = -3   # initial request that carried only our own Route


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
        """Insert our Record-Route as the first header of the forwarded request.

        Only once per message: a second call fails (-1) [verified on 5.6.3].
        """
        msg = ctx.msg
        if ctx.rr_added:
            log.error("double attempt to record-route", extra={"callid": msg.callid})
            return -1
        ip, port = ctx.local
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
        where = host_port(ip, port, ctx.proto)
        msg.insert(first, f"Record-Route: <sip:{where}{transport}{lr}{extra}{params}>\r\n")
        ctx.rr_added = True
        return 1

    def loose_route(self, ctx: Context) -> int:
        """RFC 3261 16.12 route processing, as Kamailio 5.6's rr module does it.

        Returns 1 when routing follows the Route set, -1 when there is no Route
        (or on error), -3 (RR_PRELOADED) when an initial request (no To-tag)
        carried only our own Route.

        * initial request, or R-URI not ours: the first Route, if ours, is removed
          (and the one after it for a double Record-Route marked ``r2``); the next
          one becomes ``$du`` if it is a loose router (``;lr``), else the R-URI
          (the received R-URI is then appended as the last Route); nothing left:
          1, or -3 for an initial request; a first Route that is not ours is used
          as ``$du`` and kept;
        * in-dialog request whose R-URI is ours (the previous hop was a strict
          router): the first Route (after our double one) becomes ``$du`` and the
          last Route becomes the R-URI and is removed.
        [verified on 5.6.3]
        """
        msg = ctx.msg
        routes = msg.headers_named("route")
        if not routes:
            return -1
        entries: list[tuple[int, str]] = []  # (header index, route value)
        for i, hdr in enumerate(routes):
            for part in split_commas(unfold(hdr.value)):
                entries.append((i, part))
        try:
            uris = [NameAddr(value).uri for _, value in entries]
            to = msg.to
            ruri = ctx.uri
        except SipError:
            return -1
        if not entries:
            return -1
        preloaded = to is None or not to.tag
        myself = self.router.is_myself
        double_rr = bool(self.params["enable_double_rr"])
        if not preloaded and myself(ruri.host, ruri.port, ruri.scheme):
            return self._after_strict(ctx, entries, uris, double_rr)
        first = uris[0]
        index = 0
        if myself(first.host, first.port, first.scheme):
            index = 2 if double_rr and first.has_param("r2") else 1
            if index >= len(entries):
                self._remove_entries(ctx, entries, set(range(len(entries))))
                return RR_PRELOADED if preloaded else RR_DRIVEN
        nxt = uris[index]
        if nxt.has_param("lr"):
            self._remove_entries(ctx, entries, set(range(index)))
            ctx.dst_uri = nxt.raw
            return RR_DRIVEN
        # the next hop is a strict router: it becomes the R-URI and the received
        # R-URI is saved as the last Route
        self._remove_entries(ctx, entries, set(range(index + 1)))
        msg.insert(msg.headers_end, f"Route: <{msg.ruri}>\r\n")
        ctx.set_ruri(nxt.raw)
        return RR_DRIVEN

    def _after_strict(self, ctx: Context, entries: list[tuple[int, str]], uris: list[Any],
                      double_rr: bool) -> int:
        """The R-URI is ours: the previous hop was a strict router."""
        first = uris[0]
        index = 0
        if double_rr and first.has_param("r2") and \
                self.router.is_myself(first.host, first.port, first.scheme):
            index = 1
            if index >= len(entries):
                self._remove_entries(ctx, entries, {0})
                return -1
        current = uris[index]
        if not current.has_param("lr"):
            self._remove_entries(ctx, entries, set(range(index + 1)))
            ctx.set_ruri(current.raw)
            return RR_DRIVEN
        ctx.dst_uri = current.raw
        last = len(entries) - 1
        self._remove_entries(ctx, entries, set(range(index)) | {last})
        ctx.set_ruri(uris[last].raw)
        return RR_DRIVEN

    @staticmethod
    def _remove_entries(ctx: Context, entries: list[tuple[int, str]], remove: set[int]) -> None:
        """Remove the Route entries at these positions (whole headers when emptied)."""
        msg = ctx.msg
        routes = msg.headers_named("route")
        by_header: dict[int, list[tuple[int, str]]] = {}
        for position, (index, value) in enumerate(entries):
            by_header.setdefault(index, []).append((position, value))
        for index, items in by_header.items():
            if not any(position in remove for position, _ in items):
                continue
            hdr = routes[index]
            remaining = [value for position, value in items if position not in remove]
            if not remaining:
                msg.add_edit(hdr.start, hdr.end, "")
            else:
                start, end = hdr.value_span(msg.text)
                msg.add_edit(start, end, ", ".join(remaining))
