"""Telling the job store's own faults (a full or read-only disk, I/O errors, a lost server) from other errors.

Such a fault is the environment's, not a photo's nor a bug: the service waits it out (service/store_outage.py).
"""

from __future__ import annotations

import sqlite3
import sys

from daemon.errors import StoreUnreachable

# SQLite's words for the faults of the file's disk, and what to tell the person who can fix them.
_SQLITE_CAUSES = (
    ("database or disk is full", "the job store's disk is full; free some space there"),
    ("readonly database", "the job store's folder is read-only; make it writable again"),
    ("read-only file system", "the job store's folder is read-only; make it writable again"),
    ("disk i/o error", "disk I/O error on the job store's disk; check that disk (dmesg)"),
    ("unable to open database file", "cannot open the job store's files; check the state folder's disk"),
    ("database is locked", "the job store is locked by another process for too long"),
)
_PG_CAUSE = "the job store's database server is unreachable; check that it runs"


def outage_cause(exc: BaseException) -> str | None:
    """The cause in words when `exc` (or an error it was raised from) is a fault of the store's disk or server."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # a failed ROLLBACK hides the first error
        seen.add(id(current))
        cause = _own_cause(current)
        if cause is not None:
            return cause
        current = current.__cause__ or current.__context__
    return None


def _own_cause(exc: BaseException) -> str | None:
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return next((cause for marker, cause in _SQLITE_CAUSES if marker in text), None)
    if isinstance(exc, StoreUnreachable):
        return _PG_CAUSE
    psycopg = sys.modules.get("psycopg")  # never imported: the error cannot be one of its own
    if psycopg is not None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return _PG_CAUSE
    return None
