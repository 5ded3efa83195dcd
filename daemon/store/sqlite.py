"""The SQLite job store: one file (WAL) that the watcher fills and the workers drain, crash-safely.

SqliteStore is built from its parts: the file (sqlite_schema, sqlite_migrations, sqlite_connection), the
intake side (sqlite_intake), the workers' claims (sqlite_claims), the side effects' intents (sqlite_intents)
and, here, the worker rows and the reading side that status, the gallery and the metrics use. Every public
method turns a damaged file into one StoreCorrupt line (sqlite_corruption).
"""

from __future__ import annotations

import os
import time

from daemon.store.records import Counts, Job, State, WorkerRecord
from daemon.store.sqlite_claims import SqliteClaims
from daemon.store.sqlite_corruption import guard_public_methods
from daemon.store.sqlite_intake import SqliteIntake
from daemon.store.sqlite_intents import SqliteIntents


@guard_public_methods
class SqliteStore(SqliteIntake, SqliteClaims, SqliteIntents):
    """A connection to the SQLite job store; each process (supervisor, worker, status) opens its own."""

    # -- worker rows --------------------------------------------------------------------

    def worker_state(self, worker: str, state: str, backbone: str | None = None) -> None:
        """Record a worker's state (starting, ready, busy, stopped) and heartbeat."""
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO workers (id, pid, state, backbone, started, heartbeat) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET state=excluded.state, heartbeat=excluded.heartbeat, "
                "backbone=COALESCE(excluded.backbone, workers.backbone)",
                (worker, os.getpid(), state, backbone, now, now),
            )

    def workers(self) -> list[WorkerRecord]:
        """Every worker row, newest first."""
        rows = self._db.execute("SELECT * FROM workers ORDER BY started DESC").fetchall()
        return [WorkerRecord(**dict(r)) for r in rows]

    def clear_workers(self) -> None:
        """Forget worker rows (at supervisor start: none of them can be alive)."""
        with self._write() as db:
            db.execute("DELETE FROM workers")

    # -- reading ------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        """One job by id."""
        return self._get(self._db, job_id)

    def jobs(self, state: State | None = None, limit: int = 1000) -> list[Job]:
        """Jobs, newest first, optionally of one state."""
        if state is None:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.execute("SELECT * FROM jobs WHERE state=? ORDER BY id DESC LIMIT ?", (state, limit))
        return [Job(**dict(r)) for r in rows.fetchall()]

    def jobs_for_source(self, source_path: str) -> list[Job]:
        """Every job whose input is (or was last seen at) `source_path`."""
        rows = self._db.execute("SELECT * FROM jobs WHERE source_path=?", (source_path,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def jobs_for_content(self, content_sha: str) -> list[Job]:
        """Every job of one content hash."""
        rows = self._db.execute("SELECT * FROM jobs WHERE content_sha=?", (content_sha,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def counts(self) -> Counts:
        """How many jobs are in each state."""
        rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return Counts(**{r["state"]: r["n"] for r in rows})

    def pending(self) -> int:
        """Queued plus running jobs."""
        counts = self.counts()
        return counts.queued + counts.running
