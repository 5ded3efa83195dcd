"""Reconciling the job store with the files: a side effect a crash interrupted is finished, or undone, once.

Every side effect on the files is recorded as an intent before it starts and cleared once the files are in
their final state (docs/reliability.md). An intent still open means the step was interrupted; its handler
(one per step, each idempotent: reconciling may itself be interrupted and run again) brings the files and the
job to the state of the step having run exactly once, or not at all. It runs at service start (before jobs
left running are re-queued), when the supervisor settles a dead worker (before its job is re-queued), and
when a worker claims a job that still has intents (another machine's worker died with it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from daemon.config import Config
from daemon.job.publish import PublishPayload, reconcile_publish
from daemon.media.path_text import display, to_text
from daemon.service.aftercare import reconcile_failure
from daemon.service.job_release import release_step
from daemon.service.release import reconcile_release
from daemon.store import Intent, Job, JobStore

log = logging.getLogger(__name__)

Handler = Callable[[Config, JobStore, Intent], None]


def reconcile_all(config: Config, store: JobStore, job_id: int | None = None) -> int:
    """Reconcile the open intents of one job, or (None) every one this machine recorded; how many were handled.

    An intent whose files cannot be put right now (a full or read-only disk) is left open, said once, and
    tried again later (its job runs only after it is settled).
    """
    handled = 0
    for intent in store.intents(job_id):
        try:
            reconcile(config, store, intent)
            handled += 1
        except OSError as exc:
            log.warning("job %d: the interrupted %s step cannot be settled now (%s); tried again later",
                        intent.job_id, intent.step, exc.strerror or exc)
    return handled


def reconcile(config: Config, store: JobStore, intent: Intent) -> None:
    """Finish or undo one interrupted step, as its step's handler does; clears the intent once settled."""
    handler = _handler(intent.step)
    if handler is None:
        log.warning("job %d: an interrupted %s step is left for a newer style-daemon (no handler here)",
                    intent.job_id, intent.step)
        return
    handler(config, store, intent)


def _handler(step: str) -> Handler | None:
    return {"publish": reconcile_publish_intent, "release": reconcile_release, "fail": reconcile_failure}.get(step)


def reconcile_publish_intent(config: Config, store: JobStore, intent: Intent) -> None:
    """A result's publish: complete (the job is done) or rolled back (the job is queued, no attempt used)."""
    try:
        payload = PublishPayload.from_json(intent.payload)
    except ValueError as exc:
        log.warning("job %d: unreadable publish intent dropped (%s)", intent.job_id, exc)
        store.clear_intent(intent.id)
        return
    output = reconcile_publish(payload, held_by_another(store, intent.job_id))
    job = store.get(intent.job_id)
    if job is not None and output is not None:
        _record_done(config, store, job, output, payload)
    elif job is not None and job.state == "running":
        store.requeue(job.id)  # nothing was published: the job runs again, the attempt given back
        log.info("job %d: its interrupted result was not published; re-queued", job.id)
    store.clear_intent(intent.id)


def _record_done(config: Config, store: JobStore, job: Job, output: Path, payload: PublishPayload) -> None:
    """Record a job whose result reconciliation found (or completed) done, then release its input."""
    if job.state == "done" and job.output_path == to_text(output):
        return  # recorded before the crash; only the intent was left
    result = payload.sidecar.get("result")
    seconds = result.get("seconds") if isinstance(result, dict) else None
    store.finish(job.id, float(seconds) if isinstance(seconds, (int, float)) else 0.0, to_text(output))
    log.info("job %d: done %s -> %s (its result, published before an interruption, completed)", job.id,
             job.rel_path, display(output))
    done = store.get(job.id) or job
    release_step(config, store, done)


def held_by_another(store: JobStore, job_id: int) -> Callable[[Path], bool]:
    """A predicate: is this output name reserved by a job other than `job_id`?"""
    def held(path: Path) -> bool:
        holder = store.job_for_output(to_text(path))
        return holder is not None and holder.id != job_id
    return held
