"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary folder, unix socket only."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) are missing: install them with "
                "`apt-get install -y postgresql` (the README's set-up command does); these tests are never skipped")


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


class Cluster:
    """One server for a test session; each test gets a database of its own."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="sd-pg-"))
        self.data, self.socket = self.root / "data", self.root / "sock"
        self.socket.mkdir()
        self._user = None
        self._counter = itertools.count(1)
        if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
            self._user = pwd.getpwnam("postgres")
            for path in (self.root, self.socket):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["setpriv", f"--reuid={self._user.pw_uid}", f"--regid={self._user.pw_gid}", "--clear-groups",
                       *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, cwd="/")

    def start(self) -> "Cluster":
        """initdb and start; about a second and a half."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        options = f"-k {self.socket} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-m", "fast", action)

    def restart(self) -> None:
        """pg_ctl restart: every connection is cut."""
        self._ctl("restart")

    def pause(self) -> None:
        """Stop the server, keeping its data (resume() starts it again)."""
        self._ctl("stop")

    def resume(self) -> None:
        """Start the paused server."""
        self._ctl("start")

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """A postgresql:// URL over the unix socket."""
        return f"postgresql://{user}@/{database}?host={self.socket}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{next(self._counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def sql(self, url: str, query: str, params: tuple = ()) -> list[dict]:
        """Rows of one query (dicts)."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []
