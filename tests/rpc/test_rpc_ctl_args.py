"""``siprouter ctl``: kamcmd argument typing, control addresses, exit codes."""

from __future__ import annotations

import pytest

from siprouter.cli import main
from siprouter.rpc.addresses import ControlAddress, parse_address
from siprouter.rpc.client import parse_arg


@pytest.mark.parametrize(("token", "value"), [
    ("20", 20), ("0", 0), ("-5", -5), ("sip:10.0.0.2:5060", "sip:10.0.0.2:5060"),
    ("ip", "ip"), ("s:123", "123"), ("s:", ""), ("i:42", 42), ("i:-1", -1), ("12a", "12a"),
    ("1.5", "1.5"), ("", ""),
])
def test_argument_typing(token: str, value: object) -> None:
    assert parse_arg(token) == value
    assert type(parse_arg(token)) is type(value)


@pytest.mark.parametrize("token", ["i:abc", "i:", "i:1.5"])
def test_bad_forced_integer(token: str) -> None:
    with pytest.raises(ValueError, match="bad integer"):
        parse_arg(token)


@pytest.mark.parametrize(("text", "address"), [
    ("unix:/run/siprouter/siprouter_ctl", ControlAddress("unix", path="/run/siprouter/siprouter_ctl")),
    ("/tmp/x.sock", ControlAddress("unix", path="/tmp/x.sock")),
    ("tcp:127.0.0.1:2049", ControlAddress("tcp", host="127.0.0.1", port=2049)),
    ("udp:127.0.0.1", ControlAddress("udp", host="127.0.0.1", port=2049)),
    ("tcp:[::1]:3000", ControlAddress("tcp", host="::1", port=3000)),
])
def test_addresses(text: str, address: ControlAddress) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["tcp:", "tcp:1.2.3.4:99999", "fifo:/tmp/x", "nonsense", "unix:"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_ctl_bad_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ctl", "-s", "unix:/nonexistent/x.sock", "cfg.set", "i:abc"]) == 2
    assert capsys.readouterr().err == "error: bad integer argument 'i:abc'\n"


def test_ctl_unreachable_socket_exits_3(tmp_path: object,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ctl", "-s", f"unix:{tmp_path}/none.sock", "core.version"]) == 3
    assert capsys.readouterr().err.startswith(f"error: cannot reach unix:{tmp_path}/none.sock")


def test_ctl_default_socket_is_the_builtin_one() -> None:
    from siprouter.cli import build_parser

    args = build_parser().parse_args(["ctl", "core.uptime"])
    assert args.socket == "unix:/run/siprouter/siprouter_ctl"
    assert args.params == []
    args = build_parser().parse_args(["ctl", "cfg.set", "core", "debug", "-1"])
    assert args.params == ["core", "debug", "-1"]
