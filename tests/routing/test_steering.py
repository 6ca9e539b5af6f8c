"""Which worker owns a message, and the hand-over to it (Router.handle with tm, 3 workers).

With tm and several workers, Router.handle() hands a message to the worker
owning its transaction: a request to the worker holding its call (the first one
that received a request of that Call-ID, routing/owners.py), a reply to the rank
in our Via branch (``z9hG4bKsr<rank>.``). The owner keeps it, and so does a
message that was handed over already.
"""

from __future__ import annotations

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.owners import CallOwners
from siprouter.routing.router import Router
from siprouter.sip.message import parse_message

LOCAL = ("127.0.0.1", 5060)


def make_router(rank: int = 1, children: int = 3) -> Router:
    router = build_router(parse_text(
        'listen=udp:127.0.0.1:5060\nauto_aliases=no\nloadmodule "tm.so"\nloadmodule "sl.so"\n'
        'request_route { t_relay(); exit; }\n'))
    router.rank = rank
    router.children = children
    return router


@pytest.mark.parametrize(("via", "owner"), [
    ("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsr2.1f.0", 2),
    ("Via: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=z9hG4bKsr3.a.1;received=1.2.3.4", 3),
    ("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsr2.1f.0, SIP/2.0/UDP 10.0.0.1;branch=x", 2),
    ("v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsr2.1f.0", 2),
    ("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother, SIP/2.0/UDP h;branch=z9hG4bKsr2.1.0", 0),
    ("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsrX.1.0", 0),
])
def test_replies_go_to_the_rank_in_our_branch(via: str, owner: int) -> None:
    data = (f"SIP/2.0 200 OK\r\n{via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n"
            "Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    assert make_router()._owner(parse_message(data), 0.0) == owner


def test_a_request_goes_to_the_worker_holding_its_call_and_is_handed_over() -> None:
    data = (b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID:  call-17 \r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    owners = CallOwners(bytearray(8 << 10), lease=10.0)
    first, other = make_router(rank=2), make_router(rank=3)
    first.call_owners = other.call_owners = owners
    # the first worker to receive a request of the call takes it ...
    out = first.handle(data, ("10.0.0.1", 5060), LOCAL, 100.0)
    assert out and not [o for o in out if o.steer]
    assert owners.holder("call-17", 100.0) == 2
    # ... so the call's next requests are handed to it by the others
    out = other.handle(data, ("10.0.0.1", 5060), LOCAL, 101.0)
    assert [(o.steer, o.data) for o in out] == [(2, data)]
    # a message handed over already stays where it is
    assert not [o for o in other.handle(data, ("10.0.0.1", 5060), LOCAL, 101.0, steered=True)
                if o.steer]
    # once the lease has run out with no request, the next receiver takes the call
    later = data.replace(b"z9hG4bKx", b"z9hG4bKy").replace(b"1 OPTIONS", b"2 OPTIONS")
    out = other.handle(later, ("10.0.0.1", 5060), LOCAL, 111.0)
    assert out and not [o for o in out if o.steer]
    assert owners.holder("call-17", 111.0) == 3


def test_the_holder_renews_its_lease_while_requests_come() -> None:
    owners = CallOwners(bytearray(8 << 10), lease=10.0)
    assert owners.owner("c", 1, 0.0) == 1
    for t in (4.0, 8.0, 12.0, 16.0):       # within each lease: renewed, still held
        assert owners.owner("c", 1, t) == 1
        assert owners.owner("c", 2, t + 0.5) == 1
    assert owners.holder("c", 16.0 + 10.5) == 0


def test_the_tm_module_sizes_the_lease_from_its_lifetimes() -> None:
    router = build_router(parse_text(
        'listen=udp:127.0.0.1:5060\nloadmodule "tm.so"\n'
        'modparam("tm", "max_inv_lifetime", 60000)\nmodparam("tm", "wt_timer", 3000)\n'
        'request_route { t_relay(); }\n'))
    assert router.call_lease == 60 + 3 + 5


def test_one_worker_keeps_everything() -> None:
    data = (b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: call-17\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    out = make_router(rank=1, children=1).handle(data, ("10.0.0.1", 5060), LOCAL, 0.0)
    assert out and not [o for o in out if o.steer]
