"""A running job's progress: the job store hears it at most twice a second, the log at its own rhythm."""

from __future__ import annotations

import logging
import time
from typing import Callable

from daemon.engine.params import Progress
from daemon.review.progress import LogRhythm, describe
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)

_STORE_EVERY = 0.5  # seconds between progress rows (each one also renews the job's lease)


class ProgressRecorder:
    """One worker's progress reports: remembers when the job store last heard of one, across jobs."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._last = 0.0

    def for_job(self, job: Job, every: int) -> Callable[[Progress], None]:
        """The engine's on_progress for `job`; logs every `every` iterations."""
        rhythm = LogRhythm(every)

        def report(progress: Progress) -> None:
            # Every report is a heartbeat, a tile's too (a tiled print-size iteration takes minutes and the
            # watchdog wants progress within one period); the job store hears of it at most twice a second.
            now = time.monotonic()
            last = progress.iteration == progress.total_iterations and not progress.tiles
            if now - self._last >= _STORE_EVERY or last:
                self._last = now
                self.store.progress(job.id, progress.iteration, progress.total_iterations, progress.loss,
                                    progress.eta)
            if rhythm.due(progress):
                log.info("job %d: %s", job.id, describe(progress))

        return report
