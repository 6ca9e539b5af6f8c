"""The SIP message layer (sans-IO): parsing, header values, URIs, edits."""

from __future__ import annotations

from typing import Any


def speedup(name: str) -> Any:
    """A function of the optional C extension (_speedups.c), or None without it."""
    try:
        from . import _speedups
    except ImportError:
        return None
    return getattr(_speedups, name)
