"""Stateless forwarding of requests and replies (Kamailio's forward.c / msg_translator.c).

Requests get our Via on top (a stateless, deterministic branch so that a
retransmission, a CANCEL or the ACK of a negative reply leave with the same
branch as the original), and ``received``/``rport`` on the previous top Via.
Replies lose their top Via and go to the address in the next Via (the top
Via is checked to be ours only with the core parameter ``check_via=1``).
"""

from __future__ import annotations

import logging
from typing import Final

from ..sip.errors import SipError
from ..sip.headers import Via
from ..sip.message import Edit, SipMessage
from ..sip.uri import parse_uri
from .context import Address, Context

log: Final = logging.getLogger("siprouter.core")
_HASH_MASK: Final = (1 << 64) - 1

# Kamailio's error.h codes kept in ctx.last_error (reported by sl_reply_error)
E_BAD_URI: Final = -479
E_BAD_ADDRESS: Final = -478


def via_needs_received(via: Via, src_ip: str) -> bool:
    """Kamailio's received_test(): the Via has received or rport, or its host differs
    textually from the source IP (no DNS)."""
    return via.has_param("received") or via.has_param("rport") or \
        via.host.strip("[]").lower() != src_ip.lower()


def stateless_branch(msg: SipMessage) -> str:
    """A branch that is the same for a request, its retransmissions and its CANCEL.

    The 64-bit string hash of the fields that identify the request: every
    worker, forked from one supervisor, has the same hash secret (an MD5 costs
    several times more: OpenSSL's digest machinery is a lot of code to bring
    into the cache for each forwarded request).
    """
    via = msg.via1
    to = msg.to
    from_ = msg.from_
    key = "|".join((
        via.branch or "", via.host, via.port_str, msg.callid, msg.cseq.number, msg.ruri,
        (from_.tag or "") if from_ else "", (to.tag or "") if to else "",
    ))
    return "z9hG4bK" + (hash(key) & _HASH_MASK).to_bytes(8, "big").hex() + ".0"


def top_via_request_edits(ctx: Context) -> list[Edit]:
    """Edits adding received/rport to the top Via of a forwarded request.

    Kamailio's ``build_req_buf_from_sip_req`` (checked on 5.6.3):

    * ``;received=<src ip>`` when the Via has ``received`` or ``rport``, or its
      host differs from the source IP; an existing ``received`` is replaced in
      place, otherwise the new one goes before the first ``;`` of the params
      (at the end of the Via value when there are none);
    * ``;rport=<src port>`` when the Via has ``rport`` (replaced in place, from
      its ``;``) or ``force_rport()`` was called; a forced one goes right before
      the ``received`` just written, or before the first ``;`` of the params.

    Parameter names match case-insensitively.
    """
    msg = ctx.msg
    hdr = msg.headers_named("via")[0]
    via = msg.via1
    src_ip, src_port = ctx.src
    base = hdr.value_span(msg.text)[0]
    anchor = base + (via.params_offset if via.params_offset < len(via.raw.rstrip())
                     else via.hostport_end)
    received = _via_param_span(via, "received")
    rport = _via_param_span(via, "rport")
    need_received = via_needs_received(via, src_ip)
    need_rport = rport is not None or ctx.force_rport
    received_text = f";received={src_ip}"
    rport_text = f";rport={src_port}"
    if received is not None:
        received_span = (base + received[0], base + received[1])
    else:
        received_span = (anchor, anchor)
    edits: list[Edit] = []
    if rport is not None:
        if need_received:
            edits.append((received_span[0], msg.next_seq(), received_span[1], received_text))
        edits.append((base + rport[0], msg.next_seq(), base + rport[1], rport_text))
        return edits
    if need_rport:
        # a forced rport goes in front of the received (or the params)
        pos = received_span[0] if need_received else anchor
        edits.append((pos, msg.next_seq(), pos, rport_text))
    if need_received:
        edits.append((received_span[0], msg.next_seq(), received_span[1], received_text))
    return edits


def _via_param_span(via: Via, name: str) -> tuple[int, int] | None:
    """Offsets in ``via.raw`` of the first ``;name[=value]`` param, from its ``;``.

    Blanks up to the next ``;`` belong to the param (Kamailio replaces
    ``; rport ;x`` by ``;rport=P;x``).
    """
    raw = via.raw
    if name not in raw.lower():  # the usual case, decided without a Python loop
        return None
    i = via.params_offset
    n = len(raw)
    while i < n:
        if raw[i] != ";":
            i += 1
            continue
        end = i + 1
        while end < n and raw[end] not in ";,":
            end += 1
        item = raw[i + 1:end]
        if item.split("=", 1)[0].strip().lower() == name:
            if end >= n or raw[end] != ";":
                end -= len(item) - len(item.rstrip())
            return i, end
        i = end
    return None


def next_hop(ctx: Context, uri_text: str | None = None) -> tuple[Address, str] | None:
    """Address and transport to send a request to: ``uri_text``, else $du, else the R-URI."""
    target = uri_text or ctx.dst_uri or ctx.ruri
    try:
        uri = parse_uri(target)
    except SipError:
        log.error("cannot forward: bad destination URI %r", target,
                  extra={"callid": ctx.msg.callid})
        ctx.last_error = E_BAD_URI
        return None
    if uri.scheme not in ("sip", "sips") or not uri.host:
        log.error("cannot forward to a non-SIP destination %r", target,
                  extra={"callid": ctx.msg.callid})
        # Kamailio parses only sip/sips/tel/tels/urn URIs; a tel: URI has no host
        # and is reported as unresolvable
        known = uri.scheme in ("sip", "sips", "tel", "tels", "urn")
        ctx.last_error = E_BAD_ADDRESS if known else E_BAD_URI
        return None
    maddr = uri.param("maddr")
    host = maddr or uri.host
    try:
        ip = ctx.router.resolve(host)
    except OSError:
        log.error("cannot resolve %r", host, extra={"callid": ctx.msg.callid})
        ctx.last_error = E_BAD_ADDRESS
        return None
    proto = uri.transport or ("tls" if uri.scheme == "sips" else "udp")
    return (ip, uri.default_port()), proto


def forward_request(ctx: Context, uri_text: str | None = None) -> int:
    """Kamailio's forward(): stateless relay to $du / R-URI / ``uri_text``."""
    hop = next_hop(ctx, uri_text)
    if hop is None:
        # Kamailio returns the error code itself: -479 bad URI, -478 unresolvable
        return ctx.last_error if ctx.last_error < 0 else -1
    dst, _proto = hop
    data = relayed_request(ctx, stateless_branch(ctx.msg), ctx.new_ruri).encode("latin-1")
    ctx.send(data, dst)
    ctx.router.stats.values["fwd_requests"] += 1
    return 1


def relayed_request(ctx: Context, branch: str, ruri: str | None = None,
                    local: Address | None = None) -> str:
    """The text of ``ctx.msg`` as relayed: our Via on top (with ``branch``),
    received/rport on the previous top Via, the message's edits (Record-Route,
    header changes...) and ``ruri`` as Request-URI when it differs from the
    received one. Shared by forward() and tm's branches."""
    msg = ctx.msg
    local_ip, local_port = local or ctx.local
    first_via = msg.headers_named("via")[0]
    edits = top_via_request_edits(ctx)
    edits.append((first_via.start, msg.next_seq(), first_via.start,
                  f"Via: SIP/2.0/UDP {host_port(local_ip, local_port)};branch={branch}\r\n"))
    if ruri is not None and ruri != msg.ruri:
        start = msg.ruri_start
        edits.append((start, msg.next_seq(), start + len(msg.ruri), ruri))
    return msg.render(edits)


def _host_for_via(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def host_port(ip: str, port: int, proto: str = "udp") -> str:
    """``host[:port]`` of one of our sockets as Kamailio writes it in Via and
    Record-Route: the port is left out when it is the default 5060 (udp/tcp)
    [verified on 5.6.3]."""
    host = _host_for_via(ip)
    if port == 5060 and proto in ("udp", "tcp"):
        return host
    return f"{host}:{port}"


def forward_reply(ctx: Context) -> bool:
    """Relay a reply statelessly: strip the top Via and send to the next one."""
    msg = ctx.msg
    router = ctx.router
    via = msg.via1
    # Kamailio checks the top Via only with the core parameter check_via=1 (default 0):
    # otherwise the top Via is removed whoever it names [verified on 5.6.3]
    if router.settings.check_via and not router.is_myself(via.host, via.port):
        log.debug("dropping reply: top Via %s is not ours", via.host)
        return False
    stripped = strip_top_via(msg)
    if stripped is None:
        return False
    edit, next_via = stripped
    dst = reply_destination(next_via)
    if dst is None:
        return False
    ctx.send(msg.render([edit]).encode("latin-1"), dst)
    return True


def strip_top_via(msg: SipMessage) -> tuple[Edit, Via] | None:
    """The edit removing a reply's top Via value, and the Via after it (None: no
    second Via, or it cannot be parsed)."""
    hdr = msg.headers_named("via")[0]
    values = msg.via_values(hdr)
    if len(values) > 1:
        # several Via values on one line: remove only the first value
        value_start = hdr.value_span(msg.text)[0]
        raw = hdr.value
        cut = raw.find(values[1].raw, len(values[0].raw))
        return (value_start, msg.next_seq(), value_start + cut, ""), values[1]
    all_vias = msg.headers_named("via")
    if len(all_vias) < 2:
        log.debug("dropping reply: no Via after ours")
        return None
    try:
        next_via = msg.via_values(all_vias[1])[0]
    except SipError:
        return None
    return (hdr.start, msg.next_seq(), hdr.end, ""), next_via


def reply_destination(via: Via) -> Address | None:
    """Where a relayed reply goes: received (or host) and rport (or port, or 5060)."""
    host = via.param("received") or via.host.strip("[]")
    rport = via.param("rport")
    if rport and rport.isascii() and rport.isdigit():
        port = int(rport)
    else:
        port = via.port or 5060
    return host, port

