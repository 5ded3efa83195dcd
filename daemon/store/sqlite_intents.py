"""The SQLite job store's intents: a side effect recorded (committed, synchronous=FULL) before it starts."""

from __future__ import annotations

import sqlite3
import time

from daemon.errors import LeaseLost
from daemon.store.records import Intent, Step
from daemon.store.sqlite_connection import SqliteConnection

_INTENTS_VERSION = 2  # the schema version that added the intents table


class SqliteIntents(SqliteConnection):
    """record_intent, clear_intent and intents; a job's intents are deleted with its row (foreign key cascade)."""

    def record_intent(self, job_id: int, step: Step, payload: str) -> int:
        """Record that `step` is about to run for `job_id`; on disk before this returns. Its id.

        LeaseLost if the job is no longer in the store (dropped): its side effect must not start.
        """
        try:
            with self._write() as db:
                cursor = db.execute("INSERT INTO intents (job_id, step, payload, created) VALUES (?, ?, ?, ?)",
                                    (job_id, step, payload, time.time()))
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" not in str(exc):
                raise
            raise LeaseLost(f"job {job_id} is no longer in the job store; its {step} step is not started") from None
        return int(cursor.lastrowid)

    def clear_intent(self, intent_id: int) -> None:
        """Forget an intent whose step finished (no error if it is already gone: reconciling may run twice)."""
        with self._write() as db:
            db.execute("DELETE FROM intents WHERE id=?", (intent_id,))

    def intents(self, job_id: int | None = None) -> list[Intent]:
        """Open intents, oldest first: one job's, or (None) all of them (one machine)."""
        if self.schema.after < _INTENTS_VERSION:  # an older file opened read-only: it cannot hold any
            return []
        if job_id is None:
            rows = self._db.execute("SELECT id, job_id, step, payload, created FROM intents ORDER BY id")
        else:
            rows = self._db.execute("SELECT id, job_id, step, payload, created FROM intents WHERE job_id=? "
                                    "ORDER BY id", (job_id,))
        return [Intent(**dict(r)) for r in rows.fetchall()]
