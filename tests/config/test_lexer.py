"""Tests for siprouter.config.lexer."""

from __future__ import annotations

import pytest

from siprouter.config.ast import Pos
from siprouter.config.errors import CfgError, CfgErrors
from siprouter.config.lexer import (
    CAST,
    EOF,
    ID,
    INT,
    IP4,
    IP6,
    OP,
    PV,
    STR,
    Chunk,
    PVSpec,
    PVSyntaxError,
    decode_string,
    scan_pv,
    tokenize,
    tokenize_text,
)


def kinds(text: str) -> list[tuple[str, object]]:
    """(kind, value) of every token but EOF."""
    return [(t.kind, t.value) for t in tokenize_text(text)[:-1]]


def test_simple_statement_tokens_and_positions() -> None:
    toks = tokenize_text('if ($rU == "x") {\n\texit;\n}\n', "a.cfg")
    assert [(t.kind, t.text) for t in toks] == [
        (ID, "if"),
        (OP, "("),
        (PV, "$rU"),
        (OP, "=="),
        (STR, '"x"'),
        (OP, ")"),
        (OP, "{"),
        (ID, "exit"),
        (OP, ";"),
        (OP, "}"),
        (EOF, ""),
    ]
    assert toks[0].pos == Pos("a.cfg", 1, 1)
    assert toks[2].pos == Pos("a.cfg", 1, 5)
    assert toks[4].pos == Pos("a.cfg", 1, 12)
    assert toks[4].end == Pos("a.cfg", 1, 15)
    # a tab counts as one column, like Kamailio
    assert toks[7].pos == Pos("a.cfg", 2, 2)
    assert toks[9].pos == Pos("a.cfg", 3, 1)


def test_ws_before_flag() -> None:
    toks = tokenize_text("a-b c")
    assert [t.ws_before for t in toks[:4]] == [True, False, False, True]


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), ("0x1F", 31), ("0X10", 16), ("010", 8), ("101b", 5), ("5060", 5060)],
)
def test_integer_literals(text: str, value: int) -> None:
    assert kinds(text) == [(INT, value)]


def test_alphanumeric_word_starting_with_digit_is_an_id() -> None:
    assert kinds("3com 08") == [(ID, "3com"), (ID, "08")]


def test_negative_number_is_minus_then_int() -> None:
    assert kinds("-5") == [(OP, "-"), (INT, 5)]


def test_double_quoted_escapes() -> None:
    assert kinds(r'"a\n\t\r\"\\ \x41\101 \d"') == [(STR, 'a\n\t\r"\\ AA \\d')]


def test_single_quoted_string_is_raw() -> None:
    assert kinds(r"'a\n$ru'") == [(STR, "a\\n$ru")]


def test_adjacent_double_quoted_strings_are_joined() -> None:
    toks = tokenize_text('"ab" "cd"\n  "ef";')
    assert (toks[0].kind, toks[0].value) == (STR, "abcdef")
    assert toks[1].is_op(";")


def test_mixed_quotes_are_not_joined() -> None:
    assert kinds("\"a\" 'b'") == [(STR, "a"), (STR, "b")]


def test_strings_separated_by_comment_are_not_joined() -> None:
    assert kinds('"a" /* x */ "b"') == [(STR, "a"), (STR, "b")]


def test_comments() -> None:
    text = "a # one\nb // two\nc /* three /* nested */ still */ d\n\\\ne"
    assert kinds(text) == [(ID, "a"), (ID, "b"), (ID, "c"), (ID, "d"), (ID, "e")]


@pytest.mark.parametrize(
    "op",
    ["==", "!=", "=~", "<=", ">=", "&&", "||", "!", "+", "-", "*", "/", "|", "&", "^", "~",
     "<<", ">>", ":=", "=", "<", ">", "(", ")", "{", "}", "[", "]", ",", ";", ":", "."],
)  # fmt: skip
def test_operators(op: str) -> None:
    assert kinds(f"a {op} b") == [(ID, "a"), (OP, op), (ID, "b")]


def test_operators_longest_match() -> None:
    assert [t.text for t in tokenize_text("a<<=b")[:-1]] == ["a", "<<", "=", "b"]
    assert [t.text for t in tokenize_text("$a=~$b")[:-1]] == ["$a", "=~", "$b"]


def test_casts() -> None:
    assert kinds("(int)$x (str)1 ( int )") == [
        (CAST, "int"),
        (PV, PVSpec("x", None, None, (), "$x")),
        (CAST, "str"),
        (INT, 1),
        (OP, "("),
        (ID, "int"),
        (OP, ")"),
    ]


def test_ipv4_and_listen_value() -> None:
    assert kinds("src_ip == 1.2.3.4") == [(ID, "src_ip"), (OP, "=="), (IP4, "1.2.3.4")]
    assert kinds("udp:127.0.0.1:5060") == [
        (ID, "udp"),
        (OP, ":"),
        (IP4, "127.0.0.1"),
        (OP, ":"),
        (INT, 5060),
    ]


def test_ipv6() -> None:
    assert kinds("tcp:[::1]:5060") == [
        (ID, "tcp"),
        (OP, ":"),
        (OP, "["),
        (IP6, "::1"),
        (OP, "]"),
        (OP, ":"),
        (INT, 5060),
    ]
    assert kinds("2001:db8::1") == [(IP6, "2001:db8::1")]
    assert kinds("fe80::1:2") == [(IP6, "fe80::1:2")]


def test_words_with_colons_are_not_ipv6() -> None:
    assert [t.text for t in tokenize_text("dispatcher:dst-down")[:-1]] == [
        "dispatcher",
        ":",
        "dst",
        "-",
        "down",
    ]
    assert [t.kind for t in tokenize_text("case 1: ab:cd")[:-1]] == [ID, INT, OP, ID, OP, ID]


def test_dotted_host_is_not_an_ip() -> None:
    assert [t.kind for t in tokenize_text("1.2.3.4.example")[:-1]] == [
        INT, OP, INT, OP, INT, OP, INT, OP, ID,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "name", "arg", "index", "transforms"),
    [
        ("$ru", "ru", None, None, ()),
        ("$rU", "rU", None, None, ()),
        ("$T_branch_idx", "T_branch_idx", None, None, ()),
        ("$?", "?", None, None, ()),
        ("$retcode", "retcode", None, None, ()),
        ("$null", "null", None, None, ()),
        ("$var(x)", "var", "x", None, ()),
        ("$avp(s:name)", "avp", "s:name", None, ()),
        ("$hdr(Via)", "hdr", "Via", None, ()),
        ("$hdr(X[1])", "hdr", "X", "1", ()),
        ("$hdr(X[-1])", "hdr", "X", "-1", ()),
        ("$xavp(a=>b)", "xavp", "a=>b", None, ()),
        ("$xavp(a[0]=>b)", "xavp", "a[0]=>b", None, ()),
        ("$xavp(_dsdst_=>uri)", "xavp", "_dsdst_=>uri", None, ()),
        ("$dsv(code)", "dsv", "code", None, ()),
        ("$(var(x))", "var", "x", None, ()),
        ("$(hdr(X){s.int})", "hdr", "X", None, ("s.int",)),
        ("$(hdr(X)[1]{s.int}{s.len})", "hdr", "X", "1", ("s.int", "s.len")),
        ("$(avp(x)[*])", "avp", "x", "*", ()),
        ("$(avp(x)[$var(i)])", "avp", "x", "$var(i)", ()),
        ("$(ru{s.substr,1,2})", "ru", None, None, ("s.substr,1,2",)),
        ("$(ru{uri.param,transport})", "ru", None, None, ("uri.param,transport",)),
        ("$sht(a=>f(x))", "sht", "a=>f(x)", None, ()),
    ],
)
def test_pseudo_variables(
    text: str, name: str, arg: str | None, index: str | None, transforms: tuple[str, ...]
) -> None:
    toks = tokenize_text(text + ";")
    assert toks[0].kind == PV
    assert toks[0].text == text
    assert toks[0].value == PVSpec(name, arg, index, transforms, text)
    assert toks[1].is_op(";")


def test_pv_followed_by_space_and_paren_is_two_tokens() -> None:
    assert [t.kind for t in tokenize_text("$var (x)")[:-1]] == [PV, OP, ID, OP]


def test_scan_pv_inside_format_string() -> None:
    fmt = "from $si:$sp to $(hdr(To){s.len})!"
    spec, end = scan_pv(fmt, fmt.index("$si"))
    assert (spec.name, fmt[end]) == ("si", ":")
    spec, end = scan_pv(fmt, fmt.index("$(hdr"))
    assert (spec.name, spec.arg, spec.transforms, fmt[end:]) == ("hdr", "To", ("s.len",), "!")


@pytest.mark.parametrize("text", ["$ x", "$(hdr(X)", "$var(x", "$(1)", "$(var(x)y)"])
def test_scan_pv_errors(text: str) -> None:
    with pytest.raises(PVSyntaxError):
        scan_pv(text, 0)


def test_decode_string_keeps_unknown_escapes() -> None:
    assert decode_string(r"^\+1\d{3}") == r"^\+1\d{3}"
    assert decode_string("a\\\nb") == "ab"


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ('x = "abc\n', "t.cfg:1:5", "unterminated string"),
        ("x = 'abc", "t.cfg:1:5", "unterminated string"),
        ("a /* b \n c", "t.cfg:1:3", "unterminated '/*' comment"),
        ("a\n  $ b", "t.cfg:2:3", "name expected after '$'"),
        ("a ` b", "t.cfg:1:3", "unexpected character '`'"),
        ("$x = $(hdr(X);", "t.cfg:1:6", "unterminated pseudo-variable"),
    ],
)
def test_lexer_errors(text: str, where: str, reason: str) -> None:
    with pytest.raises(CfgError) as exc:
        tokenize_text(text, "t.cfg")
    assert str(exc.value).startswith(where + ":")
    assert reason in exc.value.reason


def test_several_lexer_errors_are_collected() -> None:
    with pytest.raises(CfgErrors) as exc:
        tokenize_text("a ` b\nc ` d\n", "t.cfg")
    assert [(e.line, e.col) for e in exc.value.errors] == [(1, 3), (2, 3)]
    assert str(exc.value) == (
        "t.cfg:1:3: unexpected character '`'\nt.cfg:2:3: unexpected character '`'"
    )


def test_chunks_keep_their_origin() -> None:
    chunks = [
        Chunk("debug=", "main.cfg", 3, 1),
        Chunk("1 + 2", "main.cfg", 3, 7, fixed=True),
        Chunk("\nx = y\n", "main.cfg", 3, 12),
        Chunk("z;\n", "inc.cfg", 5, 4),
    ]
    toks = tokenize(chunks)
    positions = {t.text: str(t.pos) for t in toks}
    assert positions["debug"] == "main.cfg:3:1"
    # every token of an expanded #!define points at the place of use
    assert positions["1"] == positions["+"] == positions["2"] == "main.cfg:3:7"
    assert positions["x"] == "main.cfg:4:1"
    assert positions["y"] == "main.cfg:4:5"
    assert positions["z"] == "inc.cfg:5:4"


def test_chunk_substitutions_apply_to_strings_only() -> None:
    def upper_foo(value: str) -> str:
        return value.replace("foo", "FOO")

    toks = tokenize([Chunk('foo "foo"', "a.cfg", substs=(upper_foo,))])
    assert [(t.kind, t.value) for t in toks[:-1]] == [(ID, "foo"), (STR, "FOO")]


def test_empty_input_has_only_eof() -> None:
    toks = tokenize_text("", "e.cfg")
    assert [(t.kind, str(t.pos)) for t in toks] == [(EOF, "e.cfg:1:1")]
