"""The PostgreSQL job store: several machines on one shared folder, each photo stylised once by one of them.

PostgresStore is built from its parts: the connection that rides out outages and holds the session locks
(pg_connection, pg_migrations), the intake side (pg_intake), the workers' leases (pg_leases), the side
effects' intents (pg_intents) and, here, the worker rows and the reading side that status, the gallery
and the metrics use. Paths are stored relative to named roots (input, output...), since each machine mounts
the shared folders elsewhere.
"""

from __future__ import annotations

import os

from daemon.store.pg_intake import PgIntake
from daemon.store.pg_intents import PgIntents
from daemon.store.pg_leases import PgLeases
from daemon.store.pg_schema import JOB_COLUMNS, NOW
from daemon.store.records import Counts, Job, State, WorkerRecord


class PostgresStore(PgIntake, PgLeases, PgIntents):
    """A connection to the shared PostgreSQL job store; each process opens its own."""

    # -- worker rows --------------------------------------------------------------------

    def worker_state(self, worker: str, state: str, backbone: str | None = None) -> None:
        """Record a worker's state and heartbeat (under this machine's name)."""
        self._one(f"INSERT INTO workers (machine, id, pid, state, backbone, started, heartbeat) VALUES "
                  f"(%s, %s, %s, %s, %s, {NOW}, {NOW}) ON CONFLICT (machine, id) DO UPDATE SET state=excluded.state, "
                  "heartbeat=excluded.heartbeat, backbone=COALESCE(excluded.backbone, workers.backbone) RETURNING id",
                  (self.machine, worker, os.getpid(), state, backbone))

    def workers(self) -> list[WorkerRecord]:
        """Every worker row of every machine, newest first."""
        rows = self._all("SELECT id, pid, state, backbone, started, heartbeat, machine FROM workers "
                         "ORDER BY started DESC")
        return [WorkerRecord(**r) for r in rows]

    def clear_workers(self) -> None:
        """Forget this machine's worker rows (at its service's start); other machines' stay."""
        self._call(lambda c: c.execute("DELETE FROM workers WHERE machine=%s", (self.machine,)))

    # -- reading ------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        """One job by id."""
        return self._job(self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=%s", (job_id,)))

    def jobs(self, state: State | None = None, limit: int = 1000) -> list[Job]:
        """Jobs, newest first, optionally of one state."""
        if state is None:
            return self._jobs(self._all(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT %s", (limit,)))
        return self._jobs(self._all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE state=%s ORDER BY id DESC LIMIT %s",
                                    (state, limit)))

    def jobs_for_source(self, source_path: str) -> list[Job]:
        """Every job whose input is (or was last seen at) `source_path`."""
        return self._jobs(self._all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE source_path=%s",
                                    (self.roots.stored(source_path),)))

    def jobs_for_content(self, content_sha: str) -> list[Job]:
        """Every job of one content hash."""
        return self._jobs(self._all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE content_sha=%s", (content_sha,)))

    def counts(self) -> Counts:
        """How many jobs are in each state."""
        rows = self._all("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return Counts(**{r["state"]: r["n"] for r in rows})

    def pending(self) -> int:
        """Queued plus running jobs."""
        counts = self.counts()
        return counts.queued + counts.running
