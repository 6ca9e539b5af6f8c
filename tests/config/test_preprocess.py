"""Tests for siprouter.config.preprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprouter.config.errors import CfgError, CfgErrors
from siprouter.config.lexer import STR, tokenize
from siprouter.config.preprocess import (
    Preprocessed,
    SubstRule,
    preprocess_file,
    preprocess_text,
)


def pp(text: str, defines: dict[str, str] | None = None) -> Preprocessed:
    return preprocess_text(text, "t.cfg", defines)


def words(text: str, defines: dict[str, str] | None = None) -> list[str]:
    """Preprocessed text split into whitespace-separated words."""
    return pp(text, defines).text().split()


def error_of(text: str, defines: dict[str, str] | None = None) -> str:
    with pytest.raises(CfgError) as exc:
        pp(text, defines)
    return str(exc.value)


# -- defines -----------------------------------------------------------------


def test_define_replaces_bare_names() -> None:
    text = '#!define DBURL "mysql://db"\nmodparam("x", "db_url", DBURL)\n'
    assert pp(text).text() == '\nmodparam("x", "db_url", "mysql://db")\n'


def test_define_alias_def_and_empty_value() -> None:
    assert words("#!def A 1\n#!define FLAG\nx A FLAG y\n") == ["x", "1", "y"]


def test_define_not_replaced_in_strings_comments_pvs_or_words() -> None:
    text = '#!define X 1\n"X" # X\n// X\n/* X */ $X $var(X) X_Y 3X X\n'
    assert words(text) == [
        '"X"',
        "#",
        "X",
        "//",
        "X",
        "/*",
        "X",
        "*/",
        "$X",
        "$var(X)",
        "X_Y",
        "3X",
        "1",
    ]


def test_keywords_are_never_replaced() -> None:
    assert words("#!define route 1\nroute(X)\n") == ["route(X)"]


def test_define_value_is_expanded_recursively() -> None:
    assert words("#!define A B+1\n#!define B 2\nx=A\n") == ["x=2+1"]


def test_recursive_define_is_an_error() -> None:
    assert "recursive #!define: A -> B -> A" in error_of("#!define A B\n#!define B A\nA\n")


def test_define_value_with_line_continuation() -> None:
    assert words('#!define V "a" \\\n  "b"\nV\n') == ['"a"', '"b"']


def test_define_twice_is_an_error_but_redefine_and_trydef_work() -> None:
    assert error_of("#!define A 1\n#!define A 2\n") == "t.cfg:2:1: 'A' is already defined"
    text = "#!define A 1\n#!redefine A 2\n#!trydef A 3\n#!trydef B 4\nA B\n"
    assert words(text) == ["2", "4"]


def test_define_name_with_dash_is_an_error() -> None:
    assert error_of("\n#!define X-Y 1\n") == "t.cfg:2:1: '-' not allowed in #!define name 'X'"


def test_command_line_defines() -> None:
    assert words("#!ifdef WITH_X\nA\n#!endif\nV\n", {"WITH_X": "", "V": "7"}) == ["A", "7"]
    assert "already defined" in error_of("#!define WITH_X\n", {"WITH_X": ""})


def test_core_version_defines() -> None:
    text = "#!ifdef KAMAILIO_5_6\nyes\n#!endif\n#!ifndef KAMAILIO_5\nno\n#!endif\n"
    assert words(text) == ["yes"]


def test_directives_with_double_bang_and_mid_line() -> None:
    assert words("a; #!define X 1\nb; !!define Y 2\nX Y\n") == ["a;", "b;", "1", "2"]


def test_unknown_hash_bang_is_a_comment() -> None:
    assert [t.text for t in tokenize(pp("#!ifexp 1\nx\n").chunks)] == ["x", ""]


def test_defines_are_returned() -> None:
    result = pp("#!define A 1\n#!define B\n", {"C": "3"})
    assert {k: result.defines[k] for k in "ABC"} == {"A": "1", "B": "", "C": "3"}


# -- conditionals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("defines", "expected"),
    [
        ({}, ["none"]),
        ({"A": ""}, ["a", "a-not-b"]),
        ({"A": "", "B": ""}, ["a", "a-and-b"]),
        ({"B": ""}, []),
    ],
)
def test_nested_ifdef(defines: dict[str, str], expected: list[str]) -> None:
    text = (
        "#!ifdef A\n"
        "a\n"
        "  #!ifdef B\n"
        "a-and-b\n"
        "  #!else\n"
        "a-not-b\n"
        "  #!endif\n"
        "#!else\n"
        "  #!ifndef B\n"
        "none\n"
        "  #!endif\n"
        "#!endif\n"
    )
    assert words(text, defines) == expected


def test_skipped_region_ignores_other_directives_and_garbage() -> None:
    text = '#!ifdef NOPE\n#!define X 1\ninclude_file "missing.cfg"\n"unterminated\n#!endif\nX\n'
    assert words(text) == ["X"]


def test_ifdef_keeps_line_numbers() -> None:
    result = pp("#!ifdef NOPE\na\n#!else\nb\n#!endif\nc\n")
    toks = tokenize(result.chunks)
    assert [(t.text, t.pos.line) for t in toks[:-1]] == [("b", 4), ("c", 6)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\n#!endif\n", "t.cfg:2:1: #!endif without #!ifdef or #!ifndef"),
        ("a\n  #!else\n", "t.cfg:2:3: #!else without #!ifdef or #!ifndef"),
        (
            "#!ifdef A\n#!else\n#!else\n#!endif\n",
            "t.cfg:3:1: second #!else for the same #!if[n]def",
        ),
        ("x\n#!ifdef A\n", "t.cfg:2:1: missing #!endif for this #!if[n]def"),
        ("#!ifdef\n#!endif\n", "t.cfg:1:1: #!ifdef needs a single name (letters, digits, '_')"),
        ("#!ifdef A\n#!endif junk\n", "t.cfg:2:1: unexpected text after #!endif: 'junk'"),
    ],
)
def test_conditional_errors(text: str, message: str) -> None:
    assert error_of(text) == message


# -- subst -------------------------------------------------------------------


def string_values(text: str) -> list[object]:
    return [t.value for t in tokenize(pp(text).chunks) if t.kind == STR]


def test_subst_applies_to_later_strings() -> None:
    text = '"foo foo"\n#!subst "/foo/bar/g"\n"foo foo" "x"\n#!subst "/BAR/baz/i"\n"foo"\n'
    assert string_values(text) == ["foo foo", "bar barx", "baz"]


def test_substdef_defines_and_substitutes() -> None:
    text = '#!substdef "/PORT/5070/"\nlisten=udp:1.2.3.4:PORT\n"port PORT"\n'
    result = pp(text)
    assert "listen=udp:1.2.3.4:5070" in result.text()
    assert string_values(text) == ["port 5070"]


def test_substdefs_defines_a_quoted_value() -> None:
    assert words('#!substdefs "/NAME/alice/"\nx=NAME\n') == ['x="alice"']


def test_subst_rule_backreferences_and_escaped_separator() -> None:
    rule = SubstRule(r"/(a+)\/(b)/<\2\1>/g")
    assert rule("aa/b aaa/b") == "<baa> <baaa>"
    assert SubstRule("|x|y|")("xx") == "yx"


@pytest.mark.parametrize("spec", ["", "/a/b", "/a/b/q", "/(/x/"])
def test_bad_subst_rules(spec: str) -> None:
    with pytest.raises(ValueError):
        SubstRule(spec)


def test_subst_without_string_is_an_error() -> None:
    assert "needs a quoted" in error_of("#!subst /a/b/\n")


# -- defenv ------------------------------------------------------------------


def test_defenv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPR_TEST_HOST", "example.com")
    monkeypatch.delenv("SIPR_TEST_MISSING", raising=False)
    text = (
        "#!defenv SIPR_TEST_HOST\n"
        "#!defenvs QH=SIPR_TEST_HOST\n"
        "#!trydefenv SIPR_TEST_MISSING\n"
        "SIPR_TEST_HOST QH SIPR_TEST_MISSING\n"
    )
    assert words(text) == ["example.com", '"example.com"', "SIPR_TEST_MISSING"]
    assert error_of("#!defenv SIPR_TEST_MISSING\n") == (
        "t.cfg:1:1: environment variable 'SIPR_TEST_MISSING' is not set"
    )


# -- compat marker -----------------------------------------------------------


@pytest.mark.parametrize("marker", ["KAMAILIO", "SER", "MAXCOMPAT"])
def test_compat_marker(marker: str) -> None:
    result = pp(f"#!{marker}\ndebug=1\n")
    assert result.compat == marker
    assert result.text().split() == ["debug=1"]


# -- includes ----------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_relative_to_including_file(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", 'a\ninclude_file "sub/one.cfg"\nb\n')
    write(tmp_path / "sub" / "one.cfg", '#!define X 1\none\ninclude_file "two.cfg"\n')
    write(tmp_path / "sub" / "two.cfg", "two X\n")
    result = preprocess_file(str(main))
    toks = tokenize(result.chunks)
    assert [(t.text, Path(t.pos.file).name, t.pos.line) for t in toks[:-1]] == [
        ("a", "main.cfg", 1),
        ("one", "one.cfg", 2),
        ("two", "two.cfg", 1),
        ("1", "two.cfg", 1),
        ("b", "main.cfg", 3),
    ]
    assert [Path(f).name for f in result.files] == ["main.cfg", "one.cfg", "two.cfg"]


def test_include_falls_back_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "lib" / "common.cfg", "common\n")
    main = write(tmp_path / "cfg" / "main.cfg", '#!include_file "lib/common.cfg"\n')
    monkeypatch.chdir(tmp_path)
    assert preprocess_file(str(main)).text().split() == ["common"]


def test_import_file_tolerates_missing_file(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", 'a\nimport_file "nope.cfg"\nb\n')
    assert preprocess_file(str(main)).text().split() == ["a", "b"]


def test_missing_include_is_an_error_at_the_include(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", 'a\n  include_file "nope.cfg"\nb\n')
    with pytest.raises(CfgError) as exc:
        preprocess_file(str(main))
    assert str(exc.value) == f"{main}:2:3: cannot open included file 'nope.cfg'"


def test_errors_inside_included_files_point_there(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", 'include_file "inc.cfg"\n#!endif\n')
    inc = write(tmp_path / "inc.cfg", "\n\n#!else\n")
    with pytest.raises(CfgErrors) as exc:
        preprocess_file(str(main))
    assert [str(e) for e in exc.value.errors] == [
        f"{inc}:3:1: #!else without #!ifdef or #!ifndef",
        f"{main}:2:1: #!endif without #!ifdef or #!ifndef",
    ]


def test_include_inside_skipped_block_is_ignored(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", '#!ifdef NO\ninclude_file "nope.cfg"\n#!endif\nok\n')
    assert preprocess_file(str(main)).text().split() == ["ok"]


def test_recursive_include_is_stopped(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", 'include_file "main.cfg"\n')
    with pytest.raises(CfgError) as exc:
        preprocess_file(str(main))
    assert "too many nested includes (max 10)" in str(exc.value)


def test_include_needs_quoted_name(tmp_path: Path) -> None:
    main = write(tmp_path / "main.cfg", "include_file other.cfg\n")
    with pytest.raises(CfgError) as exc:
        preprocess_file(str(main))
    assert str(exc.value) == f"{main}:1:1: include_file needs a file name in double quotes"


def test_unreadable_top_file(tmp_path: Path) -> None:
    with pytest.raises(CfgError) as exc:
        preprocess_file(str(tmp_path / "none.cfg"))
    assert exc.value.line == 1 and "cannot read config file" in exc.value.reason


def test_non_strict_mode_returns_errors() -> None:
    result = preprocess_text("#!endif\n#!else\n", "t.cfg", strict=False)
    assert [e.line for e in result.errors] == [1, 2]


def test_event_route_names_are_not_replaced() -> None:
    assert words("#!define tm X\nevent_route[tm:local-request] { tm }\n") == [
        "event_route[tm:local-request]",
        "{",
        "X",
        "}",
    ]
