"""The ``dispatcher.*`` RPC commands (spec/dispatcher.md §14), Kamailio's texts and faults.

They run in the control process: every change goes through the shared state,
so each worker sees it on its next dispatcher call.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...rpc.errors import RpcError
from .destinations import (
    DISABLED,
    INACTIVE,
    PROBING,
    TRYING,
    Destination,
    DispatcherList,
    flags_letters,
)
from .hashing import ds_get_hash

if TYPE_CHECKING:
    from .module import DispatcherModule
    from .state import Latency

PROTO_IDS = {None: 0, "udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}


def fault(message: str) -> RpcError:
    return RpcError(500, message)


def _int_param(value: Any) -> int:
    """An RPC ``d`` parameter: an int, or a string holding one."""
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value.strip(), 10)
    raise ValueError("not an integer")


def _str_param(value: Any) -> str:
    """An RPC ``S`` parameter: a string (numbers are taken as their text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("not a string")


def _scan(params: list[Any], kinds: str, required: int) -> list[Any]:
    """Kamailio's ``rpc->scan``: convert the leading params; too few -> Invalid Parameters."""
    out: list[Any] = []
    for kind, value in zip(kinds, params, strict=False):
        try:
            out.append(_int_param(value) if kind == "d" else _str_param(value))
        except ValueError:
            break
    if len(out) < required:
        raise fault("Invalid Parameters")
    return out


# ------------------------------------------------------------------ dispatcher.list


def _or_null(text: str) -> str | None:
    return text or None


def _dest_struct(dest: Destination, mode: str, module: DispatcherModule,
                 load: int, latency: Latency) -> dict[str, Any]:
    out: dict[str, Any] = {"URI": dest.uri, "FLAGS": flags_letters(dest.flags),
                           "PRIORITY": dest.priority}
    if mode == "full":
        host = dest.host[1:-1] if dest.host.startswith("[") else dest.host
        out.update({"HOST": dest.host, "IPADDR": dest.ip or host, "PORT": dest.port,
                    "PROTOID": PROTO_IDS.get(dest.transport, 0), "DNSTIME_SEC": 0,
                    "DNSTIME_USEC": 0})
    attrs = dest.attrs
    if mode != "short" and attrs.body:
        out["ATTRS"] = {"BODY": attrs.body, "DUID": _or_null(attrs.duid),
                        "MAXLOAD": attrs.maxload, "WEIGHT": attrs.weight,
                        "RWEIGHT": attrs.rweight, "SOCKET": _or_null(attrs.socket),
                        "SOCKNAME": _or_null(attrs.sockname),
                        "OBPROXY": _or_null(attrs.obproxy)}
    if module.latency_stats:
        out["LATENCY"] = {"AVG": latency.average, "STD": latency.stdev,
                          "EST": latency.estimate, "MAX": latency.max,
                          "TIMEOUT": latency.timeout}
    if module.hash_size > 0:
        out["RUNTIME"] = {"DLGLOAD": load}
    return out


def rpc_list(module: DispatcherModule, params: list[Any]) -> dict[str, Any]:
    """``dispatcher.list [short|full]``."""
    mode = "normal"
    if params and isinstance(params[0], str) and params[0].lower() in ("short", "full"):
        mode = params[0].lower()
    state = module.shared_state()
    rows = state.snapshot()  # syncs the list and flags
    dlist = state.dlist
    if not dlist.sets:
        raise fault("No Destination Sets")
    records = []
    for dset in dlist:
        targets = [{"DEST": _dest_struct(d, mode, module, rows[d.slot]["load"],
                                         rows[d.slot]["latency"])} for d in dset]
        records.append({"SET": {"ID": dset.setid, "TARGETS": targets}})
    return {"NRSETS": len(dlist.sets), "RECORDS": records}


# ------------------------------------------------------------------ states


def _parse_rpc_state(text: str) -> int:
    """``0/i`` inactive, ``1/a`` active, ``2/d`` disabled, ``3/t`` trying; ``p`` adds PROBING."""
    first = text[0]
    probing = len(text) > 1 and text[1] in "pP"
    if first in "0iI":
        return INACTIVE | (PROBING if probing else 0)
    if first in "1aA":
        return PROBING if probing else 0
    if first in "2dD":
        return DISABLED
    if first in "3tT":
        return TRYING | (PROBING if probing else 0)
    raise fault("Unknown State Value")


def rpc_set_state(module: DispatcherModule, params: list[Any], by_duid: bool) -> str:
    """``dispatcher.set_state`` / ``dispatcher.set_duid_state``: state group address."""
    state_text, group, address = _scan(params, "SdS", 3)
    if not state_text:
        raise fault("Invalid State Parameter")
    new = _parse_rpc_state(state_text)
    shared = module.shared_state()
    if address == "all":
        shared.reinit_state(group, new)
    else:
        wanted = address.lower()
        if by_duid:
            changed = shared.reinit_state(group, new, lambda d: d.attrs.duid.lower() == wanted)
        else:
            changed = shared.reinit_state(group, new, lambda d: d.uri.lower() == wanted)
        if changed <= 0:
            raise fault("State Update Failed")
    return "Ok. Dispatcher state updated."


def rpc_ping_active(module: DispatcherModule, params: list[Any]) -> dict[str, int]:
    """``dispatcher.ping_active [0|1]``."""
    shared = module.shared_state()
    old = shared.ping_active
    try:
        new = _int_param(params[0]) if params else None
    except ValueError:
        new = None
    if new is None:
        return {"OldPingState": old}
    shared.ping_active = new
    return {"NewPingState": new, "OldPingState": old}


# ------------------------------------------------------------------ reload, add, remove


def _begin_reload(module: DispatcherModule) -> None:
    if not module.shared_state().begin_reload(module.reload_delta):
        raise fault("Ongoing reload")


def rpc_reload(module: DispatcherModule, params: list[Any]) -> str:
    """``dispatcher.reload``: a new list from the file or the database."""
    _begin_reload(module)
    if not module.reload_list():
        raise fault("Reload Failed")
    return "Ok. Dispatcher successfully reloaded."


def rpc_add(module: DispatcherModule, params: list[Any]) -> str:
    """``dispatcher.add group address [flags [priority [attrs]]]``."""
    _begin_reload(module)
    scanned = _scan(params, "dSddS", 2)
    group, address = scanned[0], scanned[1]
    flags = scanned[2] if len(scanned) > 2 else 0
    priority = scanned[3] if len(scanned) > 3 else 0
    attrs = scanned[4] if len(scanned) > 4 else ""

    def add(current: DispatcherList) -> DispatcherList | None:
        new = module.new_destination(address, group, flags, priority, attrs)
        if new is None and module.strict_load:
            return None
        # Kamailio re-adds in array order, so equal priorities flip on every rebuild
        dests = [replace(d) for d in current.all]
        if new is not None:
            dests.append(new)
        return DispatcherList.build(dests)

    if not module.rebuild_list(add):
        raise fault("Adding dispatcher dst failed")
    return "Ok. Dispatcher destination added."


def rpc_remove(module: DispatcherModule, params: list[Any]) -> str:
    """``dispatcher.remove group address``: every entry of the group with that URI."""
    _begin_reload(module)
    group, address = _scan(params, "dS", 2)
    try:
        uri = Destination.create(address).uri
    except ValueError:
        raise fault("Removing dispatcher dst failed") from None

    def remove(current: DispatcherList) -> DispatcherList:
        return DispatcherList.build(
            replace(d) for d in current.all if not (d.setid == group and d.uri == uri))

    if not module.rebuild_list(remove):
        raise fault("Removing dispatcher dst failed")
    return "Ok. Dispatcher destination removed."


# ------------------------------------------------------------------ hash


def rpc_hash(module: DispatcherModule, params: list[Any]) -> dict[str, int]:
    """``dispatcher.hash nslots val1 [val2]``."""
    scanned = _scan(params, "dSS", 2)
    nslots, first = scanned[0], scanned[1]
    second = scanned[2].encode("utf-8", "surrogateescape") if len(scanned) > 2 else None
    hashid = ds_get_hash(first.encode("utf-8", "surrogateescape"), second)
    return {"hashid": hashid, "slot": hashid % nslots if nslots > 0 else 0}
