"""The PostgreSQL job store's intake side: files seen, jobs queued once per key, and each job's output name.

Jobs are keyed like SQLite's (content, style set, parameters, generation); intake inserts with ON CONFLICT
DO NOTHING. Output names are reserved under one advisory lock, so two machines never hand one name to two
jobs. Paths are stored relative to named roots (input, output...), since mounts differ.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

import psycopg

from daemon.store.pg_connection import PgConnection
from daemon.store.pg_schema import JOB_COLUMNS, NOW
from daemon.store.records import Job, JobSpec

_INTAKE_LOCK = 0x5D1  # serialises output-name reservation across machines (transaction advisory lock)


class PgIntake(PgConnection):
    """What the watcher (and a worker moving a job to another copy of its photo) asks of the store."""

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
                                f"source_path=%s, rel_path=%s, updated={NOW} WHERE id=%s RETURNING {JOB_COLUMNS}",
                                (source, spec.rel_path, latest["id"])).fetchone()
                return self._job(row)
            generation = max((r["generation"] for r in rows), default=-1) + 1
            output = self._free_output(c, itertools.chain([spec.output_path], names))
            row = c.execute(
                f"INSERT INTO jobs (content_sha, style_set, params_hash, generation, source_path, rel_path, "
                f"output_path, created, updated) VALUES (%s, %s, %s, %s, %s, %s, %s, {NOW}, {NOW}) "
                f"ON CONFLICT DO NOTHING RETURNING {JOB_COLUMNS}",
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
            f"RETURNING {JOB_COLUMNS}",
            (spec.content_sha, spec.style_set, spec.params_hash, generation, source, spec.rel_path, output,
             finished, finished, finished, seconds))
        return self._job(row)

    def import_records(self, jobs: list[Job], files: list[tuple[str, int, int, str, float]]) -> int:
        """Copy another store's jobs (running ones as queued) and file records; returns the jobs added."""
        columns = [c.strip() for c in JOB_COLUMNS.split(",") if c.strip() not in ("id", "machine", "lease_expires")]
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

    def _imported(self, job: Job, column: str) -> Any:
        value = getattr(job, column)
        if column in ("source_path", "output_path"):
            return self.roots.stored(value)
        if job.state == "running" and column in ("state", "worker"):
            return "queued" if column == "state" else None  # its worker is gone with the old job store
        return value

    def copies_of(self, content_sha: str) -> list[str]:
        """Paths last seen holding this content, oldest record first."""
        rows = self._all("SELECT path FROM files WHERE sha=%s ORDER BY seen", (content_sha,))
        return [self.roots.absolute(r["path"]) for r in rows]

    def job_for_output(self, output_path: str) -> Job | None:
        """The job holding this output path, if any."""
        return self._job(self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE output_path=%s",
                                   (self.roots.stored(output_path),)))

    def move_source(self, job_id: int, source_path: str, rel_path: str, names: Iterable[str]) -> Job | None:
        """Run a job from another copy of its content; its output becomes the first free of `names`."""
        names = _Replayable(names)
        source = self.roots.stored(source_path)

        def work(c: psycopg.Connection) -> dict | None:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (_INTAKE_LOCK,))
                output = self._free_output(c, names, own=job_id)
                return c.execute(f"UPDATE jobs SET source_path=%s, rel_path=%s, output_path=%s, updated={NOW} "
                                 f"WHERE id=%s RETURNING {JOB_COLUMNS}", (source, rel_path, output, job_id)).fetchone()

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
