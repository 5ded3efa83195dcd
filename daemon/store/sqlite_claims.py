"""The SQLite job store's worker side: claiming a job and recording how its run ended.

One machine: a claim lasts until the job ends or the service restarts (it never lapses), so the
write lock alone keeps two workers from claiming one job, and recover() hands back the jobs of
workers that are gone.
"""

from __future__ import annotations

import contextlib
import time

from daemon.store.records import Job
from daemon.store.sqlite_connection import SqliteConnection


class SqliteClaims(SqliteConnection):
    """Claim, progress and the outcomes of a job (done, failed, retried, re-queued, dropped)."""

    def claim(self, worker: str) -> Job | None:
        """Atomically take the oldest runnable queued job, or None."""
        now = time.time()
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state='queued' AND next_attempt<=? ORDER BY id LIMIT 1", (now,)
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, started=?, updated=?, worker=?, "
                "heartbeat=?, progress_iteration=0, progress_total=NULL, progress_loss=NULL, "
                "progress_eta=NULL WHERE id=?",
                (now, now, worker, now, row["id"]),
            )
            return self._get(db, row["id"])

    def progress(self, job_id: int, iteration: int, total: int, loss: float, eta: float) -> None:
        """Record the running job's progress (also its heartbeat)."""
        self._db.execute(
            "UPDATE jobs SET progress_iteration=?, progress_total=?, progress_loss=?, progress_eta=?, "
            "heartbeat=? WHERE id=? AND state='running'",
            (iteration, total, loss, eta, time.time(), job_id),
        )

    def renew(self, job_id: int) -> None:
        """One machine: a claim lasts until the job ends or the service restarts, nothing to extend."""

    def finish(self, job_id: int, seconds: float, output_path: str | None = None) -> None:
        """Mark a job done; output_path is the name the result was published under, if not the reserved one."""
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET state='done', finished=?, updated=?, seconds=?, error=NULL, "
                       "worker=NULL, output_path=COALESCE(?, output_path) WHERE id=?",
                       (now, now, seconds, output_path, job_id))

    def fail(self, job_id: int, error: str) -> None:
        """Mark a job failed for good."""
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET state='failed', finished=?, updated=?, error=?, worker=NULL "
                       "WHERE id=?", (now, now, error, job_id))

    def retry_later(self, job_id: int, error: str, delay: float, count_attempt: bool = True) -> None:
        """Put a job back in the queue after a transient failure, not before `delay` seconds.

        count_attempt=False gives the attempt back: the environment failed, not the photo.
        """
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET state='queued', updated=?, error=?, next_attempt=?, worker=NULL, "
                       "attempts=MAX(attempts-?, 0) WHERE id=?",
                       (now, error, now + delay, 0 if count_attempt else 1, job_id))

    def requeue(self, job_id: int) -> None:
        """Return an interrupted job to the queue without counting the attempt."""
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), updated=?, "
                       "worker=NULL WHERE id=? AND state='running'", (now, job_id))

    def drop(self, job_id: int) -> None:
        """Forget a queued job whose input disappeared (a new file makes a new job)."""
        with self._write() as db:
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def recover(self, alive: set[str] | None = None) -> int:
        """Re-queue jobs left 'running' by workers that are gone (crash, kill -9); returns how many."""
        alive = alive or set()
        now = time.time()
        with self._write() as db:
            rows = db.execute("SELECT id, worker FROM jobs WHERE state='running'").fetchall()
            stale = [r["id"] for r in rows if r["worker"] not in alive]
            for job_id in stale:
                db.execute("UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), updated=?, "
                           "worker=NULL WHERE id=?", (now, job_id))
        return len(stale)

    def running_of(self, worker: str) -> list[Job]:
        """Running jobs claimed by `worker`."""
        rows = self._db.execute("SELECT * FROM jobs WHERE state='running' AND worker=?", (worker,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def claim_machine(self) -> None:
        """Nothing to hold: the state folder's lock keeps a second service off this job store."""

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """One machine: the callers' own file locks suffice."""
        return contextlib.nullcontext()
