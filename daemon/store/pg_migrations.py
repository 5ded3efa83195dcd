"""The PostgreSQL job store's numbered schema migrations: a schema_version table lists the versions applied.

Version 1 is the schema before versions existed (a database without schema_version is brought to it);
each later step adds what one change needs. The steps run in one transaction under an advisory lock, so
machines starting together apply each once and none sees a half-made schema. A database newer than this
code is refused, never used.
"""

from __future__ import annotations

import psycopg

from daemon.store.pg_schema import INTENTS, SCHEMA
from daemon.store.schema_versions import SchemaChange, refuse_newer

_SCHEMA_LOCK = 0x5D0  # serialises migrations across machines (session advisory lock)

VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied DOUBLE PRECISION NOT NULL DEFAULT extract(epoch from clock_timestamp())::float8
)
"""

MIGRATIONS: tuple[str, ...] = (
    SCHEMA,  # 1: the tables as they were before schema versions
    INTENTS,  # 2: the side effects recorded before they start
)
LATEST = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection) -> int | None:
    """The highest version applied; 0 for tables from before versions; None for an empty database."""
    if conn.execute("SELECT to_regclass('schema_version') AS t").fetchone()["t"] is not None:
        return conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version").fetchone()["v"]
    return 0 if conn.execute("SELECT to_regclass('jobs') AS t").fetchone()["t"] is not None else None


def check_version(conn: psycopg.Connection, where: str) -> SchemaChange:
    """For a read-only open: refuse a newer database, change nothing (an empty one counts as version 0)."""
    version = schema_version(conn) or 0
    refuse_newer(where, version, len(MIGRATIONS))
    return SchemaChange(version, version)


def upgrade(conn: psycopg.Connection, where: str, latest: int | None = None) -> SchemaChange:
    """Apply the pending steps (up to `latest`, default all) in one transaction under the lock (the connection
    is in autocommit), so machines starting together apply each step once and none sees half of one."""
    newest = len(MIGRATIONS)
    latest = newest if latest is None else latest
    current = schema_version(conn) or 0
    refuse_newer(where, current, newest)
    if current >= latest:  # the usual open: no lock, no DDL (a user without CREATE can still run)
        return SchemaChange(current, current)
    # A session lock taken BEFORE the transaction: a transaction that began and then waited for the lock would
    # look the tables up in catalog caches from before the other machine's upgrade, and repeat it.
    conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
    try:
        with conn.transaction():
            before = schema_version(conn) or 0  # another machine may have upgraded it while we waited
            refuse_newer(where, before, newest)
            conn.execute(VERSIONS)
            for version in range(before + 1, latest + 1):
                conn.execute(MIGRATIONS[version - 1])
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    finally:
        if not conn.broken:  # a lost connection took its session lock with it
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
    return SchemaChange(before, max(before, latest))
