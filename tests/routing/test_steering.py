"""Which worker owns a message: the byte scan before parsing agrees with the full parse.

With tm and several workers, Router.handle() hands a message to the worker
owning its transaction: a request to ``1 + crc32(Call-ID) % children``, a reply
to the rank in our Via branch. The byte scan (`_quick_owner`) answers for the
usual shapes before anything is parsed; whenever it answers, it must give the
full parse's answer (`_owner`), or a retransmission could land elsewhere than
its transaction. Checked on every message of RFC 4475 and of the conformance
corpus, and on replies carrying our branches.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from conftest import shared_dir

from siprouter.config.loader import build_router
from siprouter.config.parser import parse_text
from siprouter.routing.router import Router, _drop_check
from siprouter.sip.errors import SipError
from siprouter.sip.message import parse_message

LOCAL = ("127.0.0.1", 5060)


def make_router(rank: int = 1, children: int = 3) -> Router:
    router = build_router(parse_text(
        'listen=udp:127.0.0.1:5060\nauto_aliases=no\nloadmodule "tm.so"\nloadmodule "sl.so"\n'
        'request_route { t_relay(); exit; }\n'))
    router.rank = rank
    router.children = children
    return router


def corpus() -> list[Path]:
    shared = shared_dir()
    files = sorted((shared / "rfc4475").glob("*.dat"))
    files += sorted((shared / "conformance" / "cases").glob("*.sip"))
    assert len(files) > 100
    return files


def full_owner(router: Router, data: bytes) -> int | None:
    """The owner after the full parse; None for a message every worker drops."""
    try:
        msg = parse_message(data)
    except SipError:
        return None
    if _drop_check(msg) is not None:
        return None
    return router._owner(msg)


def test_quick_owner_agrees_with_the_full_parse_on_every_corpus_message() -> None:
    router = make_router()
    answered = 0
    for path in corpus():
        data = path.read_bytes()
        quick = router._quick_owner(data)
        full = full_owner(router, data)
        if quick and full is not None:      # (a message all workers drop may go anywhere)
            answered += 1
            assert quick == full, path.name
    assert answered > 100    # the scan does cover the usual messages


@pytest.mark.parametrize("via", [
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsr2.1f.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=z9hG4bKsr3.a.1;received=1.2.3.4",
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsr2.1f.0, SIP/2.0/UDP 10.0.0.1;branch=x",
    "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother, SIP/2.0/UDP h;branch=z9hG4bKsr2.1.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsrX.1.0",
    "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsr2.1f.0",
])
def test_replies_go_to_the_rank_in_our_branch(via: str) -> None:
    router = make_router()
    data = (f"SIP/2.0 200 OK\r\n{via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n"
            "Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    quick = router._quick_owner(data)
    full = full_owner(router, data) or 0
    assert quick in (0, full)
    if via.startswith("Via: SIP/2.0/UDP 127.0.0.1:5060;") and "srX" not in via:
        assert quick == full > 1


def test_a_request_goes_to_the_worker_of_its_call_id_and_is_handed_over() -> None:
    data = (b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID:  call-17 \r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    owner = 1 + zlib.crc32(b"call-17") % 3
    other = 1 + owner % 3
    router = make_router(rank=other)
    assert router._quick_owner(data) == owner == full_owner(router, data)
    out = router.handle(data, ("10.0.0.1", 5060), LOCAL, 0.0)
    assert [(o.steer, o.data) for o in out] == [(owner, data)]
    # the owner keeps it (and so does a message handed over already)
    assert not [o for o in make_router(rank=owner).handle(data, ("10.0.0.1", 5060), LOCAL, 0.0)
                if o.steer]
    assert not [o for o in router.handle(data, ("10.0.0.1", 5060), LOCAL, 0.0, steered=True)
                if o.steer]
