"""What became of one claimed job: the one value its steps return and the worker acts on (service/job_life.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemon.job.pipeline import StylizeOutcome
from daemon.service.failure_policy import Verdict

Kind = Literal["done", "gone", "failed", "wait", "retry", "requeue"]


@dataclass(frozen=True)
class Outcome:
    """done (the result published and recorded), gone (nothing left to do here: the job was dropped, settled
    by reconciliation, or taken by another worker), or the failure policy's verdict on an exception
    (failed: the photo's fault; wait: the environment's, no attempt used; retry; requeue: a stop was asked)."""

    kind: Kind
    result: StylizeOutcome | None = None  # done: what was published
    verdict: Verdict | None = None  # failed, wait, retry, requeue: why, and the delay before the next try
    error: BaseException | None = None  # the exception the verdict is on

    @classmethod
    def done(cls, result: StylizeOutcome) -> Outcome:
        """The job's result is published and recorded."""
        return cls("done", result=result)

    @classmethod
    def gone(cls) -> Outcome:
        """Nothing left for this worker to do with the job."""
        return cls("gone")

    @classmethod
    def of_error(cls, error: BaseException, verdict: Verdict) -> Outcome:
        """The failure policy's verdict on `error` (service/failure_policy.py)."""
        return cls(verdict.outcome, verdict=verdict, error=error)
