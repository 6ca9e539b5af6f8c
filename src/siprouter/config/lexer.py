"""Lexer for the Kamailio cfg language.

The input is the list of :class:`Chunk` s produced by the preprocessor; their
texts are lexed as one stream (like Kamailio re-scanning ``#!define`` values
in place) while every token keeps the (file, line, col) of its origin.

Token kinds: ``id`` (identifiers and alphanumeric words such as ``3com``),
``int``, ``str``, ``pv``, ``ip4``, ``ip6``, ``op`` (operators and
punctuation), ``cast`` (``(int)``/``(str)``) and ``eof``. Keywords are plain
``id`` tokens; the parser gives them meaning.

The low-level scanners (:func:`scan_pv`, :func:`string_end`,
:func:`block_comment_end`) are shared with the preprocessor and are usable
on their own, e.g. to find PVs inside format strings.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .ast import Pos
from .errors import CfgError, raise_errors

ID = "id"
INT = "int"
STR = "str"
PV = "pv"
IP4 = "ip4"
IP6 = "ip6"
OP = "op"
CAST = "cast"
EOF = "eof"

ID_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
ID_CHARS = ID_START | frozenset("0123456789")
_WS = " \t\r\n\b\f\v"

# Longest first.
OPERATORS = (
    "==", "!=", "=~", "<=", ">=", "<<", ">>", "&&", "||", ":=", "+=",
    "=", "<", ">", "!", "+", "-", "*", "/", "|", "&", "^", "~",
    "(", ")", "{", "}", "[", "]", ",", ";", ":", ".", "%", "@",
)  # fmt: skip

_ALNUM_RE = re.compile(r"[A-Za-z0-9_]+")
_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX_RE = re.compile(r"0[xX][0-9a-fA-F]+")
_BIN_RE = re.compile(r"[01]+b")
_OCT_RE = re.compile(r"0[0-7]+")
_DEC_RE = re.compile(r"0|[1-9][0-9]*")
_IPV4_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![A-Za-z0-9_]|\.[A-Za-z0-9])")
_IPV6_CAND_RE = re.compile(r"[0-9A-Fa-f:.]+")
_TRAILING_INDEX_RE = re.compile(r"([^\[\]]*)\[(-?\d+|\*)\]")
_OCT_ESC_RE = re.compile(r"[0-7]{2,3}")
_HEX_ESC_RE = re.compile(r"[0-9a-fA-F]{1,2}")


# --------------------------------------------------------------------------
# Lexer input
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of preprocessed source text and where it came from.

    Offsets inside ``text`` map to lines/columns counted from (line, col),
    unless ``fixed`` is set (text of an expanded ``#!define``), in which case
    everything maps to (line, col), the place where the name was used.
    ``substs`` are the ``#!subst`` rules active at this point; the lexer
    applies them to string literals. ``boundary`` marks a chunk that follows
    removed text (a directive, an include, a skipped ``#!ifdef`` block):
    adjacent string literals are not joined across it, as in Kamailio.
    """

    text: str
    file: str
    line: int = 1
    col: int = 1
    fixed: bool = False
    substs: tuple[Callable[[str], str], ...] = ()
    boundary: bool = False


class SourceMap:
    """Maps offsets of the concatenated chunk texts to source positions."""

    def __init__(self, chunks: Sequence[Chunk], default_file: str = "<string>") -> None:
        self.chunks = list(chunks)
        self.starts: list[int] = []
        offset = 0
        for chunk in self.chunks:
            self.starts.append(offset)
            offset += len(chunk.text)
        self.length = offset
        self.default_file = chunks[0].file if chunks else default_file
        self.boundaries = [o for o, c in zip(self.starts, self.chunks, strict=True) if c.boundary]
        self._newlines: dict[int, list[int]] = {}

    def crosses_boundary(self, start: int, end: int) -> bool:
        """Whether a boundary chunk starts within ``(start, end]``."""
        idx = bisect.bisect_right(self.boundaries, start)
        return idx < len(self.boundaries) and self.boundaries[idx] <= end

    def chunk_at(self, offset: int) -> Chunk | None:
        """The chunk containing ``offset`` (the last one for end of input)."""
        if not self.chunks:
            return None
        idx = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        return self.chunks[idx]

    def pos_at(self, offset: int) -> Pos:
        """Source position of the character at ``offset``."""
        if not self.chunks:
            return Pos(self.default_file, 1, 1)
        idx = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        chunk = self.chunks[idx]
        if chunk.fixed:
            return Pos(chunk.file, chunk.line, chunk.col)
        rel = offset - self.starts[idx]
        newlines = self._newlines.get(idx)
        if newlines is None:
            newlines = [i for i, c in enumerate(chunk.text) if c == "\n"]
            self._newlines[idx] = newlines
        nl_before = bisect.bisect_left(newlines, rel)
        if nl_before == 0:
            return Pos(chunk.file, chunk.line, chunk.col + rel)
        return Pos(chunk.file, chunk.line + nl_before, rel - newlines[nl_before - 1])

    def pos_after(self, offset: int) -> Pos:
        """Position just after the character at ``offset`` (end of a token)."""
        pos = self.pos_at(offset)
        chunk = self.chunk_at(offset)
        if chunk is not None and chunk.fixed:
            return pos
        return Pos(pos.file, pos.line, pos.col + 1)


# --------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PVSpec:
    """Structured content of a PV token (see :class:`~.ast.PVRef`)."""

    name: str
    arg: str | None
    index: str | None
    transforms: tuple[str, ...]
    text: str


TokenValue = int | str | PVSpec | None


@dataclass(frozen=True, slots=True)
class Token:
    """A lexical token.

    ``text`` is the source text, ``value`` the decoded value (int for
    ``int``, decoded string for ``str``, :class:`PVSpec` for ``pv``, the
    text otherwise). ``end`` is the position just after the token and
    ``ws_before`` tells whether whitespace or a comment preceded it.
    """

    kind: str
    text: str
    value: TokenValue
    pos: Pos
    end: Pos
    ws_before: bool = True

    @property
    def number(self) -> int:
        """The value of an ``int`` token."""
        assert isinstance(self.value, int), self
        return self.value

    def is_op(self, *ops: str) -> bool:
        """True for an ``op`` token whose text is one of ``ops``."""
        return self.kind == OP and self.text in ops

    def is_id(self, *names: str) -> bool:
        """True for an ``id`` token whose text is one of ``names``."""
        return self.kind == ID and self.text in names

    def describe(self) -> str:
        """Human readable description for error messages."""
        if self.kind == EOF:
            return "end of file"
        if self.kind == STR:
            return "string " + _shorten(self.text)
        if self.kind == PV:
            return f"pseudo-variable '{_shorten(self.text)}'"
        if self.kind == INT:
            return f"number '{self.text}'"
        if self.kind in (IP4, IP6):
            return f"IP address '{self.text}'"
        return f"'{self.text}'"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------
# Low-level scanners (shared with the preprocessor)
# --------------------------------------------------------------------------


class PVSyntaxError(ValueError):
    """A malformed pseudo-variable; ``offset`` is where the problem is."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def string_end(text: str, start: int) -> int:
    """Index just past the string literal opening at ``start``, -1 if unterminated.

    ``"..."`` honours backslash escapes; ``'...'`` has no escapes at all.
    """
    quote = text[start]
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and quote == '"':
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    return -1


def block_comment_end(text: str, start: int) -> int:
    """Index just past the (nestable) ``/* ... */`` at ``start``, -1 if unterminated."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return -1


def line_end(text: str, start: int) -> int:
    """Index of the newline ending the line at ``start`` (or end of text)."""
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def decode_string(body: str) -> str:
    """Decode the C escapes of a double-quoted string body (without quotes).

    ``\\n \\r \\t \\a \\" \\\\ \\xHH \\OOO`` (2-3 octal digits) and an escaped
    newline (removed) are decoded; any other backslash is kept as is, so
    regular expressions such as ``"^\\+1"`` survive.
    """
    out: list[str] = []
    i = 0
    n = len(body)
    simple = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", '"': '"', "\\": "\\", "\n": ""}
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
            continue
        if nxt == "x" and (m := _HEX_ESC_RE.match(body, i + 2)):
            out.append(chr(int(m.group(), 16)))
            i = m.end()
            continue
        if m := _OCT_ESC_RE.match(body, i + 1):
            out.append(chr(int(m.group(), 8) & 0xFF))
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _matching(text: str, start: int, open_c: str, close_c: str, limit: int) -> int:
    """Index of the bracket closing the one at ``start`` (same line), -1 if none."""
    depth = 0
    for i in range(start, limit):
        c = text[i]
        if c == "\n":
            return -1
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i
    return -1


def scan_pv(text: str, start: int) -> tuple[PVSpec, int]:
    """Parse the pseudo-variable starting at ``text[start] == '$'``.

    Accepted forms: ``$name``, ``$name(arg)``, ``$?``,
    ``$(name[(arg)][[index]]{tr}...)``. Returns the spec and the index just
    past the PV; raises :class:`PVSyntaxError` when malformed.
    """
    i = start + 1
    n = len(text)
    if i < n and text[i] == "?":
        return PVSpec("?", None, None, (), "$?"), i + 1
    if i < n and text[i] == "(":
        close = _matching(text, i, "(", ")", n)
        if close < 0:
            raise PVSyntaxError("unterminated pseudo-variable '$('", start)
        name, arg, index, transforms = _parse_pv_body(text, i + 1, close)
        end = close + 1
    elif i < n and text[i] in ID_START:
        m = _ID_RE.match(text, i)
        assert m is not None
        name, arg, index, transforms = m.group(), None, None, ()
        end = m.end()
        if end < n and text[end] == "(":
            close = _matching(text, end, "(", ")", n)
            if close < 0:
                raise PVSyntaxError(f"unterminated pseudo-variable '${name}('", start)
            arg = text[end + 1 : close]
            end = close + 1
    else:
        raise PVSyntaxError("invalid pseudo-variable: name expected after '$'", start)
    if index is None and arg is not None and "=>" not in arg:
        m = _TRAILING_INDEX_RE.fullmatch(arg)
        if m:
            arg, index = m.group(1), m.group(2)
    return PVSpec(name, arg, index, transforms, text[start:end]), end


def _parse_pv_body(
    text: str, i: int, limit: int
) -> tuple[str, str | None, str | None, tuple[str, ...]]:
    """Parse ``name(arg)[index]{tr}...`` between ``i`` and ``limit`` (exclusive)."""
    m = _ID_RE.match(text, i, limit)
    if m is None:
        if text.startswith("?", i):
            name, i = "?", i + 1
        else:
            raise PVSyntaxError("invalid pseudo-variable: name expected after '$('", i)
    else:
        name, i = m.group(), m.end()
    arg = index = None
    if i < limit and text[i] == "(":
        close = _matching(text, i, "(", ")", limit)
        if close < 0:
            raise PVSyntaxError("unbalanced '(' in pseudo-variable", i)
        arg, i = text[i + 1 : close], close + 1
    if i < limit and text[i] == "[":
        close = _matching(text, i, "[", "]", limit)
        if close < 0:
            raise PVSyntaxError("unbalanced '[' in pseudo-variable", i)
        index, i = text[i + 1 : close], close + 1
    transforms: list[str] = []
    while i < limit and text[i] == "{":
        close = _matching(text, i, "{", "}", limit)
        if close < 0:
            raise PVSyntaxError("unbalanced '{' in pseudo-variable transformation", i)
        transforms.append(text[i + 1 : close])
        i = close + 1
    if i != limit:
        raise PVSyntaxError(f"unexpected '{text[i]}' in pseudo-variable", i)
    return name, arg, index, tuple(transforms)


def match_ipv6(text: str, start: int) -> int:
    """End index of a bare IPv6 address at ``start``, or -1."""
    m = _IPV6_CAND_RE.match(text, start)
    if m is None:
        return -1
    cand = m.group()
    if cand.count(":") < 2 or (m.end() < len(text) and text[m.end()] in ID_CHARS):
        return -1
    try:
        ipaddress.IPv6Address(cand)
    except ValueError:
        return -1
    return m.end()


def parse_int(word: str) -> int | None:
    """Value of a cfg integer literal (dec, 0x hex, 0 octal, ``101b`` binary)."""
    if _HEX_RE.fullmatch(word):
        return int(word, 16)
    if _BIN_RE.fullmatch(word):
        return int(word[:-1], 2)
    if _OCT_RE.fullmatch(word):
        return int(word, 8)
    if _DEC_RE.fullmatch(word):
        return int(word)
    return None


# --------------------------------------------------------------------------
# The lexer
# --------------------------------------------------------------------------


class Lexer:
    """Turns chunks into tokens, collecting errors in :attr:`errors`."""

    def __init__(self, chunks: Sequence[Chunk], default_file: str = "<string>") -> None:
        self.src = "".join(c.text for c in chunks)
        self.map = SourceMap(chunks, default_file)
        self.errors: list[CfgError] = []
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        """Lex the whole input; always ends with an ``eof`` token."""
        i = 0
        n = len(self.src)
        while True:
            j = self._skip_blank(i)
            ws = j != i or i == 0
            i = j
            if i >= n:
                break
            i = self._lex_one(i, ws)
        if not n:
            eof_pos = self.map.pos_at(0)
        elif self.src[-1] == "\n":  # end of the last line, not the line after it
            eof_pos = self.map.pos_at(n - 1)
        else:
            eof_pos = self.map.pos_after(n - 1)
        self.tokens.append(Token(EOF, "", None, eof_pos, eof_pos, True))
        return self.tokens

    # -- helpers ---------------------------------------------------------

    def _error(self, offset: int, reason: str) -> None:
        self.errors.append(CfgError.at(self.map.pos_at(offset), reason))

    def _add(self, kind: str, start: int, end: int, value: TokenValue, ws: bool) -> int:
        text = self.src[start:end]
        pos = self.map.pos_at(start)
        self.tokens.append(Token(kind, text, value, pos, self.map.pos_after(end - 1), ws))
        return end

    def _skip_blank(self, i: int) -> int:
        """Skip whitespace, escaped newlines and comments."""
        src = self.src
        n = len(src)
        while i < n:
            c = src[i]
            if c in _WS:
                i += 1
            elif c == "\\" and src.startswith("\\\n", i):
                i += 2
            elif c == "#" or src.startswith("//", i):
                i = line_end(src, i)
            elif src.startswith("/*", i):
                end = block_comment_end(src, i)
                if end < 0:
                    self._error(i, "unterminated '/*' comment")
                    return n
                i = end
            else:
                break
        return i

    def _lex_one(self, i: int, ws: bool) -> int:
        src = self.src
        c = src[i]
        if c == '"':
            return self._lex_dq_string(i, ws)
        if c == "'":
            return self._lex_sq_string(i, ws)
        if c == "$":
            return self._lex_pv(i, ws)
        if c in "0123456789abcdefABCDEF:":
            end = match_ipv6(src, i)
            if end > 0:
                return self._add(IP6, i, end, src[i:end], ws)
        if c.isdigit():
            m = _IPV4_RE.match(src, i)
            if m:
                return self._add(IP4, i, m.end(), m.group(), ws)
        if c in ID_CHARS:
            return self._lex_word(i, ws)
        if src.startswith("(int)", i) or src.startswith("(str)", i):
            return self._add(CAST, i, i + 5, src[i + 1 : i + 4], ws)
        for op in OPERATORS:
            if src.startswith(op, i):
                return self._add(OP, i, i + len(op), op, ws)
        self._error(i, f"unexpected character {c!r}")
        return i + 1

    def _lex_word(self, i: int, ws: bool) -> int:
        m = _ALNUM_RE.match(self.src, i)
        assert m is not None
        word = m.group()
        if word[0].isdigit():
            value = parse_int(word)
            if value is not None:
                return self._add(INT, i, m.end(), value, ws)
        return self._add(ID, i, m.end(), word, ws)

    def _lex_pv(self, i: int, ws: bool) -> int:
        try:
            spec, end = scan_pv(self.src, i)
        except PVSyntaxError as exc:
            self._error(exc.offset, exc.reason)
            m = _ID_RE.match(self.src, i + 1)
            return m.end() if m else i + 1
        return self._add(PV, i, end, spec, ws)

    def _lex_sq_string(self, i: int, ws: bool) -> int:
        end = string_end(self.src, i)
        if end < 0:
            self._error(i, "unterminated string")
            return len(self.src)
        return self._add(STR, i, end, self._subst(i, self.src[i + 1 : end - 1]), ws)

    def _lex_dq_string(self, i: int, ws: bool) -> int:
        """A ``"..."`` literal, joined with directly following ``"..."`` ones."""
        src = self.src
        parts: list[str] = []
        j = i
        end = i
        while True:
            end = string_end(src, j)
            if end < 0:
                self._error(j, "unterminated string")
                return len(src)
            parts.append(decode_string(src[j + 1 : end - 1]))
            k = end
            while k < len(src) and src[k] in " \t\r\n\b":
                k += 1
            if k < len(src) and src[k] == '"' and not self.map.crosses_boundary(end - 1, k):
                j = k
                continue
            break
        return self._add(STR, i, end, self._subst(i, "".join(parts)), ws)

    def _subst(self, offset: int, value: str) -> str:
        chunk = self.map.chunk_at(offset)
        if chunk is not None:
            for rule in chunk.substs:
                value = rule(value)
        return value


def tokenize(chunks: Sequence[Chunk], default_file: str = "<string>") -> list[Token]:
    """Lex preprocessed chunks; raises :class:`CfgError`/``CfgErrors`` on errors."""
    lexer = Lexer(chunks, default_file)
    tokens = lexer.run()
    raise_errors(lexer.errors)
    return tokens


def tokenize_text(text: str, filename: str = "<string>") -> list[Token]:
    """Lex raw text (no preprocessing), mainly for tests and tools."""
    return tokenize([Chunk(text, filename)] if text else [], filename)
