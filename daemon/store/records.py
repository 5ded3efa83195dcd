"""The job store's records: what intake asks for, what a job row holds, counts and worker rows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

State = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True)
class JobSpec:
    """What the watcher asks for: one (content, style set) pair."""

    content_sha: str
    style_set: str
    params_hash: str
    source_path: str
    rel_path: str
    output_path: str


@dataclass(frozen=True, kw_only=True)
class Job(JobSpec):
    """A row of the job store: the spec plus its state and bookkeeping."""

    id: int
    state: State
    attempts: int
    error: str | None
    created: float
    updated: float
    started: float | None
    finished: float | None
    next_attempt: float
    worker: str | None
    heartbeat: float | None
    progress_iteration: int | None
    progress_total: int | None
    progress_loss: float | None
    progress_eta: float | None
    seconds: float | None
    generation: int = 0  # 0 for the first job of a (content, style set); redo adds the next
    machine: str | None = None  # the machine whose worker runs it (shared stores only)
    lease_expires: float | None = None  # when that worker's claim lapses (database clock; shared stores only)


Step = Literal["publish", "release", "fail"]


@dataclass(frozen=True)
class Intent:
    """A file-system side effect a worker is about to make for a job, recorded in the store before it starts.

    The payload is the step's own JSON record (what reconciliation needs to finish or undo the step); an
    intent is cleared once the files are in their final state, so one left behind marks an interrupted step.
    """

    id: int
    job_id: int
    step: Step
    payload: str
    created: float
    machine: str | None = None  # the machine that recorded it (shared stores only)


@dataclass(frozen=True)
class Counts:
    """Jobs by state."""

    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0


@dataclass(frozen=True)
class WorkerRecord:
    """A worker process as the store last heard of it."""

    id: str
    pid: int
    state: str
    backbone: str | None
    started: float
    heartbeat: float
    machine: str | None = None  # shared stores only


@dataclass(frozen=True)
class StoreTarget:
    """Where the job store is and how this machine sees it: its roots map stored relative paths to its own."""

    location: str  # a postgresql:// URL, or the SQLite file
    roots: dict[str, str] = field(default_factory=dict)  # name -> this machine's folder (text form)
    machine: str = ""
    lease_seconds: float = 30.0
    max_attempts: int = 0  # a shared store fails a job whose lease lapsed on this many attempts (0: never)

    @property
    def shared(self) -> bool:
        """True for a PostgreSQL URL (several machines), False for a SQLite file."""
        return self.location.startswith(("postgresql://", "postgres://"))


def worker_id(index: int, pid: int | None = None) -> str:
    """A worker's identity in the job store: index and pid (this process's by default), unique across restarts."""
    return f"w{index}:{os.getpid() if pid is None else pid}"
