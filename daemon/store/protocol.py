"""The one interface the rest of the daemon uses to reach its job store, whatever holds it."""

from __future__ import annotations

from typing import ContextManager, Iterable, Protocol

from daemon.store.records import Counts, Intent, Job, JobSpec, State, Step, WorkerRecord
from daemon.store.schema_versions import SchemaChange


class JobStore(Protocol):
    """Jobs keyed by (content sha256, style set, parameter hash, generation), claimed by workers, crash-safely.

    Every job holds a distinct output path, reserved when it is queued. A claim is a lease held by the
    claiming store object: progress renews it; once it lapsed and another worker took the job, progress,
    renew, finish, fail, retry_later and requeue raise LeaseLost (a shared store; SQLite's claims never lapse).
    """

    machine: str  # this machine's name in a shared store ("" for SQLite)
    schema: SchemaChange  # its schema version when opened, and after the pending numbered migrations ran

    @property
    def where(self) -> str:
        """The store as messages name it: the SQLite file, or host/database (never a password)."""

    def close(self) -> None:
        """Release the connection."""

    # -- intake ---------------------------------------------------------------------------
    def known_file(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The sha256 recorded for this exact (path, size, mtime), or None."""

    def remember_file(self, path: str, size: int, mtime_ns: int, sha: str) -> None:
        """Record that `path` with this size and mtime has content `sha`."""

    def forget_file(self, path: str) -> None:
        """Drop the record of a path."""

    def enqueue(self, spec: JobSpec, retry_failed: bool = False, names: Iterable[str] = (),
                redo: bool = False) -> Job | None:
        """Add a job unless its (content, style set) has one (always with redo); output: first free name."""

    def adopt(self, spec: JobSpec, generation: int, finished: float, seconds: float | None) -> Job | None:
        """Record a result found on disk as done; None if its key or output is already known."""

    def copies_of(self, content_sha: str) -> list[str]:
        """Paths last seen holding this content."""

    def job_for_output(self, output_path: str) -> Job | None:
        """The job holding this output path, if any."""

    # -- workers --------------------------------------------------------------------------
    def claim(self, worker: str) -> Job | None:
        """Atomically take the oldest runnable queued job, or None."""

    def progress(self, job_id: int, iteration: int, total: int, loss: float, eta: float) -> None:
        """Record the running job's progress (also its heartbeat and lease renewal)."""

    def renew(self, job_id: int) -> None:
        """Extend this worker's lease on a job it claimed (before publishing); LeaseLost if it is gone."""

    def finish(self, job_id: int, seconds: float, output_path: str | None = None) -> None:
        """Mark a job done, recording the name its result was published under."""

    def move_source(self, job_id: int, source_path: str, rel_path: str, names: Iterable[str]) -> Job | None:
        """Run a job from another copy of its content; its output becomes the first free of `names`."""

    def reparam(self, job_id: int, params_hash: str) -> None:
        """Record that a queued job runs with the current parameters."""

    def fail(self, job_id: int, error: str) -> None:
        """Mark a job failed for good."""

    def retry_later(self, job_id: int, error: str, delay: float, count_attempt: bool = True) -> None:
        """Queue a job again after a transient failure, not before `delay` seconds (attempt given back
        unless count_attempt)."""

    def requeue(self, job_id: int) -> None:
        """Return an interrupted job to the queue without counting the attempt."""

    def drop(self, job_id: int) -> None:
        """Forget a queued job whose input disappeared."""

    def recover(self, alive: set[str] | None = None) -> int:
        """Re-queue this machine's jobs left running by workers not in `alive`; returns how many."""

    def running_of(self, worker: str) -> list[Job]:
        """This machine's running jobs claimed by `worker`."""

    def claim_machine(self) -> None:
        """Hold this machine's name while the service runs; ConfigError if another service holds it."""

    def exclusive(self, name: str) -> ContextManager[None]:
        """A lock all machines sharing the store respect (e.g. the gallery rebuild)."""

    def worker_state(self, worker: str, state: str, backbone: str | None = None) -> None:
        """Record a worker's state and heartbeat."""

    def workers(self) -> list[WorkerRecord]:
        """Every worker row, newest first."""

    def clear_workers(self) -> None:
        """Forget this machine's worker rows."""

    # -- side effects (recorded before, cleared after: see daemon/service/reconcile.py) -------------
    def record_intent(self, job_id: int, step: Step, payload: str) -> int:
        """Record, durably and before any file changes, that `step` is about to run for `job_id`; its id."""

    def clear_intent(self, intent_id: int) -> None:
        """The step's files are in their final state: forget the intent (no error if it is gone)."""

    def intents(self, job_id: int | None = None) -> list[Intent]:
        """Open intents, oldest first: one job's, or (None) every one this machine recorded."""

    # -- reading --------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        """One job by id."""

    def jobs(self, state: State | None = None, limit: int = 1000) -> list[Job]:
        """Jobs, newest first, optionally of one state."""

    def jobs_for_source(self, source_path: str) -> list[Job]:
        """Every job whose input is (or was last seen at) `source_path`."""

    def jobs_for_content(self, content_sha: str) -> list[Job]:
        """Every job of one content hash."""

    def counts(self) -> Counts:
        """How many jobs are in each state."""

    def pending(self) -> int:
        """Queued plus running jobs."""
