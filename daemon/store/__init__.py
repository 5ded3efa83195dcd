"""The job store: one interface (JobStore) and two implementations, SQLite (one machine) and PostgreSQL (several)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from daemon.store.protocol import JobStore
from daemon.store.records import Counts, Intent, Job, JobSpec, State, Step, StoreTarget, WorkerRecord, worker_id
from daemon.store.sqlite import SqliteStore

__all__ = ["Counts", "Intent", "Job", "JobSpec", "JobStore", "SqliteStore", "State", "Step", "StoreTarget", "WorkerRecord",
           "open_store", "worker_id"]


def open_store(location: Path | StoreTarget, readonly: bool = False,
               give_up: Callable[[], bool] | None = None) -> JobStore:
    """Open the job store: a SQLite file (a path), or what a StoreTarget names (SQLite or PostgreSQL).

    give_up: asked while a shared store's server is away; True stops the wait (raising StoreUnreachable).
    """
    if isinstance(location, StoreTarget):
        if not location.shared:
            return SqliteStore(Path(location.location), readonly=readonly)
        try:
            from daemon.store.postgres import PostgresStore  # psycopg is an optional extra: imported only here
        except ImportError:
            from daemon.errors import ConfigError

            raise ConfigError("store: a postgresql:// job store needs psycopg; install it with "
                              "pip install 'style-daemon[postgres]'") from None

        return PostgresStore(location, readonly=readonly, give_up=give_up)
    return SqliteStore(location, readonly=readonly)
