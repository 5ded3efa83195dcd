"""The PostgreSQL job store: several machines on one shared folder, each photo stylised once by one of them.

Jobs are keyed like SQLite's (content, style set, parameters, generation); intake inserts with ON CONFLICT
DO NOTHING. A claim is a lease (a token and an expiry on the database's clock) taken with FOR UPDATE SKIP
LOCKED; only its holder may renew, finish, fail or re-queue the job, and a lapsed lease makes the job
claimable again. Paths are stored relative to named roots (input, output...), since mounts differ.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
import uuid
import zlib
from typing import Any, Callable, Iterable, Iterator

import psycopg
from psycopg.rows import dict_row

from daemon.errors import ConfigError, JournalUnreachable, LeaseLost
from daemon.store.pg_errors import connect_error
from daemon.store.records import Counts, Job, JobSpec, State, StoreTarget, WorkerRecord
from daemon.store.pg_schema import JOB_COLUMNS as _JOB_COLUMNS, SCHEMA as _SCHEMA
from daemon.store.roots import RootMap

log = logging.getLogger(__name__)

NOW = "extract(epoch from clock_timestamp())::float8"  # the database's clock, the same for every machine
_INTAKE_LOCK = 0x5D1  # serialises output-name reservation across machines (transaction advisory lock)
_SCHEMA_LOCK = 0x5D0
_RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)

class PostgresStore:
    """A connection to the shared PostgreSQL job store; each process opens its own."""

    def __init__(self, target: StoreTarget, readonly: bool = False,
                 give_up: Callable[[], bool] | None = None) -> None:
        self._give_up = give_up or (lambda: False)
        self.url = target.location
        self.machine = target.machine
        self.lease_seconds = float(target.lease_seconds)
        self.max_attempts = target.max_attempts
        self.roots = RootMap(target.roots)
        self._leases: dict[int, str] = {}  # job id -> the token of this object's claim
        self._machine_held = False
        self._conn = self._connect()
        if readonly:
            self._check_access()
        else:
            self._create_schema()

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)
        except psycopg.Error as exc:
            raise connect_error(self.url, exc) from None

    def _create_schema(self) -> None:
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                self._conn.execute(_SCHEMA)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise connect_error(self.url, exc) from None

    def _check_access(self) -> None:
        """Writing nothing, make sure this user could run the service (check-config, status)."""
        row = self._conn.execute(
            "SELECT CASE WHEN to_regclass('jobs') IS NULL THEN has_schema_privilege('public', 'CREATE') "
            "ELSE has_table_privilege('jobs', 'SELECT,INSERT,UPDATE,DELETE') END AS ok").fetchone()
        if not row["ok"]:
            raise connect_error(self.url, psycopg.errors.InsufficientPrivilege("permission denied for the job tables"))
        if self._conn.execute("SELECT to_regclass('jobs') AS t").fetchone()["t"] is None:
            self._create_schema()  # empty tables, so that status can read before any service started

    def _call(self, work: Callable[[psycopg.Connection], Any]) -> Any:
        """Run `work`; when the server goes away, wait (saying so once), reconnect and run it again."""
        try:
            return work(self._conn)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            if not (self._conn.closed or self._conn.broken):
                raise
        began = time.monotonic()
        log.warning("journal database %s is unreachable; waiting and reconnecting (jobs stay as they are)",
                    _where(self.url))
        for attempt in _attempts():
            time.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])
            if self._give_up():  # asked to stop: running jobs keep their lease, which lapses for others
                raise JournalUnreachable(f"journal database {_where(self.url)} still unreachable; stopping "
                                         "without waiting for it (this machine's running jobs are taken over "
                                         "once their lease lapses)")
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)
                if self._machine_held:
                    self._take_machine()
                result = work(self._conn)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                continue
            log.info("journal database %s reachable again after %.1fs; going on", _where(self.url),
                     time.monotonic() - began)
            return result
        raise AssertionError("unreachable")

    def _one(self, sql: str, params: tuple = ()) -> dict | None:
        return self._call(lambda c: c.execute(sql, params).fetchone())

    def _all(self, sql: str, params: tuple = ()) -> list[dict]:
        return self._call(lambda c: c.execute(sql, params).fetchall())

    def _job(self, row: dict | None) -> Job | None:
        if row is None:
            return None
        row = dict(row)
        row["source_path"] = self.roots.absolute(row["source_path"])
        row["output_path"] = self.roots.absolute(row["output_path"])
        return Job(**row)

    def _jobs(self, rows: list[dict]) -> list[Job]:
        return [self._job(r) for r in rows]

    def close(self) -> None:
        """Close the connection (a held machine name is released with it)."""
        self._conn.close()

    # -- the watcher's side -------------------------------------------------------------

    def known_file(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The sha256 recorded for this exact (path, size, mtime), or None."""
        row = self._one("SELECT sha FROM files WHERE path=%s AND size=%s AND mtime_ns=%s",
                        (self.roots.stored(path), size, mtime_ns))
        return row["sha"] if row else None

    def remember_file(self, path: str, size: int, mtime_ns: int, sha: str) -> None:
        """Record that `path` with this size and mtime has content `sha`."""
        self._one(f"INSERT INTO files (path, size, mtime_ns, sha, seen) VALUES (%s, %s, %s, %s, {NOW}) "
                  "ON CONFLICT (path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                  "sha=excluded.sha, seen=excluded.seen RETURNING path", (self.roots.stored(path), size, mtime_ns, sha))

    def forget_file(self, path: str) -> None:
        """Drop the record of a path."""
        self._call(lambda c: c.execute("DELETE FROM files WHERE path=%s", (self.roots.stored(path),)))

    def enqueue(self, spec: JobSpec, retry_failed: bool = False, names: Iterable[str] = (),
                redo: bool = False) -> Job | None:
        """Add a job unless its (content, style set) has one (always with redo); output: first free name."""
        names = _Replayable(names)  # the work may run again after a reconnect; names may be endless
        return self._call(lambda c: self._enqueue(c, spec, retry_failed, names, redo))

    def _enqueue(self, c: psycopg.Connection, spec: JobSpec, retry_failed: bool, names: Iterable[str],
                 redo: bool) -> Job | None:
        source = self.roots.stored(spec.source_path)
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_INTAKE_LOCK,))
            rows = c.execute("SELECT id, state, generation FROM jobs WHERE content_sha=%s AND style_set=%s "
                             "ORDER BY generation DESC, id DESC", (spec.content_sha, spec.style_set)).fetchall()
            if rows and not redo:
                latest = rows[0]
                if not (retry_failed and latest["state"] == "failed"):
                    return None
                row = c.execute(f"UPDATE jobs SET state='queued', attempts=0, error=NULL, next_attempt=0, "
                                f"source_path=%s, rel_path=%s, updated={NOW} WHERE id=%s RETURNING {_JOB_COLUMNS}",
                                (source, spec.rel_path, latest["id"])).fetchone()
                return self._job(row)
            generation = max((r["generation"] for r in rows), default=-1) + 1
            output = self._free_output(c, itertools.chain([spec.output_path], names))
            row = c.execute(
                f"INSERT INTO jobs (content_sha, style_set, params_hash, generation, source_path, rel_path, "
                f"output_path, created, updated) VALUES (%s, %s, %s, %s, %s, %s, %s, {NOW}, {NOW}) "
                f"ON CONFLICT DO NOTHING RETURNING {_JOB_COLUMNS}",
                (spec.content_sha, spec.style_set, spec.params_hash, generation, source, spec.rel_path, output),
            ).fetchone()
            return self._job(row)

    def _free_output(self, c: psycopg.Connection, names: Iterable[str], own: int | None = None) -> str:
        """The first of `names` (stored form) no other job holds; callers hold the intake lock."""
        for name in names:
            stored = self.roots.stored(name)
            row = c.execute("SELECT id FROM jobs WHERE output_path=%s AND id IS DISTINCT FROM %s",
                            (stored, own)).fetchone()
            if row is None:
                return stored
        raise ValueError("no free output name offered")

    def adopt(self, spec: JobSpec, generation: int, finished: float, seconds: float | None) -> Job | None:
        """Record a result found on disk as done; None if its key or output is already known."""
        output, source = self.roots.stored(spec.output_path), self.roots.stored(spec.source_path)
        row = self._one(
            f"INSERT INTO jobs (content_sha, style_set, params_hash, generation, source_path, rel_path, "
            f"output_path, state, attempts, created, updated, finished, seconds) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, 'done', 1, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
            f"RETURNING {_JOB_COLUMNS}",
            (spec.content_sha, spec.style_set, spec.params_hash, generation, source, spec.rel_path, output,
             finished, finished, finished, seconds))
        return self._job(row)

    def import_records(self, jobs: list[Job], files: list[tuple[str, int, int, str, float]]) -> int:
        """Copy another store's jobs (running ones as queued) and file records; returns the jobs added."""
        columns = [c.strip() for c in _JOB_COLUMNS.split(",") if c.strip() not in ("id", "machine", "lease_expires")]
        rows = [tuple(self._imported(job, c) for c in columns) for job in jobs]
        sql = (f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
               "ON CONFLICT DO NOTHING")

        def work(c: psycopg.Connection) -> int:
            with c.transaction():
                before = c.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"]
                with c.cursor() as cursor:
                    cursor.executemany(sql, rows)
                    cursor.executemany("INSERT INTO files (path, size, mtime_ns, sha, seen) VALUES (%s, %s, %s, %s, %s) "
                                       "ON CONFLICT DO NOTHING",
                                       [(self.roots.stored(p), *rest) for p, *rest in files])
                return c.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] - before

        return self._call(work)

    def _imported(self, job: Job, column: str):
        value = getattr(job, column)
        if column in ("source_path", "output_path"):
            return self.roots.stored(value)
        if job.state == "running" and column in ("state", "worker"):
            return "queued" if column == "state" else None  # its worker is gone with the old journal
        return value

    def copies_of(self, content_sha: str) -> list[str]:
        """Paths last seen holding this content, oldest record first."""
        rows = self._all("SELECT path FROM files WHERE sha=%s ORDER BY seen", (content_sha,))
        return [self.roots.absolute(r["path"]) for r in rows]

    def job_for_output(self, output_path: str) -> Job | None:
        """The job holding this output path, if any."""
        return self._job(self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE output_path=%s",
                                   (self.roots.stored(output_path),)))

    # -- the workers' side --------------------------------------------------------------

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
                f"progress_total=NULL, progress_loss=NULL, progress_eta=NULL WHERE id=%s RETURNING {_JOB_COLUMNS}",
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

    def move_source(self, job_id: int, source_path: str, rel_path: str, names: Iterable[str]) -> Job | None:
        """Run a job from another copy of its content; its output becomes the first free of `names`."""
        names = _Replayable(names)
        source = self.roots.stored(source_path)

        def work(c: psycopg.Connection) -> dict | None:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (_INTAKE_LOCK,))
                output = self._free_output(c, names, own=job_id)
                return c.execute(f"UPDATE jobs SET source_path=%s, rel_path=%s, output_path=%s, updated={NOW} "
                                 f"WHERE id=%s RETURNING {_JOB_COLUMNS}", (source, rel_path, output, job_id)).fetchone()

        return self._job(self._call(work))

    def reparam(self, job_id: int, params_hash: str) -> None:
        """Record that a queued job runs with the current parameters (in a generation of its own)."""
        def work(c: psycopg.Connection) -> None:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (_INTAKE_LOCK,))
                c.execute("UPDATE jobs SET params_hash=%s, generation=(SELECT MAX(j.generation)+1 FROM jobs j "
                          f"WHERE j.content_sha=jobs.content_sha AND j.style_set=jobs.style_set), updated={NOW} "
                          "WHERE id=%s", (params_hash, job_id))

        self._call(work)

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
        return self._jobs(self._all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state='running' AND machine=%s "
                                    "AND worker=%s", (self.machine, worker)))

    def claim_machine(self) -> None:
        """Hold this machine's name for the service's lifetime (a session advisory lock)."""
        self._machine_held = True
        self._call(lambda c: self._take_machine())

    def _take_machine(self) -> None:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok",
                                 (1, _key(self.machine))).fetchone()
        if not row["ok"]:
            self._machine_held = False
            raise ConfigError(f"another service already runs as machine {self.machine!r} on {_where(self.url)}; "
                              "give each service its own `machine:` name in its config")

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A lock every machine respects (a session advisory lock on its own short connection)."""
        with self._side_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (2, _key(name)))
            yield

    def _side_connection(self) -> psycopg.Connection:
        """A second connection (for a session lock); while the server is away, wait like every other call."""
        for attempt in range(20):
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError:
                self._call(lambda c: c.execute("SELECT 1"))  # notices the outage, says so once, waits it out
                time.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])
        raise JournalUnreachable(f"journal database {_where(self.url)}: cannot open another connection "
                                 "(max_connections reached?); raise the server's max_connections")

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
        return self._job(self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=%s", (job_id,)))

    def jobs(self, state: State | None = None, limit: int = 1000) -> list[Job]:
        """Jobs, newest first, optionally of one state."""
        if state is None:
            return self._jobs(self._all(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT %s", (limit,)))
        return self._jobs(self._all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state=%s ORDER BY id DESC LIMIT %s",
                                    (state, limit)))

    def jobs_for_source(self, source_path: str) -> list[Job]:
        """Every job whose input is (or was last seen at) `source_path`."""
        return self._jobs(self._all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE source_path=%s",
                                    (self.roots.stored(source_path),)))

    def jobs_for_content(self, content_sha: str) -> list[Job]:
        """Every job of one content hash."""
        return self._jobs(self._all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE content_sha=%s", (content_sha,)))

    def counts(self) -> Counts:
        """How many jobs are in each state."""
        rows = self._all("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return Counts(**{r["state"]: r["n"] for r in rows})

    def pending(self) -> int:
        """Queued plus running jobs."""
        counts = self.counts()
        return counts.queued + counts.running


def _attempts() -> Iterator[int]:
    attempt = 0
    while True:
        yield attempt
        attempt += 1


class _Replayable:
    """An iterable that can be iterated again from the start, drawing lazily on one (maybe endless) iterator."""

    def __init__(self, items: Iterable[str]) -> None:
        self._source = iter(items)
        self._seen: list[str] = []

    def __iter__(self) -> Iterator[str]:
        yield from self._seen
        for item in self._source:
            self._seen.append(item)
            yield item


def _key(name: str) -> int:
    """A stable signed 32-bit key for an advisory lock."""
    return zlib.crc32(name.encode("utf-8")) - 2**31


def _where(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable URL)"
    host = info.get("host") or "localhost"
    return f"{host}/{info.get('dbname', '')}"
