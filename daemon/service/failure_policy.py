"""The one failure policy: whose fault an exception of a job is, what happens to the job, and when it runs again.

For the worker (service.worker_process calls it; service.job_failures applies it)::

    verdict = classify(exc, job, config, waits=0)   # -> Verdict(outcome, delay, reason, key)

Outcomes, in the order they are decided:

- ``requeue``: StopRequested (shutdown asked) or LeaseLost (another worker holds the job now). No attempt used,
  delay 0; for LeaseLost the caller writes nothing, the job is not ours any more.
- ``wait``: the environment's fault, never the photo's, so no attempt is used and nothing goes to failed/:
  a style image unusable (StyleUnavailable, or an OSError on one of the job's style images), backbone weights
  unreadable (WeightsError), and every service.environment problem (disk full, quota, read-only, permission
  denied or I/O error on our own folders, accelerator out of memory). The job waits and resumes by itself.
- ``failed``: the photo's fault: BadInputError and its subclasses (not an image, truncated, too small, a link),
  our other one-line errors (ResourceError: too large for the memory; ConfigError), and a transient or
  unexpected error once ``retries.max_attempts`` attempts are used.
- ``retry``: transient errors not tied to our folders (EAGAIN, an I/O or permission error reading the photo)
  and unexpected errors (a bug, a framework hiccup): queued again with the attempt counted.

StoreCorrupt is not classified: the job store itself is broken, nothing can be recorded, the worker stops.

The one backoff formula (backoff_delay), for both retry and wait::

    delay = min(retries.max_wait_seconds, base * 2 ** n)

with ``base = retries.backoff_seconds`` (for a wait, WAIT_FLOOR_SECONDS when the backoff is 0: it must not
spin on a broken disk) and ``n`` the count that matters: for a retry the attempts already used before this one
(``job.attempts - 1``: the first retry waits backoff_seconds), for a wait the waits in a row of the caller
(``waits``: a broken disk is tried again at 1, 2, 4 ... times the backoff, up to max_wait_seconds).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from daemon.config import Config
from daemon.config.sections import Retries
from daemon.errors import (BadInputError, LeaseLost, StopRequested, StyleDaemonError, StyleUnavailable,
                           WeightsError, is_out_of_memory)
from daemon.media.path_text import display
from daemon.review.status import WAITING_PREFIX
from daemon.service.environment import environment_problem
from daemon.store import Job

Outcome = Literal["failed", "wait", "retry", "requeue"]

# A wait retries the same broken environment; below this it would spin on it (backoff_seconds may be 0).
WAIT_FLOOR_SECONDS = 1.0
STYLE_KEY = "style:"  # a style set's wait is keyed "style:<set>": one announcement per set
_MAX_DOUBLINGS = 30  # 2**30 times any backoff is past every cap: keeps the float finite

# Worth another attempt: the machine hiccupped (when not one of our folders, which is a wait instead).
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EDQUOT,
                               errno.EAGAIN})


@dataclass(frozen=True)
class Verdict:
    """What becomes of a job whose run raised: the outcome, the delay before its next try, the reason in words.

    `reason` is the job store's error text (a wait's starts with 'waiting: ', as status and the gallery expect);
    `key` names the cause of a wait, one per cause, so that the log says it once.
    """

    outcome: Outcome
    delay: float
    reason: str
    key: str = ""


def backoff_delay(retries: Retries, n: int, floor: float = 0.0) -> float:
    """min(max_wait_seconds, backoff_seconds * 2**n) (`floor` in place of a backoff of 0): grows with n,
    never above the cap."""
    base = retries.backoff_seconds or floor
    return min(retries.max_wait_seconds, base * 2.0 ** min(max(n, 0), _MAX_DOUBLINGS))


def classify(exc: BaseException, job: Job, config: Config, waits: int = 0) -> Verdict:
    """The one classification of a job's exception (see the module docstring); `waits`: waits in a row."""
    if isinstance(exc, (StopRequested, LeaseLost)):
        return Verdict("requeue", 0.0, one_line(exc))
    style = style_fault(exc, job, config)
    if style is not None:
        return _wait(STYLE_KEY + str(style.style_set), str(style), config, waits)
    if isinstance(exc, WeightsError):
        return _wait("weights", f"{one_line(exc)} (the job resumes by itself)", config, waits)
    problem = environment_problem(exc, config)
    if problem is not None:
        return _wait(problem.key, problem.text, config, waits)
    if isinstance(exc, StyleDaemonError):  # BadInputError and our other one-line errors: the photo's
        return Verdict("failed", 0.0, one_line(exc))
    retries = config.retries
    if job.attempts < retries.max_attempts:
        return Verdict("retry", backoff_delay(retries, job.attempts - 1), one_line(exc))
    if is_transient(exc):
        return Verdict("failed", 0.0, one_line(exc))
    return Verdict("failed", 0.0, f"unexpected error: {one_line(exc)} (see the log for the traceback)")


def style_fault(exc: BaseException, job: Job, config: Config) -> StyleUnavailable | None:
    """`exc` as the style set's fault: a StyleUnavailable, or an OSError on one of the job's style images
    (hashed again for the sidecar after the run: deleted or made a folder meanwhile)."""
    if isinstance(exc, StyleUnavailable):
        return exc
    if not isinstance(exc, OSError) or isinstance(exc, BadInputError):
        return None
    style = config.styles.get(job.style_set)
    named = {Path(f) for f in (exc.filename, exc.filename2) if isinstance(f, (str, Path))}
    for image in style.images if style is not None else ():
        if image.path in named:
            what = "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror})"
            return StyleUnavailable(job.style_set, display(image.path), what)
    return None


def is_transient(exc: BaseException) -> bool:
    """Errors worth another attempt: disk full, permissions, I/O, try again, accelerator out of memory."""
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


def _wait(key: str, text: str, config: Config, waits: int) -> Verdict:
    return Verdict("wait", backoff_delay(config.retries, waits, WAIT_FLOOR_SECONDS), WAITING_PREFIX + text, key)
