"""Replies built by the proxy itself from a received request (sl and tm).

Kamailio's build_res_buf_from_sip_req(): the copied request headers with the
top Via's rport/received filled in, the To-tag of a local reply (MD5 prefix
and two CRC-16/X-25 sums), and the Contact of a 3xx built from the
destination set (print_dset).
"""

from __future__ import annotations

import logging
from binascii import crc_hqx
from collections.abc import Callable
from typing import Final

from ..sip import speedup
from ..sip.headers import Via
from ..sip.message import SipMessage
from .context import Address, Context
from .forward import _via_param_span

log: Final = logging.getLogger("siprouter.core")

# CRC-16/X-25 is the bit-reflected form of CRC-CCITT (binascii.crc_hqx, in C):
# reflect every input byte, run crc_hqx with init 0xFFFF, reflect the result
# and complement it.
_REFLECT_BYTES: Final = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
_REFLECT_BYTE: Final = list(_REFLECT_BYTES)
# the C version (optional, see sip/_speedups.c)
_c_crc16_x25: Final[Callable[[str], int | None] | None] = speedup("crc16_x25")


def crc16_x25(data: str) -> int:
    """CRC-16/X-25 (reflected CCITT, init 0xFFFF, final complement) over latin-1 text."""
    if _c_crc16_x25 is not None:
        done = _c_crc16_x25(data)
        if done is not None:
            return done
    crc = crc_hqx(data.encode("latin-1").translate(_REFLECT_BYTES), 0xFFFF)
    reflected = (_REFLECT_BYTE[crc & 0xFF] << 8) | _REFLECT_BYTE[crc >> 8]
    return reflected ^ 0xFFFF


# each byte's two hex digits, low digit first (a table: formatting costs more)
_REVERSED_HEX: Final = [f"{b:02x}"[::-1] for b in range(256)]


def nibbles_lsb_first(value: int) -> str:
    """Kamailio's crcitt_string_array output: the 4 hex digits, least significant first."""
    return _REVERSED_HEX[value & 0xFF] + _REVERSED_HEX[(value >> 8) & 0xFF]


_c_totag_sums: Final[Callable[[str, str, str, str], str | None] | None] = \
    speedup("totag_sums")


def totag_sums(via: Via, callid: str) -> str:
    """The 8 hex digits after the prefix of a local To-tag (sl and tm alike)."""
    branch = via.branch or ""
    if _c_totag_sums is not None:
        done = _c_totag_sums(via.host, via.port_str, branch, callid)
        if done is not None:
            return done
    return (nibbles_lsb_first(crc16_x25(via.host + via.port_str + branch))
            + nibbles_lsb_first(crc16_x25(via.port_str + via.host + callid)))


def format_q(q: str) -> str:
    """q value as Kamailio prints it: at most 3 decimals, no trailing zeros."""
    try:
        value = float(q)
    except ValueError:
        return q
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def redirect_contact(ctx: Context) -> str:
    """The Contact header of a 3xx: the new R-URI and the branches (print_dset)."""
    items = []
    if ctx.new_ruri is not None:
        items.append(f"<{ctx.new_ruri}>" + (f";q={format_q(ctx.ruri_q)}" if ctx.ruri_q else ""))
    for branch in ctx.branches:
        items.append(f"<{branch.uri}>" + (f";q={format_q(branch.q)}" if branch.q else ""))
    if not items:
        log.warning("3xx reply without a destination set: no Contact added",
                    extra={"callid": ctx.msg.callid})
        return ""
    return "Contact: " + ", ".join(items) + "\r\n"


_COPIED: Final = frozenset(("via", "from", "to", "call-id", "cseq"))
_COPIED_WITH_RR: Final = _COPIED | {"record-route"}


def reply_head(msg: SipMessage, code: int, reason: str, src: Address, force_rport: bool,
               to_tag: str | None) -> list[str]:
    """The first lines of a reply built from a received request (sl and tm).

    Kamailio's build_res_buf_from_sip_req: the status line, then in the request's
    order the Vias (the top one with rport filled in and received added), From,
    To (``to_tag`` appended when given), Call-ID, CSeq, and Record-Route for
    180-299. The caller appends its own headers and Content-Length.
    """
    text = msg.text
    status = str(code) if code >= 100 else f"{code:03d}"
    parts = [msg.version + " " + status + " " + reason + "\r\n"]
    wanted = _COPIED_WITH_RR if 180 <= code <= 299 else _COPIED
    top_via_done = False
    for i, key in enumerate(msg.keys):
        if key not in wanted:
            continue
        hdr = msg.header_at(i)
        if key == "via":
            if not top_via_done:
                parts.append(_reply_top_via(msg, text[hdr.start:hdr.value_end],
                                            hdr.value_span(text)[0] - hdr.start, src,
                                            force_rport))
                top_via_done = True
            else:
                parts.append(text[hdr.start:hdr.value_end] + "\r\n")
        elif key == "to" and to_tag:
            parts.append(text[hdr.start:hdr.value_end] + ";tag=" + to_tag
                         + text[hdr.value_end:hdr.end])
        else:
            parts.append(text[hdr.start:hdr.end])
    return parts


def _reply_top_via(msg: SipMessage, line: str, value_start: int, src: Address,
                   force_rport: bool) -> str:
    """The top Via line of a local reply: rport filled in place, received appended."""
    via = msg.via1
    src_ip, src_port = src
    has_rport = via.has_param("rport")
    if has_rport:
        # replaced in place, from its ';' (blanks around the name go too)
        span = _via_param_span(via, "rport")
        if span is not None:
            start, end = value_start + span[0], value_start + span[1]
            line = line[:start] + f";rport={src_port}" + line[end:]
    elif force_rport:
        # like received: at the end of the header line, i.e. after the last
        # value when one line holds several Via values [verified on 5.6.3]
        line = line + f";rport={src_port}"
    if has_rport or via.has_param("received") or \
            via.host.strip("[]").lower() != src_ip.lower():
        line = line + f";received={src_ip}"
    return line + "\r\n"
