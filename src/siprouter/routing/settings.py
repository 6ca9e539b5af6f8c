"""Core (global) parameters of a cfg file: ``listen=``, ``children=``, ``debug=``...

Values arrive from the cfg parser as ``int`` or ``str``; :meth:`CoreSettings.apply`
converts and validates them and raises ``ValueError`` with a reason on a bad
value. Unknown names are reported through the returned warning.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .. import __version__

SERVER_TOKEN = "kamailio (5.6.3 (x86_64/linux))"


@dataclass(frozen=True)
class Listen:
    """One listening socket: ``[proto:]host[:port] [advertise host[:port]] [name "x"]``."""

    proto: str
    host: str
    port: int
    advertise: str | None = None
    name: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host.strip("[]"), self.port)


def parse_listen(value: str, default_port: int = 5060) -> Listen:
    """Parse a ``listen=`` value such as ``udp:127.0.0.1:5060``."""
    text = value.strip()
    advertise = name = None
    parts = text.split()
    if len(parts) >= 3 and parts[1].lower() == "advertise":
        advertise = parts[2]
        parts = parts[:1] + parts[3:]
    if len(parts) >= 3 and parts[1].lower() == "name":
        name = parts[2].strip('"')
        parts = parts[:1]
    if len(parts) != 1:
        raise ValueError(f"cannot parse listen value {value!r}")
    spec = parts[0]
    proto = "udp"
    head, sep, rest = spec.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls", "sctp", "ws", "wss"):
        proto = head.lower()
        spec = rest
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise ValueError(f"bad IPv6 address in listen value {value!r}")
        host = spec[: end + 1]
        port_text = spec[end + 2:] if spec[end + 1: end + 2] == ":" else ""
    else:
        host, _, port_text = spec.partition(":")
    if not host:
        raise ValueError(f"missing address in listen value {value!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port {port_text!r} in listen value {value!r}")
        port = int(port_text)
    else:
        port = default_port
    if proto not in ("udp", "tcp"):
        raise ValueError(f"transport '{proto}' is not supported yet (listen {value!r})")
    return Listen(proto, host, port, advertise, name)


def _as_bool(value: Any) -> bool:
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "enable", "1"):
        return True
    if text in ("no", "false", "off", "disable", "0"):
        return False
    raise ValueError(f"expected yes/no, got {value!r}")


def _as_int(value: Any) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 0)
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


# name -> (attribute, converter)
_SIMPLE_PARAMS: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "port": ("port", _as_int), "children": ("children", _as_int),
    "debug": ("debug", _as_int), "log_stderror": ("log_stderror", _as_bool),
    "log_facility": ("log_facility", str), "log_name": ("log_name", str),
    "log_prefix": ("log_prefix", str), "fork": ("fork", _as_bool),
    "auto_aliases": ("auto_aliases", _as_bool), "disable_tcp": ("disable_tcp", _as_bool),
    "server_signature": ("server_signature", _as_bool),
    "server_header": ("server_header", str), "user_agent_header": ("user_agent_header", str),
    "sip_warning": ("sip_warning", _as_int), "reply_to_via": ("reply_to_via", _as_int),
    "check_via": ("check_via", _as_int),
    "max_while_loops": ("max_while_loops", _as_int),
    "max_branches": ("max_branches", _as_int), "workdir": ("workdir", str),
    "wdir": ("workdir", str), "log_engine_type": ("log_engine_type", str),
    "kemi.reply_route_callback": ("kemi_reply_route_callback", str),
    "kemi.onsend_route_callback": ("kemi_onsend_route_callback", str),
    "reply_route_callback": ("kemi_reply_route_callback", str),
    "onsend_route_callback": ("kemi_onsend_route_callback", str),
}
# accepted for compatibility, without effect here
_IGNORED_PARAMS: Final[frozenset[str]] = frozenset((
    "mhomed", "mpath", "loadpath", "memdbg", "memlog", "tcp_connection_lifetime",
    "tcp_max_connections", "tcp_children", "enable_tls", "dns", "rev_dns", "use_dns_cache",
    "dns_try_ipv6", "tcp_accept_no_cl", "tcp_rd_buf_size", "tos", "pmtu_discovery",
    "stats_name_separator", "corelog", "latency_log", "latency_limit_action",
    "latency_cfg_log", "latency_limit_db", "sip_parser_mode", "shm_mem_size",
    "pv_buffer_size", "pv_buffer_slots", "udp_mtu", "udp_mtu_try_proto",
    "user", "group", "chroot", "xavp_via_params", "xavp_via_fields", "async_workers",
    "maxbuffer", "log_color", "server_id", "onsend_route_reply",
))


@dataclass
class CoreSettings:
    """The global parameters siprouter understands."""

    listen_specs: list[str] = field(default_factory=list)
    listen: list[Listen] = field(default_factory=list)
    port: int = 5060
    children: int = 8
    debug: int = 0
    log_stderror: bool = False
    log_facility: str = "LOG_DAEMON"
    log_name: str = "siprouter"
    log_prefix: str = ""
    fork: bool = True
    aliases: list[str] = field(default_factory=list)
    auto_aliases: bool = True
    disable_tcp: bool = False
    server_signature: bool = True
    server_header: str = f"Server: {SERVER_TOKEN}"
    user_agent_header: str = f"User-Agent: {SERVER_TOKEN}"
    sip_warning: int = 0
    reply_to_via: int = 0
    check_via: int = 0     # 1: relay a reply only if its top Via is one of our addresses
    max_while_loops: int = 100
    max_branches: int = 12
    workdir: str | None = None
    cfgengine: str | None = None
    log_engine_type: str | None = None
    # KEMI callback names (core params kemi.reply_route_callback, kemi.onsend_route_callback)
    kemi_reply_route_callback: str = "ksr_reply_route"
    kemi_onsend_route_callback: str = "ksr_onsend_route"

    def apply(self, name: str, value: Any) -> str | None:
        """Set one global parameter. Returns a warning text for an unknown name."""
        if name == "listen":
            self.listen_specs.append(str(value))
            return None
        if name == "alias":
            self.aliases.append(str(value))
            return None
        simple = _SIMPLE_PARAMS.get(name)
        if simple is not None:
            attr, convert = simple
            converted = convert(value)
            if name == "server_header" and not converted.lower().startswith("server:"):
                converted = "Server: " + converted
            if name == "user_agent_header" and not converted.lower().startswith("user-agent:"):
                converted = "User-Agent: " + converted
            setattr(self, attr, converted)
            return None
        if name in _IGNORED_PARAMS:
            return None
        return f"unknown global parameter '{name}' ignored"

    def finish(self) -> None:
        """Resolve listen entries once all parameters are known."""
        specs = self.listen_specs or [f"udp:0.0.0.0:{self.port}"]
        self.listen = [parse_listen(spec, self.port) for spec in specs]
        if self.disable_tcp:
            self.listen = [sock for sock in self.listen if sock.proto != "tcp"]


def version_string() -> str:
    return f"siprouter {__version__} (python {platform.python_version()})"
