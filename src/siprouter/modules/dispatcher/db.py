"""Dispatcher destinations from a database: Kamailio's ``dispatcher`` table (versions 1-4).

``db_url`` takes Kamailio's forms: ``sqlite:///path/to/db.sqlite`` (standard-library
sqlite3) and ``postgres://user:pass@host:port/dbname`` (psycopg 3; ``postgresql://``
is accepted too). A load reads the ``version`` table row of ``table_name`` (1: setid
and destination, 2: + flags, 3: + priority, 4: + attrs and the ``ds_db_extra_attrs``
columns), selects those columns from every row in the order the database returns
them, and converts each row the way Kamailio 5.6 does:

* NULL numbers count as 0, priorities may be negative, NULL attrs means no attrs;
* ``ds_db_extra_attrs`` (``name=column;...``) appends ``name=value;`` for every
  non-empty extra column to the attrs;
* a row that does not give a usable destination is skipped with a warning, or,
  with ``ds_load_mode=1``, fails the whole load.

:func:`read_entries` returns ``(row number, ListEntry)`` pairs, the shape a list
file gives, and :class:`DbSource` builds the :class:`DispatcherList` from them with
the list file's ``build_list``: the dispatcher calls ``DbSource.load()`` at start
and on every reload. Kamailio reads the table version once, at start; reloads
reuse it. A database problem is a :class:`DispatcherDbError` whose message names
the database (password masked) and the reason. Each load connects and
disconnects afterwards, as Kamailio does.

The SQL for Kamailio's standard tables is here too (:data:`STANDARD_SCHEMA`), with
:func:`create_schema` to set up a database for tests and examples.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .destinations import (
    Destination,
    DispatcherList,
    DispatcherListError,
    ListEntry,
    build_list,
)

log = logging.getLogger("siprouter.dispatcher")

SUPPORTED_VERSIONS = (1, 2, 3, 4)
ATTRS_MAX = 1022  # Kamailio builds attrs + extra attrs in a 1024-byte buffer
MAX_COLUMNS = 32  # Kamailio's DS_DB_MAX_COLS
CONNECT_TIMEOUT = 5  # seconds
STATEMENT_TIMEOUT_MS = 10_000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?")
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


class DispatcherDbError(DispatcherListError):
    """A dispatcher list that cannot be loaded from the database.

    ``filename`` is the database (password masked), ``lineno`` the 1-based row
    number in query order, or 0 when the problem is not one row.
    """

    def __init__(self, reason: str, source: str, row: int = 0) -> None:
        where = f"{source}: row {row}" if row else source
        ValueError.__init__(self, f"{where}: {reason}")
        self.reason = reason
        self.filename = source
        self.lineno = row


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True, slots=True)
class DbUrl:
    """A parsed ``db_url``: ``scheme`` is ``sqlite`` or ``postgres``."""

    scheme: str
    database: str  # sqlite: the file path; postgres: the database name
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    text: str = ""

    @property
    def redacted(self) -> str:
        """The URL with its password masked, for messages."""
        return _masked(self.text, self.password)


def _masked(text: str, password: str) -> str:
    return text.replace(f":{password}@", ":***@", 1) if password else text


def parse_db_url(url: str) -> DbUrl:
    """Parse ``scheme://[user[:password]@]host[:port]/database`` as Kamailio does.

    The password runs to the last ``@`` (it may hold ``@`` and ``/``); the
    database name stops at ``?``. A SQLite path is taken from the root
    directory, as by Kamailio in its default working directory ``/``:
    ``sqlite:///var/lib/ds.sqlite`` is ``/var/lib/ds.sqlite``.
    """
    text = url.strip()
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", text, re.DOTALL)
    if m is None or "/" not in m.group(2):
        raise DispatcherDbError(
            "bad db_url: expected sqlite:///path/to/db.sqlite or "
            "postgres://user:password@host:port/dbname", text)
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "sqlite":
        database = rest.partition("/")[2].split("?", 1)[0]
        if not database:
            raise DispatcherDbError("bad db_url: no database file", text)
        return DbUrl("sqlite", os.path.join("/", database), text=text)
    if scheme not in ("postgres", "postgresql"):
        raise DispatcherDbError(
            f"db_url scheme '{m.group(1)}' is not supported (use sqlite or postgres)", text)
    userinfo, _, hostpart = rest.rpartition("@")
    user, _, password = userinfo.partition(":")
    masked = _masked(text, password)
    authority, _, database = hostpart.partition("/")
    database = database.split("?", 1)[0]
    host, port_text = authority, ""
    if authority.startswith("[") and "]" in authority:
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else tail
    elif ":" in authority:
        host, _, port_text = authority.partition(":")
    port = 0
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise DispatcherDbError(f"bad db_url: bad port '{port_text}'", masked)
        port = int(port_text)
    if not database:
        raise DispatcherDbError("bad db_url: no database name", masked)
    return DbUrl("postgres", database, host, port, user, password, text)


# --------------------------------------------------------------------------- settings


def parse_extra_attrs(
    text: str, source: str = "ds_db_extra_attrs"
) -> tuple[tuple[str, str], ...]:
    """``name=column;...`` as ``((name, column), ...)``; a value-less entry is an error.

    Like Kamailio, strings of 2 characters or less are ignored and one trailing
    ``;`` is dropped.
    """
    text = text.strip()
    if len(text) <= 2:
        return ()
    if text.endswith(";"):
        text = text[:-1]
    pairs = []
    for item in text.split(";"):
        name, _, column = item.partition("=")
        name, column = name.strip(), column.strip()
        if not name or not column:
            raise DispatcherDbError(f"invalid ds_db_extra_attrs entry '{item.strip()}' "
                                    "(expected name=column)", source)
        pairs.append((name, column))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class DbSettings:
    """The dispatcher modparams that describe a database source."""

    db_url: str
    table_name: str = "dispatcher"
    setid_col: str = "setid"
    destination_col: str = "destination"
    flags_col: str = "flags"
    priority_col: str = "priority"
    attrs_col: str = "attrs"
    extra_attrs: str = ""  # ds_db_extra_attrs
    load_mode: int = 0  # ds_load_mode

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DbSettings:
        """From the dispatcher module's ``params`` dict."""
        return cls(
            db_url=params["db_url"],
            table_name=params["table_name"],
            setid_col=params["setid_col"],
            destination_col=params["destination_col"],
            flags_col=params["flags_col"],
            priority_col=params["priority_col"],
            attrs_col=params["attrs_col"],
            extra_attrs=params["ds_db_extra_attrs"],
            load_mode=params["ds_load_mode"],
        )

    def columns(self, version: int) -> list[str]:
        """The columns a table of ``version`` is read with (Kamailio's query order)."""
        base = [self.setid_col, self.destination_col, self.flags_col, self.priority_col,
                self.attrs_col]
        columns = base[: {1: 2, 2: 3, 3: 4}.get(version, 5)]
        if version == 4:
            columns += [column for _, column in parse_extra_attrs(self.extra_attrs)]
        return columns


# --------------------------------------------------------------------------- rows


def _db_int(value: Any) -> int:
    """A number column as Kamailio reads it: NULL 0, text by its leading digits."""
    if value is None:
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, bytes | memoryview):
        value = bytes(value).decode("utf-8", "surrogateescape")
    m = _LEADING_INT.match(str(value))
    return int(m.group(1)) if m else 0


def _db_text(value: Any) -> str:
    """A text column: NULL as empty, numbers in decimal."""
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def row_entry(row: Sequence[Any], extra: Sequence[tuple[str, str]] = ()) -> ListEntry:
    """One selected row (columns as :meth:`DbSettings.columns`) as a list entry.

    A NULL destination becomes an empty URI (which then fails to load); with
    ``extra`` (the parsed ``ds_db_extra_attrs``) the columns after attrs are
    appended as ``name=value;``. ValueError when the attrs grow too long.
    """
    flags = _db_int(row[2]) if len(row) > 2 else 0
    priority = _db_int(row[3]) if len(row) > 3 else 0
    attrs = _db_text(row[4]) if len(row) > 4 else ""
    if extra and len(row) > 5:
        if attrs and not attrs.endswith(";"):
            attrs += ";"
        for (name, _), value in zip(extra, row[5:], strict=False):
            text = _db_text(value)
            if text:
                attrs += f"{name}={text};"
        if len(attrs) > ATTRS_MAX:
            raise ValueError(f"cannot build attrs: longer than {ATTRS_MAX} characters")
    return ListEntry(_db_int(row[0]), _db_text(row[1]), flags, priority, attrs)


# --------------------------------------------------------------------------- loading


def _connect(url: DbUrl) -> Any:
    """A DB-API connection; DispatcherDbError when the database is not reachable."""
    if url.scheme == "sqlite":
        if not os.path.isfile(url.database):
            raise DispatcherDbError(f"SQLite database file {url.database} does not exist",
                                    url.redacted)
        try:
            return sqlite3.connect(f"file:{quote(url.database)}?mode=ro", uri=True,
                                   timeout=CONNECT_TIMEOUT)
        except sqlite3.Error as err:
            raise DispatcherDbError(f"cannot open SQLite database {url.database}: {err}",
                                    url.redacted) from None
    import psycopg

    kwargs: dict[str, Any] = {"dbname": url.database, "connect_timeout": CONNECT_TIMEOUT,
                              "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"}
    for key, value in (("host", url.host), ("port", url.port), ("user", url.user),
                       ("password", url.password)):
        if value:
            kwargs[key] = value
    try:
        return psycopg.connect(**kwargs)
    except psycopg.Error as err:
        raise DispatcherDbError(f"cannot connect to PostgreSQL: {_first_line(err)}",
                                url.redacted) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _db_errors(url: DbUrl) -> tuple[type[Exception], ...]:
    if url.scheme == "sqlite":
        return (sqlite3.Error,)
    import psycopg

    return (psycopg.Error,)


def _identifier(name: str, what: str, source: str) -> str:
    """A table/column name as Kamailio puts it in the query: plain, unquoted."""
    if not _IDENTIFIER.fullmatch(name):
        raise DispatcherDbError(f"bad {what} name '{name}'", source)
    return name


def _fetch(conn: Any, url: DbUrl, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    if url.scheme == "postgres":
        sql = sql.replace("?", "%s")
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def read_version(conn: Any, url: DbUrl, table: str) -> int:
    """The ``version`` table's number for ``table`` (0 if it has no row)."""
    try:
        rows = _fetch(conn, url, "SELECT table_version FROM version WHERE table_name = ?",
                      (table,))
    except _db_errors(url) as err:
        raise DispatcherDbError(f"cannot read the version of table '{table}' from table "
                                f"'version': {_first_line(err)}", url.redacted) from None
    return _db_int(rows[0][0]) if rows else 0


def read_entries(
    settings: DbSettings, version: int | None = None
) -> tuple[list[tuple[int, ListEntry]], int]:
    """Connect, check the version, read every row: ``([(row number, entry)], version)``.

    The pairs are what :func:`.destinations.build_list` takes (like
    ``list_entries`` of a list file), rows numbered from 1 in query order.
    ``version`` None reads it from the ``version`` table and requires 1-4
    (Kamailio's start-up check); a reload passes the version found then.
    """
    url = parse_db_url(settings.db_url)
    source = url.redacted
    table = _identifier(settings.table_name, "table", source)
    extra = parse_extra_attrs(settings.extra_attrs, source)
    conn = _connect(url)
    try:
        if version is None:
            version = read_version(conn, url, settings.table_name)
            if version not in SUPPORTED_VERSIONS:
                raise DispatcherDbError(
                    f"invalid version of table '{table}' (found {version}, required 1, 2, 3 "
                    "or 4)", source)
        columns = [_identifier(c, "column", source) for c in settings.columns(version)]
        if len(columns) > MAX_COLUMNS:
            raise DispatcherDbError(f"too many db columns: {len(columns)}", source)
        try:
            rows = _fetch(conn, url, f"SELECT {', '.join(columns)} FROM {table}")
        except _db_errors(url) as err:
            raise DispatcherDbError(f"cannot read table '{table}': {_first_line(err)}",
                                    source) from None
    finally:
        conn.close()
    if not rows:
        log.warning("%s: no dispatching data in table '%s' -- empty destination set",
                    source, table)
    entries = []
    extra_used = extra if version == 4 else ()
    for number, row in enumerate(rows, start=1):
        try:
            entries.append((number, row_entry(row, extra_used)))
        except ValueError as err:  # Kamailio fails the whole load here
            raise DispatcherDbError(str(err), source, number) from None
    return entries, version


class DbSource:
    """The dispatcher's database source: what module init and every reload call.

    The first :meth:`load` checks the table version (1-4) and keeps it; later
    loads reuse it, as Kamailio does. A bad ``db_url`` or ``ds_db_extra_attrs``
    fails at construction, before any connection.
    """

    def __init__(self, settings: DbSettings) -> None:
        url = parse_db_url(settings.db_url)
        parse_extra_attrs(settings.extra_attrs, url.redacted)
        self.settings = settings
        self.version: int | None = None
        #: what warnings and errors about one row start with (``LABEL:ROW: ...``)
        self.label = f"{url.redacted} table {settings.table_name} row"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DbSource:
        """From the dispatcher module's ``params`` dict."""
        return cls(DbSettings.from_params(params))

    def load(
        self,
        *,
        seed: int | None = None,
        validate: Callable[[Destination], None] | None = None,
        attrs_none: bool = False,
    ) -> tuple[DispatcherList, int]:
        """``(new list, skipped rows)``, built like a list file's (``build_list``).

        A row whose destination does not load (bad or NULL URI, host too long,
        ``validate`` raising ValueError) is skipped with a warning, or, with
        ``ds_load_mode=1``, fails the load. Raises DispatcherListError (a
        DispatcherDbError for database problems) when nothing can be loaded.
        At start skipped rows are only warnings; on a reload Kamailio activates
        the new list but reports failure when rows were skipped.
        """
        entries, version = read_entries(self.settings, self.version)
        self.version = version
        return build_list(entries, self.label, strict=self.settings.load_mode == 1, seed=seed,
                          validate=validate, attrs_none=attrs_none)


# --------------------------------------------------------------------------- schema

VERSION_TABLE_SQL = {
    "sqlite": """\
CREATE TABLE version (
    id INTEGER PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) values ('version','1');
""",
    "postgres": """\
CREATE TABLE version (
    id SERIAL PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) values ('version','1');
""",
}

DISPATCHER_TABLE_SQL = {
    "sqlite": """\
CREATE TABLE dispatcher (
    id INTEGER PRIMARY KEY NOT NULL,
    setid INTEGER DEFAULT 0 NOT NULL,
    destination VARCHAR(192) DEFAULT '' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    priority INTEGER DEFAULT 0 NOT NULL,
    attrs VARCHAR(128) DEFAULT '' NOT NULL,
    description VARCHAR(64) DEFAULT '' NOT NULL
);
INSERT INTO version (table_name, table_version) values ('dispatcher','4');
""",
    "postgres": """\
CREATE TABLE dispatcher (
    id SERIAL PRIMARY KEY NOT NULL,
    setid INTEGER DEFAULT 0 NOT NULL,
    destination VARCHAR(192) DEFAULT '' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    priority INTEGER DEFAULT 0 NOT NULL,
    attrs VARCHAR(128) DEFAULT '' NOT NULL,
    description VARCHAR(64) DEFAULT '' NOT NULL
);
INSERT INTO version (table_name, table_version) values ('dispatcher','4');
""",
}

#: Kamailio's standard ``version`` and ``dispatcher`` tables (kamctl's
#: standard-create.sql + dispatcher-create.sql), per flavour.
STANDARD_SCHEMA = {flavour: VERSION_TABLE_SQL[flavour] + DISPATCHER_TABLE_SQL[flavour]
                   for flavour in ("sqlite", "postgres")}


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def create_schema(
    db_url: str,
    rows: Iterable[Sequence[Any]] = (),
    *,
    version_table: bool = True,
) -> None:
    """Create Kamailio's standard tables in the database of ``db_url`` and add ``rows``.

    ``rows`` are ``(setid, destination, flags, priority, attrs[, description])``.
    A SQLite file is created if missing. ``version_table=False`` only adds the
    ``dispatcher`` table (and its version row) to an existing ``version`` table.
    """
    url = parse_db_url(db_url)
    flavour = url.scheme
    script = (VERSION_TABLE_SQL[flavour] if version_table else "") + DISPATCHER_TABLE_SQL[flavour]
    if flavour == "sqlite":
        conn: Any = sqlite3.connect(url.database)
    else:
        conn = _connect(url)
    try:
        cur = conn.cursor()
        for statement in _statements(script):
            cur.execute(statement)
        mark = "?" if flavour == "sqlite" else "%s"
        for row in rows:
            names = ["setid", "destination", "flags", "priority", "attrs", "description"]
            names = names[: len(row)]
            cur.execute(f"INSERT INTO dispatcher ({', '.join(names)}) VALUES "
                        f"({', '.join([mark] * len(row))})", tuple(row))
        conn.commit()
    finally:
        conn.close()
