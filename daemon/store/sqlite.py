"""The SQLite job store: one file (WAL) that the watcher fills and the workers drain, crash-safely.

A job is keyed by (sha256 of the content, style set, hash of the effective parameters, generation),
so the same photo with the same style is processed once, whatever its name and however often it is
dropped or the daemon restarted; `redo` adds a job of the next generation. Each job holds its own
output path: no two jobs share one.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator

from daemon.errors import JournalError, journal_corrupt_message
from daemon.store.records import Counts, Job, JobSpec, State, WorkerRecord

# "no such table": every open creates the tables, so a table missing later means the file was damaged.
_CORRUPT_MARKERS = ("malformed", "not a database", "disk image", "corrupt", "no such table")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    content_sha TEXT NOT NULL,
    style_set TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    source_path TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    output_path TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL,
    next_attempt REAL NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat REAL,
    progress_iteration INTEGER,
    progress_total INTEGER,
    progress_loss REAL,
    progress_eta REAL,
    seconds REAL,
    generation INTEGER NOT NULL DEFAULT 0,
    UNIQUE (content_sha, style_set, params_hash, generation)
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    state TEXT NOT NULL,
    backbone TEXT,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha TEXT NOT NULL,
    seen REAL NOT NULL
);
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, next_attempt, id);
CREATE INDEX IF NOT EXISTS jobs_content ON jobs (content_sha, style_set);
CREATE INDEX IF NOT EXISTS jobs_output ON jobs (output_path);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha);
"""

# Columns a journal written before generations existed has; its rows become generation 0.
_OLD_COLUMNS = ("id, content_sha, style_set, params_hash, source_path, rel_path, output_path, state, attempts, "
                "error, created, updated, started, finished, next_attempt, worker, heartbeat, progress_iteration, "
                "progress_total, progress_loss, progress_eta, seconds")


def _corruption_guarded(method):
    """Turn SQLite's corruption errors into one JournalError line; other errors pass unchanged."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not any(marker in str(exc) for marker in _CORRUPT_MARKERS):
                raise
            raise JournalError(journal_corrupt_message(self.path, str(exc))) from None

    return guarded


def _guard_public_methods(cls):
    for name, value in list(vars(cls).items()):
        if callable(value) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _corruption_guarded(value))
    return cls


@_guard_public_methods
class SqliteStore:
    """A connection to the SQLite journal; each process (supervisor, worker, status) opens its own."""

    machine = ""  # one machine: the state folder's lock already keeps a second service out

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._check_integrity()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._check_integrity()
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.executescript(_INDEXES)

    def _migrate(self) -> None:
        """Give a journal from before generations the new key (SQLite cannot alter a UNIQUE constraint)."""
        if "generation" in self._columns():
            return
        with self._write() as db:
            if "generation" in self._columns():  # another process migrated it meanwhile
                return
            db.execute("ALTER TABLE jobs RENAME TO jobs_old")
            db.execute(_SCHEMA.split("CREATE TABLE IF NOT EXISTS workers")[0].strip().removesuffix(";"))
            db.execute(f"INSERT INTO jobs ({_OLD_COLUMNS}) SELECT {_OLD_COLUMNS} FROM jobs_old")
            db.execute("DROP TABLE jobs_old")

    def _columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}

    def _check_integrity(self) -> None:
        # A corrupt file must stop us at open with one clear line, not later in the middle of a job.
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise JournalError(journal_corrupt_message(self.path, f"quick_check: {result}"))

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two workers never claim one job.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- the watcher's side -------------------------------------------------------------

    def known_file(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The sha256 recorded for this exact (path, size, mtime), or None if it is new or changed."""
        row = self._db.execute(
            "SELECT sha FROM files WHERE path=? AND size=? AND mtime_ns=?", (path, size, mtime_ns)
        ).fetchone()
        return row["sha"] if row else None

    def remember_file(self, path: str, size: int, mtime_ns: int, sha: str) -> None:
        """Record that `path` with this size and mtime has content `sha`."""
        with self._write() as db:
            db.execute(
                "INSERT INTO files (path, size, mtime_ns, sha, seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                "sha=excluded.sha, seen=excluded.seen",
                (path, size, mtime_ns, sha, time.time()),
            )

    def forget_file(self, path: str) -> None:
        """Drop the record of a path (it was moved or deleted)."""
        with self._write() as db:
            db.execute("DELETE FROM files WHERE path=?", (path,))

    def enqueue(self, spec: JobSpec, retry_failed: bool = False, names: Iterable[str] = (),
                redo: bool = False) -> Job | None:
        """Add a job unless this (content, style set) has one; returns it if new (or re-queued), else None.

        With redo, always add one (the next generation). Its output is spec.output_path, or the first
        of `names` when another job holds that path. retry_failed re-queues the latest job if it failed.
        """
        now = time.time()
        with self._write() as db:
            rows = db.execute("SELECT * FROM jobs WHERE content_sha=? AND style_set=? ORDER BY generation DESC, "
                              "id DESC", (spec.content_sha, spec.style_set)).fetchall()
            if rows and not redo:
                latest = rows[0]
                if not (retry_failed and latest["state"] == "failed"):
                    return None
                db.execute("UPDATE jobs SET state='queued', attempts=0, error=NULL, next_attempt=0, "
                           "source_path=?, rel_path=?, updated=? WHERE id=?",
                           (spec.source_path, spec.rel_path, now, latest["id"]))
                return self._get(db, latest["id"])
            generation = max((r["generation"] for r in rows), default=-1) + 1
            output = self._free_output(db, itertools.chain([spec.output_path], names))  # names may be endless
            cursor = db.execute(
                "INSERT INTO jobs (content_sha, style_set, params_hash, generation, source_path, rel_path, "
                "output_path, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (spec.content_sha, spec.style_set, spec.params_hash, generation, spec.source_path,
                 spec.rel_path, output, now, now),
            )
            return self._get(db, cursor.lastrowid)

    def _free_output(self, db: sqlite3.Connection, names: Iterable[str], own: int | None = None) -> str:
        """The first of `names` no other job holds (checked under the write lock, so race-free)."""
        for name in names:
            row = db.execute("SELECT id FROM jobs WHERE output_path=? AND id IS NOT ?", (name, own)).fetchone()
            if row is None:
                return name
        raise ValueError("no free output name offered")

    def adopt(self, spec: JobSpec, generation: int, finished: float, seconds: float | None) -> Job | None:
        """Record a result found on disk as a done job; None if its key or its output is already known."""
        with self._write() as db:
            known = db.execute(
                "SELECT id FROM jobs WHERE output_path=? OR (content_sha=? AND style_set=? AND params_hash=? "
                "AND generation=?)", (spec.output_path, spec.content_sha, spec.style_set, spec.params_hash,
                                      generation)).fetchone()
            if known is not None:
                return None
            cursor = db.execute(
                "INSERT INTO jobs (content_sha, style_set, params_hash, generation, source_path, rel_path, "
                "output_path, state, attempts, created, updated, finished, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'done', 1, ?, ?, ?, ?)",
                (spec.content_sha, spec.style_set, spec.params_hash, generation, spec.source_path, spec.rel_path,
                 spec.output_path, finished, finished, finished, seconds),
            )
            return self._get(db, cursor.lastrowid)

    def copies_of(self, content_sha: str) -> list[str]:
        """Paths last seen holding this content (the files table), oldest record first."""
        rows = self._db.execute("SELECT path FROM files WHERE sha=? ORDER BY seen", (content_sha,)).fetchall()
        return [r["path"] for r in rows]

    def job_for_output(self, output_path: str) -> Job | None:
        """The job holding this output path, if any."""
        row = self._db.execute("SELECT * FROM jobs WHERE output_path=? ORDER BY id LIMIT 1",
                               (output_path,)).fetchone()
        return Job(**dict(row)) if row else None

    # -- the workers' side --------------------------------------------------------------

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

    def move_source(self, job_id: int, source_path: str, rel_path: str, names: Iterable[str]) -> Job | None:
        """Run a job from another copy of its content; its output becomes the first free of `names`."""
        with self._write() as db:
            output = self._free_output(db, names, own=job_id)
            db.execute("UPDATE jobs SET source_path=?, rel_path=?, output_path=?, updated=? WHERE id=?",
                       (source_path, rel_path, output, time.time(), job_id))
            return self._get(db, job_id)

    def reparam(self, job_id: int, params_hash: str) -> None:
        """A queued job runs with the current parameters: record their hash (in a generation of its own)."""
        with self._write() as db:
            row = db.execute("SELECT content_sha, style_set FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return
            top = db.execute("SELECT MAX(generation) FROM jobs WHERE content_sha=? AND style_set=?",
                             (row["content_sha"], row["style_set"])).fetchone()[0]
            db.execute("UPDATE jobs SET params_hash=?, generation=?, updated=? WHERE id=?",
                       (params_hash, (top or 0) + 1, time.time(), job_id))

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
        """Nothing to hold: the state folder's lock keeps a second service off this journal."""

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """One machine: the callers' own file locks suffice."""
        return contextlib.nullcontext()

    def file_records(self) -> list[tuple[str, int, int, str, float]]:
        """Every (path, size, mtime_ns, sha, seen) the intake remembers (for moving the journal elsewhere)."""
        return [tuple(r) for r in self._db.execute("SELECT path, size, mtime_ns, sha, seen FROM files")]

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

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job | None:
        row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job(**dict(row)) if row else None

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

