"""The SQLite job store's numbered schema migrations (PRAGMA user_version), applied in place when a file opens.

Version 1 is the schema before versions existed (a file without user_version is brought to it, including
one from before generations); each later step adds what one change needs. A file newer than this code is
refused, never read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from daemon.store.schema_versions import SchemaChange, refuse_newer, statements

SCHEMA = """
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

INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, next_attempt, id);
CREATE INDEX IF NOT EXISTS jobs_content ON jobs (content_sha, style_set);
CREATE INDEX IF NOT EXISTS jobs_output ON jobs (output_path);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha);
"""

# Columns a job store written before generations existed has; its rows become generation 0.
OLD_COLUMNS = ("id, content_sha, style_set, params_hash, source_path, rel_path, output_path, state, attempts, "
               "error, created, updated, started, finished, next_attempt, worker, heartbeat, progress_iteration, "
               "progress_total, progress_loss, progress_eta, seconds")


INTENTS = """
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_job ON intents (job_id, id);
"""


def _versioned(db: sqlite3.Connection) -> None:
    """1: the tables as they were before schema versions (any earlier file is brought to them)."""
    for statement in statements(SCHEMA):
        db.execute(statement)
    _upgrade_before_generations(db)
    for statement in statements(INDEXES):
        db.execute(statement)


def _intents(db: sqlite3.Connection) -> None:
    """2: the side effects recorded before they start (AUTOINCREMENT: a cleared intent's id is never reused)."""
    for statement in statements(INTENTS):
        db.execute(statement)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_versioned, _intents)  # step N is MIGRATIONS[N-1]
LATEST = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    """The file's schema version (0: written before versions existed, or empty)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_version(db: sqlite3.Connection, path: Path) -> SchemaChange:
    """For a read-only open: refuse a newer file, change nothing."""
    version = schema_version(db)
    refuse_newer(path, version, len(MIGRATIONS))
    return SchemaChange(version, version)


def upgrade(db: sqlite3.Connection, path: Path, latest: int | None = None) -> SchemaChange:
    """Apply the pending steps (up to `latest`, default all) in one write transaction, so a crash or a second
    process starting at the same time sees the file before or after them, never half-way."""
    newest = len(MIGRATIONS)
    latest = newest if latest is None else latest
    current = schema_version(db)
    refuse_newer(path, current, newest)
    if current >= latest:
        return SchemaChange(current, current)
    db.execute("BEGIN IMMEDIATE")
    try:
        before = schema_version(db)  # another process may have upgraded it while we waited for the lock
        refuse_newer(path, before, newest)
        for version in range(before + 1, latest + 1):
            MIGRATIONS[version - 1](db)
        after = max(before, latest)
        db.execute(f"PRAGMA user_version = {after}")  # inside the transaction: atomic with the steps
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite already rolled back after a full disk or an I/O error: say that error
            db.execute("ROLLBACK")
        raise
    return SchemaChange(before, after)


def _upgrade_before_generations(db: sqlite3.Connection) -> None:
    """Give a job store from before generations the new key (SQLite cannot alter a UNIQUE constraint)."""
    if "generation" in _columns(db):
        return
    db.execute("ALTER TABLE jobs RENAME TO jobs_old")
    db.execute(SCHEMA.split("CREATE TABLE IF NOT EXISTS workers")[0].strip().removesuffix(";"))
    db.execute(f"INSERT INTO jobs ({OLD_COLUMNS}) SELECT {OLD_COLUMNS} FROM jobs_old")
    db.execute("DROP TABLE jobs_old")


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
