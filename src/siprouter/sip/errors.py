"""Typed SIP parse errors.

Every error carries ``status`` (the SIP status a server could answer with, or
``None`` when the message must simply be dropped) and a short ``reason``.
Each class states its default status in ``default_status``.
"""

from __future__ import annotations

from typing import ClassVar


class SipError(Exception):
    """Root of all SIP errors raised by the message layer."""

    default_status: ClassVar[int | None] = None

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status: int | None = status if status is not None else self.default_status


class ParseError(SipError):
    """The bytes are not a SIP message (or a header of it does not parse)."""

    default_status: ClassVar[int | None] = 400


class StartLineError(ParseError):
    """Bad request line or status line: the datagram is dropped."""

    default_status: ClassVar[int | None] = None


class HeaderError(ParseError):
    """A header line or a header value does not parse."""


class UriError(ParseError):
    """A URI does not parse."""


class DuplicateHeaderError(HeaderError):
    """A header that may appear only once appears several times."""


class ContentLengthError(HeaderError):
    """Content-Length announces more octets than the message holds."""
