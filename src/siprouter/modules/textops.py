"""textops: is_method(), append_hf(), remove_hf(), is_present_hf(), append_to_reply()."""

from __future__ import annotations

from typing import Final

from ..routing.context import Context
from ..routing.router import has_broken_headers
from ..sip.errors import SipError
from ..sip.headers import canonical_name
from .base import REQUEST_ROUTES, Exports, Function, Module

KEMI_METHOD_LETTERS: Final = {"I": "INVITE", "A": "ACK", "B": "BYE", "C": "CANCEL", "R": "REGISTER",
                              "O": "OPTIONS", "S": "SUBSCRIBE", "N": "NOTIFY", "P": "PUBLISH",
                              "M": "MESSAGE", "E": "PRACK", "F": "REFER", "U": "UPDATE",
                              "K": "KDMQ", "G": "GET", "T": "POST", "V": "PUT", "D": "DELETE"}


def method_of(ctx: Context) -> str:
    msg = ctx.msg
    return msg.method if msg.is_request else msg.cseq.method


class TextopsModule(Module):
    exports = Exports(
        name="textops",
        functions=(
            Function("is_method", "is_method", ("str",), kemi=("is_method",), kemi_bool=True),
            Function("append_hf", "append_hf", ("str",), ("str",), kemi=("append",)),
            Function("remove_hf", "remove_hf", ("str",), kemi=("remove",)),
            Function("is_present_hf", "is_present_hf", ("str",), kemi=("is_present",)),
            Function("append_to_reply", "append_to_reply", ("str",),
                     kemi=("append_to_reply",), routes=REQUEST_ROUTES),
        ),
        kemi_module="hdr",
    )

    def __init__(self, router: object) -> None:
        super().__init__(router)  # type: ignore[arg-type]
        self._method_sets: dict[str, frozenset[str]] = {}

    def is_method(self, ctx: Context, methods: str) -> int:
        wanted = self._method_sets.get(methods)
        if wanted is None:
            wanted = frozenset(m.strip().upper() for m in methods.split("|") if m.strip())
            self._method_sets[methods] = wanted
        try:
            method = method_of(ctx)
        except SipError:
            return -1
        return 1 if method.upper() in wanted else -1

    # These three parse every header: a message that Kamailio 5.6 cannot parse
    # completely (a second Max-Forwards) makes them fail [verified on 5.6.3].

    def append_hf(self, ctx: Context, text: str, after: str | None = None) -> int:
        """Append a header after the last header, or after the first ``after`` header
        (at the end when there is none, still returning 1)."""
        msg = ctx.msg
        if has_broken_headers(msg):
            return -1
        if after:
            hdr = msg.header(canonical_name(after))
            if hdr is not None:
                msg.insert(hdr.end, text)
                return 1
        pos = msg.headers_end
        msg.insert(pos, text)
        return 1

    def remove_hf(self, ctx: Context, name: str) -> int:
        """Remove every header with this name (compact forms match); 1, or -1 if none."""
        msg = ctx.msg
        if has_broken_headers(msg):
            return -1
        found = msg.headers_named(canonical_name(name))
        for hdr in found:
            msg.add_edit(hdr.start, hdr.end, "")
        return 1 if found else -1

    def is_present_hf(self, ctx: Context, name: str) -> int:
        if has_broken_headers(ctx.msg):
            return -1
        return 1 if ctx.msg.has_header(canonical_name(name)) else -1

    def append_to_reply(self, ctx: Context, text: str) -> int:
        ctx.reply_lumps.append(text)
        return 1
