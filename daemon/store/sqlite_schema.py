"""The SQLite job store's file: its tables, how it is opened and written, and the in-place upgrade of an old file."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from daemon.store.sqlite_corruption import check_integrity

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


def open_database(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the file, check it, and (unless readonly) create or upgrade its tables; rows come as sqlite3.Row."""
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        check_integrity(db, path)
        return db
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    check_integrity(db, path)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    upgrade_before_generations(db)
    db.executescript(INDEXES)
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the write lock up front (BEGIN IMMEDIATE), so two workers never claim one job."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def upgrade_before_generations(db: sqlite3.Connection) -> None:
    """Give a job store from before generations the new key (SQLite cannot alter a UNIQUE constraint)."""
    if "generation" in _columns(db):
        return
    with write_transaction(db):
        if "generation" in _columns(db):  # another process upgraded it meanwhile
            return
        db.execute("ALTER TABLE jobs RENAME TO jobs_old")
        db.execute(SCHEMA.split("CREATE TABLE IF NOT EXISTS workers")[0].strip().removesuffix(";"))
        db.execute(f"INSERT INTO jobs ({OLD_COLUMNS}) SELECT {OLD_COLUMNS} FROM jobs_old")
        db.execute("DROP TABLE jobs_old")


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
