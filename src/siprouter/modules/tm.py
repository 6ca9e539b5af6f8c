"""tm: stateful forwarding (Kamailio 5.6's tm module) over the sans-IO
transaction table of :mod:`siprouter.tm`.

This file is the script side: ``t_relay()`` and friends, the per-transaction
routes (failure_route, onreply_route, branch_route) and the local request API
other modules use (dispatcher keepalives). The routing state of a request
(``$du``, R-URI, flags, AVPs, XAVPs) is saved with its transaction at
``t_relay()`` time and handed to those routes, so ``ds_next_dst()`` finds the
``_dsdst_`` list in a failure_route.

Behaviour checked against Kamailio 5.6.3 where it shows on the wire or in
return codes, notably:

* ``t_relay()`` on a retransmission resends the last reply and returns 1 (the
  script goes on); on an ACK to a negative reply it absorbs the ACK (1); an
  ACK to a 2xx is relayed statelessly;
* when relaying fails, ``t_relay()`` returns the error (e.g. -478) and tm
  itself replies with ``<code> <text> (<n>/TM)`` unless the script sends a
  stateful reply (``sl_reply_error()`` is stateless and does not prevent it);
* ``t_check_trans()`` ends the script (0) for a request retransmission (after
  resending the reply) and for an ACK to a negative reply; an ACK to a 2xx
  gives -1;
* a failure_route starts with the ``$du`` / R-URI of the ``t_relay()`` that
  created the transaction; ``t_relay()`` there adds a branch only when ``$du``
  or the R-URI changed (else -1, "no branches for forwarding").
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import zlib
from collections.abc import Callable
from typing import Any, ClassVar, Final

from ..config.compiler import runtime_regex
from ..routing.context import Address, Context, Outgoing
from ..routing.forward import next_hop, relayed_request
from ..routing.replies import redirect_contact
from ..sip.errors import SipError
from ..sip.message import SipMessage
from ..tm import messages
from ..tm.table import STAT_NAMES, TmConfig, TransactionTable
from ..tm.transaction import ClientBranch, FinalCallback, Transaction
from .base import Exports, Function, Module, Param

log: Final = logging.getLogger("siprouter.tm")

RouteFn = Callable[[Context], None]

# Kamailio's error codes (error.h)
E_UNSPEC: Final = -1
E_CFG: Final = -6
E_SCRIPT: Final = -10
E_CANCELED: Final = -487

_RELAY_ROUTES: Final = frozenset(("request", "failure"))
_ON_ROUTES: Final = frozenset(("request", "failure", "onreply", "branch"))
_TM_ROUTES: Final = frozenset(("request", "onreply", "failure", "branch"))
_REPLY_ROUTES: Final = frozenset(("request", "onreply", "failure"))
_CHECK_ROUTES: Final = frozenset(("request", "reply", "onreply", "branch"))
_STATUS_ROUTES: Final = frozenset(("request", "failure", "reply", "onreply"))
_FAILURE_ROUTES: Final = frozenset(("failure", "event"))
_REQUEST_ONLY: Final = frozenset(("request",))
_ANY: Final = frozenset(("request", "failure", "branch", "reply", "onreply", "event", "onsend",
                         "local"))


class TmState:
    """tm's state of one message being routed (``ctx.tm``): armed routes, timers
    set before the transaction exists, the transaction, and in a failure_route
    the picked branch."""

    __slots__ = ("tx", "on_failure", "on_reply", "on_branch", "fr", "fr_inv", "auto_100",
                 "branch", "timeout", "replied", "ruri", "dst_uri")

    def __init__(self) -> None:
        self.tx: Transaction | None = None
        self.on_failure: str | None = None
        self.on_reply: str | None = None
        self.on_branch: str | None = None
        self.fr = 0          # t_set_fr() before the transaction exists (ms, 0 = default)
        self.fr_inv = 0
        self.auto_100 = True
        self.branch = -1     # failure_route: the picked branch and its flags
        self.timeout = False
        self.replied = False
        self.ruri: str | None = None     # failure_route: R-URI and $du at its start
        self.dst_uri: str | None = None


class RoutingState:
    """The routing state a transaction keeps for tm's routes (Kamailio keeps the
    request, its flags and AVP lists in shared memory with the transaction)."""

    __slots__ = ("ruri", "dst_uri", "flags", "avps", "xavps", "force_rport", "edits",
                 "ruri_q")

    def __init__(self, ctx: Context) -> None:
        self.ruri = ctx.new_ruri
        self.dst_uri = ctx.dst_uri
        self.flags = ctx.flags
        self.avps = ctx.avps
        self.xavps = ctx.xavps
        self.force_rport = ctx.force_rport
        self.ruri_q = ctx.ruri_q
        self.edits = len(ctx.msg.edits)   # lumps of the request route (Kamailio saves them)


def _params() -> tuple[Param, ...]:
    ints = {
        "fr_timer": 30000, "fr_inv_timer": 120000, "fr_inv_timer_next": 30000,
        "wt_timer": 5000, "delete_timer": 200, "retr_timer1": 500, "retr_timer2": 4000,
        "max_inv_lifetime": 180000, "max_noninv_lifetime": 32000, "noisy_ctimer": 1,
        "auto_inv_100": 1, "unix_tx_timeout": 500, "restart_fr_on_each_reply": 1,
        "pass_provisional_replies": 0, "aggregate_challenges": 1, "unmatched_cancel": 0,
        "default_code": 500, "reparse_invite": 1, "blst_503": 0, "blst_503_def_timeout": 0,
        "blst_503_min_timeout": 0, "blst_503_max_timeout": 3600, "blst_methods_add": 1,
        "blst_methods_lookup": -9, "cancel_b_method": 1, "reparse_on_dns_failover": 1,
        "disable_6xx_block": 0, "local_ack_mode": 0, "failure_reply_mode": 3,
        "faked_reply_prio": 0, "remap_503_500": 1, "failure_exec_mode": 0,
        "dns_reuse_rcv_socket": 0, "local_cancel_reason": 1, "e2e_cancel_reason": 1,
        "ruri_matching": 1, "via1_matching": 1, "callid_matching": 0, "relay_100": 0,
        "enable_uac_fr": 0, "rich_redirect": 0, "evlreq_mode": 0,
    }
    strs = {
        "auto_inv_100_reason": "trying -- your call is important to us",
        "default_reason": "Server Internal Error", "ac_extra_hdrs": "",
        "fr_timer_avp": "", "fr_inv_timer_avp": "", "on_sl_reply": "", "contacts_avp": "",
        "contact_flows_avp": "", "xavp_contact": "", "event_callback": "",
    }
    ranged = {"unmatched_cancel": (0, 2), "cancel_b_method": (0, 2),
              "failure_reply_mode": (0, 3), "default_code": (400, 699)}
    params = [Param(name, int, value, minimum=ranged.get(name, (None, None))[0],
                    maximum=ranged.get(name, (None, None))[1]) for name, value in ints.items()]
    params += [Param(name, str, value) for name, value in strs.items()]
    params.append(Param("tw_append", str, "", multi=True))
    return tuple(params)


class TmModule(Module):
    exports = Exports(
        name="tm",
        params=_params(),
        functions=(
            Function("t_relay", "t_relay", (), ("str", "str"), kemi=("t_relay",),
                     routes=_RELAY_ROUTES),
            Function("t_on_failure", "t_on_failure", ("str",), kemi=("t_on_failure",),
                     routes=_ON_ROUTES),
            Function("t_on_reply", "t_on_reply", ("str",), kemi=("t_on_reply",),
                     routes=_ON_ROUTES),
            Function("t_on_branch", "t_on_branch", ("str",), kemi=("t_on_branch",),
                     routes=_RELAY_ROUTES),
            Function("t_check_trans", "t_check_trans", (), kemi=("t_check_trans",),
                     routes=_CHECK_ROUTES),
            Function("t_newtran", "t_newtran", (), kemi=("t_newtran",), routes=_REQUEST_ONLY),
            Function("t_reply", "t_reply", ("int", "str"), kemi=("t_reply",),
                     routes=_REPLY_ROUTES, pv_first=(0, 1)),
            Function("t_is_canceled", "t_is_canceled", (), kemi=("t_is_canceled",),
                     routes=_TM_ROUTES),
            Function("t_branch_timeout", "t_branch_timeout", (), kemi=("t_branch_timeout",),
                     routes=_FAILURE_ROUTES),
            Function("t_branch_replied", "t_branch_replied", (), kemi=("t_branch_replied",),
                     routes=_FAILURE_ROUTES),
            Function("t_any_timeout", "t_any_timeout", (), kemi=("t_any_timeout",),
                     routes=_TM_ROUTES),
            Function("t_any_replied", "t_any_replied", (), kemi=("t_any_replied",),
                     routes=_TM_ROUTES),
            Function("t_check_status", "t_check_status", ("str",), kemi=("t_check_status",),
                     routes=_STATUS_ROUTES),
            Function("t_grep_status", "t_grep_status", ("int",), kemi=("t_grep_status",),
                     routes=_TM_ROUTES, pv_first=(0,)),
            Function("t_set_fr", "t_set_fr", ("int",), ("int",), kemi=("t_set_fr",),
                     routes=_TM_ROUTES, pv_first=(0, 1)),
            Function("", "t_set_fr", ("int",), kemi=("t_set_fr_inv",), routes=_TM_ROUTES),
            Function("t_reset_fr", "t_reset_fr", (), kemi=("t_reset_fr",), routes=_TM_ROUTES),
            Function("t_release", "t_release", (), kemi=("t_release",), routes=_REQUEST_ONLY),
            Function("t_lookup_request", "t_lookup_request", (), kemi=("t_lookup_request",),
                     routes=_REQUEST_ONLY),
            Function("t_lookup_cancel", "t_lookup_cancel", (), ("int",),
                     kemi=("t_lookup_cancel", "t_lookup_cancel_flags"), routes=_REQUEST_ONLY),
            Function("t_retransmit_reply", "t_retransmit_reply", (),
                     kemi=("t_retransmit_reply",), routes=_REQUEST_ONLY),
            Function("t_relay_cancel", "t_relay_cancel", (), routes=_REQUEST_ONLY),
            Function("t_set_auto_inv_100", "t_set_auto_inv_100", ("int",),
                     routes=_REQUEST_ONLY, pv_first=(0,)),
            Function("t_is_set", "t_is_set", ("str",), kemi=("t_is_set",), routes=_ANY),
            Function("t_drop_replies", "t_drop_replies", (), ("str",),
                     kemi=("t_drop_replies", "t_drop_replies_all"),
                     routes=frozenset(("failure",))),
            Function("t_save_lumps", "t_save_lumps", (), routes=_REQUEST_ONLY),
        ),
        rpc=(("tm.stats", "rpc_stats"),),
        stats=STAT_NAMES,
        kemi_module="tm",
    )
    stat_gauges: ClassVar[tuple[str, ...]] = ("inuse_transactions", "active_transactions")

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.table = TransactionTable(TmConfig(), hooks=self)
        self._routes: dict[tuple[str, str], RouteFn | None] = {}
        self._callid = random.getrandbits(63)
        self._tag_md5 = hashlib.md5(os.urandom(16)).hexdigest()

    # ------------------------------------------------------------ lifecycle
    def init(self) -> None:
        p = self.params
        settings = self.router.settings
        for name in ("fr_timer", "fr_inv_timer", "wt_timer", "retr_timer1", "retr_timer2"):
            if p[name] <= 0:
                raise ValueError(f"{name} must be > 0")
        config = TmConfig(
            fr_timer=p["fr_timer"], fr_inv_timer=p["fr_inv_timer"], wt_timer=p["wt_timer"],
            retr_timer1=p["retr_timer1"], retr_timer2=p["retr_timer2"],
            max_inv_lifetime=p["max_inv_lifetime"],
            max_noninv_lifetime=p["max_noninv_lifetime"],
            auto_inv_100=bool(p["auto_inv_100"]),
            auto_inv_100_reason=p["auto_inv_100_reason"],
            restart_fr_on_each_reply=bool(p["restart_fr_on_each_reply"]),
            cancel_b_method=p["cancel_b_method"], remap_503_500=bool(p["remap_503_500"]),
            failure_reply_mode=p["failure_reply_mode"],
            faked_reply_prio=p["faked_reply_prio"],
            local_cancel_reason=bool(p["local_cancel_reason"]),
            e2e_cancel_reason=bool(p["e2e_cancel_reason"]),
            disable_6xx_block=bool(p["disable_6xx_block"]),
            server_header=settings.server_header if settings.server_signature else None,
            user_agent_header=settings.user_agent_header if settings.server_signature
            else None)
        listen = settings.listen
        ip, port = self.router.first_socket if listen else ("127.0.0.1", 5060)
        self.table = TransactionTable(config, rank=self.router.rank,
                                      tag_prefix=messages.tag_prefix(ip, port), hooks=self)
        self.router.reply_hooks.append(self.on_reply)
        self.router.reply_owner = TransactionTable.reply_owner
        # with several workers the router keeps a call's requests in one of them,
        # for longer than any of its transactions can live
        self.router.steer_requests = True
        self.router.call_lease = (max(p["max_inv_lifetime"], p["max_noninv_lifetime"])
                                  + p["wt_timer"]) / 1000 + 5

    def child_init(self, rank: int) -> None:
        # each process numbers its transactions from its own random start, so
        # that branches differ between workers and across restarts
        self.table.rank = rank
        self.table.reseed()
        self._callid = int.from_bytes(os.urandom(8), "big") >> 1
        self._tag_md5 = hashlib.md5(os.urandom(16)).hexdigest()
        if self.table not in self.router.timers:
            self.router.timers.append(self.table)

    def stat_values(self) -> dict[str, int]:
        return self.table.stat_values()

    def rpc_stats(self, params: list[Any]) -> dict[str, int]:
        """``tm.stats``: Kamailio's transaction statistics, summed over the workers."""
        try:
            from ..rpc.control import group_totals

            values = group_totals(self.router, "tm") or self.stat_values()
        except ImportError:   # pragma: no cover - the control plane is optional
            values = self.stat_values()
        return {
            "current": values.get("inuse_transactions", 0),
            "waiting": values.get("inuse_transactions", 0)
            - values.get("active_transactions", 0),
            "total": values.get("UAS_transactions", 0) + values.get("UAC_transactions", 0),
            "total_local": values.get("UAC_transactions", 0),
            "rpl_received": values.get("rpl_received", 0),
            "rpl_generated": values.get("rpl_generated", 0),
            "rpl_sent": values.get("rpl_sent", 0),
            "6xx": values.get("6xx_transactions", 0),
            "5xx": values.get("5xx_transactions", 0),
            "4xx": values.get("4xx_transactions", 0),
            "3xx": values.get("3xx_transactions", 0),
            "2xx": values.get("2xx_transactions", 0),
            "created": values.get("created", 0),
            "freed": values.get("freed", 0),
        }

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _state(ctx: Context) -> TmState:
        st: TmState | None = ctx.tm
        if st is None:
            st = ctx.tm = TmState()
        return st

    def _route(self, kind: str, name: str | None) -> RouteFn | None:
        """The compiled route ``kind[name]``, or for KEMI the handler method ``name``."""
        if not name:
            return None
        key = (kind, name)
        if key in self._routes:
            return self._routes[key]
        script = self.router.script
        table = {"failure": script.failure, "onreply": script.onreply,
                 "branch": script.branch}[kind]
        route = table.get(name)
        if route is None:
            engine = (self.router.settings.cfgengine or "").strip().lower()
            if engine and engine != "native":
                for module in self.router.modules.values():
                    maker = getattr(module, "route", None)
                    if engine in module.exports.engines and maker is not None:
                        route = maker(name)
                        break
        if route is None:
            log.warning("%s_route[%s] does not exist (empty route)", kind, name)
        self._routes[key] = route
        return route

    def _run(self, route: RouteFn, ctx: Context) -> None:
        try:
            self.router.run_route(route, ctx)
        except Exception:  # noqa: BLE001 - a script error must not break the transaction
            log.exception("error in a tm route (Call-ID %s)", ctx.msg.callid)

    def _lookup(self, ctx: Context) -> Transaction | None:
        """The transaction of the current message (Kamailio's t_check())."""
        st: TmState | None = ctx.tm
        if st is not None and st.tx is not None:
            return st.tx
        msg = ctx.msg
        if msg.is_request:
            tx = self.table.match_request(msg)
        else:
            found = self.table.match_reply(msg)
            tx = found[0] if found is not None else None
        if tx is not None:
            self._state(ctx).tx = tx
        return tx

    def _new_transaction(self, ctx: Context, st: TmState) -> Transaction:
        tx = self.table.new_server(ctx.msg, ctx.src, ctx.local, ctx.proto, ctx.now,
                                   ctx.force_rport)
        st.tx = tx
        tx.on_failure = st.on_failure
        tx.on_reply = st.on_reply
        tx.on_branch = st.on_branch
        tx.auto_100 = st.auto_100
        if st.fr:
            tx.fr_timeout = st.fr / 1000.0
        if st.fr_inv:
            tx.fr_inv_timeout = st.fr_inv / 1000.0
        return tx

    # ------------------------------------------------------------ t_relay
    def t_relay(self, ctx: Context, host: str | None = None, port: str | None = None) -> int:
        """Forward statefully to $du / the R-URI / every branch (or to host:port)."""
        proxy: tuple[Address, str] | None = None
        if host is not None:
            proxy = self._proxy(ctx, host, port)
            if proxy is None:
                return ctx.last_error if ctx.last_error < 0 else E_UNSPEC
        if ctx.route_type == "failure":
            return self._relay_in_failure(ctx, proxy)
        msg = ctx.msg
        if not msg.is_request:
            return -1
        st = self._state(ctx)
        tx = st.tx
        now = ctx.now
        if msg.method == "CANCEL":
            return self._relay_cancel(ctx, st, proxy)
        if tx is None:
            found = self.table.match_request(msg)
            if found is not None:
                if msg.method != "ACK":
                    # a retransmission: resend the last reply; the script goes on
                    st.tx = found
                    self.table.retransmit_reply(found, ctx.out)
                    return 1
                if found.is_invite and found.status >= 300:
                    st.tx = found
                    self.table.release(found, now)   # ACK to our negative reply
                    return 1
            if msg.method == "ACK":
                return self._forward_ack(ctx, proxy)
            tx = self._new_transaction(ctx, st)
        elif msg.method == "ACK":
            self.table.release(tx, now)
            return 1
        if tx.is_invite and tx.auto_100 and self.table.config.auto_inv_100 and tx.status < 100:
            self.table.reply(tx, 100, self.table.config.auto_inv_100_reason, now, ctx.out)
        ret = self._forward(ctx, st, tx, proxy, include_ruri=True)
        if ret <= 0:
            # Kamailio replies with the error once the script is done (unless it
            # replied statefully itself): here the reply goes at once and a
            # t_reply() of the same script takes its place
            error = ctx.last_error if ctx.last_error < 0 else E_UNSPEC
            ctx.last_error = error
            code, reason = messages.error_reply(error)
            previous = (tx.status, tx.reply_data)
            before = len(ctx.out)
            if self.table.reply(tx, code, reason, now, ctx.out) > 0:
                tx.error_reply = (ctx, ctx.out[before:], previous)
        return ret

    def _relay_in_failure(self, ctx: Context, proxy: tuple[Address, str] | None) -> int:
        st = self._state(ctx)
        tx = st.tx
        if tx is None:
            log.error("t_relay() in a failure route without a transaction")
            return -1
        changed = ctx.new_ruri != st.ruri or ctx.dst_uri != st.dst_uri
        ret = self._forward(ctx, st, tx, proxy, include_ruri=changed)
        if ret <= 0:
            tx.tm_error = ctx.last_error if ctx.last_error < 0 else E_UNSPEC
            return -1
        return 1

    def _relay_cancel(self, ctx: Context, st: TmState,
                      proxy: tuple[Address, str] | None) -> int:
        """t_relay() of a CANCEL: answer it and cancel the INVITE's branches."""
        msg = ctx.msg
        tx = st.tx
        if tx is None:
            found = self.table.match_request(msg)
            if found is not None:
                st.tx = found
                self.table.retransmit_reply(found, ctx.out)
                return 1
        invite = self.table.match_cancel(msg)
        if invite is None and tx is None:
            mode = self.params["unmatched_cancel"]
            if mode == 2:
                return 1
            if mode == 1:
                return self._forward_ack(ctx, proxy)
        if tx is None:
            tx = self._new_transaction(ctx, st)
        if invite is not None:
            self.table.cancel_invite(invite, tx, msg, ctx.now, ctx.out)
            return 1
        return self._forward(ctx, st, tx, proxy, include_ruri=True)

    def _forward_ack(self, ctx: Context, proxy: tuple[Address, str] | None) -> int:
        """An ACK to a 2xx (no transaction; also an unmatched CANCEL with
        unmatched_cancel=1): relayed statelessly, like forward()."""
        from ..routing.forward import stateless_branch

        hop = proxy or next_hop(ctx)
        if hop is None:
            return ctx.last_error if ctx.last_error < 0 else E_UNSPEC
        data = relayed_request(ctx, stateless_branch(ctx.msg), ctx.new_ruri)
        ctx.send(data.encode("latin-1"), hop[0])
        return 1

    def _proxy(self, ctx: Context, host: str, port: str | None) -> tuple[Address, str] | None:
        """t_relay("host", "port"): a fixed next hop."""
        text = host if port is None else f"{host}:{port}"
        if not text.startswith(("sip:", "sips:")):
            text = "sip:" + text
        return next_hop(ctx, text)

    def _forward(self, ctx: Context, st: TmState, tx: Transaction,
                 proxy: tuple[Address, str] | None, include_ruri: bool) -> int:
        """Send the R-URI (unless consumed) and every appended branch (Kamailio's
        t_forward_nonack()); 1, or the lowest error when no branch went out."""
        if tx.canceled:
            ctx.last_error = E_CANCELED
            return -1
        if tx.routing is None:
            tx.routing = RoutingState(ctx)
        targets: list[tuple[str, str | None]] = []
        if include_ruri:
            targets.append((ctx.ruri, ctx.dst_uri))
        for extra in ctx.branches:
            targets.append((extra.uri, extra.dst_uri))
        ctx.branches = []
        branch_route = self._route("branch", tx.on_branch) if tx.on_branch else None
        tx.on_branch = None
        st.on_branch = None
        if not targets:
            log.error("no branches for forwarding")
            ctx.last_error = E_CFG
            return -1
        lowest = E_UNSPEC
        added = 0
        for uri, dst_uri in targets:
            result = self._send_branch(ctx, tx, uri, dst_uri, proxy, branch_route)
            if result > 0:
                added += 1
            elif result < lowest:
                lowest = result
        tx.routing.flags = ctx.flags
        if not added:
            ctx.last_error = lowest
            return lowest
        ctx.last_error = -1
        return 1

    def _send_branch(self, ctx: Context, tx: Transaction, uri: str, dst_uri: str | None,
                     proxy: tuple[Address, str] | None, branch_route: RouteFn | None) -> int:
        msg = ctx.msg
        saved_ruri, saved_dst = ctx.new_ruri, ctx.dst_uri
        edits = len(msg.edits)
        try:
            if uri != ctx.ruri:
                ctx.set_ruri(uri)
            ctx.dst_uri = dst_uri
            if branch_route is not None and not self._run_branch_route(ctx, branch_route):
                return E_CFG
            hop = proxy or next_hop(ctx)
            if hop is None:
                return ctx.last_error if ctx.last_error < 0 else E_UNSPEC
            dst, proto = hop
            branch_uri = ctx.ruri
            data = relayed_request(ctx, self.table.next_branch(tx), branch_uri,
                                   tx.sock).encode("latin-1")
        finally:
            del msg.edits[edits:]
            if ctx.new_ruri is not saved_ruri:
                ctx.set_ruri(saved_ruri)
            ctx.dst_uri = saved_dst
        self.table.add_branch(tx, branch_uri, data, dst, tx.sock, proto, ctx.now, ctx.out,
                              tx.on_failure, tx.on_reply)
        return 1

    def _run_branch_route(self, ctx: Context, route: RouteFn) -> bool:
        """branch_route for one branch; False when it dropped the branch."""
        saved = (ctx.route_type, ctx.stop, ctx.exit_code, ctx.dropped, ctx.retcode)
        ctx.route_type = "branch"
        ctx.stop = False
        ctx.exit_code = 0
        ctx.dropped = False
        try:
            self._run(route, ctx)
            return not ctx.dropped
        finally:
            ctx.route_type, ctx.stop, ctx.exit_code, ctx.dropped, ctx.retcode = saved

    # ------------------------------------------------------------ the table's hooks
    def run_failure(self, tx: Transaction, picked: int, now: float,
                    out: list[Outgoing]) -> None:
        """Run the failure_route armed on the picked branch (TmHooks)."""
        branch = tx.branches[picked]
        name = branch.on_failure
        tx.on_failure = None   # the route must re-arm it for new branches
        route = self._route("failure", name)
        msg = tx.request
        routing = tx.routing
        if route is None or msg is None or routing is None:
            return
        ctx = Context(self.router, msg, tx.src, tx.sock, tx.proto, now, "failure")
        ctx.new_ruri = routing.ruri
        ctx.dst_uri = routing.dst_uri
        ctx.flags = routing.flags
        ctx.avps = routing.avps
        ctx.xavps = routing.xavps
        ctx.force_rport = routing.force_rport
        ctx.ruri_q = routing.ruri_q
        st = ctx.tm = TmState()
        st.tx = tx
        st.branch = picked
        st.timeout = branch.timed_out
        st.replied = branch.replied
        st.ruri = ctx.new_ruri
        st.dst_uri = ctx.dst_uri
        del msg.edits[routing.edits:]
        try:
            self._run(route, ctx)
        finally:
            del msg.edits[routing.edits:]   # lumps of the failure route are not kept
            routing.flags = ctx.flags
            routing.avps = ctx.avps
            routing.xavps = ctx.xavps
            out.extend(ctx.out)

    def _run_onreply(self, ctx: Context, tx: Transaction, branch: ClientBranch) -> bool:
        """onreply_route of a branch on the reply context; False = dropped."""
        route = self._route("onreply", branch.on_reply)
        if route is None:
            return True
        routing = tx.routing
        saved = (ctx.route_type, ctx.stop, ctx.exit_code, ctx.dropped, ctx.tm)
        ctx.route_type = "onreply"
        ctx.stop = False
        ctx.exit_code = 0
        ctx.dropped = False
        if routing is not None:
            ctx.flags = routing.flags
            ctx.avps = routing.avps
            ctx.xavps = routing.xavps
        st = ctx.tm = TmState()
        st.tx = tx
        st.branch = branch.index
        try:
            self._run(route, ctx)
            return not ctx.dropped
        finally:
            if routing is not None:
                routing.flags = ctx.flags
                routing.avps = ctx.avps
                routing.xavps = ctx.xavps
            ctx.route_type, ctx.stop, ctx.exit_code, ctx.dropped, ctx.tm = saved

    def on_reply(self, ctx: Context) -> bool:
        """Router reply hook: a reply of one of our transactions is consumed here;
        any other reply goes on to the stateless relay."""
        found = self.table.match_reply(ctx.msg)
        if found is None:
            return False
        tx, index = found
        onreply = None
        if tx.branches[index].on_reply is not None:
            def onreply(t: Transaction, b: ClientBranch, _msg: SipMessage) -> bool:
                return self._run_onreply(ctx, t, b)
        self.table.receive_reply(tx, index, ctx.msg, ctx.now, ctx.out, onreply)
        return True

    # ------------------------------------------------------------ arming routes
    @staticmethod
    def _route_name(name: str | None) -> str | None:
        return None if not name or name == "0" else name

    def t_on_failure(self, ctx: Context, name: str) -> int:
        st = self._state(ctx)
        st.on_failure = self._route_name(name)
        if st.tx is not None:
            st.tx.on_failure = st.on_failure
        return 1

    def t_on_reply(self, ctx: Context, name: str) -> int:
        st = self._state(ctx)
        st.on_reply = self._route_name(name)
        if st.tx is not None:
            st.tx.on_reply = st.on_reply
        return 1

    def t_on_branch(self, ctx: Context, name: str) -> int:
        st = self._state(ctx)
        st.on_branch = self._route_name(name)
        if st.tx is not None:
            st.tx.on_branch = st.on_branch
        return 1

    def t_is_set(self, ctx: Context, target: str) -> int:
        st: TmState | None = ctx.tm
        tx = st.tx if st is not None else None
        kind = target[:1]
        if kind == "f":
            value = tx.on_failure if tx is not None else (st.on_failure if st else None)
        elif kind == "o":
            value = tx.on_reply if tx is not None else (st.on_reply if st else None)
        elif kind == "b":
            value = tx.on_branch if tx is not None else (st.on_branch if st else None)
        else:
            return -1
        return 1 if value else -1

    # ------------------------------------------------------------ transactions
    def t_newtran(self, ctx: Context) -> int:
        """Create the transaction now; 0 (end of script) for a retransmission."""
        msg = ctx.msg
        st = self._state(ctx)
        if st.tx is not None:
            log.info("transaction already in process")
            return E_SCRIPT
        found = self.table.match_request(msg)
        if found is not None:
            if msg.method == "ACK":
                if found.is_invite and found.status >= 300:
                    st.tx = found
                    self.table.release(found, ctx.now)
                    return 0
            else:
                st.tx = found
                self.table.retransmit_reply(found, ctx.out)
                return 0
        if msg.method == "ACK":
            return 1
        self._new_transaction(ctx, st)
        return 1

    def t_check_trans(self, ctx: Context) -> int:
        """Does the message belong to a transaction (spec: cfg-language.md §8)?"""
        if ctx.route_type in ("failure", "branch", "onreply"):
            return 1
        msg = ctx.msg
        if not msg.is_request:
            return 1 if self.table.match_reply(msg) is not None else -1
        if msg.method == "CANCEL":
            return 1 if self.table.match_cancel(msg) is not None else -1
        tx = self.table.match_request(msg)
        if tx is None:
            return -1
        if msg.method == "ACK":
            if tx.is_invite and tx.status >= 300:
                self._state(ctx).tx = tx
                self.table.release(tx, ctx.now)
                return 0
            return -1   # an ACK to a 2xx
        self._state(ctx).tx = tx
        self.table.retransmit_reply(tx, ctx.out)
        return 0

    def t_lookup_request(self, ctx: Context) -> int:
        msg = ctx.msg
        tx = self.table.match_request(msg)
        if tx is None or (msg.method == "ACK" and tx.status < 300):
            return -1
        self._state(ctx).tx = tx
        return 1

    def t_lookup_cancel(self, ctx: Context, flags: int = 0) -> int:
        msg = ctx.msg
        if msg.method != "CANCEL":
            log.warning("t_lookup_cancel() called for a non-CANCEL request")
            return -1
        invite = self.table.match_cancel(msg)
        if invite is None:
            return -1
        if flags and invite.routing is not None:
            ctx.flags = invite.routing.flags
        return 1

    def t_relay_cancel(self, ctx: Context) -> int:
        """Relay a CANCEL at the start of the script: 0 when done, 1 if no INVITE."""
        msg = ctx.msg
        if msg.method != "CANCEL":
            return 1
        invite = self.table.match_cancel(msg)
        if invite is None:
            return 1
        st = self._state(ctx)
        found = self.table.match_request(msg)
        if found is not None:
            self.table.retransmit_reply(found, ctx.out)
            return 0
        tx = self._new_transaction(ctx, st)
        self.table.cancel_invite(invite, tx, msg, ctx.now, ctx.out)
        return 0

    def t_retransmit_reply(self, ctx: Context) -> int:
        tx = self._lookup(ctx)
        if tx is None:
            return -1
        if ctx.msg.method == "ACK":
            return -1
        return self.table.retransmit_reply(tx, ctx.out)

    def t_release(self, ctx: Context) -> int:
        tx = self._lookup(ctx)
        if tx is not None:
            self.table.release(tx, ctx.now)
        return 1

    def t_save_lumps(self, ctx: Context) -> int:
        return 1

    def t_set_auto_inv_100(self, ctx: Context, value: int | None) -> int:
        if value is None:
            return -1
        st = self._state(ctx)
        st.auto_100 = bool(value)
        if st.tx is not None:
            st.tx.auto_100 = st.auto_100
        return 1

    # ------------------------------------------------------------ replies
    def t_reply(self, ctx: Context, code: int | None, reason: str | None) -> int:
        """A stateful reply to the transaction of the message."""
        if code is None:
            code = self.params["default_code"]
        if reason is None:
            reason = self.params["default_reason"]
        msg = ctx.msg
        route = ctx.route_type
        if msg.is_request and msg.method == "ACK":
            return -1
        tx = self._lookup(ctx)
        if tx is None:
            log.error("cannot send a t_reply to a message for which no T-state has been "
                      "established")
            return -1
        pending = tx.error_reply
        if pending is not None and pending[0] is ctx and code >= 200:
            self._withdraw_error_reply(ctx, tx)
        request = msg if route == "request" and msg.is_request else tx.request
        extra = list(ctx.reply_lumps)
        if 300 <= code <= 399:
            contact = redirect_contact(ctx)
            if contact:
                extra.append(contact)
        tx.admin_reply = True
        return self.table.reply(tx, code, reason, ctx.now, ctx.out, extra, request)

    def _withdraw_error_reply(self, ctx: Context, tx: Transaction) -> None:
        """The script replies itself after a failed t_relay(): tm's error reply goes."""
        _ctx, sent, (status, data) = tx.error_reply
        tx.error_reply = None
        for item in sent:
            if item in ctx.out:
                ctx.out.remove(item)
        self.table.withdraw_reply(tx, status, data)

    def reply_if_transaction(self, ctx: Context, code: int, reason: str) -> int | None:
        """sl's send_reply(): a stateful reply when the message has a transaction."""
        st: TmState | None = ctx.tm
        if st is None or st.tx is None:
            return None
        return self.t_reply(ctx, code, reason)

    # ------------------------------------------------------------ failure helpers
    def t_is_canceled(self, ctx: Context) -> int:
        tx = self._lookup(ctx)
        if tx is None:
            log.error("cannot check a message for which no T-state has been established")
            return -1
        return 1 if tx.canceled else -1

    def t_branch_timeout(self, ctx: Context) -> int:
        st: TmState | None = ctx.tm
        if ctx.route_type != "failure" or st is None:
            log.error("t_branch_timeout() outside a failure route")
            return -1
        return 1 if st.timeout else -1

    def t_branch_replied(self, ctx: Context) -> int:
        st: TmState | None = ctx.tm
        if ctx.route_type != "failure" or st is None:
            log.error("t_branch_replied() outside a failure route")
            return -1
        return 1 if st.replied else -1

    def t_any_timeout(self, ctx: Context) -> int:
        tx = self._lookup(ctx)
        if tx is None:
            return -1
        return 1 if any(b.timed_out for b in tx.branches) else -1

    def t_any_replied(self, ctx: Context) -> int:
        tx = self._lookup(ctx)
        if tx is None:
            return -1
        return 1 if any(b.replied for b in tx.branches) else -1

    def t_grep_status(self, ctx: Context, code: int | None) -> int:
        tx = self._lookup(ctx)
        if tx is None or code is None:
            return -1
        return 1 if any(b.last_received == code and b.replied for b in tx.branches) else -1

    def t_check_status(self, ctx: Context, pattern: str) -> int:
        """Match the status (route dependent) against a POSIX regex."""
        tx = self._lookup(ctx)
        if tx is None:
            return -1
        route = ctx.route_type
        if route in ("reply", "onreply"):
            status = ctx.msg.status
        elif route == "failure":
            picked = self.table.pick(tx)
            if picked < 0:
                return -1
            status = tx.branches[picked].last_received
        else:
            status = tx.status
        regex = runtime_regex(pattern)
        if regex is None:
            return -1
        return 1 if regex.search(str(status)) else -1

    def t_drop_replies(self, ctx: Context, mode: str = "") -> int:
        value = {"n": 0, "l": 2}.get(mode[:1], 1)
        self.table.drop_replies = value
        return 1

    def t_set_fr(self, ctx: Context, fr_inv: int | None, fr: int | None = 0) -> int:
        """Final response timeouts (ms) of this transaction; 0 = the default."""
        if fr_inv is None or fr is None:
            return -1
        st = self._state(ctx)
        tx = st.tx
        if tx is None:
            st.fr_inv = fr_inv
            st.fr = fr
            return 1
        # an existing transaction: its running branches' timers restart (0 = unchanged)
        self.table.change_fr(tx, fr_inv / 1000.0, fr / 1000.0, ctx.now)
        return 1

    def t_reset_fr(self, ctx: Context) -> int:
        st = self._state(ctx)
        st.fr = st.fr_inv = 0
        if st.tx is not None:
            self.table.change_fr(st.tx, self.table.fr_inv, self.table.fr, ctx.now)
        return 1

    # ------------------------------------------------------------ local requests
    def local_request(self, method: str, ruri: str, *, from_uri: str, now: float,
                      on_final: FinalCallback, dst_uri: str | None = None,
                      headers: str = "") -> list[Outgoing]:
        """Send a request of our own (Kamailio's t_uac) in a non-INVITE client
        transaction; ``on_final(code, reason, reply)`` gets its outcome once
        (408 and no reply on timeout, 500 if it cannot be sent)."""
        out: list[Outgoing] = []
        sock = self.router.first_socket
        from ..sip.uri import parse_uri

        target = dst_uri or ruri
        try:
            uri = parse_uri(target)
            host = uri.param("maddr") or uri.host
            dst = (self.router.resolve(host), uri.default_port())
            proto = uri.transport or "udp"
        except (SipError, OSError) as err:
            log.error("cannot send %s to %s: %s", method, target, err)
            on_final(500, None, None)
            return out
        tx = self.table.new_local(method, now, on_final)
        self._callid = (self._callid + 1) & 0xFFFFFFFFFFFFFFFF
        callid = f"{self._callid:016x}-{os.getpid()}@{sock[0]}"
        from_tag = f"{self._tag_md5}-{zlib.crc32(callid.encode('latin-1')):08x}"
        text = messages.local_request(method, ruri, ruri, from_uri, from_tag, callid, 10, sock,
                                      self.table.next_branch(tx), headers,
                                      self.table.config.user_agent_header)
        self.table.add_branch(tx, ruri, text.encode("latin-1"), dst, sock, proto, now, out)
        return out


__all__ = ["RoutingState", "TmModule", "TmState"]
