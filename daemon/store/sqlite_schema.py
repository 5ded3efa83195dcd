"""The SQLite job store's file: how it is opened (checked, brought to the newest schema) and written."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from daemon.store.schema_versions import SchemaChange
from daemon.store.sqlite_corruption import check_integrity
from daemon.store.sqlite_migrations import check_version, upgrade


def open_database(path: Path, readonly: bool = False) -> tuple[sqlite3.Connection, SchemaChange]:
    """Open the file, check it, and (unless readonly) apply its pending migrations; rows come as sqlite3.Row."""
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        check_integrity(db, path)
        return db, check_version(db, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    check_integrity(db, path)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # a commit (an intent above all) is on disk before it returns
    db.execute("PRAGMA foreign_keys=ON")  # a job's intents go with it (ON DELETE CASCADE)
    return db, upgrade(db, path)


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the write lock up front (BEGIN IMMEDIATE), so two workers never claim one job."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite already rolled back after a full disk or an I/O error: say that error
            db.execute("ROLLBACK")
        raise
