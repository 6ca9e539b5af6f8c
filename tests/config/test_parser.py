"""Tests for siprouter.config.parser (and the AST it builds)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprouter.config import ast as A
from siprouter.config.errors import CfgError, CfgErrors
from siprouter.config.parser import (
    BINARY_PREC,
    check_types,
    parse_expression,
    parse_file,
    parse_text,
)

CONFORMANCE = sorted(Path("/work/shared/conformance/cfg").glob("*.cfg"))
BENCH = sorted(Path("/work/shared/bench").glob("kam-*.cfg"))

HEADER = 'loadmodule "pv.so"\n'


def route_body(code: str, defines: dict[str, str] | None = None) -> A.Block:
    """Parse ``code`` as the body of request_route."""
    config = parse_text(HEADER + "request_route {\n" + code + "\n}\n", "t.cfg", defines)
    return config.routes[A.REQUEST][""].body


def stmts(code: str) -> str:
    """Dump of the statements of ``code`` (inside request_route)."""
    return A.dump(route_body(code))[1:-1]


def expr(text: str) -> str:
    return A.dump(parse_expression(text))


def listen_of(config: A.Config) -> tuple[A.ListenAddr, ...]:
    """The sockets of the first listen= line."""
    value = config.global_values("listen")[0]
    assert isinstance(value, tuple)
    return value


def error_of(text: str, filename: str = "t.cfg") -> CfgError:
    with pytest.raises(CfgError) as exc:
        parse_text(text, filename)
    return exc.value


def body_error(code: str) -> str:
    """The error for ``code`` placed inside request_route (which starts on line 3)."""
    return str(error_of(HEADER + "request_route {\n" + code + "\n}\n"))


# ---------------------------------------------------------------------------
# The real configs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFORMANCE + BENCH, ids=lambda p: p.name)
def test_real_configs_parse(path: Path) -> None:
    config = parse_file(str(path))
    assert set(config.routes) == set(A.ROUTE_KINDS)
    assert "" in config.routes[A.REQUEST]
    listen = config.global_values("listen")
    assert len(listen) == 1 and isinstance(listen[0], tuple)
    (addr,) = listen[0]
    assert (addr.proto, addr.host) == ("udp", "127.0.0.1")
    assert config.global_values("disable_tcp") == [1]
    assert config.global_values("auto_aliases") == [0]
    assert config.cfgengine is None


@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.name)
def test_conformance_config_structure(path: Path) -> None:
    config = parse_file(str(path))
    assert [m.path for m in config.loadmodules] == [
        "pv.so", "corex.so", "xlog.so", "sl.so", "maxfwd.so", "sanity.so", "dispatcher.so",
    ]  # fmt: skip
    assert listen_of(config)[0].port == 6060
    assert config.global_values("workdir") == ["."]
    assert config.global_values("log_stderror") == [1]
    params = {(m.module, m.param): m.value for m in config.modparams}
    assert params[("dispatcher", "list_file")] == "dispatcher.list"
    if path.name != "conformance_mf70.cfg":
        assert params[("maxfwd", "max_limit")] == 32
    assert {k: list(v) for k, v in config.routes.items() if v} == {A.REQUEST: [""]}

    body = config.routes[A.REQUEST][""].body
    first = body.stmts[0]
    assert isinstance(first, A.If)
    assert A.dump(first.cond) == '(&& (! maxfwd_process("10")) (== $retcode -1))'
    assert A.dump(first.then) == '{sl_send_reply("483", "Too Many Hops"); exit;}'
    myself_check = body.stmts[2]
    assert isinstance(myself_check, A.If)
    assert A.dump(myself_check.cond) == (
        '(&& (&& (== method "OPTIONS") (== uri myself)) (! (defined $rU)))'
    )
    assert A.dump(body.stmts[-2]) == "forward()" and isinstance(body.stmts[-1], A.Exit)
    # the else-if chain on $rU
    chain = body.stmts[-3]
    assert isinstance(chain, A.If) and chain.orelse is not None
    nested = chain.orelse.stmts[0]
    assert isinstance(nested, A.If) and A.dump(nested.cond) == '(=~ $rU "^s3")'


def test_kam_lb_tm_structure() -> None:
    config = parse_file("/work/shared/bench/kam-lb-tm.cfg")
    assert {k: list(v) for k, v in config.routes.items() if v} == {
        A.REQUEST: [""],
        A.ROUTE: ["RELAY"],
        A.FAILURE: ["DISPATCH_FAILOVER"],
    }
    assert [(m.module, m.param, m.value) for m in config.modparams] == [
        ("tm", "fr_timer", 2000),
        ("tm", "fr_inv_timer", 40000),
        ("dispatcher", "list_file", "dispatcher.list"),
        ("dispatcher", "flags", 2),
        ("dispatcher", "ds_ping_interval", 0),
    ]
    assert config.loadmodules[0] == A.LoadModule("tm.so")
    relay = config.routes[A.ROUTE]["RELAY"]
    assert A.dump(relay.body) == "{if (! t_relay()) {sl_reply_error();} exit;}"
    assert relay.pos.line == 100 and relay.body.stmts[0].pos == A.Pos(relay.pos.file, 101, 2)
    failover = config.routes[A.FAILURE]["DISPATCH_FAILOVER"]
    assert A.dump(failover.body) == (
        "{if t_is_canceled() {exit;} "
        'if (|| t_check_status("500") (&& t_branch_timeout() (! t_branch_replied()))) '
        '{if ds_next_dst() {t_on_failure("DISPATCH_FAILOVER"); route(RELAY);}}}'
    )
    request = config.routes[A.REQUEST][""].body
    assert A.RouteCall("RELAY") in request.stmts
    assert A.Call("t_on_failure", (A.StrLit("DISPATCH_FAILOVER"),)) in request.stmts


def test_kam_sl_xlog_arguments() -> None:
    config = parse_file("/work/shared/bench/kam-sl.cfg")
    calls = [n for n in A.iter_nodes(config) if isinstance(n, A.Call) and n.name == "xlog"]
    assert calls == [
        A.Call("xlog", (A.StrLit("L_WARN"), A.StrLit("Malformed SIP request from $si:$sp\n")))
    ]


# ---------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("$var(f) & 4 == 4", "(& $var(f) (== 4 4))"),
        ("($var(f) & 4) == 4", "(== (& $var(f) 4) 4)"),
        ("1 + 2 * 3 - 4", "(- (+ 1 (* 2 3)) 4)"),
        ("1 - 2 - 3", "(- (- 1 2) 3)"),
        ("8 / 2 mod 3 * 4", "(* (mod (/ 8 2) 3) 4)"),
        ("$a < 1 == $b > 2", "(== (< $a 1) (> $b 2))"),
        ("$a == 1 >> 2", "(>> (== $a 1) 2)"),
        ("1 << 2 >> 3", "(<< 1 (>> 2 3))"),
        ("$a ^ $b & $c | $d", "(| (& (^ $a $b) $c) $d)"),
        ("$a | $b && $c || $d", "(|| (&& (| $a $b) $c) $d)"),
        ("$a || $b && $c", "(|| $a (&& $b $c))"),
        ("$a or $b and not $c", "(|| $a (&& $b (! $c)))"),
        ("!$a == 1", "(== (! $a) 1)"),
        ("-$a * 2", "(* (- $a) 2)"),
        ("~$a & 3", "(& (~ $a) 3)"),
        ("!defined $a && $b", "(&& (! (defined $a)) $b)"),
        ("defined $a + 1", "(+ (defined $a) 1)"),
        ("(int)$a + 1", "(+ ((int) $a) 1)"),
        ("(str)$a + 1", "(+ ((str) $a) 1)"),
        ("-1", "-1"),
        ("- 5 + 1", "(+ -5 1)"),
        ("$a eq 'x' && $b ne \"y\"", '(&& (eq $a "x") (ne $b "y"))'),
        ("$a ieq 1 || $a ine 2", "(|| (ieq $a 1) (ine $a 2))"),
        ('$ru =~ "^sip:" + $var(x)', '(=~ $ru (+ "^sip:" $var(x)))'),
        ("strlen($ru) > 3 && !strempty($rU)", "(&& (> (strlen $ru) 3) (! (strempty $rU)))"),
        ("f() || g(1, 'a', $x)", '(|| f() g(1, "a", $x))'),
        ("route(X) == 1", "(== route(X) 1)"),
        ("yes + on + true + enable + no + off + false + disable", "(+ (+ (+ (+ (+ (+ (+ 1 1) 1) 1) 0) 0) 0) 0)"),
        ("0x10 + 010 + 11b", "(+ (+ 16 8) 3)"),
        ('"a" "b" + $ru', '(+ "ab" $ru)'),
        ("$(hdr(X)[1]{s.int}) + 1", "(+ $(hdr(X)[1]{s.int}) 1)"),
        ("$hdr(X[1])", "$(hdr(X)[1])"),
        ("$(var(x))", "$var(x)"),
    ],
)  # fmt: skip
def test_expression_precedence(text: str, tree: str) -> None:
    assert expr(text) == tree


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ('method == "INVITE"', '(== method "INVITE")'),
        ("method == INVITE", '(== method "INVITE")'),
        ('method eq "X" && uri != myself', '(&& (== method "X") (!= uri myself))'),
        ("uri == myself", "(== uri myself)"),
        ("myself == from_uri", "(== from_uri myself)"),
        ('status =~ "^2"', '(=~ status "^2")'),
        ('to_uri =~ "x" || from_uri == "y"', '(|| (=~ to_uri "x") (== from_uri "y"))'),
        ("src_ip == 1.2.3.4", "(== src_ip 1.2.3.4)"),
        ("src_ip != 10.0.0.0/8", "(!= src_ip 10.0.0.0/8)"),
        ("dst_ip == 10.0.0.0/255.255.0.0", "(== dst_ip 10.0.0.0/16)"),
        ("src_ip == [::1]", "(== src_ip ::1)"),
        ("src_ip == 2001:db8::/32", "(== src_ip 2001:db8::/32)"),
        ("src_ip == myself", "(== src_ip myself)"),
        ("src_ip == sip-1.example.com", "(== src_ip sip-1.example.com)"),
        ('src_ip == "1.2.3.4"', '(== src_ip "1.2.3.4")'),
        ("src_ip == $var(ip)", "(== src_ip $var(ip))"),
        ("src_port == 5060", "(== src_port 5060)"),
        ("src_port >= 5000 + 60 && dst_port < 6000", "(&& (>= src_port (+ 5000 60)) (< dst_port 6000))"),
        ("proto == UDP", "(== proto UDP)"),
        ("proto != tcp", "(!= proto tcp)"),
        ("af == INET", "(== af 2)"),
        ("af == INET6", "(== af 10)"),
        ("msg:len > 1000", "(> msg:len 1000)"),
        ('!(method == "ACK")', '(! (== method "ACK"))'),
    ],
)  # fmt: skip
def test_legacy_matches(text: str, tree: str) -> None:
    assert expr(text) == tree


def test_legacy_match_nodes() -> None:
    node = parse_expression("src_ip == 10.0.0.0/8")
    assert node == A.LegacyMatch("src_ip", "==", A.IPLit("10.0.0.0", 8))
    assert parse_expression("uri == myself") == A.LegacyMatch("uri", "==", A.Myself())
    assert parse_expression("proto == UDP") == A.LegacyMatch("proto", "==", A.Ident("UDP"))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("$du == $null", "(! (defined $du))"),
        ("$du != $null", "(defined $du)"),
        ("$hdr(X) eq $null", "(! (defined $hdr(X)))"),
        ("$hdr(X) ne $null", "(defined $hdr(X))"),
        ("$null == $du", "(== $null $du)"),
    ],
)
def test_null_comparisons_become_defined(text: str, tree: str) -> None:
    assert expr(text) == tree


def test_expression_nodes_and_positions() -> None:
    node = parse_expression('$var(x) + "a"', "e.cfg")
    assert node == A.BinOp("+", A.PVRef("var", "x"), A.StrLit("a"))
    assert isinstance(node, A.BinOp)
    assert node.pos == A.Pos("e.cfg", 1, 9)  # the operator
    assert node.left.pos == A.Pos("e.cfg", 1, 1)
    assert isinstance(node.left, A.PVRef) and node.left.text == "$var(x)"
    pv = parse_expression("$(avp(x)[*]{s.len})")
    assert pv == A.PVRef("avp", "x", "*", ("s.len",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('1 + "2"', "1:5: type mismatch: str instead of int"),
        ('(1 + 2) + "2"', "1:11: type mismatch: str instead of int"),
        ('"a" - 1', "1:1: type mismatch: str instead of int"),
        ('2 * "a"', "1:5: type mismatch: str instead of int"),
        ('1 == "a"', "1:6: type mismatch: str instead of int"),
        ('1 && "a"', "1:6: type mismatch: str instead of int"),
        ('-"a"', "1:2: type mismatch: str instead of int"),
        ('!"a"', "1:2: type mismatch: str instead of int"),
        ('"1" ieq 1', "1:1: type mismatch: str instead of int"),
        ('1 eq "a"', "1:6: type mismatch: str instead of int"),
        ("strlen(1)", "1:8: type mismatch: int instead of str"),
        ("defined 1", "1:9: type mismatch: int instead of str"),
    ],
)
def test_type_mismatches_are_rejected(text: str, message: str) -> None:
    with pytest.raises(CfgError) as exc:
        parse_expression(text, "e")
    assert str(exc.value) == "e:" + message


@pytest.mark.parametrize(
    "text",
    ['"1" + 2', '"a" == 1', '$x + "a"', '(str)1 + "a"', "$x - $y", "f() + 1", '"a" =~ "b"'],
)
def test_type_combinations_kamailio_accepts(text: str) -> None:
    parse_expression(text)


def test_check_types_result() -> None:
    assert check_types(parse_expression('"a" + 1')) == "str"
    assert check_types(parse_expression("1 + $x")) == "int"
    assert check_types(parse_expression("$x + 1")) is None
    assert check_types(parse_expression('$x == "a"')) == "int"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5 % 3", "1:3: '%' is not an operator in the cfg language; use 'mod'"),
        ("$x ==", "1:6: expected an expression, found end of file"),
        ("($x", "1:4: expected ')', found end of file"),
        ("$ru == myself", "1:8: 'myself' can only be compared with uri, from_uri, to_uri, src_ip or dst_ip (e.g. 'uri == myself')"),
        ("src_port =~ 5", "1:10: invalid operator after 'src_port': expected one of ==, !=, eq, ne, <, >, <=, >="),
        ("method < 1", "1:8: invalid operator after 'method': expected one of ==, !=, =~, eq, ne"),
        ("src_ip == 256.1.1.1", "1:11: invalid IPv4 address '256.1.1.1'"),
        ("src_ip == 1.2.3.4/33", "1:19: expected a netmask (bit count 0-32 or address), found number '33'"),
        ("$x = 1.2.3.4", "1:4: expected end of expression, found '='"),
        ("1.2.3.4", "1:1: a bare IP address is only allowed in comparisons with src_ip/dst_ip or as a function argument; quote it"),
        ("foo + 1", "1:1: unexpected word 'foo' in expression (missing '(...)' or quotes?)"),
        ("\"a\" 'b'", "1:5: adjacent strings can only be concatenated when both use double quotes"),
        ("@ruri.user", "1:1: select expressions (@...) are not supported"),
    ],
)  # fmt: skip
def test_expression_errors(text: str, message: str) -> None:
    with pytest.raises(CfgError) as exc:
        parse_expression(text, "e")
    assert str(exc.value) == "e:" + message


# Property test: minimal-parenthesis rendering of random trees parses back.
_OPS = sorted(op for op in BINARY_PREC if op not in ("eq", "ne", "=~", "or", "and"))


def _render(node: A.Expr) -> str:
    if isinstance(node, A.BinOp):
        prec = BINARY_PREC[node.op]
        left, right = _render(node.left), _render(node.right)
        if isinstance(node.left, A.BinOp) and BINARY_PREC[node.left.op] < prec:
            left = f"({left})"
        if isinstance(node.right, A.BinOp) and BINARY_PREC[node.right.op] <= prec:
            right = f"({right})"
        return f"{left} {node.op} {right}"
    if isinstance(node, A.UnaryOp):
        inner = _render(node.operand)
        return f"{node.op}({inner})" if isinstance(node.operand, A.BinOp) else node.op + inner
    return A.dump(node)


_leaves = st.one_of(
    st.integers(min_value=0, max_value=99).map(A.IntLit),
    st.sampled_from(["x", "y", "z"]).map(lambda n: A.PVRef("var", n)),
)
_trees = st.recursive(
    _leaves,
    lambda sub: st.one_of(
        st.builds(A.BinOp, st.sampled_from(_OPS), sub, sub),
        st.builds(A.UnaryOp, st.sampled_from(["!", "~"]), sub),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_trees)
def test_rendered_expressions_parse_back(tree: A.Expr) -> None:
    assert parse_expression(_render(tree)) == tree


# ---------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------


def test_if_else_chains_and_bodies() -> None:
    code = "if ($a) exit; else if ($b) { drop; } else { return -1; }\nif $c == 1 break;"
    assert stmts(code) == (
        "if $a {exit;} else {if $b {drop;} else {return -1;}} if (== $c 1) {break;}"
    )
    node = route_body(code).stmts[0]
    assert isinstance(node, A.If) and isinstance(node.then, A.Block)


def test_while_and_assignments() -> None:
    code = "while ($var(i) < 3) $var(i) = $var(i) + 1;\n$avp(x) := 1; $du = $null;"
    assert stmts(code) == (
        "while (< $var(i) 3) {$var(i) = (+ $var(i) 1);} $avp(x) := 1; $du = $null;"
    )
    assign = route_body("$avp(x) := 1;").stmts[0]
    assert assign == A.Assign(A.PVRef("avp", "x"), ":=", A.IntLit(1))


def test_switch() -> None:
    code = (
        "switch ($rU) {\n"
        '  case "a": xlog("a");\n'
        '  case /"^b": break;\n'
        "  default: drop;\n"
        "}\n"
        "switch ($var(x)) { case 1: case -2: exit; }\n"
        "switch ($x) { }"
    )
    assert stmts(code) == (
        'switch $rU {case "a": xlog("a"); case /"^b": break; default: drop;} '
        "switch $var(x) {case 1: case -2: exit;} switch $x {}"
    )
    node = route_body(code).stmts[0]
    assert isinstance(node, A.Switch)
    assert [(c.value, c.is_regex) for c in node.cases] == [
        (A.StrLit("a"), False),
        (A.StrLit("^b"), True),
        (None, False),
    ]


def test_return_exit_drop_forms() -> None:
    code = "return; return(); return 1; return (1+2); exit; exit(0); drop; drop();"
    assert stmts(code) == "return; return; return 1; return (+ 1 2); exit; exit 0; drop; drop;"


def test_route_calls() -> None:
    code = 'route(RELAY); route(1); route("name"); route($var(r)); if (route(X)) exit;'
    body = route_body(code).stmts
    assert body[:4] == (
        A.RouteCall("RELAY"),
        A.RouteCall("1"),
        A.RouteCall("name"),
        A.RouteCall(A.PVRef("var", "r")),
    )
    assert isinstance(body[4], A.If) and body[4].cond == A.RouteCall("X")


def test_function_call_arguments() -> None:
    code = (
        "forward(1.2.3.4, 5060); forward(sip.example.com); forward([::1]);\n"
        "forward(uri:host, uri:port); setflag(FLAG_X); xlog(-1);\n"
        'sl_send_reply("404", "Not " + "here"); f($var(x) + 1, yes);'
    )
    body = route_body(code).stmts
    assert body == (
        A.Call("forward", (A.IPLit("1.2.3.4"), A.IntLit(5060))),
        A.Call("forward", (A.Ident("sip.example.com"),)),
        A.Call("forward", (A.IPLit("::1"),)),
        A.Call("forward", (A.Ident("uri:host"), A.Ident("uri:port"))),
        A.Call("setflag", (A.Ident("FLAG_X"),)),
        A.Call("xlog", (A.IntLit(-1),)),
        A.Call(
            "sl_send_reply", (A.StrLit("404"), A.BinOp("+", A.StrLit("Not "), A.StrLit("here")))
        ),
        A.Call("f", (A.BinOp("+", A.PVRef("var", "x"), A.IntLit(1)), A.IntLit(1))),
    )


def test_function_calls_in_expressions_and_parenless_actions() -> None:
    assert stmts('$var(a) = xlog("x"); force_rport; revert_uri;') == (
        '$var(a) = xlog("x"); force_rport(); revert_uri();'
    )


def test_nested_blocks_and_empty_statements() -> None:
    assert stmts("{ ; { exit; } ; }") == "{{exit;}}"


def test_string_concatenation_in_statements() -> None:
    body = route_body('xlog("L_INFO", "a"\n   "b" "c");')
    assert body.stmts == (A.Call("xlog", (A.StrLit("L_INFO"), A.StrLit("abc"))),)


def test_iter_nodes() -> None:
    body = route_body("if ($a == 1) { f($b); } else { route(X); }")
    names = [type(n).__name__ for n in A.iter_nodes(body)]
    assert names == [
        "Block",
        "If",
        "BinOp",
        "PVRef",
        "IntLit",
        "Block",
        "Call",
        "PVRef",
        "Block",
        "RouteCall",
    ]


# ---------------------------------------------------------------------------
# Top level
# ---------------------------------------------------------------------------


def test_global_parameters() -> None:
    config = parse_text(
        "debug=-1 children=3\n"
        "fork=no\n"
        "log_stderror = yes;\n"
        "log_facility=LOG_LOCAL0\n"
        'server_header="Server: x"\n'
        "mhomed=0x1\n"
        "tcp_source_ipv4=1.2.3.4\n"
        "advertised_address=sip.example.com\n"
        'mpath="/usr/lib/kamailio/modules"\n'
        'loadpath "/opt/mods"\n'
        'my.var = 3 desc "a custom cfg var"\n'
        "auto_aliases=off\n",
        "g.cfg",
    )
    assert [(g.name, g.value) for g in config.globals] == [
        ("debug", -1),
        ("children", 3),
        ("fork", 0),
        ("log_stderror", 1),
        ("log_facility", "LOG_LOCAL0"),
        ("server_header", "Server: x"),
        ("mhomed", 1),
        ("tcp_source_ipv4", "1.2.3.4"),
        ("advertised_address", "sip.example.com"),
        ("mpath", "/usr/lib/kamailio/modules"),
        ("loadpath", "/opt/mods"),
        ("my.var", 3),
        ("auto_aliases", 0),
    ]
    assert config.globals[1].pos == A.Pos("g.cfg", 1, 10)


def _listen(line: str) -> list[tuple[object, ...]]:
    config = parse_text(line + "\n", "l.cfg")
    (value,) = config.global_values(line.split("=")[0].strip())
    assert isinstance(value, tuple)
    return [(a.proto, a.host, a.port, a.advertise_host, a.advertise_port, a.name) for a in value]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("listen=udp:127.0.0.1:6060", [("udp", "127.0.0.1", 6060, None, None, None)]),
        ("listen=tcp:[::1]:5060", [("tcp", "::1", 5060, None, None, None)]),
        ("listen=127.0.0.1", [(None, "127.0.0.1", None, None, None, None)]),
        ("listen=eth0", [(None, "eth0", None, None, None, None)]),
        ("listen = TLS:my-host.example.com:5061", [("tls", "my-host.example.com", 5061, None, None, None)]),
        ("listen=udp:10.0.0.1:5060 advertise 1.2.3.4:5080 name \"pub\"", [("udp", "10.0.0.1", 5060, "1.2.3.4", 5080, "pub")]),
        ("listen=udp:10.0.0.1 advertise sip.example.com", [("udp", "10.0.0.1", None, "sip.example.com", None, None)]),
        ("listen=udp:1.2.3.4:5060 tcp:1.2.3.4:5060", [("udp", "1.2.3.4", 5060, None, None, None), ("tcp", "1.2.3.4", 5060, None, None, None)]),
        ("alias=foo.com:5060 bar.com", [(None, "foo.com", 5060, None, None, None), (None, "bar.com", None, None, None, None)]),
        ("listen=udp:1.2.3.4:*", [("udp", "1.2.3.4", 0, None, None, None)]),
    ],
)  # fmt: skip
def test_listen_values(line: str, expected: list[tuple[object, ...]]) -> None:
    assert _listen(line) == expected


def test_listen_followed_by_other_parameters() -> None:
    config = parse_text("listen=udp:1.2.3.4:5060\nchildren=2 listen=tcp:1.2.3.4 port=5070\n")
    assert [g.name for g in config.globals] == ["listen", "children", "listen", "port"]


def test_modules_and_cfgengine() -> None:
    config = parse_text(
        'loadmodule "sl.so"\nloadmodule "/usr/lib/kamailio/modules/tm.so";\n'
        'modparam("auth_db|usrloc", "db_url", "mysql://x")\n'
        'modparam("tm", "fr_timer", -1);\nmodparam("sl", "bind", on)\n'
        'modparam("x", "y", "a" "b")\n'
        'cfgengine "python"\n'
    )
    assert [m.path for m in config.loadmodules] == ["sl.so", "/usr/lib/kamailio/modules/tm.so"]
    assert [(m.module, m.param, m.value) for m in config.modparams] == [
        ("auth_db|usrloc", "db_url", "mysql://x"),
        ("tm", "fr_timer", -1),
        ("sl", "bind", 1),
        ("x", "y", "ab"),
    ]
    assert config.cfgengine == "python"
    assert parse_text('cfgengine="python"\n').cfgengine == "python"


def test_defines_substituted_in_modparam_values() -> None:
    text = (
        '#!define DBURL "mysql://kamailio:pw@localhost/kamailio"\n'
        "#!define TIMER 3000\n"
        'modparam("usrloc", "db_url", DBURL)\n'
        'modparam("tm", "fr_timer", TIMER)\n'
        'modparam("x", "y", FROM_CLI)\n'
    )
    config = parse_text(text, "d.cfg", defines={"FROM_CLI": '"cli"'})
    assert [m.value for m in config.modparams] == [
        "mysql://kamailio:pw@localhost/kamailio",
        3000,
        "cli",
    ]
    assert config.defines["TIMER"] == "3000"
    err = error_of('modparam("x", "y", UNDEFINED_NAME)\n', "d.cfg")
    assert (
        str(err) == "d.cfg:1:20: 'UNDEFINED_NAME' is not a string or a number (a missing #!define?)"
    )


def test_route_kinds_and_names() -> None:
    config = parse_text(
        "route { exit; }\n"
        "route[1] { return; }\n"
        'route["quoted name"] { return; }\n'
        "route[NAMED] { return; }\n"
        "reply_route { drop; }\n"
        "onreply_route[0] { exit; }\n"
        "onreply_route[R1] { exit; }\n"
        "failure_route[F] { exit; }\n"
        "branch_route[B] { exit; }\n"
        "onsend_route { exit; }\n"
        "event_route[dispatcher:dst-down] { exit; }\n"
        "event_route[tm:local-request] { exit; }\n"
        "request_route { drop; }\n"
    )
    assert {k: sorted(v) for k, v in config.routes.items()} == {
        A.REQUEST: [""],
        A.ROUTE: ["1", "NAMED", "quoted name"],
        A.REPLY: [""],
        A.ONREPLY: ["R1"],
        A.FAILURE: ["F"],
        A.BRANCH: ["B"],
        A.ONSEND: [""],
        A.EVENT: ["dispatcher:dst-down", "tm:local-request"],
    }
    # repeated unnamed blocks are concatenated, like Kamailio does
    assert A.dump(config.routes[A.REQUEST][""].body) == "{exit; drop;}"
    assert A.dump(config.routes[A.REPLY][""].body) == "{drop; exit;}"
    route = config.routes[A.EVENT]["tm:local-request"]
    assert (route.kind, route.name, route.pos.line) == (A.EVENT, "tm:local-request", 12)


def test_empty_config() -> None:
    config = parse_text("# nothing\n", "e.cfg")
    assert config.globals == () and all(not v for v in config.routes.values())


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ('xlog("a")\n  exit;', "t.cfg:3:10: expected ';' after function call 'xlog(...)'"),
        ("$var(a) = 1\n", "t.cfg:3:12: expected ';' after assignment"),
        ("route(X)", "t.cfg:3:9: expected ';' after route(...)"),
        ("exit", "t.cfg:3:5: expected ';' after 'exit'"),
        ("xlog;", "t.cfg:3:5: missing '(...)' after function name 'xlog'"),
        ("if ($x == 1 { exit; }", "t.cfg:3:13: expected ')', found '{'"),
        ("$var(a) += 1;", "t.cfg:3:9: '+=' is not supported; write '$x = $x + value'"),
        ("$var(a) 1;", "t.cfg:3:9: expected '=' after pseudo-variable '$var(a)', found number '1'"),
        ("case 1: exit;", "t.cfg:3:1: 'case' outside of a switch"),
        ("else exit;", "t.cfg:3:1: 'else' without a matching 'if'"),
        ("foo = 1;", "t.cfg:3:1: 'foo' is not a pseudo-variable; did you mean '$var(foo)'?"),
        ("$null = 1;", "t.cfg:3:1: cannot assign to $null"),
        ("$(var(x){s.int}) = 1;", "t.cfg:3:1: a pseudo-variable with transformations cannot be assigned"),
        ('$var(a) = 1 + "2";', "t.cfg:3:15: type mismatch: str instead of int"),
        ("switch ($x) { case 1: exit; default: exit; default: drop; }", "t.cfg:3:44: too many 'default:' labels in switch"),
        ('switch ($x) { case 1: exit; case "a": drop; }', "t.cfg:3:29: mixed integer and string/regex cases in switch"),
        ("switch ($x) { case $y: exit; }", "t.cfg:3:20: case value must be a constant number or string"),
        ("switch ($x) { exit; }", "t.cfg:3:15: expected 'case' or 'default', found 'exit'"),
        ("if (1) { exit; ", "t.cfg:4:2: missing '}' to close the block opened at line 2, column 15"),
    ],
)  # fmt: skip
def test_statement_errors(code: str, message: str) -> None:
    assert body_error(code) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("debug=\n", "t.cfg:1:7: expected a value for 'debug', found end of file"),
        ("listen=\n", "t.cfg:1:8: expected an IP address, interface name or host name, found end of file"),
        ("listen=udp:1.2.3.4:x\n", "t.cfg:1:20: expected a port number, found 'x'"),
        ("loadmodule sl\n", "t.cfg:1:12: expected a module name in quotes after 'loadmodule', found 'sl'"),
        ('modparam("a", "b")\n', "t.cfg:1:18: expected ',' after the parameter name, found ')'"),
        ("route[A] { exit; }\nroute[A] { exit; }\n", "t.cfg:2:1: duplicate route: route[A]"),
        ("request_route[X] { }\n", "t.cfg:1:14: 'request_route' takes no name"),
        ("event_route { }\n", "t.cfg:1:13: expected '[' and an event name (group:name) after 'event_route', found '{'"),
        ("event_route[nogroup] { }\n", "t.cfg:1:13: invalid event route name 'nogroup' (expected group:name)"),
        ("route[X] exit;\n", "t.cfg:1:10: expected '{', found 'exit'"),
        ("$var(x) = 1;\n", "t.cfg:1:1: unexpected pseudo-variable '$var(x)' at top level; expected a global parameter, loadmodule, modparam or a route block"),
        ("foo\n", "t.cfg:1:1: unexpected 'foo' at top level; expected a global parameter (name=value), loadmodule, modparam or a route block"),
        ("flags A:1\n", "t.cfg:1:1: 'flags' declarations are not supported"),
    ],
)  # fmt: skip
def test_top_level_errors(text: str, message: str) -> None:
    assert str(error_of(text)) == message


def test_several_errors_are_collected() -> None:
    text = (
        'loadmodule "sl.so"\n'
        "request_route {\n"
        '  xlog("a")\n'
        "  exit;\n"
        "}\n"
        "route[X] { $var(a) = 1 + ; exit; }\n"
        "route[Y] {\n"
        "  foo bar;\n"
        "  if ($x) { drop; }\n"
        "}\n"
        "children=\n"
        "failure_route[Z] { if (1) { exit } }\n"
    )
    with pytest.raises(CfgErrors) as exc:
        parse_text(text, "m.cfg")
    assert [str(e) for e in exc.value.errors] == [
        "m.cfg:3:12: expected ';' after function call 'xlog(...)'",
        "m.cfg:6:26: expected an expression, found ';'",
        "m.cfg:8:3: unexpected 'foo': expected a statement",
        "m.cfg:12:1: expected a value for 'children', found 'failure_route'",
        "m.cfg:12:33: expected ';' after 'exit'",
    ]
    # CfgErrors is a CfgError located at the first error
    assert isinstance(exc.value, CfgError)
    assert (exc.value.line, exc.value.col) == (3, 12)


def test_lexer_and_preprocessor_errors_are_reported_too() -> None:
    text = '#!endif\nrequest_route {\n  xlog("unterminated);\n}\n'
    with pytest.raises(CfgErrors) as exc:
        parse_text(text, "x.cfg")
    assert [str(e) for e in exc.value.errors] == [
        "x.cfg:1:1: #!endif without #!ifdef or #!ifndef",
        "x.cfg:3:8: unterminated string",
    ]


def test_errors_inside_included_files(tmp_path: Path) -> None:
    main = tmp_path / "main.cfg"
    main.write_text('loadmodule "sl.so"\nrequest_route {\n  include_file "body.cfg"\n  exit;\n}\n')
    body = tmp_path / "body.cfg"
    body.write_text('# body\n  xlog("x")\n')
    with pytest.raises(CfgError) as exc:
        parse_file(str(main))
    assert str(exc.value) == f"{body}:2:12: expected ';' after function call 'xlog(...)'"

    body.write_text('# body\n  xlog("x");\n')
    config = parse_file(str(main))
    stmts_ = config.routes[A.REQUEST][""].body.stmts
    assert [A.dump(s) for s in stmts_] == ['xlog("x")', "exit"]
    assert stmts_[0].pos == A.Pos(str(body), 2, 3)
    assert stmts_[1].pos == A.Pos(str(main), 4, 3)


def test_include_with_routes_and_defines(tmp_path: Path) -> None:
    (tmp_path / "defs.cfg").write_text("#!define MYPORT 5070\n#!define WITH_RELAY\n")
    (tmp_path / "routes.cfg").write_text("route[RELAY] {\n  forward();\n}\n")
    main = tmp_path / "main.cfg"
    main.write_text(
        '#!KAMAILIO\ninclude_file "defs.cfg"\nlisten=udp:127.0.0.1:MYPORT\n'
        "#!ifdef WITH_RELAY\n"
        'include_file "routes.cfg"\n'
        "#!endif\n"
        "request_route { route(RELAY); }\n"
    )
    config = parse_file(str(main))
    assert listen_of(config)[0].port == 5070
    relay = config.routes[A.ROUTE]["RELAY"]
    assert relay.pos == A.Pos(str(tmp_path / "routes.cfg"), 1, 1)


# ---------------------------------------------------------------------------
# Cross-check with Kamailio itself (scripts/test.sh installs it)
# ---------------------------------------------------------------------------

_ORACLE_SNIPPETS = [
    ('$var(a) = "a" "b";', True),
    ("$var(a) = \"a\" 'b';", False),
    ('$var(a) = 1 + "2";', False),
    ('$var(a) = "1" + 2;', True),
    ('$var(a) = 1 == "a";', False),
    ('$var(a) = "a" == 1;', True),
    ("if ($var(f) & 4 == 4) { exit; }", True),
    ("if $var(a)==1 exit;", True),
    ("if (src_ip == 10.0.0.0/8) { exit; }", True),
    ("if (proto == UDP && af == INET) { exit; }", True),
    ("if (myself == uri) { exit; }", True),
    ("if ($ru == myself) { exit; }", False),
    ("$var(a) = 1 mod 2;", True),
    ("$var(a) = 5 % 3;", False),
    ("$var(a) = 0x1f + 010 + 101b;", True),
    ("$var(a) = $(hdr(X)[-1]{s.int});", True),
    ('switch ($rU) { case "a": exit; case /"^b": break; default: drop; }', True),
    ('switch ($var(x)) { case 1: exit; case "a": break; }', False),
    ("return(); exit(0); drop();", True),
    ("route($var(x));", True),
    ("force_rport; revert_uri;", True),
    ("xlog;", False),
    ("$var(a) += 1;", False),
    ("/* a /* nested */ comment */ exit;", True),
]


@pytest.mark.parametrize(("code", "valid"), _ORACLE_SNIPPETS)
def test_agrees_with_kamailio(tmp_path: Path, code: str, valid: bool) -> None:
    assert shutil.which("kamailio"), "Kamailio (the oracle) is not installed: scripts/test.sh installs it"
    cfg = (
        "#!KAMAILIO\nlog_stderror=yes\nlisten=udp:127.0.0.1:6060\n"
        'loadmodule "pv.so"\nloadmodule "xlog.so"\nloadmodule "textops.so"\n'
        "request_route {\n" + code + "\n}\n"
    )
    path = tmp_path / "oracle.cfg"
    path.write_text(cfg)
    proc = subprocess.run(
        ["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert (proc.returncode == 0) == valid, proc.stderr[-2000:]
    try:
        parse_file(str(path))
        ours = True
    except CfgError:
        ours = False
    assert ours == valid
