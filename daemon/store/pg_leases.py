"""The PostgreSQL job store's worker side: a claim is a lease, and only its holder may end the job.

A claim takes the oldest runnable job (or one whose lease lapsed) with FOR UPDATE SKIP LOCKED and gives
it a token and an expiry on the database's clock; progress renews it. Renew, finish, fail, retry_later
and requeue touch the job only while this object's token still holds it, and raise LeaseLost once
another worker took it over.
"""

from __future__ import annotations

import uuid

import psycopg

from daemon.errors import LeaseLost
from daemon.store.pg_connection import PgConnection
from daemon.store.pg_schema import JOB_COLUMNS, NOW
from daemon.store.records import Job


class PgLeases(PgConnection):
    """Claim, progress and the outcomes of a job (done, failed, retried, re-queued, dropped), under a lease."""

    def claim(self, worker: str) -> Job | None:
        """Take the oldest runnable queued job, or one whose lease lapsed; the claim is a fresh lease."""
        token = uuid.uuid4().hex
        row = self._call(lambda c: self._claim(c, worker, token))
        if row is not None:
            self._leases[row["id"]] = token
        return self._job(row)

    def _claim(self, c: psycopg.Connection, worker: str, token: str) -> dict | None:
        with c.transaction():
            if self.max_attempts:  # a photo whose machine dies each time must not go round the machines forever
                c.execute(f"UPDATE jobs SET state='failed', finished={NOW}, updated={NOW}, error='the machine running "
                          "this photo (' || machine || ') stopped answering on each of ' || attempts || ' attempts; "
                          "check that machine''s log: the photo may crash it or exhaust its memory' "
                          f"WHERE state='running' AND lease_expires<{NOW} AND attempts>=%s", (self.max_attempts,))
            pick = c.execute(f"SELECT id FROM jobs WHERE state='queued' AND next_attempt<={NOW} ORDER BY id "
                             "LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
            if pick is None:
                pick = c.execute(f"SELECT id FROM jobs WHERE state='running' AND lease_expires<{NOW} "
                                 "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
            if pick is None:
                return None
            return c.execute(
                f"UPDATE jobs SET state='running', attempts=attempts+1, started={NOW}, updated={NOW}, worker=%s, "
                f"machine=%s, lease_token=%s, lease_expires={NOW}+%s, heartbeat={NOW}, progress_iteration=0, "
                f"progress_total=NULL, progress_loss=NULL, progress_eta=NULL WHERE id=%s RETURNING {JOB_COLUMNS}",
                (worker, self.machine, token, self.lease_seconds, pick["id"])).fetchone()

    def _guarded(self, job_id: int, sets: str, params: tuple, states: str = "'running'") -> bool:
        """UPDATE a job this object may touch: its own lease, or (no lease here) a job no other machine runs.

        Raises LeaseLost when this object held a lease that another worker has since taken.
        """
        token = self._leases.get(job_id)
        if token is not None:
            where, extra = f"lease_token=%s AND state IN ({states})", (token,)
        else:
            where, extra = "(state<>'running' OR machine=%s OR machine IS NULL)", (self.machine,)
        row = self._one(f"UPDATE jobs SET {sets} WHERE id=%s AND {where} RETURNING id", (*params, job_id, *extra))
        if row is None and token is not None:
            self._leases.pop(job_id, None)
            raise LeaseLost(f"job {job_id}: this worker's lease lapsed and another worker took the job")
        return row is not None

    def _release(self, job_id: int) -> None:
        self._leases.pop(job_id, None)

    def progress(self, job_id: int, iteration: int, total: int, loss: float, eta: float) -> None:
        """Record the running job's progress and renew its lease; LeaseLost if another worker took it."""
        self._guarded(job_id, f"progress_iteration=%s, progress_total=%s, progress_loss=%s, progress_eta=%s, "
                              f"heartbeat={NOW}, lease_expires={NOW}+%s",
                      (iteration, total, loss, eta, self.lease_seconds))

    def renew(self, job_id: int) -> None:
        """Extend this worker's lease (before publishing); LeaseLost if another worker took the job."""
        self._guarded(job_id, f"heartbeat={NOW}, lease_expires={NOW}+%s", (self.lease_seconds,))

    def finish(self, job_id: int, seconds: float, output_path: str | None = None) -> None:
        """Mark a job done (idempotent for its holder, so a reconnect may repeat it)."""
        output = self.roots.stored(output_path) if output_path is not None else None
        self._guarded(job_id, f"state='done', finished={NOW}, updated={NOW}, seconds=%s, error=NULL, "
                              "output_path=COALESCE(%s, output_path)", (seconds, output), "'running','done'")
        self._release(job_id)

    def fail(self, job_id: int, error: str) -> None:
        """Mark a job failed for good."""
        self._guarded(job_id, f"state='failed', finished={NOW}, updated={NOW}, error=%s", (error,),
                      "'running','failed'")
        self._release(job_id)

    def retry_later(self, job_id: int, error: str, delay: float, count_attempt: bool = True) -> None:
        """Queue a job again after a transient failure, not before `delay` seconds."""
        self._guarded(job_id, f"state='queued', updated={NOW}, error=%s, next_attempt={NOW}+%s, worker=NULL, "
                              "attempts=GREATEST(attempts-%s, 0)", (error, delay, 0 if count_attempt else 1),
                      "'running','queued'")
        self._release(job_id)

    def requeue(self, job_id: int) -> None:
        """Return an interrupted job to the queue without counting the attempt."""
        self._guarded(job_id, f"state='queued', attempts=GREATEST(attempts-1, 0), updated={NOW}, worker=NULL",
                      (), "'running','queued'")
        self._release(job_id)

    def drop(self, job_id: int) -> None:
        """Forget a job whose input disappeared (never one another machine runs)."""
        token = self._leases.pop(job_id, None)
        if token is not None:
            self._one("DELETE FROM jobs WHERE id=%s AND lease_token=%s RETURNING id", (job_id, token))
            return
        self._one("DELETE FROM jobs WHERE id=%s AND (state<>'running' OR machine=%s OR machine IS NULL) "
                  "RETURNING id", (job_id, self.machine))

    def recover(self, alive: set[str] | None = None) -> int:
        """Re-queue this machine's jobs left running by its workers not in `alive`; other machines' stay."""
        rows = self._all(
            f"UPDATE jobs SET state='queued', attempts=GREATEST(attempts-1, 0), updated={NOW}, worker=NULL, "
            "lease_token=NULL WHERE state='running' AND machine=%s AND NOT (worker = ANY(%s)) RETURNING id",
            (self.machine, sorted(alive or ())))
        return len(rows)

    def running_of(self, worker: str) -> list[Job]:
        """This machine's running jobs claimed by `worker`."""
        return self._jobs(self._all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE state='running' AND machine=%s "
                                    "AND worker=%s", (self.machine, worker)))
