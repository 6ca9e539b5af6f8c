"""Errors raised by the cfg front end (preprocessor, lexer, parser)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class _HasPos(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def col(self) -> int: ...


class CfgError(Exception):
    """A config error at a source position; ``str()`` is ``FILE:LINE:COL: reason``."""

    def __init__(self, file: str, line: int, col: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.reason = reason
        super().__init__(self._format())

    @classmethod
    def at(cls, pos: _HasPos, reason: str) -> CfgError:
        """Build an error located at ``pos`` (anything with file/line/col)."""
        return cls(pos.file, pos.line, pos.col, reason)

    def _format(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.reason}"

    def __str__(self) -> str:
        return self._format()


class CfgErrors(CfgError):
    """Several config errors at once.

    It is a :class:`CfgError` itself (located at the first error), so callers
    can catch ``CfgError`` alone; checkers read :attr:`errors` to report all.
    ``str()`` is one ``FILE:LINE:COL: reason`` line per error.
    """

    def __init__(self, errors: Iterable[CfgError]) -> None:
        self.errors: list[CfgError] = list(errors)
        if not self.errors:
            raise ValueError("CfgErrors needs at least one error")
        first = self.errors[0]
        super().__init__(first.file, first.line, first.col, first.reason)

    def _format(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def raise_errors(errors: list[CfgError]) -> None:
    """Raise nothing, the single error, or a :class:`CfgErrors` for several."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CfgErrors(errors)
