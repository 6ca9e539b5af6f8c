"""sl: stateless replies, the To-tag signature and local-ACK filtering (spec/sl.md)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Final

from ..routing.context import Address, Context
from ..routing.replies import redirect_contact, reply_head, totag_sums
from ..routing.router import has_broken_headers
from ..sip.errors import SipError
from ..sip.headers import Via
from .base import REQUEST_ROUTES, Exports, Function, Module, Param, PseudoVar

log: Final = logging.getLogger("siprouter.sl")

ACK_WINDOW: Final = 2.0  # seconds after the last stateless reply during which ACKs are filtered
# the shared last-reply time is written at most this often (Kamailio keeps it in
# 62.5 ms ticks); the window may so end up to this much early
LAST_REPLY_RESOLUTION: Final = 0.05
SL_TAG_LEN: Final = 41


def tag_prefix(sock_ip: str, sock_port: int) -> str:
    """The constant MD5 part of the SL To-tag for the first listening socket."""
    text = "KAMAILIO-stateless" + sock_ip.strip() + str(sock_port).strip()
    return hashlib.md5(text.encode("latin-1")).hexdigest()


def sl_totag(prefix: str, via: Via, callid: str) -> str:
    """The 41-character SL To-tag for a request with this top Via and Call-ID."""
    return prefix + "." + totag_sums(via, callid)


# sl statistics buckets (spec/sl.md section 10)
_CODE_BUCKETS: Final = {200: "200_replies", 202: "202_replies", 300: "300_replies",
                        301: "301_replies", 302: "302_replies", 400: "400_replies",
                        401: "401_replies", 403: "403_replies", 404: "404_replies",
                        407: "407_replies", 408: "408_replies", 483: "483_replies",
                        500: "500_replies"}
STAT_NAMES: Final = ("1xx_replies", "200_replies", "202_replies", "2xx_replies", "300_replies",
                     "301_replies", "302_replies", "3xx_replies", "400_replies", "401_replies",
                     "403_replies", "404_replies", "407_replies", "408_replies", "483_replies",
                     "4xx_replies", "500_replies", "5xx_replies", "6xx_replies", "xxx_replies",
                     "sent_replies", "sent_err_replies", "failures", "received_ACKs")


def bucket_for(code: int) -> str:
    name = _CODE_BUCKETS.get(code)
    if name is not None:
        return name
    if code < 200 or code >= 700:
        return "xxx_replies"
    return f"{code // 100}xx_replies"


# sl_reply_error() table: internal error -> (code, text, number)
_ERROR_REPLIES: Final[dict[int, tuple[int, str, int]]] = {
    -477: (477, "Unfortunately error on sending to next hop occurred", 477),
    -478: (478, "Unresolvable destination", 478),
    -400: (400, "Bad Request", 400),
    -479: (479, "Regretfully, we were not able to process the URI", 479),
    -9: (400, "Transaction tuple incomplete", 9),
    -13: (400, "Bad To", 13),
    -11: (500, "Error in external logic", 11),
    -12: (500, "Forking capacity exceeded", 12),
    -15: (400, "Invalid character in q parameter", 15),
    -16: (400, "Empty q parameter", 16),
    -17: (400, "Q parameter too big", 17),
    -18: (400, "Decimal part missing in q", 18),
    -487: (487, "Transaction canceled", 487),
    0: (500, "No error", 0),
    -2: (500, "No error", 2),
}


class SharedTimestamp:
    """Time of the last SL reply, shared by all workers (a process-local default)."""

    def __init__(self) -> None:
        self.value = -1e18

    def get(self) -> float:
        return self.value

    def set(self, value: float) -> None:
        self.value = value


class SlModule(Module):
    exports = Exports(
        name="sl",
        params=(
            Param("default_code", int, 500),
            Param("default_reason", str, "Internal Server Error"),
            Param("bind_tm", int, 1),
            Param("rich_redirect", int, 0),
            Param("event_callback_fl_ack", str, ""),
            Param("event_callback_lres_sent", str, ""),
        ),
        functions=(
            Function("sl_send_reply", "sl_send_reply", ("int", "str"), aliases=("sl_reply",),
                     kemi=("sl_send_reply",), routes=REQUEST_ROUTES, pv_first=(0, 1)),
            Function("send_reply", "send_reply", ("int", "str"), kemi=("send_reply",),
                     pv_first=(0, 1)),
            Function("send_reply_mode", "send_reply_mode", ("int", "str", "int"),
                     kemi=("send_reply_mode",), pv_first=(0, 1)),
            Function("sl_reply_error", "sl_reply_error", (), kemi=("sl_reply_error",),
                     routes=REQUEST_ROUTES),
            Function("sl_forward_reply", "sl_forward_reply", (), ("str", "str"),
                     kemi=("sl_forward_reply",)),
        ),
        pvs=(PseudoVar("ltt", "pv_ltt"),),
        rpc=(("sl.stats", "rpc_stats"),),
        stats=STAT_NAMES,
        kemi_module="sl",
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        # a SharedTimestamp here, or the shared-memory one of the transport layer
        self.last_reply: Any = SharedTimestamp()
        self._last_written = -1e18    # what this worker last wrote to last_reply
        self.prefix = ""

    def init(self) -> None:
        ip, port = self.router.first_socket
        self.prefix = tag_prefix(ip, port)
        self.router.pre_script.insert(0, self.filter_ack)
        shared = self.router.shared.get("sl_last_reply")
        if shared is not None:
            self.last_reply = shared

    def stat_values(self) -> dict[str, int]:
        return dict(self.stats)

    # ----------------------------------------------------------- ACK filter
    def filter_ack(self, ctx: Context) -> bool:
        """Pre-script hook: absorb ACKs to our own stateless replies. False = absorbed."""
        msg = ctx.msg
        if msg.method != "ACK":
            return True
        if self.last_reply.get() + ACK_WINDOW < ctx.now:
            return True
        try:
            to = msg.to
            tag = to.tag if to is not None else None
            if not tag or len(tag) != SL_TAG_LEN:
                return True
            if tag != sl_totag(self.prefix, msg.via1, msg.callid):
                return True
        except SipError:
            return True
        self.stats["received_ACKs"] += 1
        self.router.run_event("sl:filtered-ack", ctx)
        return False

    # ----------------------------------------------------------- replies
    def totag_for(self, ctx: Context) -> str:
        return sl_totag(self.prefix, ctx.msg.via1, ctx.msg.callid)

    def build_reply(self, ctx: Context, code: int, reason: str,
                    extra_headers: list[str] | None = None) -> str:
        """The text of a stateless reply to ctx.msg (spec/sl.md section 3)."""
        msg = ctx.msg
        code %= 1000
        to_tag = None
        if code >= 180:
            to = msg.to
            if to is not None and not to.tag:
                to_tag = self.totag_for(ctx)
        parts = reply_head(msg, code, reason, ctx.src, ctx.force_rport, to_tag)
        parts.extend(ctx.reply_lumps)
        if extra_headers:
            parts.extend(extra_headers)
        if 300 <= code <= 399:
            contact = redirect_contact(ctx)
            if contact:
                parts.append(contact)
        settings = self.router.settings
        if settings.server_signature:
            parts.append(settings.server_header + "\r\n")
        parts.append("Content-Length: 0\r\n\r\n")
        return "".join(parts)

    def reply_address(self, ctx: Context) -> Address:
        """Source IP; source port with rport, else the top Via port (or 5060)."""
        via = ctx.msg.via1
        src_ip, src_port = ctx.src
        if via.has_param("rport") or ctx.force_rport:
            return src_ip, src_port
        return src_ip, via.port or 5060

    def send_stateless(self, ctx: Context, code: int, reason: str,
                       extra_headers: list[str] | None = None) -> int:
        """Build and send a stateless reply; returns Kamailio's codes 1/-1/-2."""
        msg = ctx.msg
        if ctx.no_reply:
            return -2
        if not msg.is_request or msg.method == "ACK" or has_broken_headers(msg):
            self.stats["failures"] += 1
            return -1
        try:
            data = self.build_reply(ctx, code, reason, extra_headers)
            dst = self.reply_address(ctx)
        except SipError as err:
            log.error("cannot build reply: %s", err.reason, extra={"callid": msg.callid})
            self.stats["failures"] += 1
            return -1
        ctx.send(data.encode("latin-1"), dst)
        ctx.replied = True
        if ctx.now - self._last_written >= LAST_REPLY_RESOLUTION:
            self._last_written = ctx.now
            self.last_reply.set(ctx.now)
        self.stats[bucket_for(code % 1000)] += 1
        self.stats["sent_replies"] += 1
        return 1

    # ----------------------------------------------------------- cfg functions
    def _code_reason(self, code: int | None, reason: str | None) -> tuple[int, str]:
        """default_code / default_reason replace arguments that could not be evaluated."""
        return (self.params["default_code"] if code is None else code,
                self.params["default_reason"] if reason is None else reason)

    def sl_send_reply(self, ctx: Context, code: int | None, reason: str | None) -> int:
        code, reason = self._code_reason(code, reason)
        return self.send_stateless(ctx, code, reason)

    def send_reply(self, ctx: Context, code: int | None, reason: str | None) -> int:
        code, reason = self._code_reason(code, reason)
        tm = self.router.modules.get("tm")
        if tm is not None and self.params["bind_tm"] and hasattr(tm, "reply_if_transaction"):
            result: int | None = tm.reply_if_transaction(ctx, code, reason)
            if result is not None:
                return result
        if not ctx.msg.is_request:
            return -1
        return self.send_stateless(ctx, code, reason)

    def send_reply_mode(self, ctx: Context, code: int | None, reason: str | None,
                        mode: int) -> int:
        return self.send_reply(ctx, code, reason)

    def sl_reply_error(self, ctx: Context) -> int:
        code, text, number = _ERROR_REPLIES.get(
            ctx.last_error, (500, "I'm terribly sorry, server error occurred", abs(ctx.last_error)))
        result = self.send_stateless(ctx, code, f"{text} ({number}/SL)")
        return -2 if result == -2 else (1 if result > 0 else -1)

    def sl_forward_reply(self, ctx: Context, code: str = "", reason: str = "") -> int:
        from ..routing.forward import forward_reply

        msg = ctx.msg
        if msg.is_request:
            return -1
        if code:
            if len(code) != 3 or not code.isdigit() or code[0] != str(msg.status)[0]:
                return -1
            end = msg.text.find(" ", len(msg.version) + 1)
            new_line = f"{msg.version} {code} {reason or msg.reason}"
            line_end = msg.text.find("\n")
            cr = 1 if msg.text[line_end - 1] == "\r" else 0
            msg.add_edit(0, line_end - cr, new_line)
            del end
        return 1 if forward_reply(ctx) else -1

    # ----------------------------------------------------------- PV and RPC
    def pv_ltt(self, arg: str) -> Any:
        def get(ctx: Context) -> str | None:
            to = ctx.msg.to
            if to is not None and to.tag:
                return to.tag
            try:
                return self.totag_for(ctx)
            except SipError:
                return None
        return get

    def rpc_stats(self, *args: Any) -> dict[str, int]:
        from ..rpc.control import group_totals

        values = group_totals(self.router, "sl")   # summed over every process
        keys = ("200", "202", "2xx", "300", "301", "302", "3xx", "400", "401", "403", "404",
                "407", "408", "483", "4xx", "500", "5xx", "6xx", "xxx")
        return {key: values.get(f"{key}_replies", 0) for key in keys}
