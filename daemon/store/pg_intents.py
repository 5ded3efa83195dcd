"""The PostgreSQL job store's intents: a side effect recorded (committed) before it starts, under this machine's name.

Any machine may read a job's intents (a worker that takes over a dead machine's job reconciles them);
intents(None) lists this machine's own, for its start-up and its dead workers.
"""

from __future__ import annotations

import uuid

import psycopg

from daemon.errors import LeaseLost
from daemon.store.pg_connection import PgConnection
from daemon.store.pg_schema import NOW
from daemon.store.records import Intent, Step

_INTENTS_VERSION = 2  # the schema version that added the intents table
_COLUMNS = "id, job_id, step, payload, created, machine"


class PgIntents(PgConnection):
    """record_intent, clear_intent and intents; a job's intents are deleted with its row (ON DELETE CASCADE)."""

    def record_intent(self, job_id: int, step: Step, payload: str) -> int:
        """Record that `step` is about to run for `job_id`, committed before this returns; its id.

        LeaseLost if the job is no longer in the store (dropped): its side effect must not start.
        """
        token = uuid.uuid4().hex  # the same for every try: a repeat after a reconnect finds the first row
        try:
            row = self._one(f"INSERT INTO intents (job_id, step, payload, created, machine, token) VALUES "
                            f"(%s, %s, %s, {NOW}, %s, %s) ON CONFLICT (token) DO UPDATE SET token=excluded.token "
                            "RETURNING id", (job_id, step, payload, self.machine, token))
        except psycopg.errors.ForeignKeyViolation:
            raise LeaseLost(f"job {job_id} is no longer in the job store; its {step} step is not started") from None
        return int(row["id"])

    def clear_intent(self, intent_id: int) -> None:
        """Forget an intent whose step finished (no error if it is already gone: reconciling may run twice)."""
        self._call(lambda c: c.execute("DELETE FROM intents WHERE id=%s", (intent_id,)))

    def intents(self, job_id: int | None = None) -> list[Intent]:
        """Open intents, oldest first: one job's (whichever machine recorded them), or (None) this machine's."""
        if self.schema.after < _INTENTS_VERSION:  # an older database opened read-only: it cannot hold any
            return []
        if job_id is None:
            rows = self._all(f"SELECT {_COLUMNS} FROM intents WHERE machine=%s ORDER BY id", (self.machine,))
        else:
            rows = self._all(f"SELECT {_COLUMNS} FROM intents WHERE job_id=%s ORDER BY id", (job_id,))
        return [Intent(**r) for r in rows]
