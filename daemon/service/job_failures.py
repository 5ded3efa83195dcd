"""What a worker does with a job whose run raised: retry later, wait for the machine, or record a failure."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import BinaryIO, Callable

from daemon.config import Config
from daemon.errors import StyleDaemonError, is_out_of_memory
from daemon.media.path_text import display
from daemon.service.aftercare import record_failure
from daemon.service.environment import EnvironmentProblem, environment_problem
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EDQUOT, errno.EAGAIN}


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying later: disk full, permissions, I/O, accelerator out of memory."""
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return is_out_of_memory(exc)


def one_line(exc: BaseException) -> str:
    """The first line of the message; prefixed with the type unless it is one of our own errors."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, StyleDaemonError) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class JobFailures:
    """One worker's handling of failed runs; remembers environment causes already said, until jobs run again."""

    def __init__(self, store: JobStore, config: Callable[[], Config], update_gallery: Callable[[], None]) -> None:
        self.store = store
        self._config = config  # read at every failure: a reload changes the retry settings
        self._update_gallery = update_gallery
        self._waits = 0  # environment failures in a row: the backoff grows with them
        self._announced: dict[str, EnvironmentProblem] = {}

    def handle_error(self, job: Job, source: Path, exc: Exception, handle: BinaryIO | None = None) -> None:
        """Wait for the environment, retry later, or fail the job, as `exc` deserves."""
        config = self._config()
        problem = environment_problem(exc, config)
        if problem is not None:
            self.wait_for_environment(job, problem)
            return
        retries = config.retries
        if is_transient(exc) and job.attempts < retries.max_attempts:
            delay = retries.backoff_seconds * 2 ** (job.attempts - 1)
            log.warning("job %d: %s; retry %d/%d in %.0fs", job.id, one_line(exc), job.attempts + 1,
                        retries.max_attempts, delay)
            self.store.retry_later(job.id, one_line(exc), delay)
            return
        if isinstance(exc, StyleDaemonError) or is_transient(exc):
            self.fail(job, source, one_line(exc), handle)
            return
        log.exception("job %d: unexpected error", job.id)
        self.fail(job, source, f"unexpected error: {one_line(exc)} (see the log for the traceback)", handle)

    def wait_for_environment(self, job: Job, problem: EnvironmentProblem) -> None:
        """Keep the job queued without counting the attempt; say the cause once, not at every retry."""
        retries = self._config().retries
        delay = min(retries.max_wait_seconds, (retries.backoff_seconds or 1.0) * 2.0 ** min(self._waits, 30))
        self._waits += 1
        self.store.retry_later(job.id, problem.reason, delay, count_attempt=False)
        if problem.key not in self._announced:
            log.warning("%s (job %d %s waits; tried again with growing delays up to %gs)", problem.reason,
                        job.id, job.rel_path, retries.max_wait_seconds)
            self._announced[problem.key] = problem
        self._update_gallery()

    def recovered(self) -> None:
        """A job ran: the environment is fine again; say so for every cause announced."""
        self._waits = 0
        for problem in self._announced.values():
            log.info("resumed: no longer %s", problem.reason)
        self._announced.clear()

    def fail(self, job: Job, source: Path, message: str, handle: BinaryIO | None = None) -> None:
        """Record the job as failed, with its report in the failed folder (or wait, if that cannot be written)."""
        message = display(message)  # one line of text, whatever bytes a name in it holds
        config = self._config()
        try:
            report = record_failure(config, source, message, job.style_set, handle)
        except OSError as exc:
            problem = environment_problem(exc, config)
            if problem is not None:  # the failure cannot be recorded now: wait, record it once it can be
                self.wait_for_environment(job, problem)
                return
            report = None
            log.warning("job %d: could not write to the failed folder: %s", job.id, exc)
        self.store.fail(job.id, message)
        log.error("job %d: failed %s: %s%s", job.id, job.rel_path, message, f" (see {report})" if report else "")
        self._update_gallery()
