"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temp dir.

The cluster listens on 127.0.0.1:``SIPROUTER_PG_PORT`` (default 55432) with
password authentication over TCP, and on a unix socket inside its own temp dir.
PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` user the Debian package creates. Missing binaries are an error
(:class:`PostgresUnavailable`), never a reason to skip.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

PG_PORT = int(os.environ.get("SIPROUTER_PG_PORT", "55432"))
SUPERUSER = "siprouter"
PASSWORD = "siprouter-test"
INSTALL_HINT = ("install the Debian package 'postgresql' (bash scripts/test.sh does) "
                "or point SIPROUTER_PG_BINDIR at the directory holding initdb and pg_ctl")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server cannot be found or started."""


def find_bindir() -> Path:
    """The directory with ``initdb``/``pg_ctl`` (env, Debian layout, pg_config, PATH)."""
    env = os.environ.get("SIPROUTER_PG_BINDIR")
    candidates: list[Path] = [Path(env)] if env else []

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found: "
                              f"{INSTALL_HINT}")


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PostgresServer:
    """One throwaway cluster; :meth:`start` it, :meth:`stop` it (removes the temp dir)."""

    def __init__(self, bindir: Path, port: int = PG_PORT) -> None:
        self.bindir = bindir
        self.port = port
        self.host = "127.0.0.1"
        self.user = SUPERUSER
        self.password = PASSWORD
        parent = Path(tempfile.gettempdir())
        if os.geteuid() == 0 and not parent.stat().st_mode & 0o001:
            parent = Path("/tmp")  # the postgres user must be able to reach the cluster
        self.base = Path(tempfile.mkdtemp(prefix="siprouter-pg-", dir=parent))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log = self.base / "server.log"
        self._run_as: str | None = None
        self.running = False

    # ------------------------------------------------------------ process control
    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs.update(user=self._run_as, group=pwd.getpwnam(self._run_as).pw_gid,
                          extra_groups=[])
        return subprocess.run(list(args), capture_output=True, text=True, cwd=self.base,
                              timeout=120, **kwargs)

    def _check(self, what: str, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{what} failed (exit {result.returncode}): {result.stderr.strip()}\n{log}")

    def start(self) -> None:
        """initdb a new cluster and start it; PostgresUnavailable with the reason."""
        if _port_in_use(self.port):
            raise PostgresUnavailable(
                f"TCP port {self.port} is already in use (a PostgreSQL left over from an "
                "earlier run?): stop it or set SIPROUTER_PG_PORT")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root needs the 'postgres' system user to run the server: "
                    + INSTALL_HINT) from None
            self._run_as = "postgres"
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        self.base.chmod(0o700)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        self.socket_dir.mkdir()
        if self._run_as is not None:
            owner = pwd.getpwnam(self._run_as)
            for path in (pwfile, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._check("initdb", self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
            f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--no-sync"))
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._check("pg_ctl start", self._run(
            str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.log), "-o", options))
        self.running = True

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and remove its directory."""
        try:
            if self.running:
                self._run(str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "immediate",
                          "-D", str(self.data))
                self.running = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------ databases
    def url(self, dbname: str, scheme: str = "postgres") -> str:
        """Kamailio-style ``postgres://user:pass@host:port/dbname``."""
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> Any:
        """An autocommit psycopg connection to ``dbname`` over TCP."""
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, dbname=dbname, autocommit=True,
                               connect_timeout=10)

    def create_database(self, dbname: str) -> str:
        """(Re)create an empty database; returns its URL."""
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)


def start_postgres() -> PostgresServer:
    """Find the binaries and start a server; PostgresUnavailable says why not."""
    server = PostgresServer(find_bindir())
    atexit.register(server.stop)  # also when the session ends without fixture teardown
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
