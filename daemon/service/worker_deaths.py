"""A worker that died (kill -9, segfault, OOM killer): the step it was in settled, its job re-queued at once
(the attempt counted); a release or failed-folder step it left for a job no longer running settled too."""

from __future__ import annotations

import logging

from daemon.config import Config
from daemon.media.path_text import from_text
from daemon.review.status import WAITING_PREFIX
from daemon.service.job_failures import fail_job
from daemon.service.reconcile import reconcile_all, settle_one
from daemon.service.release import resume_release
from daemon.service.step_plan import recorded_by
from daemon.service.worker_pool import EndedWorker
from daemon.store import JobStore, worker_id

log = logging.getLogger(__name__)


def settle_dead_worker(config: Config, store: JobStore, ended: EndedWorker) -> None:
    """Re-queue (or, after max_attempts, fail) the dead worker's job and mark its row as restarting."""
    dead = worker_id(ended.index, ended.pid)
    reason = f"the worker process died while processing this photo ({ended.how()})"
    for job in store.running_of(dead):  # this machine's only: another machine's w0:1234 is not ours
        if store.intents(job.id):  # it died during a side effect: settled first (done, or queued again)
            reconcile_all(config, store, job.id)
            if store.intents(job.id):  # cannot be settled now (a full disk, EIO): wait, this death not counted
                store.retry_later(job.id, WAITING_PREFIX + "an interrupted step of this job cannot be settled "
                                  "yet (see the log)", 0, count_attempt=False)
                log.warning("job %d: %s; its interrupted step is settled before it runs again", job.id, reason)
                continue
            job = store.get(job.id) or job
            if job.state != "running":
                continue
        if job.attempts < config.retries.max_attempts:
            store.retry_later(job.id, f"{reason}; trying again", 0)
            log.warning("job %d: %s; re-queued (attempt %d of %d used)", job.id, reason, job.attempts,
                        config.retries.max_attempts)
            continue
        message = (f"{reason}, on each of {job.attempts} attempts; the photo probably crashes the engine "
                   "or exhausts memory: try a smaller engine.max_size, or check the photo")
        try:
            fail_job(config, store, job, from_text(job.source_path), message)
        except OSError as exc:  # the failed folder cannot be written now: failed once it can be
            store.retry_later(job.id, WAITING_PREFIX + f"the failed folder cannot be written ({exc.strerror or exc})",
                              0, count_attempt=False)
    settle_steps_left(config, store, ended.pid)
    if any(w.id == dead and (w.machine or "") == store.machine for w in store.workers()):
        store.worker_state(dead, "restarting")


def settle_steps_left(config: Config, store: JobStore, pid: int) -> None:
    """The release and failed-folder steps process `pid` recorded and never cleared: their jobs are done or
    failed (no longer running), so only these intents say the step was cut short. Settled now, not at the
    next start; a release cut short before it began is run again (the input must not wait for a rescan)."""
    for intent in store.intents():  # this machine's own
        if not recorded_by(intent, pid):
            continue
        settled = settle_one(config, store, intent, "tried again at the next start")
        if settled and intent.step == "release":
            try:
                resume_release(config, store, intent)
            except Exception:  # noqa: BLE001 - the next scan releases it; the supervisor must go on
                log.error("job %d: the release its worker left could not be run again now; the next scan does",
                          intent.job_id, exc_info=True)
