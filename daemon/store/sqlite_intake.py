"""The SQLite job store's intake side: files seen, jobs queued once per key, and the output name each job holds.

A job is keyed by (sha256 of the content, style set, hash of the effective parameters, generation),
so the same photo with the same style is processed once, whatever its name and however often it is
dropped or the daemon restarted; `redo` adds a job of the next generation. Each job holds its own
output path: no two jobs share one.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from typing import Iterable

from daemon.store.records import Job, JobSpec
from daemon.store.sqlite_connection import SqliteConnection


class SqliteIntake(SqliteConnection):
    """What the watcher (and a worker moving a job to another copy of its photo) asks of the store."""

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

    def file_records(self) -> list[tuple[str, int, int, str, float]]:
        """Every (path, size, mtime_ns, sha, seen) the intake remembers (for moving the job store elsewhere)."""
        return [tuple(r) for r in self._db.execute("SELECT path, size, mtime_ns, sha, seen FROM files")]
