"""Preprocessor for Kamailio cfg files.

Handles ``#!KAMAILIO``/``#!SER``/``#!MAXCOMPAT``, ``#!define``/``#!def``,
``#!trydef``, ``#!redefine``, ``#!ifdef``/``#!ifndef``/``#!else``/``#!endif``
(nestable), ``#!subst``, ``#!substdef(s)``, ``#!(try)defenv(s)``,
``include_file``/``import_file`` and replacement of defined names used as
bare identifiers. Directives may also start with ``!!``.

The output is a list of :class:`~.lexer.Chunk` s: pieces of source text that
remember the file, line and column they come from, so the lexer can report
exact positions, also inside included files.

Like Kamailio, directives are recognised anywhere outside strings and
comments, a define's value is the raw rest of its line (re-scanned where the
name is used, so it may contain further defines), names are not replaced
inside strings, comments or PVs, and ``#!subst`` rules apply to string
literals lexed after them.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .ast import Pos
from .errors import CfgError, raise_errors
from .lexer import (
    ID_CHARS,
    ID_START,
    Chunk,
    PVSyntaxError,
    block_comment_end,
    decode_string,
    line_end,
    scan_pv,
    string_end,
)

__all__ = [
    "Chunk",
    "Preprocessed",
    "Preprocessor",
    "SubstRule",
    "preprocess_file",
    "preprocess_text",
]

MAX_INCLUDE_DEPTH = 10
MAX_EXPANSION_DEPTH = 32

# Names Kamailio 5.6.3 defines itself.
CORE_DEFINES = {"KAMAILIO_5": "", "KAMAILIO_5_6": "", "KAMAILIO_5_6_3": ""}

_DIRECTIVES = frozenset(
    "define def trydef trydefine redef redefine ifdef ifndef else endif subst substdef "
    "substdefs defenv defenvs trydefenv trydefenvs include_file import_file".split()
)
_COMPAT = frozenset({"KAMAILIO", "OPENSER", "SER", "MAXCOMPAT", "ALL"})

# Keywords of Kamailio's lexer: they are never replaced by a define.
RESERVED = frozenset(
    """
    if else switch case default while break return exit drop route request_route
    failure_route reply_route onreply_route branch_route onsend_route event_route
    and or not mod eq ne ieq ine defined strlen strempty myself
    method uri status from_uri to_uri src_ip src_port dst_ip dst_port snd_ip snd_port
    snd_proto to_proto snd_af to_af to_ip to_port proto af
    yes no true false on off enable disable udp UDP tcp TCP tls TLS sctp SCTP ws WS
    wss WSS inet INET inet6 INET6 loadmodule loadpath mpath modparam cfgengine
    include_file import_file forward forward_tcp forward_udp forward_tls forward_sctp
    setflag resetflag isflagset revert_uri force_rport add_rport log error
    debug fork children listen alias port advertise
    """.split()
)

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SKIP_RE = re.compile(r"(?:#!|!!)(?:ifdef|ifndef|else|endif)\b")
_WORD_RE = re.compile(r"[A-Za-z_]+")
_SUBST_FLAGS = frozenset("gis")


# --------------------------------------------------------------------------
# #!subst rules
# --------------------------------------------------------------------------


class SubstRule:
    """A ``/regex/replacement/flags`` rule (flags: ``g`` all, ``i`` ignore case).

    Calling the rule applies it to a string. ``\\N`` in the replacement is
    group N; ``\\`` before any other character makes it literal.
    """

    def __init__(self, spec: str) -> None:
        if len(spec) < 3 or spec[0] == "\\":
            raise ValueError(f"invalid subst expression {spec!r}")
        sep = spec[0]
        parts = _split_unescaped(spec[1:], sep)
        if len(parts) != 3:
            raise ValueError(f"invalid subst expression {spec!r}: expected {sep}re{sep}repl{sep}")
        regex, repl, flags = parts
        if set(flags) - _SUBST_FLAGS:
            raise ValueError(f"invalid subst flags {flags!r}")
        try:
            self.pattern = re.compile(regex, re.IGNORECASE if "i" in flags else 0)
        except re.error as exc:
            raise ValueError(f"bad regular expression {regex!r}: {exc}") from None
        self.spec = spec
        self.regex = regex
        self.replacement = repl
        self.count = 0 if "g" in flags else 1
        self._repl = _parse_replacement(repl)

    def __call__(self, value: str) -> str:
        return self.pattern.sub(self._expand, value, count=self.count)

    def _expand(self, m: re.Match[str]) -> str:
        out = []
        for part in self._repl:
            out.append(part if isinstance(part, str) else (m.group(part) or ""))
        return "".join(out)

    def __repr__(self) -> str:
        return f"SubstRule({self.spec!r})"


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on unescaped ``sep``; an escaped separator loses its backslash."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] == sep:
            buf.append(sep)
            i += 2
            continue
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    return parts


def _parse_replacement(repl: str) -> list[str | int]:
    parts: list[str | int] = []
    buf: list[str] = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "\\" and i + 1 < len(repl):
            nxt = repl[i + 1]
            if nxt.isdigit():
                parts.append("".join(buf))
                buf = []
                parts.append(int(nxt))
            else:
                buf.append(nxt)
            i += 2
            continue
        buf.append(c)
        i += 1
    parts.append("".join(buf))
    return [p for p in parts if p != ""]


# --------------------------------------------------------------------------
# Source helpers
# --------------------------------------------------------------------------


class _Lines:
    """Offset -> (line, col) for one source text."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def pos(self, file: str, offset: int) -> Pos:
        idx = bisect.bisect_right(self.starts, offset) - 1
        return Pos(file, idx + 1, offset - self.starts[idx] + 1)


def _directive_word(text: str, i: int) -> str | None:
    """The directive word at ``#!``/``!!`` at ``i``, if it is a known one."""
    if not (text.startswith("#!", i) or text.startswith("!!", i)):
        return None
    m = _WORD_RE.match(text, i + 2)
    if m is None:
        return None
    word = m.group()
    if word in _DIRECTIVES or (word in _COMPAT and text[i] == "#"):
        return word
    return None


def _next_word(text: str, i: int, directives: bool) -> tuple[str, int, int]:
    """Find the next identifier (or directive) outside strings, comments and PVs.

    Returns ``("word", start, end)``, ``("dir", start, start)`` or
    ``("end", n, n)``. Numbers/alphanumeric words are skipped whole so that
    ``3X`` never has ``X`` replaced.
    """
    n = len(text)
    while i < n:
        c = text[i]
        if c in "#!" and directives and _directive_word(text, i):
            return "dir", i, i
        if c == "#" or text.startswith("//", i):
            i = line_end(text, i)
        elif text.startswith("/*", i):
            end = block_comment_end(text, i)
            i = n if end < 0 else end
        elif c in "\"'":
            end = string_end(text, i)
            i = n if end < 0 else end
        elif c == "$":
            try:
                i = scan_pv(text, i)[1]
            except PVSyntaxError:
                i += 1
        elif c in ID_START:
            j = i + 1
            while j < n and text[j] in ID_CHARS:
                j += 1
            return "word", i, j
        elif c in ID_CHARS:
            while i < n and text[i] in ID_CHARS:
                i += 1
        else:
            i += 1
    return "end", n, n


def _logical_line(text: str, start: int, continuation: bool) -> tuple[str, int]:
    """Rest of the line at ``start`` (joining ``\\``-newline lines if asked).

    Returns the content and the index of the terminating newline.
    """
    parts: list[str] = []
    n = len(text)
    i = start
    while True:
        eol = line_end(text, i)
        line = text[i:eol].rstrip("\r")
        if continuation and line.endswith("\\") and eol < n:
            parts.append(line[:-1])
            i = eol + 1
            continue
        parts.append(line)
        return "".join(parts), eol


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


# --------------------------------------------------------------------------
# The preprocessor
# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Cond:
    """One open ``#!ifdef``/``#!ifndef``."""

    pos: Pos
    parent_active: bool
    value: bool
    in_else: bool = False

    @property
    def active(self) -> bool:
        return self.parent_active and (self.value != self.in_else)


@dataclass(slots=True)
class Preprocessed:
    """Result of preprocessing: chunks plus what was learnt on the way."""

    chunks: list[Chunk]
    defines: dict[str, str]
    compat: str | None = None
    files: list[str] = field(default_factory=list)
    errors: list[CfgError] = field(default_factory=list)

    def text(self) -> str:
        """The preprocessed text (positions lost), for debugging."""
        return "".join(c.text for c in self.chunks)


class Preprocessor:
    """Runs the preprocessor over one top-level file (or text).

    Errors are collected in :attr:`errors` rather than raised.
    """

    def __init__(self, defines: Mapping[str, str] | None = None, core_defines: bool = True):
        self.defines: dict[str, str] = dict(CORE_DEFINES) if core_defines else {}
        self.defines.update(defines or {})
        self.substs: tuple[SubstRule, ...] = ()
        self.chunks: list[Chunk] = []
        self.errors: list[CfgError] = []
        self.files: list[str] = []
        self.compat: str | None = None
        self._conds: list[_Cond] = []
        self._boundary = False

    # -- public entry points ---------------------------------------------

    def run_file(self, path: str) -> Preprocessed:
        """Preprocess the file at ``path``."""
        try:
            text = _read_file(path)
        except OSError as exc:
            self.errors.append(CfgError(path, 1, 1, f"cannot read config file: {exc.strerror}"))
            return self._result()
        return self.run_text(text, path)

    def run_text(self, text: str, filename: str) -> Preprocessed:
        """Preprocess ``text`` as if read from ``filename``."""
        self._process(text, filename, 0)
        for cond in self._conds:
            self.errors.append(CfgError.at(cond.pos, "missing #!endif for this #!if[n]def"))
        self._conds.clear()
        return self._result()

    def _result(self) -> Preprocessed:
        return Preprocessed(self.chunks, self.defines, self.compat, self.files, self.errors)

    # -- state helpers -----------------------------------------------------

    @property
    def _active(self) -> bool:
        return not self._conds or self._conds[-1].active

    def _error(self, pos: Pos, reason: str) -> None:
        self.errors.append(CfgError.at(pos, reason))

    def _emit(self, text: str, pos: Pos, fixed: bool = False) -> None:
        if text:
            chunk = Chunk(text, pos.file, pos.line, pos.col, fixed, self.substs, self._boundary)
            self.chunks.append(chunk)
            self._boundary = False

    # -- scanning ----------------------------------------------------------

    def _process(self, text: str, file: str, depth: int) -> None:
        """Scan one file's text, emitting chunks and handling directives."""
        self.files.append(file)
        self._boundary = True
        lines = _Lines(text)
        n = len(text)
        i = region = 0
        while i < n:
            if not self._active:
                m = _SKIP_RE.search(text, i)
                if m is None:
                    i = region = n
                    break
                i = region = self._directive(text, m.start(), file, lines, depth)
                continue
            kind, start, end = _next_word(text, i, directives=True)
            if kind == "end":
                break
            word = text[start:end]
            if kind == "word" and word == "event_route":
                # event route names (tm:local-request) are never replaced
                i = _event_name_end(text, end)
                continue
            if kind == "word" and not (
                word in ("include_file", "import_file")
                or (word in self.defines and word not in RESERVED)
            ):
                i = end
                continue
            self._emit(text[region:start], lines.pos(file, region))
            pos = lines.pos(file, start)
            if kind == "dir" or word in ("include_file", "import_file"):
                self._boundary = True
            if kind == "dir":
                i = region = self._directive(text, start, file, lines, depth)
            elif word in ("include_file", "import_file"):
                i = region = self._include(text, end, word, pos, depth)
            else:
                self._expand(self.defines[word], pos, (word,))
                i = region = end
        if self._active:
            self._emit(text[region:n], lines.pos(file, region))

    def _expand(self, value: str, pos: Pos, chain: tuple[str, ...]) -> None:
        """Emit a define's value at ``pos``, replacing defines inside it too."""
        i = region = 0
        while True:
            kind, start, end = _next_word(value, i, directives=False)
            if kind == "end":
                break
            word = value[start:end]
            if word in self.defines and word not in RESERVED:
                self._emit(value[region:start], pos, fixed=True)
                if word in chain or len(chain) >= MAX_EXPANSION_DEPTH:
                    self._error(pos, f"recursive #!define: {' -> '.join((*chain, word))}")
                else:
                    self._expand(self.defines[word], pos, (*chain, word))
                region = end
            i = end
        self._emit(value[region:], pos, fixed=True)

    # -- directives ----------------------------------------------------------

    def _directive(self, text: str, start: int, file: str, lines: _Lines, depth: int) -> int:
        """Handle the directive at ``start``; return where scanning resumes."""
        word = _directive_word(text, start)
        assert word is not None
        pos = lines.pos(file, start)
        after = start + 2 + len(word)
        if word in ("include_file", "import_file"):
            return self._include(text, after, word, pos, depth)
        rest, eol = _logical_line(text, after, continuation=word in _DEFINE_WORDS)
        if word in _COMPAT:
            if not rest.strip():
                self.compat = word
            return eol
        if word in ("ifdef", "ifndef", "else", "endif"):
            self._conditional(word, rest, pos)
        elif not self._active:
            pass
        elif word in _DEFINE_WORDS:
            self._define(word, rest, pos)
        elif word in ("subst", "substdef", "substdefs"):
            self._subst(word, rest, pos)
        else:
            self._defenv(word, rest, pos)
        return eol

    def _conditional(self, word: str, rest: str, pos: Pos) -> None:
        if word in ("ifdef", "ifndef"):
            m = _NAME_RE.match(rest.strip())
            name = m.group() if m else ""
            if not rest[:1].isspace() or not m or m.end() != len(rest.strip()):
                self._error(pos, f"#!{word} needs a single name (letters, digits, '_')")
            defined = name in self.defines
            self._conds.append(_Cond(pos, self._active, defined == (word == "ifdef")))
            return
        if rest.strip():
            self._error(pos, f"unexpected text after #!{word}: {rest.strip()!r}")
        if not self._conds:
            self._error(pos, f"#!{word} without #!ifdef or #!ifndef")
        elif word == "else":
            if self._conds[-1].in_else:
                self._error(pos, "second #!else for the same #!if[n]def")
            self._conds[-1].in_else = True
        else:
            self._conds.pop()

    def _define(self, word: str, rest: str, pos: Pos) -> None:
        m = _NAME_RE.match(rest.lstrip(" \t\b"))
        if not rest[:1].isspace() or m is None:
            self._error(pos, f"#!{word} needs a name")
            return
        name = m.group()
        value_text = rest.lstrip(" \t\b")[m.end() :]
        if value_text.startswith("-"):
            self._error(pos, f"'-' not allowed in #!{word} name '{name}'")
            return
        self._set_define(word, name, value_text.strip(" \t\b\r"), pos)

    def _set_define(self, word: str, name: str, value: str, pos: Pos) -> None:
        if name in self.defines:
            if word in ("trydef", "trydefine"):
                return
            if word not in ("redef", "redefine"):
                self._error(pos, f"'{name}' is already defined")
                return
        self.defines[name] = value

    def _subst(self, word: str, rest: str, pos: Pos) -> None:
        spec = _string_arg(rest)
        if spec is None:
            self._error(pos, f'#!{word} needs a quoted "/regex/replacement/flags" argument')
            return
        try:
            rule = SubstRule(spec)
        except ValueError as exc:
            self._error(pos, str(exc))
            return
        self.substs = (*self.substs, rule)
        if word == "subst":
            return
        if not rule.regex:
            self._error(pos, f"#!{word}: empty name")
            return
        value = rule.replacement if word == "substdef" else f'"{rule.replacement}"'
        self._set_define("define", rule.regex, value, pos)

    def _defenv(self, word: str, rest: str, pos: Pos) -> None:
        arg = rest.strip()
        m = re.fullmatch(r"(?:([A-Za-z_][A-Za-z0-9_]*)=)?([A-Za-z_][A-Za-z0-9_]*)", arg)
        if not rest[:1].isspace() or m is None:
            self._error(pos, f"#!{word} needs NAME=ENVVAR or ENVVAR")
            return
        env = m.group(2)
        name = m.group(1) or env
        value = os.environ.get(env)
        if value is None:
            if not word.startswith("try"):
                self._error(pos, f"environment variable '{env}' is not set")
            return
        if word.endswith("s"):
            value = f'"{value}"'
        self._set_define("trydef" if word.startswith("try") else "define", name, value, pos)

    # -- includes ------------------------------------------------------------

    def _include(self, text: str, i: int, word: str, pos: Pos, depth: int) -> int:
        """Handle ``include_file "path"`` whose path starts after ``i``."""
        n = len(text)
        while i < n and text[i] in " \t":
            i += 1
        end = string_end(text, i) if i < n and text[i] == '"' else -1
        if end < 0:
            self._error(pos, f"{word} needs a file name in double quotes")
            return line_end(text, i) if i < n else n
        name = decode_string(text[i + 1 : end - 1])
        for rule in self.substs:
            name = rule(name)
        if not name:
            self._error(pos, f"{word}: empty file name")
            return end
        if depth + 1 > MAX_INCLUDE_DEPTH:
            self._error(pos, f"too many nested includes (max {MAX_INCLUDE_DEPTH})")
            return end
        path = _resolve_include(name, pos.file)
        if path is None:
            if word == "include_file":
                self._error(pos, f"cannot open included file '{name}'")
            return end
        try:
            content = _read_file(path)
        except OSError as exc:
            self._error(pos, f"cannot read included file '{name}': {exc.strerror}")
            return end
        self._process(content, path, depth + 1)
        self._boundary = True
        return end


_DEFINE_WORDS = frozenset({"define", "def", "trydef", "trydefine", "redef", "redefine"})


def _event_name_end(text: str, i: int) -> int:
    """Skip ``[group:name]`` after ``event_route`` so it is copied verbatim."""
    j = i
    while j < len(text) and text[j] in " \t\r\n":
        j += 1
    if j < len(text) and text[j] == "[":
        close = text.find("]", j)
        if close > 0 and "\n" not in text[j:close]:
            return close + 1
    return i


def _string_arg(rest: str) -> str | None:
    """The single string literal that makes up ``rest``, decoded."""
    arg = rest.strip()
    if not arg or arg[0] not in "\"'" or string_end(arg, 0) != len(arg):
        return None
    return decode_string(arg[1:-1]) if arg[0] == '"' else arg[1:-1]


def _resolve_include(name: str, including: str) -> str | None:
    """Find an included file: absolute, next to the including file, then cwd."""
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    base = os.path.dirname(including)
    candidates = [os.path.join(base, name)] if base else []
    candidates.append(name)
    for cand in candidates:
        if os.path.isfile(cand):
            return cand
    return None


def preprocess_file(
    path: str, defines: Mapping[str, str] | None = None, strict: bool = True
) -> Preprocessed:
    """Preprocess a cfg file. With ``strict`` errors are raised, else returned."""
    result = Preprocessor(defines).run_file(path)
    if strict:
        raise_errors(result.errors)
    return result


def preprocess_text(
    text: str,
    filename: str = "<string>",
    defines: Mapping[str, str] | None = None,
    strict: bool = True,
) -> Preprocessed:
    """Preprocess cfg text as if read from ``filename``."""
    result = Preprocessor(defines).run_text(text, filename)
    if strict:
        raise_errors(result.errors)
    return result
