"""The last step of a job recorded done: earlier failures of its photo withdrawn, its input released."""

from __future__ import annotations

from daemon.config import Config
from daemon.media.path_text import from_text
from daemon.service.stale_failures import withdraw_stale_failures
from daemon.service.release import release_input
from daemon.store import Job, JobStore


def release_step(config: Config, store: JobStore, job: Job) -> None:
    """After `job` is recorded done (by its worker, or by reconciliation): tidy its failures, release its input."""
    withdraw_stale_failures(config, store, job)
    source = from_text(job.source_path)
    if source.is_relative_to(config.input):  # a redo may run from the processed folder: never released
        release_input(config, store, source, job.content_sha, job.id)
