"""Helpers for the sans-IO transaction table tests: messages, a proxy stand-in.

The "proxy" is 127.0.0.1:58000, the caller 127.0.0.1:58010 and the callees
127.0.0.1:58011 / 58012 (nothing is bound: the table returns datagrams).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from siprouter.routing.context import Outgoing
from siprouter.sip.message import SipMessage, parse_message
from siprouter.tm import messages
from siprouter.tm.table import TmConfig, TransactionTable
from siprouter.tm.transaction import Transaction

PROXY = ("127.0.0.1", 58000)
CALLER = ("127.0.0.1", 58010)
CALLEE = ("127.0.0.1", 58011)
CALLEE2 = ("127.0.0.1", 58012)
SERVER = "Server: kamailio (5.6.3 (x86_64/linux))"
T0 = 1000.0


def request(method: str = "INVITE", *, callid: str = "c1", branch: str = "z9hG4bKa1",
            cseq: int = 1, to_tag: str = "", ruri: str = "sip:bob@127.0.0.1:58000",
            extra: str = "") -> SipMessage:
    """A request from the caller, as received by the proxy."""
    tag = f";tag={to_tag}" if to_tag else ""
    return parse_message(
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:58010;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:bob@127.0.0.1>{tag}\r\n"
        f"Call-ID: {callid}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n")


def branch_request(req: SipMessage, branch: str, ruri: str | None = None) -> bytes:
    """The request as the proxy relays it: our Via on top."""
    text = req.text
    first_end = text.find("\r\n") + 2
    line = text[:first_end]
    if ruri is not None:
        line = f"{req.method} {ruri} SIP/2.0\r\n"
    via = f"Via: SIP/2.0/UDP 127.0.0.1:58000;branch={branch}\r\n"
    return (line + via + text[first_end:]).encode("latin-1")


def reply(data: bytes, code: int, reason: str, to_tag: str | None = "t1",
          method: str | None = None) -> SipMessage:
    """A callee's reply to a request we sent (its Vias, From, To, Call-ID, CSeq)."""
    lines = [f"SIP/2.0 {code} {reason}"]
    for line in data.decode("latin-1").split("\r\n")[1:]:
        if not line:
            break
        name = line[:line.find(":")].lower()
        if name in ("via", "from", "call-id"):
            lines.append(line)
        elif name == "cseq":
            lines.append(line if method is None else f"{line.split()[0]} {line.split()[1]} "
                         f"{method}")
        elif name == "to":
            lines.append(line + (f";tag={to_tag}" if to_tag and ";tag=" not in line else ""))
    lines.append("Content-Length: 0")
    return parse_message("\r\n".join(lines) + "\r\n\r\n")


def texts(out: list[Outgoing]) -> list[str]:
    return [item.data.decode("latin-1") for item in out]


def first_lines(out: list[Outgoing]) -> list[str]:
    return [item.data.decode("latin-1").split("\r\n", 1)[0] for item in out]


def norm(text: str) -> str:
    """Our branches (and Kamailio's, in expectations) as z9hG4bK<X>.<n>."""
    return re.sub(r"branch=z9hG4bK(?:sr\d+\.[0-9a-f]+|[0-9a-f]+\.[0-9a-f]+)\.(\d+)",
                  r"branch=z9hG4bK<X>.\1", text)


@dataclass
class FailureCall:
    tx: Transaction
    picked: int
    now: float


@dataclass
class Hooks:
    """A failure_route stand-in: records calls and runs ``action`` if set."""

    calls: list[FailureCall] = field(default_factory=list)
    action: object = None

    def run_failure(self, tx: Transaction, picked: int, now: float,
                    out: list[Outgoing]) -> None:
        self.calls.append(FailureCall(tx, picked, now))
        if callable(self.action):
            self.action(tx, picked, now, out)


def make_table(hooks: Hooks | None = None, **config: object) -> TransactionTable:
    cfg = TmConfig(server_header=SERVER, **config)  # type: ignore[arg-type]
    return TransactionTable(cfg, rank=1, tag_prefix=messages.tag_prefix(*PROXY),
                            hooks=hooks, label=0x1000)


def relay(table: TransactionTable, req: SipMessage, now: float = T0,
          dsts: tuple[tuple[str, int], ...] = (CALLEE,), on_failure: str | None = None,
          hundred: bool = True) -> tuple[Transaction, list[Outgoing]]:
    """What t_relay() does: a server transaction, 100 Trying, one branch per dst."""
    out: list[Outgoing] = []
    tx = table.new_server(req, CALLER, PROXY, "udp", now)
    if hundred and tx.is_invite:
        table.reply(tx, 100, "trying -- your call is important to us", now, out)
    for dst in dsts:
        data = branch_request(req, table.next_branch(tx))
        table.add_branch(tx, req.ruri, data, dst, PROXY, "udp", now, out, on_failure)
    return tx, out


def run_until(table: TransactionTable, end: float) -> list[tuple[float, str]]:
    """Serve the timers until ``end``; (time, first line) of every datagram."""
    sent: list[tuple[float, str]] = []
    while True:
        due = table.next_deadline()
        if due is None or due > end:
            return sent
        for item in table.on_deadline(due):
            sent.append((round(due - T0, 3), item.data.decode("latin-1").split("\r\n")[0]))
