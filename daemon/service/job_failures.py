"""What a worker does with a job whose run raised: the failure policy's verdict applied to the job store.

service.failure_policy decides (one classification, one backoff formula); this module acts on the verdict:
re-queue, wait (said once per cause), retry later, or record the failure (with its report in failed/).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO, Callable

from daemon.config import Config
from daemon.errors import LeaseLost, StyleDaemonError
from daemon.media.path_text import display
from daemon.media.style_images import style_problem
from daemon.service.aftercare import record_failure
from daemon.service.environment import EnvironmentProblem, environment_problem
from daemon.service.failure_policy import STYLE_KEY, WAIT_FLOOR_SECONDS, Verdict, backoff_delay, is_transient
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)


class JobFailures:
    """One worker's handling of failed runs; remembers environment causes already said, until jobs run again."""

    def __init__(self, store: JobStore, config: Callable[[], Config], update_gallery: Callable[[], None]) -> None:
        self.store = store
        self._config = config  # read at every failure: a reload changes the retry settings
        self._update_gallery = update_gallery
        self.waits = 0  # waits in a row: the `n` of a wait's backoff (failure_policy.backoff_delay)
        self._announced: dict[str, Verdict] = {}

    def apply(self, job: Job, source: Path, exc: BaseException, verdict: Verdict,
              handle: BinaryIO | None = None) -> None:
        """Act on a verdict: re-queue, wait, retry later, or record the failure."""
        if verdict.outcome == "requeue":
            if isinstance(exc, LeaseLost):  # another worker holds the job now: nothing of it is ours to write
                log.warning("job %d: %s; abandoned here, nothing written", job.id, verdict.reason)
                return
            self.store.requeue(job.id)
            log.info("job %d: interrupted (%s); re-queued", job.id, verdict.reason)
        elif verdict.outcome == "wait":
            self._wait(job, verdict)
        elif verdict.outcome == "retry":
            retries = self._config().retries
            log.warning("job %d: %s; retry %d/%d in %.0fs", job.id, verdict.reason, job.attempts + 1,
                        retries.max_attempts, verdict.delay,
                        exc_info=None if isinstance(exc, StyleDaemonError) or is_transient(exc) else exc)
            self.store.retry_later(job.id, verdict.reason, verdict.delay)
        else:
            if not isinstance(exc, StyleDaemonError) and not is_transient(exc):
                log.error("job %d: unexpected error", job.id, exc_info=exc)
            self.fail(job, source, verdict.reason, handle)

    def wait_for_environment(self, job: Job, problem: EnvironmentProblem) -> None:
        """Keep the job queued without counting the attempt; say the cause once, not at every retry."""
        delay = backoff_delay(self._config().retries, self.waits, WAIT_FLOOR_SECONDS)
        self._wait(job, Verdict("wait", delay, problem.reason, problem.key))

    def _wait(self, job: Job, verdict: Verdict) -> None:
        self.waits += 1
        self.store.retry_later(job.id, verdict.reason, verdict.delay, count_attempt=False)
        if verdict.key not in self._announced:
            log.warning("%s (job %d %s waits; tried again with growing delays up to %gs)", verdict.reason,
                        job.id, display(job.rel_path), self._config().retries.max_wait_seconds)
            self._announced[verdict.key] = verdict
        self._update_gallery()

    def recovered(self) -> None:
        """A job ran: the environment is fine again; say so for every cause announced.

        A style set's cause is said resumed only once its images read again: a job of another set says
        nothing about it.
        """
        self.waits = 0
        config = self._config()
        for key, verdict in list(self._announced.items()):
            if key.startswith(STYLE_KEY):
                name = _style_set_of(key)
                if _style_still_broken(name, config):
                    continue
                log.info("resumed: style set %s is available again; its photos run", name)
            else:
                log.info("resumed: no longer %s", verdict.reason)
            del self._announced[key]

    def fail(self, job: Job, source: Path, message: str, handle: BinaryIO | None = None) -> None:
        """Record the job as failed, with its report in the failed folder (or wait, if that cannot be written)."""
        config = self._config()
        try:
            fail_job(config, self.store, job, source, message, handle)
        except OSError as exc:  # the failure cannot be recorded now: wait, record it once it can be
            problem = environment_problem(exc, config)
            if problem is None:  # fail_job raises only the environment's errors
                raise
            self.wait_for_environment(job, problem)
            return
        self._update_gallery()


def fail_job(config: Config, store: JobStore, job: Job, source: Path, message: str,
             handle: BinaryIO | None = None) -> Path | None:
    """The one way a job fails: its failed/ entry filed under a "fail" intent FIRST, then the job marked failed.

    In this order a crash in between leaves the intent (reconciliation files the entry and fails the job) or
    the entry filed and the job still running (it runs again and renews its report): never a failed job with
    no entry. Returns the report's path (None when the failed folder refused the entry for the photo's own
    sake). Raises OSError, nothing recorded, when the failed folder cannot be written now (a full or
    read-only disk: environment_problem); the caller waits and fails the job later.
    """
    message = display(message)  # one line of text, whatever bytes a name in it holds
    try:
        report = record_failure(config, source, message, job.style_set, handle,
                                store=store, job_id=job.id)  # under a fail intent
    except OSError as exc:
        if environment_problem(exc, config) is not None:
            raise
        report = None
        log.warning("job %d: could not write to the failed folder: %s", job.id, exc)
    store.fail(job.id, message)
    log.error("job %d: failed %s: %s%s", job.id, job.rel_path, message, f" (see {report})" if report else "")
    return report


def _style_set_of(key: str) -> str:
    return key.removeprefix(STYLE_KEY)


def _style_still_broken(name: str, config: Config) -> bool:
    """True while a style set announced unavailable still has an image that cannot be used."""
    style = config.styles.get(name)
    if style is None:  # removed by a reload: nothing left to wait for
        return False
    return any(style_problem(image.path, name, config.max_input_pixels) is not None for image in style.images)
