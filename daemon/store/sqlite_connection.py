"""One process's connection to the SQLite job store: what the intake, claim and reading parts share."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from daemon.store.records import Job
from daemon.store.sqlite_schema import open_database, write_transaction


class SqliteConnection:
    """The open file (each process, supervisor, worker or status, opens its own) and its write lock."""

    machine = ""  # one machine: the state folder's lock already keeps a second service out

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self._db, self.schema = open_database(self.path, readonly)  # schema: the versions before and after

    @property
    def where(self) -> str:
        """The store as messages name it: its file."""
        return str(self.path)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._db)

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job | None:
        row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job(**dict(row)) if row else None
