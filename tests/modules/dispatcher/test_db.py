"""Dispatcher lists from a database (spec/dispatcher.md §5-§6), on SQLite and a real PostgreSQL.

Every behaviour test runs on both backends: SQLite files in tmp_path and a fresh
database on the session's throwaway PostgreSQL server (the ``postgres`` fixture).
Expected lists were cross-checked against Kamailio 5.6.3 (db_sqlite/db_postgres +
``kamcmd dispatcher.list``) on the same tables.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pg import PostgresServer

from siprouter.config import loader
from siprouter.config.errors import CfgError
from siprouter.modules.dispatcher.db import (
    STANDARD_SCHEMA,
    DbSettings,
    DbSource,
    DispatcherDbError,
    create_schema,
    parse_db_url,
    parse_extra_attrs,
    read_entries,
    row_entry,
)
from siprouter.modules.dispatcher.destinations import (
    DISABLED,
    Destination,
    DispatcherList,
    DispatcherListError,
    ListEntry,
    build_list,
    parse_list_text,
)

# --------------------------------------------------------------------------- backends

_COUNTER = itertools.count()


class Db:
    """One empty database of either flavour, with a way to run SQL on it."""

    def __init__(self, flavour: str, url: str, connect: Callable[[], Any]) -> None:
        self.flavour = flavour
        self.url = url
        self._connect = connect

    def sql(self, script: str, *rows: Sequence[Any]) -> None:
        """Run ``;``-separated statements; with ``rows``, run the single statement per row."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            if rows:
                statement = script if self.flavour == "sqlite" else script.replace("?", "%s")
                for row in rows:
                    cur.execute(statement, tuple(row))
            else:
                for statement in filter(None, (s.strip() for s in script.split(";"))):
                    cur.execute(statement)
            conn.commit()
        finally:
            conn.close()

    def table(self, version: int | None, columns: str, rows: Sequence[Sequence[Any]] = (),
              *, name: str = "dispatcher") -> None:
        """A version table holding ``(name, version)`` and table ``name`` with ``rows``."""
        self.sql("CREATE TABLE version (table_name VARCHAR(32) NOT NULL, "
                 "table_version INTEGER DEFAULT 0 NOT NULL)")
        if version is not None:
            self.sql("INSERT INTO version VALUES (?, ?)", (name, version))
        self.sql(f"CREATE TABLE {name} ({columns})")
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            self.sql(f"INSERT INTO {name} VALUES ({marks})", *rows)

    def settings(self, **kwargs: Any) -> DbSettings:
        return DbSettings(self.url, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        path = tmp_path / "dispatcher.sqlite"
        sqlite3.connect(path).close()
        return Db("sqlite", f"sqlite://{path}", lambda: sqlite3.connect(path))
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"ds_{next(_COUNTER)}"
    url = server.create_database(name)
    return Db("postgres", url, lambda: server.connect(name))


V4_COLUMNS = ("id INTEGER, setid INTEGER DEFAULT 0 NOT NULL, destination VARCHAR(192), "
              "flags INTEGER, priority INTEGER, attrs VARCHAR(128), description VARCHAR(64)")


def view(dlist: DispatcherList) -> dict[int, list[tuple[str, int, int, str]]]:
    """Each set's destinations in internal order: (uri, flags, priority, attrs body)."""
    return {s.setid: [(d.uri, d.flags, d.priority, d.attrs.body) for d in s] for s in dlist}


def load_db(db: Db, **kwargs: Any) -> tuple[DispatcherList, int]:
    return DbSource(db.settings(**kwargs)).load(seed=1)


# --------------------------------------------------------------------------- standard schema


def test_standard_schema_loads_like_the_same_list_file(db: Db) -> None:
    rows = [(1, "sip:127.0.0.1:7021", 0, 0, ""), (1, "sip:127.0.0.1:7022", 0, 0, ""),
            (2, "sip:127.0.0.1:7031", 0, 5, ""), (2, "sip:127.0.0.1:7032", 0, 10, "weight=50"),
            (2, "sip:127.0.0.1:7033", 4, 0, "duid=c;maxload=20;")]
    create_schema(db.url, rows)
    dlist, skipped = load_db(db)
    assert skipped == 0
    text = "".join(f"{s} {u} {f} {p} {a}\n" for s, u, f, p, a in rows)
    assert view(dlist) == view(parse_list_text(text, seed=1))
    assert view(dlist) == {
        1: [("sip:127.0.0.1:7022", 0, 0, ""), ("sip:127.0.0.1:7021", 0, 0, "")],
        2: [("sip:127.0.0.1:7032", 0, 10, "weight=50"), ("sip:127.0.0.1:7031", 0, 5, ""),
            ("sip:127.0.0.1:7033", DISABLED, 0, "duid=c;maxload=20")],
    }
    dest = dlist.sets[2][2]
    assert (dest.attrs.duid, dest.attrs.maxload) == ("c", 20)
    assert dlist.sets[2].kamailio_weight_slots == parse_list_text(text, seed=1).sets[
        2].kamailio_weight_slots


def test_read_entries_gives_numbered_list_entries(db: Db) -> None:
    create_schema(db.url, [(3, "127.0.0.1:5080", 0, 0, "", "no scheme"),
                           (3, "sip:127.0.0.1:5081", 8, -1, "weight=5", "")])
    entries, version = read_entries(db.settings())
    assert version == 4
    assert entries == [(1, ListEntry(3, "127.0.0.1:5080")),
                       (2, ListEntry(3, "sip:127.0.0.1:5081", 8, -1, "weight=5"))]
    assert view(build_list(entries, seed=1)[0]) == {3: [("sip:127.0.0.1:5080", 0, 0, ""),
                                                       ("sip:127.0.0.1:5081", 8, -1, "weight=5")]}


def test_standard_schema_sql_is_kamailios() -> None:
    for flavour in ("sqlite", "postgres"):
        sql = STANDARD_SCHEMA[flavour]
        assert "INSERT INTO version (table_name, table_version) values ('dispatcher','4')" in sql
        for column in ("setid INTEGER DEFAULT 0 NOT NULL", "destination VARCHAR(192)",
                       "priority INTEGER DEFAULT 0 NOT NULL", "attrs VARCHAR(128)",
                       "description VARCHAR(64)"):
            assert column in sql
    assert "id SERIAL PRIMARY KEY" in STANDARD_SCHEMA["postgres"]


def test_empty_table_is_an_empty_list_with_a_warning(
        db: Db, caplog: pytest.LogCaptureFixture) -> None:
    create_schema(db.url)
    with caplog.at_level(logging.WARNING):
        dlist, skipped = load_db(db)
    assert (len(dlist), skipped) == (0, 0)
    assert "no dispatching data" in caplog.text


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(("version", "columns", "expected"), [
    (1, "setid INTEGER, destination VARCHAR(192)",
     [("sip:127.0.0.1:5071", 0, 0, ""), ("sip:127.0.0.1:5070", 0, 0, "")]),
    (2, "setid INTEGER, destination VARCHAR(192), flags INTEGER",
     [("sip:127.0.0.1:5071", 0, 0, ""), ("sip:127.0.0.1:5070", DISABLED, 0, "")]),
    (3, "setid INTEGER, destination VARCHAR(192), flags INTEGER, priority INTEGER",
     [("sip:127.0.0.1:5070", DISABLED, 7, ""), ("sip:127.0.0.1:5071", 0, -1, "")]),
    (4, "setid INTEGER, destination VARCHAR(192), flags INTEGER, priority INTEGER, "
        "attrs VARCHAR(128)",
     [("sip:127.0.0.1:5070", DISABLED, 7, "duid=a"), ("sip:127.0.0.1:5071", 0, -1, "weight=9")]),
])
def test_each_version_reads_only_its_columns(
        db: Db, version: int, columns: str, expected: list[tuple[str, int, int, str]]) -> None:
    values = [(1, "sip:127.0.0.1:5070", 4, 7, "duid=a"), (1, "sip:127.0.0.1:5071", 0, -1,
                                                           "weight=9")]
    width = columns.count(",") + 1
    db.table(version, columns, [row[:width] for row in values])
    source = DbSource(db.settings())
    dlist, skipped = source.load()
    assert (source.version, skipped) == (version, 0)
    assert view(dlist) == {1: expected}


def test_an_older_version_ignores_the_newer_columns(db: Db) -> None:
    db.table(3, V4_COLUMNS, [(1, 1, "sip:127.0.0.1:5070", 0, 2, "weight=10", "x")])
    dlist, _ = load_db(db, extra_attrs="d=description")
    assert view(dlist) == {1: [("sip:127.0.0.1:5070", 0, 2, "")]}


@pytest.mark.parametrize(("version", "found"), [(5, 5), (0, 0), (None, 0)])
def test_a_bad_table_version_fails_the_load(db: Db, version: int | None, found: int) -> None:
    db.table(version, V4_COLUMNS, [(1, 1, "sip:127.0.0.1:5070", 0, 0, "", "")])
    with pytest.raises(DispatcherDbError) as err:
        load_db(db)
    assert f"invalid version of table 'dispatcher' (found {found}, required 1, 2, 3 or 4)" in str(
        err.value)
    assert isinstance(err.value, DispatcherListError)


def test_the_version_is_looked_up_by_table_name(db: Db) -> None:
    db.table(2, "setid INTEGER, destination VARCHAR(192), flags INTEGER",
             [(9, "sip:127.0.0.1:5090", 1)], name="lb_targets")
    dlist, _ = load_db(db, table_name="lb_targets")
    assert view(dlist) == {9: [("sip:127.0.0.1:5090", 1, 0, "")]}
    with pytest.raises(DispatcherDbError, match="found 0"):
        load_db(db)  # no version row for 'dispatcher'


def test_custom_column_names(db: Db) -> None:
    db.table(4, "grp INTEGER, uri VARCHAR(192), st INTEGER, prio INTEGER, a VARCHAR(128)",
             [(4, "sip:127.0.0.1:5090", 0, 3, "duid=z")])
    dlist, _ = load_db(db, setid_col="grp", destination_col="uri", flags_col="st",
                    priority_col="prio", attrs_col="a")
    assert view(dlist) == {4: [("sip:127.0.0.1:5090", 0, 3, "duid=z")]}


# --------------------------------------------------------------------------- row conversion


def test_null_attrs_mean_no_attrs_and_null_numbers_zero(db: Db) -> None:
    db.table(4, V4_COLUMNS, [(1, 1, "sip:127.0.0.1:5070", None, None, None, None),
                             (2, 1, "sip:127.0.0.1:5071", 0, 0, "", "")])
    dlist, skipped = load_db(db)
    assert skipped == 0
    assert view(dlist) == {1: [("sip:127.0.0.1:5071", 0, 0, ""),
                               ("sip:127.0.0.1:5070", 0, 0, "")]}
    assert dlist.sets[1][1].attrs.duid == ""


def test_ds_attrs_none_gives_rows_without_attrs_none_yes(db: Db) -> None:
    db.table(4, V4_COLUMNS, [(1, 1, "sip:127.0.0.1:5070", 0, 0, None, ""),
                             (2, 1, "sip:127.0.0.1:5071", 0, 0, "duid=b", "")])
    dlist, _ = DbSource(db.settings()).load(attrs_none=True)
    assert [d.attrs.body for d in dlist.sets[1]] == ["duid=b", "none=yes"]


def test_negative_priority_sorts_after_zero(db: Db) -> None:
    create_schema(db.url, [(1, "sip:127.0.0.1:5070", 0, 0, ""),
                           (1, "sip:127.0.0.1:5071", 4, -5, ""),
                           (1, "sip:127.0.0.1:5072", 0, 3, "duid=x;")])
    dlist, _ = load_db(db)
    assert view(dlist) == {1: [("sip:127.0.0.1:5072", 0, 3, "duid=x"),
                               ("sip:127.0.0.1:5070", 0, 0, ""),
                               ("sip:127.0.0.1:5071", DISABLED, -5, "")]}


def test_rows_keep_the_order_the_query_returns(db: Db) -> None:
    create_schema(db.url, [(1, f"sip:127.0.0.1:{5070 + i}", 0, 0, "") for i in range(4)])
    dlist, _ = load_db(db)
    # equal priorities: Kamailio's internal order is the reverse of the load order
    assert [d.port for d in dlist.sets[1]] == [5073, 5072, 5071, 5070]


def test_sqlite_text_and_real_in_integer_columns_convert_like_kamailio(tmp_path: Path) -> None:
    path = tmp_path / "loose.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE version (table_name TEXT, table_version INTEGER);"
        "INSERT INTO version VALUES ('dispatcher', 4);"
        "CREATE TABLE dispatcher (setid INTEGER, destination VARCHAR(192), flags INTEGER, "
        "priority INTEGER, attrs VARCHAR(128));"
        "INSERT INTO dispatcher VALUES ('7abc', 'sip:127.0.0.1:5091', '2', 2.9, 5);")
    conn.commit()
    conn.close()
    dlist, _ = DbSource(DbSettings(f"sqlite://{path}")).load()
    assert view(dlist) == {7: [("sip:127.0.0.1:5091", 2, 2, "5")]}


# --------------------------------------------------------------------------- skipped rows

BAD_ROWS = [(1, "sip:127.0.0.1:5070", 0, 0, ""), (1, "sip:bad uri here:", 0, 0, ""),
            (2, "sip:127.0.0.1:5080", 0, 0, ""), (2, "", 0, 0, "")]


def test_bad_rows_are_skipped_with_a_warning(db: Db, caplog: pytest.LogCaptureFixture) -> None:
    create_schema(db.url, BAD_ROWS)
    with caplog.at_level(logging.WARNING):
        dlist, skipped = load_db(db)
    assert skipped == 2
    assert view(dlist) == {1: [("sip:127.0.0.1:5070", 0, 0, "")],
                           2: [("sip:127.0.0.1:5080", 0, 0, "")]}
    assert "table dispatcher row:2: bad uri [sip:bad uri here:] - skipping destination" in (
        caplog.text)
    assert "table dispatcher row:4: bad uri [] - skipping destination" in caplog.text


def test_load_mode_1_fails_the_whole_load_on_a_bad_row(db: Db) -> None:
    create_schema(db.url, BAD_ROWS)
    with pytest.raises(DispatcherListError) as err:
        load_db(db, load_mode=1)
    assert err.value.lineno == 2
    assert str(err.value).endswith(" table dispatcher row:2: bad uri [sip:bad uri here:]")


def test_null_destination_is_a_bad_row(db: Db) -> None:
    db.table(4, V4_COLUMNS, [(1, 1, None, 0, 0, "", ""), (2, 1, "sip:127.0.0.1:5070", 0, 0, "",
                                                          "")])
    dlist, skipped = load_db(db)
    assert skipped == 1 and view(dlist) == {1: [("sip:127.0.0.1:5070", 0, 0, "")]}
    with pytest.raises(DispatcherListError, match="row:1: bad uri"):
        load_db(db, load_mode=1)


def test_validate_rejections_are_skipped_rows(db: Db) -> None:
    create_schema(db.url, [(1, "sip:127.0.0.1:5070", 0, 0, "socket=udp:10.9.9.9:5060"),
                           (1, "sip:127.0.0.1:5071", 0, 0, "")])

    def local_sockets_only(dest: Destination) -> None:
        if dest.attrs.socket:
            raise ValueError(f"non-local socket <{dest.attrs.socket}>")

    dlist, skipped = DbSource(db.settings()).load(validate=local_sockets_only)
    assert skipped == 1 and view(dlist) == {1: [("sip:127.0.0.1:5071", 0, 0, "")]}
    with pytest.raises(DispatcherListError, match="row:1: non-local socket"):
        DbSource(db.settings(load_mode=1)).load(validate=local_sockets_only)


# --------------------------------------------------------------------------- extra attrs

EXTRA_COLUMNS = V4_COLUMNS + ", tag VARCHAR(64), node VARCHAR(64)"


def test_extra_attrs_are_appended_to_attrs(db: Db) -> None:
    db.table(4, EXTRA_COLUMNS, [
        (1, 1, "sip:127.0.0.1:5070", 0, 0, "weight=50", "", "blue", "n1"),
        (2, 1, "sip:127.0.0.1:5071", 0, 0, None, "", None, None),
        (3, 1, "sip:127.0.0.1:5072", 0, 0, "maxload=5;", "", "", "n3"),
        (4, 1, "sip:127.0.0.1:5073", 0, 0, "", "", "red", None),
    ])
    dlist, _ = load_db(db, extra_attrs="tg=tag;duid=node;")
    assert view(dlist) == {1: [
        ("sip:127.0.0.1:5073", 0, 0, "tg=red"),
        ("sip:127.0.0.1:5072", 0, 0, "maxload=5;duid=n3"),
        ("sip:127.0.0.1:5071", 0, 0, ""),
        ("sip:127.0.0.1:5070", 0, 0, "weight=50;tg=blue;duid=n1"),
    ]}
    dest = dlist.sets[1][3]
    assert (dest.attrs.weight, dest.attrs.duid) == (50, "n1")


def test_extra_attrs_that_overflow_the_buffer_fail_the_load(db: Db) -> None:
    db.table(4, V4_COLUMNS + ", blob VARCHAR(2000)",
             [(1, 1, "sip:127.0.0.1:5070", 0, 0, "", "", "x" * 1100)])
    with pytest.raises(DispatcherDbError, match="row 1: cannot build attrs"):
        load_db(db, extra_attrs="b=blob")


def test_missing_extra_column_is_a_clear_error(db: Db) -> None:
    create_schema(db.url, [(1, "sip:127.0.0.1:5070", 0, 0, "")])
    with pytest.raises(DispatcherDbError, match="cannot read table 'dispatcher': .*nosuch"):
        load_db(db, extra_attrs="x=nosuch")


# --------------------------------------------------------------------------- reload


def test_reload_reads_the_changed_table(db: Db) -> None:
    create_schema(db.url, [(1, "sip:127.0.0.1:5070", 0, 0, ""),
                           (1, "sip:127.0.0.1:5071", 0, 0, "")])
    source = DbSource(db.settings())
    first, _ = source.load(seed=1)
    assert view(first) == {1: [("sip:127.0.0.1:5071", 0, 0, ""), ("sip:127.0.0.1:5070", 0, 0, "")]}
    db.sql("DELETE FROM dispatcher WHERE destination = 'sip:127.0.0.1:5070'")
    db.sql("INSERT INTO dispatcher (setid, destination, flags, priority, attrs) "
           "VALUES (?, ?, ?, ?, ?)", (1, "sip:127.0.0.1:5072", 0, 9, "duid=new"),
           (2, "sip:127.0.0.1:5080", 4, 0, ""))
    # Kamailio checks the table version at start only: a reload keeps using it
    db.sql("UPDATE version SET table_version = 9 WHERE table_name = 'dispatcher'")
    second, skipped = source.load(seed=1)
    assert skipped == 0 and source.version == 4
    assert view(second) == {1: [("sip:127.0.0.1:5072", 0, 9, "duid=new"),
                                ("sip:127.0.0.1:5071", 0, 0, "")],
                            2: [("sip:127.0.0.1:5080", DISABLED, 0, "")]}
    assert view(first) == {1: [("sip:127.0.0.1:5071", 0, 0, ""), ("sip:127.0.0.1:5070", 0, 0, "")]}
    with pytest.raises(DispatcherDbError, match="found 9"):
        DbSource(db.settings()).load()  # a fresh start does check it


def test_reload_with_skipped_rows_still_returns_the_new_list(db: Db) -> None:
    create_schema(db.url, [(1, "sip:127.0.0.1:5070", 0, 0, "")])
    source = DbSource(db.settings())
    source.load()
    db.sql("INSERT INTO dispatcher (setid, destination) VALUES (?, ?)", (1, "sip:bad uri:"),
           (1, "sip:127.0.0.1:5071"))
    dlist, skipped = source.load()
    # the caller activates it and reports "Reload Failed" (spec §6 quirk)
    assert skipped == 1
    assert [d.uri for d in dlist.sets[1]] == ["sip:127.0.0.1:5071", "sip:127.0.0.1:5070"]


def test_a_failed_reload_raises_and_leaves_nothing_half_loaded(db: Db) -> None:
    create_schema(db.url, [(1, "sip:127.0.0.1:5070", 0, 0, "")])
    source = DbSource(db.settings(load_mode=1))
    before, _ = source.load()
    db.sql("INSERT INTO dispatcher (setid, destination) VALUES (?, ?)", (1, "sip:bad uri:"))
    with pytest.raises(DispatcherListError):
        source.load()
    assert view(before) == {1: [("sip:127.0.0.1:5070", 0, 0, "")]}


# --------------------------------------------------------------------------- errors


def test_missing_table_is_a_clear_error(db: Db) -> None:
    db.sql("CREATE TABLE version (table_name VARCHAR(32), table_version INTEGER)")
    db.sql("INSERT INTO version VALUES ('dispatcher', 4)")
    with pytest.raises(DispatcherDbError, match="cannot read table 'dispatcher': .*dispatcher"):
        load_db(db)


def test_missing_version_table_is_a_clear_error(db: Db) -> None:
    with pytest.raises(DispatcherDbError,
                       match="cannot read the version of table 'dispatcher' from table 'version'"):
        load_db(db)


def test_missing_sqlite_file_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite"
    with pytest.raises(DispatcherDbError, match=f"SQLite database file {path} does not exist"):
        DbSource(DbSettings(f"sqlite://{path}")).load()
    assert not path.exists()


def test_unreachable_postgres_is_a_clear_error(postgres: PostgresServer) -> None:
    url = f"postgres://{postgres.user}:{postgres.password}@127.0.0.1:1/nodb"
    with pytest.raises(DispatcherDbError) as err:
        DbSource(DbSettings(url)).load()
    text = str(err.value)
    assert text.startswith(f"postgres://{postgres.user}:***@127.0.0.1:1/nodb: "
                           "cannot connect to PostgreSQL:")
    assert "refused" in text and postgres.password not in text


def test_wrong_password_and_missing_database_are_clear_errors(postgres: PostgresServer) -> None:
    with pytest.raises(DispatcherDbError, match="password authentication failed") as err:
        DbSource(DbSettings(postgres.url("postgres").replace(postgres.password, "wrong"))).load()
    assert "wrong" not in str(err.value)
    with pytest.raises(DispatcherDbError, match='database "nodb" does not exist'):
        DbSource(DbSettings(postgres.url("nodb"))).load()


def test_postgresql_scheme_is_accepted(postgres: PostgresServer) -> None:
    url = postgres.create_database("ds_scheme")
    create_schema(url, [(1, "sip:127.0.0.1:5070", 0, 0, "")])
    dlist, _ = DbSource(DbSettings(url.replace("postgres://", "postgresql://", 1))).load()
    assert view(dlist) == {1: [("sip:127.0.0.1:5070", 0, 0, "")]}


@pytest.mark.parametrize(("name", "value"), [("table_name", "dispatcher; DROP TABLE x"),
                                             ("setid_col", "setid,destination")])
def test_names_that_are_not_identifiers_are_refused(db: Db, name: str, value: str) -> None:
    create_schema(db.url)
    with pytest.raises(DispatcherDbError, match="bad (table|column) name"):
        load_db(db, **{name: value})


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(("url", "fields"), [
    ("sqlite:///var/lib/ds.sqlite", ("sqlite", "/var/lib/ds.sqlite", "", 0, "", "")),
    ("sqlite:////var/lib/ds.sqlite", ("sqlite", "/var/lib/ds.sqlite", "", 0, "", "")),
    # Kamailio opens the part after the host relative to its working directory "/"
    ("sqlite://localhost/ds.sqlite", ("sqlite", "/ds.sqlite", "", 0, "", "")),
    ("postgres://kamailio:kamailiorw@localhost:5433/kamailio",
     ("postgres", "kamailio", "localhost", 5433, "kamailio", "kamailiorw")),
    ("postgresql://db.example.com/ds", ("postgres", "ds", "db.example.com", 0, "", "")),
    ("postgres://u:p@ss/w@[::1]:6000/ds?x=1", ("postgres", "ds", "::1", 6000, "u", "p@ss/w")),
    ("postgres://u@h/ds", ("postgres", "ds", "h", 0, "u", "")),
])
def test_parse_db_url(url: str, fields: tuple[str, str, str, int, str, str]) -> None:
    u = parse_db_url(url)
    assert (u.scheme, u.database, u.host, u.port, u.user, u.password) == fields


@pytest.mark.parametrize(("url", "reason"), [
    ("/var/lib/ds.sqlite", "bad db_url"),
    ("sqlite://", "bad db_url"),
    ("mysql://u:p@h/kamailio", "scheme 'mysql' is not supported"),
    ("postgres://u:secret@h:99999/ds", "bad port '99999'"),
    ("postgres://u:secret@h:5432/", "no database name"),
])
def test_bad_db_urls(url: str, reason: str) -> None:
    with pytest.raises(DispatcherDbError, match=reason) as err:
        parse_db_url(url)
    assert "secret" not in str(err.value)


def test_bad_db_url_fails_before_connecting() -> None:
    with pytest.raises(DispatcherDbError, match="not supported"):
        DbSource(DbSettings("mysql://u:p@h/kamailio"))


def test_parse_extra_attrs() -> None:
    assert parse_extra_attrs("") == ()
    assert parse_extra_attrs("a=") == ()  # Kamailio ignores 2 characters or less
    assert parse_extra_attrs(" tg = tag ; duid=node;") == (("tg", "tag"), ("duid", "node"))
    with pytest.raises(DispatcherDbError, match="invalid ds_db_extra_attrs entry 'tg'"):
        parse_extra_attrs("tg;duid=node")


def test_row_entry() -> None:
    assert row_entry((1, "sip:a")) == ListEntry(1, "sip:a")
    assert row_entry((None, None, None, None, None)) == ListEntry(0, "")
    assert row_entry((1, "sip:a", 0, 0, "w=1"), [("x", "cx")]) == ListEntry(1, "sip:a", 0, 0,
                                                                             "w=1")
    assert row_entry((1, "sip:a", 0, 0, "w=1", 7), [("x", "cx")]) == ListEntry(
        1, "sip:a", 0, 0, "w=1;x=7;")
    assert row_entry((b"12", b"sip:b", 1.5, "-3x", b"d=1")) == ListEntry(12, "sip:b", 1, -3,
                                                                          "d=1")


def test_read_entries_on_reload_skips_the_version_check(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'ds.sqlite'}"
    create_schema(url, [(1, "sip:127.0.0.1:5070", 0, 2, "duid=a")])
    assert read_entries(DbSettings(url)) == ([(1, ListEntry(1, "sip:127.0.0.1:5070", 0, 2,
                                                            "duid=a"))], 4)
    assert read_entries(DbSettings(url), version=1) == ([(1, ListEntry(1, "sip:127.0.0.1:5070"))],
                                                        1)


# --------------------------------------------------------------------------- through the cfg

CFG = """\
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "db_url", "{url}")
request_route {{
    if (!ds_select_dst("1", "4")) {{ sl_send_reply("503", "No backend"); exit; }}
    forward();
}}
"""


def invite(n: int) -> bytes:
    return (f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKdb{n}\r\n"
            "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
            f"Call-ID: db-{n}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_cfg_db_url_sqlite_feeds_ds_select_dst(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'ds.sqlite'}"
    create_schema(url, [(1, "sip:127.0.0.1:5071", 0, 0, ""), (1, "sip:127.0.0.1:5072", 0, 0, ""),
                        (1, "sip:127.0.0.1:5073", 4, 0, ""), (2, "sip:127.0.0.1:5080", 0, 0, "")])
    cfg = tmp_path / "db.cfg"
    cfg.write_text(CFG.format(url=url))
    router = loader.load(cfg)
    targets = set()
    for n in range(6):
        outs = router.handle(invite(n), ("127.0.0.1", 5070), ("127.0.0.1", 5060), 0.0)
        assert len(outs) == 1
        targets.add(outs[0].dst)
    # round robin over set 1's usable rows; the disabled one (flags 4) is never used
    assert targets == {("127.0.0.1", 5071), ("127.0.0.1", 5072)}


def test_cfg_db_url_with_a_bad_version_is_a_start_up_error(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'ds.sqlite'}"
    create_schema(url)
    conn = sqlite3.connect(tmp_path / "ds.sqlite")
    conn.execute("UPDATE version SET table_version = 5 WHERE table_name = 'dispatcher'")
    conn.commit()
    conn.close()
    cfg = tmp_path / "db.cfg"
    cfg.write_text(CFG.format(url=url))
    with pytest.raises(CfgError) as err:
        loader.load(cfg)
    assert str(err.value).startswith(f"{cfg}:4:")  # the db_url modparam line
    assert "invalid version of table 'dispatcher' (found 5" in str(err.value)
