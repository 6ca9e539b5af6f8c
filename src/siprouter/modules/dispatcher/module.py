"""dispatcher: the cfg/KEMI glue over the sans-IO selection core (spec/dispatcher.md).

This file binds ``ds_select_dst()`` and friends to a message: it extracts the
hash keys, calls :func:`.selection.select`, and applies the result to ``$du``,
the R-URI and the ``_dsdst_``/``_dsctx_`` XAVPs.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from ...routing.context import Context
from ...sip.errors import SipError
from ..base import REQUEST_ROUTES, Exports, Function, Module, Param
from . import hashing
from .destinations import Destination, DispatcherList, DispatcherListError, parse_list_file
from .selection import (
    ALG_HASH_AUTH_USER,
    ALG_HASH_CALLID,
    ALG_HASH_FROM_URI,
    ALG_HASH_PV,
    ALG_HASH_RURI,
    ALG_HASH_TO_URI,
    UNSUPPORTED_ALGS,
    LocalCounters,
    ProcessSharedCounters,
    SharedCounters,
    select,
)

log = logging.getLogger("siprouter.dispatcher")

ROUTES = REQUEST_ROUTES

MODE_DURI, MODE_RURI, MODE_XAVP = 0, 1, 2


def _params() -> tuple[Param, ...]:
    ints = {
        "force_dst": 1,
        "flags": 0,
        "use_default": 0,
        "xavp_dst_mode": 0,
        "xavp_ctx_mode": 0,
        "ds_ping_interval": 0,
        "ds_probing_threshold": 1,
        "ds_inactive_threshold": 1,
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
        "ds_ping_reply_codes": "",
        "outbound_proxy": "",
        "ds_default_socket": "",
        "ds_default_sockname": "",
        "event_callback": "",
        "ds_db_extra_attrs": "",
    }
    return tuple(
        [Param(n, int, v) for n, v in ints.items()] + [Param(n, str, v) for n, v in strs.items()]
    )


def _b(text: str | None) -> bytes | None:
    """Wire bytes of a latin-1 view string (None and '' stay falsy)."""
    return None if text is None else text.encode("latin-1")


class DispatcherModule(Module):
    exports = Exports(
        name="dispatcher",
        params=_params(),
        functions=(
            Function(
                "ds_select_dst",
                "ds_select_dst",
                ("int", "int"),
                ("int",),
                kemi=("ds_select_dst", "ds_select_dst_limit"),
                routes=ROUTES,
            ),
            Function(
                "ds_select_domain",
                "ds_select_domain",
                ("int", "int"),
                ("int",),
                kemi=("ds_select_domain", "ds_select_domain_limit"),
                routes=ROUTES,
            ),
            Function(
                "ds_select",
                "ds_select",
                ("int", "int"),
                ("int",),
                kemi=("ds_select", "ds_select_limit"),
                routes=ROUTES,
            ),
            Function(
                "ds_is_from_list",
                "ds_is_from_list",
                (),
                ("int", "int", "str"),
                kemi=(
                    "ds_is_from_lists",
                    "ds_is_from_list",
                    "ds_is_from_list_mode",
                    "ds_is_from_list_uri",
                ),
            ),
            Function(
                "ds_list_exists",
                "ds_list_exists",
                ("int",),
                aliases=("ds_list_exist",),
                kemi=("ds_list_exists",),
            ),
        ),
        kemi_module="dispatcher",
        depends=(),
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self.dlist = DispatcherList()
        self.counters: SharedCounters = LocalCounters()
        self._hash_pvar: Callable[[Context], str] | None = None

    # ------------------------------------------------------------ lifecycle
    def init(self) -> None:
        if self.params["db_url"]:
            raise ValueError("db_url is not supported yet; use list_file")
        path = self.params["list_file"]
        try:
            self.dlist = parse_list_file(path, strict=bool(self.params["ds_load_mode"]))
        except DispatcherListError as err:
            raise ValueError(str(err)) from None
        except OSError as err:
            raise ValueError(f"cannot read list file {path!r}: {err.strerror}") from None
        if "area" in self.router.shared:
            self.counters = ProcessSharedCounters(3 * max(64, 2 * len(self.dlist)))
        if self.params["hash_pvar"]:
            from ...routing.pv import compile_format

            self._hash_pvar = compile_format(self.params["hash_pvar"], self.router)

    # ------------------------------------------------------------ hash keys
    def _key_fn(self, ctx: Context, alg: int) -> Callable[[], int | None] | None:
        msg = ctx.msg
        user_only = bool(self.params["flags"] & 1)

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
    def _select(self, ctx: Context, setid: int, alg: int, limit: int, mode: int) -> int:
        if not len(self.dlist):
            return -1
        if mode == MODE_DURI and not self.params["force_dst"] and ctx.dst_uri:
            return -1
        dset = self.dlist.get(setid)
        if dset is None:
            log.error("destination set %d not found", setid)
            return -1
        if alg in UNSUPPORTED_ALGS:
            log.error("dispatcher algorithm %d needs transactions (not available yet)", alg)
            return -1
        chosen = select(
            dset,
            alg,
            self._key_fn(ctx, alg),
            self.counters,
            use_default=bool(self.params["use_default"]),
            limit=limit,
        )
        if chosen is None:
            return -1
        first = chosen[0]
        if mode == MODE_DURI:
            ctx.dst_uri = first.uri
        elif mode == MODE_RURI:
            self._rewrite_domain(ctx, first)
        if self.params["flags"] & 2 and self.params["xavp_dst"]:
            self._add_xavps(ctx, dset.setid, chosen)
        elif not self.params["xavp_ctx_mode"] & 1 and self.params["xavp_ctx"]:
            ctx.xavps[self.params["xavp_ctx"]] = [{"cnt": 0}]
        return 1

    def _add_xavps(self, ctx: Context, setid: int, chosen: list[Destination]) -> None:
        records = []
        omit_attrs = bool(self.params["xavp_dst_mode"] & 1)
        for dest in chosen:
            record: dict[str, Any] = {"uri": dest.uri, "grp": setid}
            if dest.attrs.body and not omit_attrs:
                record["attrs"] = dest.attrs.body
            records.append(record)
        ctx.xavps[self.params["xavp_dst"]] = records
        if not self.params["xavp_ctx_mode"] & 1 and self.params["xavp_ctx"]:
            ctx.xavps[self.params["xavp_ctx"]] = [{"cnt": len(records)}]

    @staticmethod
    def _rewrite_domain(ctx: Context, dest: Destination) -> None:
        uri = ctx.uri
        target = dest.uri.split(":", 1)[1] if ":" in dest.uri else dest.uri
        if "@" in target:
            target = target.split("@", 1)[1]
        userinfo = ""
        if uri.user:
            userinfo = uri.user + (f":{uri.password}" if uri.password is not None else "") + "@"
        ctx.set_ruri(f"{uri.scheme}:{userinfo}{target}")

    # ------------------------------------------------------------ cfg functions
    def ds_select_dst(self, ctx: Context, setid: int, alg: int, limit: int = 0) -> int:
        return self._select(ctx, setid, alg, limit, MODE_DURI)

    def ds_select_domain(self, ctx: Context, setid: int, alg: int, limit: int = 0) -> int:
        return self._select(ctx, setid, alg, limit, MODE_RURI)

    def ds_select(self, ctx: Context, setid: int, alg: int, limit: int = 0) -> int:
        return self._select(ctx, setid, alg, limit, MODE_XAVP)

    def ds_list_exists(self, ctx: Context, setid: int) -> int:
        return 1 if setid in self.dlist else -1

    def ds_is_from_list(self, ctx: Context, group: int = -1, mode: int = 2, uri: str = "") -> int:
        """1 if the source (or ``uri``) is a destination of ``group`` (-1 = all groups)."""
        if uri:
            from ...sip.uri import parse_uri

            try:
                parsed = parse_uri(uri)
                ip = socket.gethostbyname(parsed.host.strip("[]"))
            except (SipError, OSError):
                return -1
            port = parsed.default_port()
            proto = parsed.transport or "udp"
        else:
            ip, port = ctx.src
            proto = ctx.proto
        for dset in self.dlist:
            if group not in (-1,) and dset.setid != group:
                continue
            for dest in dset:
                if dest.flags & 16:
                    continue
                if mode & 4 and not dest.usable:
                    continue
                host, dport, dproto = dest.next_hop()
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
        from ...routing.pv import PVError, compile_pv, scan_pv

        for param, value, wanted in (
            ("setid_pvname", setid, all_groups),
            ("attrs_pvname", dest.attrs.body or None, True),
        ):
            name = self.params[param]
            if not name or not wanted or value is None:
                continue
            scanned = scan_pv(name, 0)
            if scanned is None:
                continue
            try:
                pv = compile_pv(scanned[0], scanned[1], scanned[2], scanned[3], self.router)
            except PVError:
                continue
            if pv.set is not None:
                pv.set(ctx, value)
