"""dispatcher: the cfg/KEMI glue over the sans-IO core (spec/dispatcher.md).

This file binds ``ds_select_dst()`` and friends to a message: it extracts the
hash keys, picks a destination with :mod:`.selection`, applies it to ``$du``,
the R-URI, the branches and the ``_dsdst_``/``_dsctx_`` XAVPs, runs the
failover functions and the state machine (``ds_mark_dst``), and wires the
keepalive pinger, the call-load table and the RPC commands. Everything that
must be common to all processes lives in :class:`.state.SharedState`; every
function starts with its ``sync()`` (one shared-memory read).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from ...routing.context import Branch, Context, Outgoing
from ...sip.errors import SipError
from ..base import ANY_ROUTE, Exports, Function, Module, Param, ParamError, PseudoVar
from . import control, hashing
from .calls import LOAD_CONFIRMED, CallCell, CallLoadTable, ExpiryTimer
from .destinations import (
    DISABLED,
    INACTIVE,
    NODNS,
    PROBING,
    TRYING,
    Destination,
    DestinationSet,
    DispatcherList,
    DispatcherListError,
    build_list,
    list_entries,
)
from .keepalive import PROBE_ALL, Pinger, PingSettings, ReplyContext, parse_reply_codes
from .selection import (
    ALG_CALL_LOAD,
    ALG_HASH_AUTH_USER,
    ALG_HASH_CALLID,
    ALG_HASH_FROM_URI,
    ALG_HASH_PV,
    ALG_HASH_RURI,
    ALG_HASH_TO_URI,
    ALG_LATENCY,
    ALG_PARALLEL,
    choose_index,
    failover_indices,
    latency_order,
    least_loaded,
    skip_forward,
)
from .state import CapacityError, SharedState, StateChange, capacity_for

if TYPE_CHECKING:
    from ...routing.pv import Getter
    from ...transport.shared import SharedArea

log: Final = logging.getLogger("siprouter.dispatcher")

ROUTES: Final = frozenset(("request", "failure"))
MARK_ROUTES: Final = frozenset(("request", "failure", "onreply"))

MODE_DURI, MODE_RURI, MODE_XAVP = 0, 1, 2
FAILOVER_FLAG: Final = 2
UNLIMITED: Final = 0xFFFFFFFF

EVENT_DOWN: Final = "dispatcher:dst-down"
EVENT_UP: Final = "dispatcher:dst-up"


def _rule_number(rules: str, i: int, stop: str) -> tuple[int, int]:
    """The digits of ``rules`` from ``i`` up to ``stop``: (value, index after); -1 on error."""
    value = 0
    while i < len(rules):
        ch = rules[i]
        if not "0" <= ch <= "9":
            if ch == stop:
                return value, i + 1
            log.error("invalid character in [%s] at [%d]", rules, i)
            return -1, i
        value = value * 10 + ord(ch) - 48
        i += 1
    return value, i


DSV_KEYS: Final = {"code": 0, "reason": 1, "flags": 2, "uri": 3, "setid": 4, "group": 4}


def _params() -> tuple[Param, ...]:
    ints = {
        "force_dst": 1,
        "flags": 0,
        "use_default": 0,
        "xavp_dst_mode": 0,
        "xavp_ctx_mode": 0,
        "ds_ping_interval": 0,
        "ds_probing_mode": 0,
        "ds_ping_latency_stats": 0,
        "ds_latency_estimator_alpha": 900,
        "ds_hash_size": 0,
        "ds_hash_expire": 7200,
        "ds_hash_initexpire": 7200,
        "ds_hash_check_interval": 30,
        "ds_timer_mode": 0,
        "ds_attrs_none": 0,
        "ds_load_mode": 0,
        "reload_delta": 5,
        "ds_dns_mode": 1,
        "ds_dns_interval": 600,
        "ds_dns_ttl": 0,
    }
    strs = {
        "list_file": "dispatcher.list",
        "db_url": "",
        "table_name": "dispatcher",
        "setid_col": "setid",
        "destination_col": "destination",
        "flags_col": "flags",
        "priority_col": "priority",
        "attrs_col": "attrs",
        "xavp_dst": "_dsdst_",
        "xavp_ctx": "_dsctx_",
        "hash_pvar": "",
        "setid_pvname": "",
        "attrs_pvname": "",
        "ds_ping_method": "OPTIONS",
        "ds_ping_from": "sip:dispatcher@localhost",
        "outbound_proxy": "",
        "ds_default_socket": "",
        "ds_default_sockname": "",
        "event_callback": "",
        "ds_db_extra_attrs": "",
    }
    # cfg framework group "dispatcher" (runtime): probing_threshold, inactive_threshold,
    # ping_reply_codes. Changing the thresholds has no effect in 5.6 (§5).
    runtime = (
        Param("ds_probing_threshold", int, 1, runtime=True),
        Param("ds_inactive_threshold", int, 1, runtime=True),
        Param("ds_ping_reply_codes", str, "", runtime=True),
    )
    return tuple(
        [Param(n, int, v) for n, v in ints.items()]
        + [Param(n, str, v) for n, v in strs.items()]
        + list(runtime)
    )


def _b(text: str | None) -> bytes | None:
    """Wire bytes of a latin-1 view string (None and '' stay falsy)."""
    return None if text is None else text.encode("latin-1")


def parse_mark_state(text: str) -> int:
    """``ds_mark_dst`` letters: a (clear), i, d, t, p (case-insensitive); -1 if invalid."""
    flags = 0
    for ch in text.lower():
        if ch == "a":
            flags = 0
        elif ch == "i":
            flags |= INACTIVE
        elif ch == "d":
            flags |= DISABLED
        elif ch == "t":
            flags |= TRYING
        elif ch == "p":
            flags |= PROBING
        else:
            return -1
    return flags


def parse_socket(text: str) -> tuple[str, str, int] | None:
    """``[proto:]host[:port]`` -> (proto, host, port); None when it does not parse."""
    proto = ""
    rest = text.strip()
    head, sep, tail = rest.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls", "sctp", "ws", "wss"):
        proto, rest = head.lower(), tail
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text.lstrip(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or (port_text and not port_text.isdigit()):
        return None
    return proto, host, int(port_text) if port_text else 0


class SelectRun:
    """State of one ``ds_select*`` call across its groups (Kamailio's ``ds_select_state_t``)."""

    def __init__(self, limit: int, old: list[Any]) -> None:
        self.limit = limit if limit > 0 else UNLIMITED
        self.cnt = 0
        self.emode = False  # the d-uri/r-uri was set by an earlier group
        self.records: list[dict[str, Any]] = []
        self.old = old  # the XAVP records present before this call


class DispatcherModule(Module):
    exports = Exports(
        name="dispatcher",
        params=_params(),
        functions=(
            Function("ds_select_dst", "ds_select_dst", ("int", "int"), ("int",),
                     kemi=("ds_select_dst", "ds_select_dst_limit"), routes=ROUTES),
            Function("ds_select_domain", "ds_select_domain", ("int", "int"), ("int",),
                     kemi=("ds_select_domain", "ds_select_domain_limit"), routes=ROUTES),
            Function("ds_select", "ds_select", ("int", "int"), ("int",),
                     kemi=("ds_select", "ds_select_limit"), routes=ANY_ROUTE),
            Function("ds_select_routes", "ds_select_routes", ("str", "str"), ("int",),
                     kemi=("ds_select_routes", "ds_select_routes_limit"), routes=ROUTES),
            Function("ds_next_dst", "ds_next_dst", kemi=("ds_next_dst",), routes=ROUTES),
            Function("ds_next_domain", "ds_next_domain", kemi=("ds_next_domain",),
                     routes=ROUTES),
            Function("ds_set_dst", "ds_set_dst", kemi=("ds_set_dst",), routes=ROUTES),
            Function("ds_set_domain", "ds_set_domain", kemi=("ds_set_domain",), routes=ROUTES),
            Function("ds_mark_dst", "ds_mark_dst", (), ("str",),
                     kemi=("ds_mark_dst", "ds_mark_dst_state"), routes=MARK_ROUTES),
            Function("ds_is_from_list", "ds_is_from_list", (), ("int", "int", "str"),
                     kemi=("ds_is_from_lists", "ds_is_from_list", "ds_is_from_list_mode",
                           "ds_is_from_list_uri")),
            Function("ds_list_exists", "ds_list_exists", ("int",), aliases=("ds_list_exist",),
                     kemi=("ds_list_exists",)),
            Function("ds_is_active", "ds_is_active", ("int",), ("str",),
                     kemi=("ds_is_active", "ds_is_active_uri")),
            Function("ds_load_update", "ds_load_update", kemi=("ds_load_update",)),
            Function("ds_load_unset", "ds_load_unset", kemi=("ds_load_unset",)),
            Function("ds_reload", "ds_reload", kemi=("ds_reload",)),
        ),
        pvs=(PseudoVar("dsv", "pv_dsv"),),
        rpc=(
            ("dispatcher.list", "rpc_list"),
            ("dispatcher.reload", "rpc_reload"),
            ("dispatcher.set_state", "rpc_set_state"),
            ("dispatcher.set_duid_state", "rpc_set_duid_state"),
            ("dispatcher.ping_active", "rpc_ping_active"),
            ("dispatcher.add", "rpc_add"),
            ("dispatcher.remove", "rpc_remove"),
            ("dispatcher.hash", "rpc_hash"),
        ),
        kemi_module="dispatcher",
        depends=(),
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.state: SharedState | None = None
        self._hash_pvar: Callable[[Context], str] | None = None
        self._setid_pv: Callable[[Context, Any], None] | None = None
        self._attrs_pv: Callable[[Context, Any], None] | None = None
        # module parameters read per message, copied at init()
        self.force_dst = True
        self.failover = False
        self.user_only = False
        self.use_default = False
        self.xavp_dst = "_dsdst_"
        self.xavp_dst_mode = 0
        self.xavp_ctx = "_dsctx_"
        self.xavp_ctx_mode = 0
        self.probing_threshold = 1
        self.inactive_threshold = 1
        self.probing_mode = 0
        self.latency_stats = False
        self.alpha = 0.9
        self.hash_size = 0
        self.reload_delta = 5
        self.strict_load = False
        self.dns_mode = 1
        self.default_socket: tuple[str, str, int] | None = None
        self.db_source: Any = None  # a .db.DbSource when db_url is set
        # run time
        self.rctx: ReplyContext | None = None  # $dsv while a dispatcher event route runs
        self.calls: CallLoadTable | None = None
        self.pinger: Pinger | None = None
        self.expiry: ExpiryTimer | None = None
        self.clock: Callable[[], float] = time.monotonic
        self._reply_codes_text = ""
        self._reply_codes: tuple[int, ...] = ()

    # ------------------------------------------------------------ lifecycle
    def init(self) -> None:
        params = self.params
        self.force_dst = bool(params["force_dst"])
        self.failover = bool(params["flags"] & FAILOVER_FLAG) and bool(params["xavp_dst"])
        self.user_only = bool(params["flags"] & 1)
        self.use_default = bool(params["use_default"])
        self.xavp_dst = str(params["xavp_dst"])
        self.xavp_dst_mode = int(params["xavp_dst_mode"])
        self.xavp_ctx = str(params["xavp_ctx"])
        self.xavp_ctx_mode = int(params["xavp_ctx_mode"])
        self.probing_threshold = int(params["ds_probing_threshold"])
        self.inactive_threshold = int(params["ds_inactive_threshold"])
        self.probing_mode = int(params["ds_probing_mode"])
        self.latency_stats = bool(params["ds_ping_latency_stats"])
        self.hash_size = int(params["ds_hash_size"])
        self.reload_delta = int(params["reload_delta"])
        self.strict_load = params["ds_load_mode"] == 1
        self.dns_mode = int(params["ds_dns_mode"])
        alpha = int(params["ds_latency_estimator_alpha"])
        if 0 < alpha < 1000:
            self.alpha = alpha / 1000.0
        else:
            log.error("invalid ds_latency_estimator_alpha must be between 0 and 1000, "
                      "using default[%.3f]", self.alpha)
        if params["ds_ping_interval"] > 0 and "tm" not in self.router.modules:
            raise ValueError("could not load the TM-functions - disable DS ping "
                             "(ds_ping_interval needs the tm module)")
        self.default_socket = self._default_socket()
        self.reply_codes()  # validate early
        if params["db_url"]:
            from .db import DbSource

            self.db_source = DbSource.from_params(params)
        try:
            dlist, _skipped, _from_db = self._load_source()
        except (ValueError, OSError) as err:
            raise ParamError("db_url" if self.db_source is not None else "list_file",
                             f"no dispatching list loaded: {err}") from None
        sets, dests, blob = capacity_for(dlist)
        area = cast("SharedArea | None", self.router.shared.get("area"))
        self.state = SharedState(area, max_sets=sets, max_destinations=dests, blob_bytes=blob)
        self.state.publish(dlist)
        from ...routing.pv import compile_format

        if params["hash_pvar"]:
            self._hash_pvar = compile_format(params["hash_pvar"], self.router)
        self._setid_pv = self._writable_pv("setid_pvname")
        self._attrs_pv = self._writable_pv("attrs_pvname")
        if self.hash_size > 0:
            self.calls = CallLoadTable(float(params["ds_hash_expire"]),
                                       float(params["ds_hash_initexpire"]))

    def child_init(self, rank: int) -> None:
        """Timers: call-load expiry in every worker, keepalives in one (rank 1, or 0)."""
        if rank < 0:
            return
        timers = self.router.timers
        if self.calls is not None:
            self.expiry = ExpiryTimer(self.calls, float(self.params["ds_hash_check_interval"]),
                                      self._release_cell)
            timers.append(self.expiry)
        if self.params["ds_ping_interval"] > 0 and rank in (0, 1):
            tm = self.router.modules.get("tm")
            send = getattr(tm, "local_request", None)
            if send is None:
                log.error("tm has no local_request(): dispatcher keepalives are off")
                return
            self.pinger = self.make_pinger(send)
            timers.append(self.pinger)

    def make_pinger(self, send: Any) -> Pinger:
        """The keepalive timer source, sending through ``send`` (tm's local_request)."""
        assert self.state is not None
        settings = PingSettings(
            interval=float(self.params["ds_ping_interval"]),
            mode=self.probing_mode,
            method=str(self.params["ds_ping_method"]),
            from_uri=str(self.params["ds_ping_from"]),
            outbound_proxy=str(self.params["outbound_proxy"]),
            latency_stats=self.latency_stats,
            alpha=self.alpha,
        )
        return Pinger(self.state, settings, send, self.apply_ping_result, self.reply_codes,
                      self.clock)

    @property
    def dlist(self) -> DispatcherList:
        """The current list of this process, synced (empty before init())."""
        state = self.state
        if state is None:
            return DispatcherList()
        state.sync()
        return state.dlist

    def shared_state(self) -> SharedState:
        """The shared state, synced (RPC and tools)."""
        state = self.state
        if state is None:
            raise control.fault("Not ready for reload")
        state.sync()
        return state

    # ------------------------------------------------------------ loading
    def _default_socket(self) -> tuple[str, str, int] | None:
        name = self.params["ds_default_sockname"]
        text = self.params["ds_default_socket"]
        if name:
            found = self._socket_by_name(name)
            if found is None:
                raise ValueError(f"non-local socket name <{name}>")
            return found
        if text:
            found = self._socket_by_text(text)
            if found is None:
                raise ValueError(f"non-local socket <{text}>")
            return found
        return None

    def _socket_by_name(self, name: str) -> tuple[str, str, int] | None:
        for sock in self.router.settings.listen:
            if sock.name == name:
                return sock.proto, sock.host.strip("[]"), sock.port
        return None

    def _socket_by_text(self, text: str) -> tuple[str, str, int] | None:
        parsed = parse_socket(text)
        if parsed is None:
            return None
        proto, host, port = parsed
        host = host.strip("[]").lower()
        for sock in self.router.settings.listen:
            if (sock.host.strip("[]").lower() == host and (not port or sock.port == port)
                    and (not proto or sock.proto == proto)):
                return sock.proto, sock.host.strip("[]"), sock.port
        return None

    def _validate(self, dest: Destination) -> None:
        """Load-time checks: send socket, DNS (``ds_dns_mode`` bit 1), like ``pack_dest``."""
        attrs = dest.attrs
        if attrs.sockname:
            dest.send_socket = self._socket_by_name(attrs.sockname)
            if dest.send_socket is None:
                raise ValueError(f"non-local socket name <{attrs.sockname}>")
        elif attrs.socket:
            dest.send_socket = self._socket_by_text(attrs.socket)
            if dest.send_socket is None:
                raise ValueError(f"non-local socket <{attrs.socket}>")
        else:
            dest.send_socket = self.default_socket
        if dest.flags & NODNS or not self.dns_mode & 1:
            return
        try:
            dest.ip = self.router.resolve(dest.host)
        except (OSError, UnicodeError):
            raise ValueError(f"could not resolve {dest.host} (missing no-probing flag?!?)") \
                from None

    def _load_source(self) -> tuple[DispatcherList, int, bool]:
        """(list, skipped destinations, from the database) from the file or the DB."""
        params = self.params
        attrs_none = bool(params["ds_attrs_none"])
        if self.db_source is not None:
            dlist, skipped = self.db_source.load(validate=self._validate, attrs_none=attrs_none)
            return dlist, skipped, True
        path = str(params["list_file"])
        with open(path, "rb") as f:
            data = f.read()
        entries = list_entries(data, path)
        dlist, skipped = build_list(entries, path, strict=self.strict_load,
                                    validate=self._validate, attrs_none=attrs_none)
        return dlist, skipped, False

    def reload_list(self) -> bool:
        """Load the list again and publish it to every process; False on failure.

        A DB load that skipped rows is published but reported as a failure (§6).
        """
        state = self.state
        if state is None:
            return False
        try:
            dlist, skipped, from_db = self._load_source()
        except (DispatcherListError, OSError, ValueError) as err:
            log.error("error reloading dispatcher list: %s", err)
            return False
        try:
            state.publish(dlist)
        except CapacityError as err:
            log.error("cannot reload the dispatcher list: %s", err)
            return False
        return not (from_db and skipped)

    def rebuild_list(self, change: Callable[[DispatcherList], DispatcherList | None]) -> bool:
        """``dispatcher.add``/``remove``: apply ``change`` to the current list."""
        state = self.state
        if state is None:
            return False
        try:
            return state.rebuild(change)
        except CapacityError as err:
            log.error("cannot rebuild the dispatcher list: %s", err)
            return False

    def new_destination(self, uri: str, setid: int, flags: int, priority: int,
                        attrs: str) -> Destination | None:
        """A destination for ``dispatcher.add`` (validated), None when it is unusable."""
        if not attrs and self.params["ds_attrs_none"]:
            attrs = "none=yes"
        try:
            dest = Destination.create(uri, setid, flags, priority, attrs)
            self._validate(dest)
        except ValueError as err:
            log.warning("unable to add destination %s to set %d: %s", uri, setid, err)
            return None
        return dest

    def _writable_pv(self, param: str) -> Callable[[Context, Any], None] | None:
        name = str(self.params[param])
        if not name:
            return None
        from ...routing.pv import PVError, compile_pv, scan_pv

        scanned = scan_pv(name, 0)
        try:
            if scanned is None:
                raise PVError(name)
            pv = compile_pv(scanned[0], scanned[1], scanned[2], scanned[3], self.router)
        except PVError:
            raise ValueError(f"[{name}]- invalid {param}") from None
        if pv.set is None:
            raise ValueError(f"[{name}]- invalid {param}")
        return pv.set

    def reply_codes(self) -> tuple[int, ...]:
        """``ds_ping_reply_codes`` parsed (re-parsed when cfg.set changes it)."""
        text = str(self.params["ds_ping_reply_codes"] or "")
        if text != self._reply_codes_text:
            self._reply_codes = parse_reply_codes(text)
            self._reply_codes_text = text
        return self._reply_codes

    # ------------------------------------------------------------ hash keys
    def _key_fn(self, ctx: Context, alg: int) -> Callable[[], int | None] | None:
        msg = ctx.msg
        user_only = self.user_only

        def uri_key(uri_text_fn: Callable[[], Any]) -> Callable[[], int | None]:
            def key() -> int | None:
                try:
                    uri = uri_text_fn()
                except SipError:
                    return None
                if uri is None or not uri.host:
                    return None
                return hashing.hash_uri(
                    _b(uri.user),
                    uri.host.encode("latin-1"),
                    _b(uri.port_str),
                    secure=uri.scheme == "sips",
                    user_only=user_only,
                )

            return key

        if alg == ALG_HASH_CALLID:
            return lambda: hashing.hash_callid(msg.callid.encode("latin-1"))
        if alg == ALG_HASH_FROM_URI:
            return uri_key(lambda: msg.from_.uri if msg.from_ else None)
        if alg == ALG_HASH_TO_URI:
            return uri_key(lambda: msg.to.uri if msg.to else None)
        if alg == ALG_HASH_RURI:
            return uri_key(lambda: ctx.uri)
        if alg == ALG_HASH_AUTH_USER:

            def auth_key() -> int | None:
                from ...sip.headers import Credentials

                for name in ("proxy-authorization", "authorization"):
                    hdr = msg.header(name)
                    if hdr is not None:
                        try:
                            username = Credentials(hdr.value).params.get("username")
                        except SipError:
                            return None
                        return hashing.hash_auth_username(_b(username))
                return None

            return auth_key
        if alg == ALG_HASH_PV:
            pvar = self._hash_pvar
            if pvar is None:
                return lambda: None
            return lambda: hashing.hash_pv_value(_b(pvar(ctx)))
        return None

    # ------------------------------------------------------------ selection
    def _manage_routes(self, ctx: Context, setid: int, alg: int, umode: int,
                       run: SelectRun) -> int:
        """Kamailio's ``ds_manage_routes``: select, apply, fill the failover list."""
        state = self.state
        if state is None:
            return -1
        if state.ints[state.gen_slot] != state.seen_gen:
            state.sync()
        dlist = state.dlist
        if not dlist.sets:
            log.error("no destination sets")
            return -1
        if umode == MODE_DURI and not self.force_dst and ctx.dst_uri:
            log.error("destination already set [%s]", ctx.dst_uri)
            return -1
        dset = dlist.sets.get(setid)
        if dset is None:
            log.error("destination set [%d] not found", setid)
            return -1
        dests = dset.destinations
        nr = len(dests)
        use_default = self.use_default
        n = nr - 1 if use_default and nr != 1 else nr
        record_alg = alg
        ordered: list[int] | None = None
        chosen: int | None
        if alg == ALG_CALL_LOAD:
            if ctx.msg.method != "INVITE" or not self.xavp_dst:
                record_alg = 0
                chosen = skip_forward(dests, 0, n, use_default)
            else:
                least = least_loaded(dests, state)
                if least is None:
                    return -1
                if not self._load_add(ctx, dset, dests[least]):
                    log.error("unable to update destination load - classic dispatching")
                    record_alg = 0
                chosen = skip_forward(dests, least, n, use_default)
        elif alg == ALG_LATENCY:
            chosen, ordered = latency_order(dset, state.counters, state, use_default)
            if self.failover and not self._add_records(ctx, dset, ordered, alg, run):
                return -1
            if chosen is None:
                return -1
        else:
            chosen = choose_index(dset, alg, self._key_fn(ctx, alg), state.counters, n,
                                  use_default, None, None)
        if chosen is None:
            return -1
        dest = dests[chosen]
        if umode != MODE_XAVP:
            self._push(ctx, dest.uri, dest.send_socket, umode)
            run.emode = True
        if alg == ALG_PARALLEL:
            return self._add_branches(ctx, dset, chosen, umode)
        if not self.failover:
            return 1
        if ordered is None:
            indices = failover_indices(
                dests, chosen, use_default=use_default,
                runtime=state if record_alg == ALG_CALL_LOAD else None)
        else:  # alg 13 added its list already: only the default entry is left
            indices = [nr - 1] if use_default and chosen != nr - 1 else []
        if not self._add_records(ctx, dset, indices, record_alg, run):
            return -1
        return 1

    def _add_records(self, ctx: Context, dset: DestinationSet, indices: list[int],
                     alg: int, run: SelectRun) -> bool:
        """Append ``_dsdst_`` records (up to the limit); False if one cannot be built."""
        dests = dset.destinations
        ok = True
        for i in indices:
            if run.cnt >= run.limit:
                break
            dest = dests[i]
            record: dict[str, Any] = {"uri": dest.uri, "grp": dset.setid}
            attrs = dest.attrs
            if attrs.body and not self.xavp_dst_mode & 1:
                record["attrs"] = attrs.body
            sock = dest.send_socket
            if sock is not None:
                record["sock"] = f"{sock[0]}:{sock[1]}:{sock[2]}"
                if self.xavp_dst_mode & 2 and attrs.socket:
                    record["socket"] = attrs.socket
                if self.xavp_dst_mode & 4 and attrs.sockname:
                    record["sockname"] = attrs.sockname
            if alg == ALG_CALL_LOAD:
                if not attrs.duid:
                    log.error("no uid for destination: %d %s", dset.setid, dest.uri)
                    ok = False
                    break
                record["dstid"] = attrs.duid
            run.records.append(record)
            run.cnt += 1
        if run.records:
            ctx.xavps[self.xavp_dst] = run.records + run.old
        return ok

    def _push(self, ctx: Context, uri: str, sock: tuple[str, str, int] | None,
              umode: int) -> None:
        """Apply a destination: ``$du``, or the R-URI host part; force its send socket."""
        if umode == MODE_RURI:
            self._rewrite_domain(ctx, uri)
        elif umode == MODE_DURI:
            ctx.dst_uri = uri
        if sock is not None:
            ctx.local = (sock[1], sock[2])

    @staticmethod
    def _rewrite_domain(ctx: Context, dest_uri: str) -> None:
        uri = ctx.uri
        target = dest_uri.split(":", 1)[1] if ":" in dest_uri else dest_uri
        if "@" in target:
            target = target.split("@", 1)[1]
        userinfo = ""
        if uri.user:
            userinfo = uri.user + (f":{uri.password}" if uri.password is not None else "") + "@"
        ctx.set_ruri(f"{uri.scheme}:{userinfo}{target}")

    def _add_branches(self, ctx: Context, dset: DestinationSet, chosen: int,
                      umode: int) -> int:
        """Alg 12: one branch per destination after the selected one (states unchecked)."""
        dests = dset.destinations
        if umode != MODE_XAVP and chosen + 1 >= len(dests):
            return 1
        user = ""
        if umode == MODE_RURI:
            try:
                user = ctx.uri.user or ""
            except SipError:
                log.error("failed to parse sip msg uri")
                return 2
        limit = self.router.settings.max_branches - 1
        start = chosen if umode == MODE_XAVP else chosen + 1
        for i in range(start, len(dests)):
            uri = dests[i].uri
            if len(ctx.branches) >= limit:
                log.error("failed to add additional branches")
                return 2
            if umode != MODE_RURI:
                ctx.branches.append(Branch(ctx.ruri, None, uri, 0))
            elif not user:
                ctx.branches.append(Branch(uri))
            elif len(uri) < 6:
                log.warning("invalid dispatcher uri - skipping (%d)", i)
            elif uri.startswith("sips:"):
                ctx.branches.append(Branch(f"sips:{user}@{uri[5:]}"))
            elif uri.startswith("sip:"):
                ctx.branches.append(Branch(f"sip:{user}@{uri[4:]}"))
            else:
                log.warning("unsupported protocol schema - ignoring")
        return 1

    def _select(self, ctx: Context, setid: int, alg: int, limit: int, umode: int) -> int:
        run = SelectRun(limit, self._old_records(ctx))
        ret = self._manage_routes(ctx, setid, alg, umode, run)
        if ret < 0:
            return ret
        self._add_ctx_count(ctx, run.cnt)
        return ret

    def _old_records(self, ctx: Context) -> list[Any]:
        return ctx.xavps.get(self.xavp_dst, []) if self.xavp_dst else []

    def _add_ctx_count(self, ctx: Context, cnt: int) -> None:
        if not self.xavp_ctx_mode & 1 and self.xavp_ctx:
            ctx.xavps[self.xavp_ctx] = [{"cnt": cnt}, *ctx.xavps.get(self.xavp_ctx, [])]

    # ------------------------------------------------------------ cfg functions: selection
    def ds_select_dst(self, ctx: Context, setid: int, alg: int, limit: int = 0) -> int:
        return self._select(ctx, setid, alg, limit, MODE_DURI)

    def ds_select_domain(self, ctx: Context, setid: int, alg: int, limit: int = 0) -> int:
        return self._select(ctx, setid, alg, limit, MODE_RURI)

    def ds_select(self, ctx: Context, setid: int, alg: int, limit: int = 0) -> int:
        return self._select(ctx, setid, alg, limit, MODE_XAVP)

    def ds_select_routes(self, ctx: Context, rules: str, mode: str, limit: int = 0) -> int:
        """``"set=alg;set=alg"``: the first group that selects sets the d-uri/r-uri."""
        mode = mode or ""
        run = SelectRun(limit, self._old_records(ctx))
        ret = -1
        best = -1
        i = 0
        while i < len(rules):
            setid, i = _rule_number(rules, i, "=")
            if setid < 0:
                return -1
            alg, i = _rule_number(rules, i, ";")
            if alg < 0:
                return -1
            umode = MODE_XAVP
            if not run.emode:
                first = mode[:1]
                if first in ("0", "d", "D"):
                    umode = MODE_DURI
                elif first in ("1", "r", "R"):
                    umode = MODE_RURI
                elif first not in ("2", "x", "X"):
                    log.error("invalid routing mode parameter: %s", mode)
                    return -1
            ret = self._manage_routes(ctx, setid, alg, umode, run)
            if ret > 0:
                best = ret
        if best < 0:
            return ret
        self._add_ctx_count(ctx, run.cnt)
        return best

    # ------------------------------------------------------------ cfg functions: failover
    def _update_dst(self, ctx: Context, use_next: bool, umode: int) -> int:
        """Kamailio's ``ds_update_dst``: apply the current or the next ``_dsdst_`` record."""
        if use_next and not self.failover:
            log.warning("failover support disabled")
            return -1
        name = self.xavp_dst
        while True:
            items = ctx.xavps.get(name)
            if not items or not isinstance(items[0], dict):
                return -1
            if use_next:
                items = items[1:]
                if items:
                    ctx.xavps[name] = items
                else:
                    ctx.xavps.pop(name, None)
                if not items or not isinstance(items[0], dict):
                    return -1
            record = items[0]
            uri = record.get("uri")
            if not isinstance(uri, str):
                log.warning("no xavp uri field in next destination record")
                return -1
            try:
                self._push(ctx, uri, self._record_socket(record.get("sock")), umode)
            except SipError:
                log.error("cannot set dst addr: %s", uri)
                return -1
            duid = record.get("dstid")
            if not isinstance(duid, str) or not use_next:
                return 1
            ret = self._load_replace(ctx, duid)
            if ret == 0:
                return 1
            if ret != -2:
                log.error("cannot update load distribution")
                return -1
            log.error("cannot update load with %s, skipping dst.", duid)

    @staticmethod
    def _record_socket(text: Any) -> tuple[str, str, int] | None:
        if not isinstance(text, str):
            return None
        parsed = parse_socket(text)
        return parsed if parsed is not None and parsed[2] else None

    def ds_next_dst(self, ctx: Context) -> int:
        return self._update_dst(ctx, True, MODE_DURI)

    def ds_next_domain(self, ctx: Context) -> int:
        return self._update_dst(ctx, True, MODE_RURI)

    def ds_set_dst(self, ctx: Context) -> int:
        return self._update_dst(ctx, False, MODE_DURI)

    def ds_set_domain(self, ctx: Context) -> int:
        return self._update_dst(ctx, False, MODE_RURI)

    def ds_mark_dst(self, ctx: Context, state_text: str | None = None) -> int:
        """Run the state machine on the current destination (first ``_dsdst_`` record)."""
        if not self.failover:
            log.warning("failover support disabled")
            return -1
        if state_text:
            requested = parse_mark_state(state_text)
            if requested < 0:
                log.warning("Failed to parse state flags: %s", state_text)
                return -1
        else:
            requested = INACTIVE | (PROBING if self.probing_mode == PROBE_ALL else 0)
        items = ctx.xavps.get(self.xavp_dst)
        if not items or not isinstance(items[0], dict):
            return -1
        group = items[0].get("grp")
        uri = items[0].get("uri")
        if not isinstance(group, int) or not isinstance(uri, str):
            return -1
        msg = ctx.msg
        if msg.is_request:
            rctx = ReplyContext(820, None, 0, group, uri)
        else:
            rctx = ReplyContext(msg.status, msg.reason or None, 1, group, uri)
        return 1 if self.mark(group, uri, requested, rctx, ctx) is not None else -1

    # ------------------------------------------------------------ state machine and events
    def mark(self, setid: int, uri: str, requested: int, rctx: ReplyContext,
             ctx: Context | None = None) -> StateChange | None:
        """State machine + events for one destination (``ds_update_state``)."""
        state = self.state
        if state is None:
            return None
        change = state.update_state(setid, uri, requested, self.probing_threshold,
                                    self.inactive_threshold)
        if change is None:
            log.error("destination [%d : %s] not found", setid, uri)
            return None
        if change.went_down:
            self.run_event(EVENT_DOWN, rctx, ctx)
        elif change.came_up:
            self.run_event(EVENT_UP, rctx, ctx)
        return change

    def apply_ping_result(self, setid: int, uri: str, requested: int,
                          rctx: ReplyContext) -> list[Outgoing]:
        """Keepalive result (from the pinger): state machine; events on a faked request."""
        ctx = self._faked_context(uri)
        self.mark(setid, uri, requested, rctx, ctx)
        return ctx.out

    def _faked_context(self, uri: str) -> Context:
        from ...sip.message import FAKED_REQUEST, parse_message

        try:
            local = self.router.first_socket
        except IndexError:
            local = ("127.0.0.1", 5060)
        ctx = Context(self.router, parse_message(FAKED_REQUEST), ("127.0.0.1", 5060), local,
                      "udp", self.clock(), "request")
        ctx.set_ruri(uri)
        return ctx

    def run_event(self, name: str, rctx: ReplyContext, ctx: Context | None) -> None:
        """Run ``event_route[name]`` (or the KEMI ``event_callback``) with ``$dsv`` set."""
        if name not in self.router.script.event:
            return
        if ctx is None:
            ctx = self._faked_context(rctx.uri)
        saved = self.rctx
        self.rctx = rctx
        try:
            self.router.run_event(name, ctx)
        except Exception:  # noqa: BLE001 - an event route must not break the caller
            log.exception("error in event_route[%s]", name)
        finally:
            self.rctx = saved

    def pv_dsv(self, arg: str) -> Getter:
        """``$dsv(code|reason|flags|uri|setid)`` inside the dispatcher event routes."""
        from ...routing.pv import PVError

        key = DSV_KEYS.get(arg.strip())
        if key is None:
            raise PVError(f"unknown PV key: {arg}")

        def get(ctx: Context) -> Any:
            rctx = self.rctx
            if rctx is None:
                return None
            if key == 0:
                return rctx.code
            if key == 1:
                return rctx.reason or None
            if key == 2:
                return rctx.flags
            if key == 3:
                return rctx.uri or None
            return rctx.setid

        return get

    # ------------------------------------------------------------ call load (alg 10)
    def _load_add(self, ctx: Context, dset: DestinationSet, dest: Destination) -> bool:
        """Count the call on ``dest`` (``ds_load_add``); False when it cannot."""
        if not dest.attrs.duid:
            log.error("dst unique id not set for %d (%s)", dset.setid, ctx.msg.callid)
            return False
        state = self.state
        calls = self.calls
        if state is None or calls is None:
            return False
        if not calls.add(ctx.msg.callid, dset.setid, dest.attrs.duid, ctx.now):
            log.warning("call-id already in hash table [%s].", ctx.msg.callid)
            return False
        state.add_load(dest, 1)
        return True

    def _find_duid(self, setid: int, duid: str) -> tuple[DestinationSet, Destination | None] | None:
        state = self.state
        if state is None:
            return None
        state.sync()
        dset = state.dlist.get(setid)
        if dset is None:
            return None
        wanted = duid.lower()
        return dset, next((d for d in dset if d.attrs.duid.lower() == wanted), None)

    def _load_replace(self, ctx: Context, duid: str) -> int:
        """Move the call's load to destination ``duid``: 0, -1 error, -2 duid gone."""
        calls = self.calls
        callid = ctx.msg.callid
        cell = calls.get(callid) if calls is not None and duid else None
        if cell is None or calls is None:
            log.error("cannot find load for (%s)", callid)
            return -1
        found = self._find_duid(cell.setid, cell.duid)
        if found is None:
            return -1
        dset, old = found
        wanted = duid.lower()
        new = next((d for d in dset if d.attrs.duid.lower() == wanted), None)
        if new is None:
            return -2
        calls.remove(callid)
        if old is not None and self.state is not None:
            self.state.add_load(old, -1)
        return 0 if self._load_add(ctx, dset, new) else -1

    def _release_cell(self, cell: CallCell) -> None:
        """Give a call's load back (``ds_load_remove_byid``); False if the duid is gone."""
        found = self._find_duid(cell.setid, cell.duid)
        if found is None or found[1] is None or self.state is None:
            log.error("old destination address not found for [%d, %s]", cell.setid, cell.duid)
            return
        self.state.add_load(found[1], -1)

    def _load_remove(self, callid: str) -> int:
        calls = self.calls
        cell = calls.get(callid) if calls is not None else None
        if cell is None or calls is None:
            log.error("cannot find load for (%s)", callid)
            return -1
        found = self._find_duid(cell.setid, cell.duid)
        if found is None or found[1] is None or self.state is None:
            return -1
        self.state.add_load(found[1], -1)
        calls.remove(callid)
        return 0

    def ds_load_update(self, ctx: Context) -> int:
        """BYE/CANCEL: remove the call's load; 2xx to INVITE: the call is confirmed."""
        msg = ctx.msg
        if not msg.has_header("call-id"):
            return -1
        try:
            cseq_method = msg.cseq.method
        except SipError:
            return -1
        if msg.is_request:
            if msg.method in ("BYE", "CANCEL"):
                self._load_remove(msg.callid)
            return 1
        if cseq_method == "INVITE" and 200 <= msg.status <= 299 and self.calls is not None:
            cell = self.calls.get(msg.callid)
            if cell is not None:
                cell.state = LOAD_CONFIRMED
        return 1

    def ds_load_unset(self, ctx: Context) -> int:
        """Remove the call's load (an INVITE only when its record carries a dstid)."""
        if not self.xavp_dst:
            return 1
        msg = ctx.msg
        if msg.is_request and msg.method == "INVITE":
            items = ctx.xavps.get(self.xavp_dst)
            if not items or not isinstance(items[0], dict) \
                    or not isinstance(items[0].get("dstid"), str):
                return 1
        return 1 if self._load_remove(msg.callid) == 0 else -1

    # ------------------------------------------------------------ other cfg functions
    def ds_reload(self, ctx: Context) -> int:
        state = self.state
        if state is None:
            log.error("not ready for reload")
            return -1
        if not state.begin_reload(self.reload_delta):
            log.error("ongoing reload")
            return -1
        return 1 if self.reload_list() else -1

    def ds_list_exists(self, ctx: Context, setid: int) -> int:
        state = self.state
        if state is None:
            return -1
        state.sync()
        return 1 if setid in state.dlist.sets else -1

    def ds_is_active(self, ctx: Context, setid: int, uri: str = "") -> int:
        """1 if the set has a usable destination (with ``uri``: that exact one)."""
        state = self.state
        if state is None:
            return -1
        state.sync()
        dset = state.dlist.sets.get(setid)
        if dset is None:
            return -1
        for dest in dset:
            if dest.usable and (not uri or dest.uri == uri):
                return 1
        return -1

    def ds_is_from_list(self, ctx: Context, group: int = -1, mode: int = 2, uri: str = "") -> int:
        """1 if the source (or ``uri``) is a destination of ``group`` (-1 = all groups)."""
        state = self.state
        if state is None:
            return -1
        state.sync()
        if uri:
            from ...sip.uri import parse_uri

            try:
                parsed = parse_uri(uri)
                ip = self.router.resolve(parsed.host)
            except (SipError, OSError, UnicodeError):
                return -1
            port = parsed.default_port()
            proto = parsed.transport or "udp"
        else:
            ip, port = ctx.src
            proto = ctx.proto
        for dset in state.dlist:
            if group != -1 and dset.setid != group:
                continue
            for dest in dset:
                if dest.flags & NODNS:
                    continue
                if mode & 4 and not dest.usable:
                    continue
                host, dport, dproto = dest.next_hop()
                dip = dest.ip
                if dip is None or self.dns_mode & 2:
                    try:
                        dip = socket.gethostbyname(host)
                    except OSError:
                        continue
                if dip != ip:
                    continue
                if not mode & 1 and dest.port and dport != port:
                    continue
                if not mode & 2 and dproto != proto:
                    continue
                self._store_match(ctx, dset.setid, dest, group == -1)
                return 1
        return -1

    def _store_match(self, ctx: Context, setid: int, dest: Destination, all_groups: bool) -> None:
        if all_groups and self._setid_pv is not None:
            self._setid_pv(ctx, setid)
        if dest.attrs.body and self._attrs_pv is not None:
            self._attrs_pv(ctx, dest.attrs.body)

    # ------------------------------------------------------------ RPC
    def rpc_list(self, params: list[Any]) -> Any:
        return control.rpc_list(self, params)

    def rpc_reload(self, params: list[Any]) -> Any:
        return control.rpc_reload(self, params)

    def rpc_set_state(self, params: list[Any]) -> Any:
        return control.rpc_set_state(self, params, False)

    def rpc_set_duid_state(self, params: list[Any]) -> Any:
        return control.rpc_set_state(self, params, True)

    def rpc_ping_active(self, params: list[Any]) -> Any:
        return control.rpc_ping_active(self, params)

    def rpc_add(self, params: list[Any]) -> Any:
        return control.rpc_add(self, params)

    def rpc_remove(self, params: list[Any]) -> Any:
        return control.rpc_remove(self, params)

    def rpc_hash(self, params: list[Any]) -> Any:
        return control.rpc_hash(self, params)
