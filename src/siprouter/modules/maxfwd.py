"""maxfwd: Max-Forwards loop protection (spec/maxfwd.md)."""

from __future__ import annotations

from typing import Final

from ..routing.context import Context
from ..sip.headers import digits_value, is_digits
from ..sip.message import Header
from .base import REQUEST_ROUTES, Exports, Function, Module, Param

_TRAIL: Final = " \t\r\n\x00"


def parse_maxfwd(value: str) -> int | None:
    """Kamailio's parsing of a Max-Forwards body: None when unparsable.

    Blanks around the number are ignored, an empty body is 0, at most 5 digits
    are accepted and the value wraps at 16 bits.
    """
    text = value.rstrip(_TRAIL).lstrip(" \t")
    if not text:
        return 0
    if len(text) > 5 or not is_digits(text):
        return None
    return digits_value(text) & 0xFFFF


class MaxfwdModule(Module):
    exports = Exports(
        name="maxfwd",
        params=(Param("max_limit", int, 70, runtime=True, minimum=0, maximum=255),),
        functions=(
            Function("maxfwd_process", "process_maxfwd", ("int",),
                     aliases=("mf_process_maxfwd_header", "process_maxfwd"),
                     kemi=("process_maxfwd",), routes=REQUEST_ROUTES, pv_first=(0,)),
            Function("is_maxfwd_lt", "is_maxfwd_lt", ("int",),
                     aliases=("maxfwd_at_least", "mf_lowlimit"),
                     kemi=("is_maxfwd_lt",), routes=REQUEST_ROUTES, pv_first=(0,)),
        ),
        kemi_module="maxfwd",
    )

    def _current(self, ctx: Context) -> tuple[Header | None, int | None]:
        """The first Max-Forwards header and its (cached) value."""
        hdr = ctx.msg.header("max-forwards")
        if hdr is None:
            return None, None
        if hdr.parsed is None:
            value = parse_maxfwd(ctx.msg.text[hdr.colon + 1:hdr.value_end])
            if value is None:
                return hdr, None
            hdr.parsed = value
        cached: int = hdr.parsed
        return hdr, cached

    def process_maxfwd(self, ctx: Context, max_value: int | None) -> int:
        """2 header added, 1 decremented, -1 value 0 (or bad argument), -2 unparsable."""
        if max_value is None or max_value < 0 or max_value > 255:
            return -1
        msg = ctx.msg
        hdr, value = self._current(ctx)
        if hdr is None:
            first = msg.headers_start
            msg.insert(first, f"Max-Forwards: {max_value}\r\n")
            return 2
        if value is None:
            return -2
        if value == 0:
            return -1
        limit = self.params["max_limit"]
        if value > limit:
            value = limit + 1
        value -= 1
        hdr.parsed = value
        start, end = _digits_span(msg.text, hdr)
        digits = str(value)
        width = end - start
        if len(digits) < width:
            digits = digits.rjust(width)
        if msg.edits:    # a second call replaces the first one's number
            msg.edits = [e for e in msg.edits if (e[0], e[2]) != (start, end)]
        msg.add_edit(start, end, digits)
        return 1

    def is_maxfwd_lt(self, ctx: Context, max_value: int | None) -> int:
        """1 value < max_value, -1 not lower (or bad argument), -2 no header, -3 unparsable."""
        if max_value is None or max_value < 0 or max_value > 255:
            return -1
        hdr, value = self._current(ctx)
        if hdr is None:
            return -2
        if value is None:
            return -3
        return 1 if value < max_value else -1


def _digits_span(text: str, hdr: Header) -> tuple[int, int]:
    """Offsets of the trimmed number inside the header value."""
    start = hdr.colon + 1
    end = hdr.value_end
    while end > start and text[end - 1] in _TRAIL:
        end -= 1
    while start < end and text[start] in " \t":
        start += 1
    return start, end
