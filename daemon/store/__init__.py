"""The job store: one interface (JobStore) and its implementations; today SQLite, one file per machine."""

from __future__ import annotations

from pathlib import Path

from daemon.store.protocol import JobStore
from daemon.store.records import Counts, Job, JobSpec, State, WorkerRecord, worker_id
from daemon.store.sqlite import SqliteStore

__all__ = ["Counts", "Job", "JobSpec", "JobStore", "SqliteStore", "State", "WorkerRecord",
           "open_store", "worker_id"]


def open_store(location: Path, readonly: bool = False) -> JobStore:
    """Open the job store at `location` (the SQLite journal file)."""
    return SqliteStore(location, readonly=readonly)
