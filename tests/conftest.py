"""Shared fixtures: where ../shared is, free ports, a running siprouter process, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import PostgresServer, PostgresUnavailable, start_postgres

ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The project's ../shared folder (override with SIPROUTER_SHARED)."""
    env = os.environ.get("SIPROUTER_SHARED")
    return Path(env) if env else ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.fail(f"shared folder not found at {path} (set SIPROUTER_SHARED)")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """The corpus-driven tests need ../shared: refuse to run (not skip) without it."""
    path = shared_dir()
    if not (path / "conformance" / "cases").is_dir() or not (path / "rfc4475").is_dir():
        raise pytest.UsageError(
            f"the project's shared folder was not found at {path}: "
            "check it out next to this repository or set SIPROUTER_SHARED")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (tests/pg.py) for the session: missing is an error, not a skip."""
    try:
        server = start_postgres()
    except PostgresUnavailable as err:
        reason = str(err)
    else:
        yield server
        server.stop()
        return
    pytest.fail(f"these tests need a PostgreSQL server: {reason}", pytrace=False)
