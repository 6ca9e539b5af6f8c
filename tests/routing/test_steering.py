"""Which worker owns a message, and the hand-over to it (Router.handle with tm, 3 workers).

With tm and several workers, Router.handle() hands a message to the worker
owning its transaction: a request to ``1 + crc32(Call-ID) % children``, a reply
to the rank in our Via branch (``z9hG4bKsr<rank>.``). The owner keeps it, and
so does a message that was handed over already.
"""

from __future__ import annotations

import zlib

import pytest

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
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
    assert make_router()._owner(parse_message(data)) == owner


def test_a_request_goes_to_the_worker_of_its_call_id_and_is_handed_over() -> None:
    data = (b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID:  call-17 \r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    owner = 1 + zlib.crc32(b"call-17") % 3
    other = 1 + owner % 3
    router = make_router(rank=other)
    assert router._owner(parse_message(data)) == owner
    out = router.handle(data, ("10.0.0.1", 5060), LOCAL, 0.0)
    assert [(o.steer, o.data) for o in out] == [(owner, data)]
    # the owner keeps it (and so does a message handed over already)
    assert not [o for o in make_router(rank=owner).handle(data, ("10.0.0.1", 5060), LOCAL, 0.0)
                if o.steer]
    assert not [o for o in router.handle(data, ("10.0.0.1", 5060), LOCAL, 0.0, steered=True)
                if o.steer]


def test_one_worker_keeps_everything() -> None:
    data = (b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: call-17\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    out = make_router(rank=1, children=1).handle(data, ("10.0.0.1", 5060), LOCAL, 0.0)
    assert out and not [o for o in out if o.steer]
