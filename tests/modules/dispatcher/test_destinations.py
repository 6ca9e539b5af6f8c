"""Destinations, sets, list-file parsing and weight tables (Kamailio 5.6 dispatcher)."""

from collections import Counter
from pathlib import Path

import pytest

from siprouter.modules.dispatcher.destinations import (
    DISABLED,
    INACTIVE,
    NODNS,
    NOPING,
    PROBING,
    TRYING,
    WEIGHT_SLOTS,
    DestAttrs,
    Destination,
    DestinationSet,
    DispatcherListError,
    flags_letters,
    parse_list_file,
    parse_list_line,
    parse_list_text,
    renormalised_weight_slots,
)

CONFORMANCE_LIST = Path("/work/shared/conformance/cfg/dispatcher.list")

SPEC_EXAMPLE = """\
1 sip:127.0.0.1:7021 0 0
1 sip:127.0.0.1:7022 0 0
1 sip:127.0.0.1:7023 0 0
1 sip:127.0.0.1:7024 0 0
2 sip:127.0.0.1:7031 0 5
2 sip:127.0.0.1:7032 0 10 weight=50
2 sip:127.0.0.1:7033 0 0
"""


def ports(dset: DestinationSet) -> list[int]:
    return [d.port for d in dset]


# --------------------------------------------------------------------------- ordering


def test_conformance_list_internal_order() -> None:
    dlist = parse_list_file(CONFORMANCE_LIST, seed=1)
    assert [s.setid for s in dlist] == [1, 2, 3, 4]
    assert ports(dlist.sets[1]) == [6102, 6101, 6103]  # priorities 30, 20, 10
    assert ports(dlist.sets[2]) == [6103, 6102, 6101]  # equal priority: reverse file order
    assert ports(dlist.sets[3]) == [6103]
    assert ports(dlist.sets[4]) == [6102, 6101, 6103]  # 5, 5 (reversed), then 1
    assert [d.usable for d in dlist.sets[1]] == [False, True, True]
    assert dlist.sets[1][0].flags == DISABLED
    assert [d.attrs.weight for d in dlist.sets[1]] == [20, 50, 30]
    assert not dlist.sets[3][0].usable
    assert [s.index for s in dlist] == [0, 1, 2, 3]


def test_spec_example_internal_order() -> None:
    dlist = parse_list_text(SPEC_EXAMPLE, seed=1)
    assert ports(dlist.sets[1]) == [7024, 7023, 7022, 7021]
    assert ports(dlist.sets[2]) == [7032, 7031, 7033]


def test_negative_priorities_sort_last() -> None:
    loaded = [Destination.create(f"sip:h{i}", priority=p) for i, p in enumerate([-1, 3, 0, 3])]
    dset = DestinationSet(1, loaded)
    assert [d.host for d in dset] == ["h3", "h1", "h2", "h0"]


# --------------------------------------------------------------------------- list file


def test_line_grammar_matches_kamailio() -> None:
    # Each expectation below was checked with kamcmd dispatcher.list on 5.6.3.
    text = "\n".join(
        [
            "1 sip:127.0.0.1:7001 4x 5",  # flags 4, then 'x' is no number: prio 0, attrs x
            "1 sip:127.0.0.1:7002 weight=5",  # non-digit flags: 0, taken as attrs
            "2 127.0.0.1:7003 0 0",  # sip: prepended
            "2 sip:127.0.0.1:7004#comment",
            "3 sip:127.0.0.1:7005 0 0 weight=50x;rweight=-5",
            "3 sip:127.0.0.1:7006 8 3 duid=abc;weight=30; trailing words",
            "  # comment",
            "",
            "5   sip:127.0.0.1:7008  0  0  a=b#c d",  # '#' is part of attrs
            "6 sip:127.0.0.1:7009;transport=tcp 5 0",
        ]
    )
    dlist = parse_list_text(text)
    rows = [
        (s.setid, d.uri, flags_letters(d.flags), d.priority, d.attrs.body) for s in dlist for d in s
    ]
    assert rows == [
        (1, "sip:127.0.0.1:7002", "AX", 0, "weight=5"),
        (1, "sip:127.0.0.1:7001", "DX", 0, "x"),
        (2, "sip:127.0.0.1:7004", "AX", 0, ""),
        (2, "sip:127.0.0.1:7003", "AX", 0, ""),
        (3, "sip:127.0.0.1:7006", "AP", 3, "duid=abc;weight=30"),
        (3, "sip:127.0.0.1:7005", "AX", 0, "weight=50x;rweight=-5"),
        (5, "sip:127.0.0.1:7008", "AX", 0, "a=b#c"),
        (6, "sip:127.0.0.1:7009;transport=tcp", "IX", 0, ""),
    ]
    assert dlist.sets[3][0].attrs.duid == "abc"
    assert dlist.sets[3][1].attrs.weight == 50  # partial number kept, like str2sint
    assert dlist.sets[3][1].attrs.rweight == 0


def test_parse_list_line_fields() -> None:
    assert parse_list_line(b"   ") is None
    assert parse_list_line(b"# 1 sip:a") is None
    entry = parse_list_line(b"7 sip:a.example 9 2 weight=10 desc")
    assert entry is not None
    assert (entry.setid, entry.uri, entry.flags, entry.priority, entry.attrs) == (
        7,
        "sip:a.example",
        9,
        2,
        "weight=10",
    )
    no_setid = parse_list_line(b"sip:a.example 1")
    assert no_setid is not None and (no_setid.setid, no_setid.uri) == (0, "sip:a.example")


@pytest.mark.parametrize("line", ["1", "1   ", "12 # nothing", "\t3\r"])
def test_bad_line_fails_whole_load_with_file_and_line(line: str) -> None:
    text = f"# header\n1 sip:127.0.0.1:7001\n{line}\n"
    with pytest.raises(DispatcherListError) as info:
        parse_list_text(text, "ds.list")
    assert str(info.value).startswith("ds.list:3: bad line")
    assert (info.value.filename, info.value.lineno) == ("ds.list", 3)


def test_parse_list_file_reports_path(tmp_path: Path) -> None:
    path = tmp_path / "dispatcher.list"
    path.write_text("1 sip:127.0.0.1:7001 0 0\n\n2\n")
    with pytest.raises(DispatcherListError, match=rf"^{path}:3: "):
        parse_list_file(path)
    path.write_text("1 sip:127.0.0.1:7001 0 0\n")
    assert ports(parse_list_file(path).sets[1]) == [7001]


def test_bad_destination_is_skipped_or_fails_when_strict() -> None:
    text = "1 sip:127.0.0.1:7001\n2 abc\n2 sip:bad@\n3 sip:" + "h" * 255 + "\n"
    dlist = parse_list_text(text, "ds.list")
    assert list(dlist.sets) == [1]  # a set exists only once a destination loads
    with pytest.raises(DispatcherListError, match=r"^ds\.list:2: bad uri \[abc\]"):
        parse_list_text(text, "ds.list", strict=True)


def test_validate_hook_can_reject_destinations() -> None:
    def local_sockets_only(dest: Destination) -> None:
        if dest.attrs.socket and dest.attrs.socket != "udp:127.0.0.1:5060":
            raise ValueError(f"non-local socket <{dest.attrs.socket}>")

    text = (
        "1 sip:a.example 0 0 socket=udp:1.2.3.4:5\n1 sip:b.example 0 0 socket=udp:127.0.0.1:5060\n"
    )
    dlist = parse_list_text(text, validate=local_sockets_only)
    assert [d.host for d in dlist.sets[1]] == ["b.example"]
    with pytest.raises(DispatcherListError, match="^<string>:1: non-local socket"):
        parse_list_text(text, validate=local_sockets_only, strict=True)


def test_long_lines_are_split_like_fgets() -> None:
    # fgets(line, 1024) returns 1023 bytes; the rest is parsed as another line.
    head = "2 sip:127.0.0.1:7002 0 0 "
    line = head + "b" * (1023 - len(head)) + "b 3 sip:127.0.0.1:7003"
    dlist = parse_list_text(line + "\n")
    assert list(dlist.sets) == [2]  # the tail "b 3 sip:..." has uri "b": skipped
    assert len(dlist.sets[2][0].attrs.body) == 1023 - len(head)


def test_empty_text_gives_empty_list() -> None:
    dlist = parse_list_text("# nothing\n\n")
    assert len(dlist) == 0 and dlist.get(1) is None and 1 not in dlist


# --------------------------------------------------------------------------- destinations


def test_destination_uri_fields() -> None:
    d = Destination.create("sip:alice:pw@Example.COM:5070;transport=TCP;lr", setid=3)
    assert (d.scheme, d.user, d.host, d.port, d.transport) == (
        "sip",
        "alice",
        "Example.COM",
        5070,
        "tcp",
    )
    assert d.next_hop() == ("Example.COM", 5070, "tcp")
    assert Destination.create("sip:127.0.0.1").next_hop() == ("127.0.0.1", 5060, "udp")
    assert Destination.create("sips:h.example").next_hop() == ("h.example", 5061, "tls")
    v6 = Destination.create("sip:[2001:db8::1]:5080")
    assert (v6.host, v6.next_hop()) == ("[2001:db8::1]", ("2001:db8::1", 5080, "udp"))
    assert Destination.create("SIP:h.example").uri == "SIP:h.example"  # kept as written
    assert Destination.create("h.example:5070").uri == "sip:h.example:5070"


@pytest.mark.parametrize("uri", ["abc", "sip:", "sip:h:99999", "sip:h:", "sips:x:y", "tel:+123"])
def test_bad_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        Destination.create(uri)


@pytest.mark.parametrize(
    ("flags", "usable"),
    [(0, True), (TRYING, True), (PROBING, True), (TRYING | PROBING, True), (NODNS, True)]
    + [
        (INACTIVE, False),
        (DISABLED, False),
        (INACTIVE | PROBING, False),
        (DISABLED | PROBING, False),
    ],
)
def test_usable(flags: int, usable: bool) -> None:
    assert Destination("sip:h", flags=flags).usable is usable


def test_set_state_clears_state_bits_but_not_noping() -> None:
    d = Destination("sip:h", flags=INACTIVE | PROBING | NODNS | NOPING)
    d.set_state(DISABLED)
    assert d.flags == DISABLED | NOPING


@pytest.mark.parametrize(
    ("flags", "letters"),
    [(0, "AX"), (8, "AP"), (1, "IX"), (9, "IP"), (2, "TX"), (10, "TP"), (4, "DX")]
    + [(12, "DP"), (5, "IX"), (16, "AX")],
)
def test_flags_letters(flags: int, letters: str) -> None:
    assert flags_letters(flags) == letters


def test_attrs_parsing() -> None:
    a = DestAttrs.parse(
        'DUID=gw1;Weight=30;rweight=200;maxload=7z;socket="udp:1.2.3.4:5060";'
        "sockname=s1;ping_from=sip:p@x;obproxy=sip:o;latency=12;cc=1;class=4;"
    )
    assert a.body.endswith("class=4")  # one trailing ';' removed
    assert (a.duid, a.weight, a.rweight, a.maxload) == ("gw1", 30, 0, 7)
    assert (a.socket, a.sockname, a.ping_from, a.obproxy) == (
        "udp:1.2.3.4:5060",
        "s1",
        "sip:p@x",
        "sip:o",
    )
    assert (a.latency, a.cc) == (12, 1)
    assert DestAttrs.parse("weight=0").weight == 0
    assert DestAttrs.parse("weight=101").weight == 0
    assert DestAttrs.parse("weight=100").weight == 100
    assert DestAttrs.parse("a=1;;").body == "a=1;"
    assert DestAttrs.parse("") == DestAttrs()


# --------------------------------------------------------------------------- weight tables


def weighted_set(
    weights: list[int], flags: list[int] | None = None, seed: int = 7
) -> DestinationSet:
    """A set whose internal order is exactly the given list (all priority 0, loaded reversed)."""
    flags = flags or [0] * len(weights)
    loaded = [
        Destination.create(f"sip:127.0.0.1:{7000 + i}", 1, f, 0, f"weight={w};rweight={w}")
        for i, (w, f) in enumerate(zip(weights, flags, strict=True))
    ]
    return DestinationSet(1, reversed(loaded), seed=seed)


def test_kamailio_weight_table() -> None:
    dset = weighted_set([50, 30, 20])
    assert ports(dset) == [7000, 7001, 7002]
    assert Counter(dset.kamailio_weight_slots) == {0: 50, 1: 30, 2: 20}
    assert Counter(weighted_set([10, 20, 5]).kamailio_weight_slots) == {0: 10, 1: 20, 2: 70}
    assert Counter(weighted_set([60, 60, 5]).kamailio_weight_slots) == {0: 60, 1: 40}
    assert weighted_set([0, 50]).kamailio_weight_slots == [0] * WEIGHT_SLOTS  # first has none


def test_weight_table_is_shuffled_reproducibly() -> None:
    a, b = weighted_set([50, 30, 20], seed=1), weighted_set([50, 30, 20], seed=1)
    assert a.kamailio_weight_slots == b.kamailio_weight_slots
    assert a.kamailio_weight_slots != sorted(a.kamailio_weight_slots)
    assert a.kamailio_weight_slots != weighted_set([50, 30, 20], seed=2).kamailio_weight_slots


def test_renormalised_weight_slots() -> None:
    assert Counter(renormalised_weight_slots([(1, 50), (2, 30)])) == {1: 63, 2: 37}
    assert Counter(renormalised_weight_slots([(0, 50), (2, 20)])) == {0: 71, 2: 29}
    assert Counter(renormalised_weight_slots([(0, 1), (1, 1), (2, 1)])) == {0: 34, 1: 33, 2: 33}
    assert Counter(renormalised_weight_slots([(0, 5), (1, 0)])) == {0: 100}
    assert renormalised_weight_slots([(0, 0)]) == []


def test_weight_slots_follow_states() -> None:
    dset = weighted_set([50, 30, 20])
    assert dset.weight_slots() is dset.kamailio_weight_slots
    dset[1].set_state(DISABLED)
    assert Counter(dset.weight_slots()) == {0: 71, 2: 29}
    dset[1].set_state(0)
    assert dset.weight_slots() is dset.kamailio_weight_slots


def test_rweight_table_redistributes_over_usable() -> None:
    dset = weighted_set([1, 2, 1])
    assert Counter(dset.rweight_slots()) == {0: 25, 1: 50, 2: 25}
    dset[2].set_state(INACTIVE)
    assert Counter(dset.rweight_slots()) == {0: 33, 1: 67}  # remainder to the last written
    dset[2].set_state(0)
    assert Counter(dset.rweight_slots()) == {0: 25, 1: 50, 2: 25}
    for d in dset:
        d.set_state(DISABLED)
    assert Counter(dset.rweight_slots()) == {0: 25, 1: 50, 2: 25}  # S == 0: table kept
