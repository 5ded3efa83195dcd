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
from daemon.errors import StoreCorrupt, StoreUnreachable
from daemon.job.publish import PublishPayload, reconcile_publish
from daemon.media.path_text import display, to_text
from daemon.service.aftercare import reconcile_failure
from daemon.service.job_release import release_step
from daemon.service.release import reconcile_release
from daemon.service.step_plan import FailPlan
from daemon.store import Intent, Job, JobStore

log = logging.getLogger(__name__)

Handler = Callable[[Config, JobStore, Intent], "bool | None"]  # False: left open for another machine


def reconcile_all(config: Config, store: JobStore, job_id: int | None = None) -> int:
    """Reconcile the open intents of one job, or (None) every one this machine recorded; how many were handled.

    An intent whose files cannot be put right now (a full or read-only disk) is left open, said once, and
    tried again later (its job runs only after it is settled). Any other error settling one intent (a bug, a
    malformed payload) is logged with its traceback and leaves that intent open: the others are still settled,
    and the service starts.
    """
    handled = 0
    for intent in store.intents(job_id):
        if settle_one(config, store, intent, "tried again later"):
            handled += 1
    return handled


def settle_one(config: Config, store: JobStore, intent: Intent, later: str) -> bool:
    """Reconcile one intent; False (said, the intent left open) when it cannot be settled now."""
    try:
        return reconcile(config, store, intent)
    except (StoreCorrupt, StoreUnreachable):
        raise  # the job store itself: nothing can be settled, the caller's fault handling applies
    except OSError as exc:
        log.warning("job %d: the interrupted %s step cannot be settled now (%s); %s",
                    intent.job_id, intent.step, exc.strerror or exc, later)
    except Exception:  # noqa: BLE001 - one intent that cannot be settled must not stop the others, nor the service
        log.error("job %d: the interrupted %s step could not be settled; its intent stays open (%s)",
                  intent.job_id, intent.step, later, exc_info=True)
    return False


def reconcile(config: Config, store: JobStore, intent: Intent) -> bool:
    """Finish or undo one interrupted step, as its step's handler does; clears the intent once settled.

    False when the step is left alone: its job now runs on another machine (a shared store), whose claim
    settles it; reconciling it here would act without that machine's lease (two results).
    """
    handler = _handler(intent.step)
    if handler is None:  # nothing here can settle it, and it would hold its job back forever: said once, dropped
        log.warning("job %d: an interrupted %r step is not one this style-daemon knows; its record dropped",
                    intent.job_id, intent.step)
        store.clear_intent(intent.id)
        return True
    job = store.get(intent.job_id)
    if job is not None and runs_elsewhere(store, job):
        log.info("job %d: runs on machine %s now; its interrupted %s step is settled there", job.id, job.machine,
                 intent.step)
        return False
    return handler(config, store, intent) is not False


def runs_elsewhere(store: JobStore, job: Job) -> bool:
    """True when the job is running on another machine sharing the store (never with SQLite: one machine)."""
    return job.state == "running" and bool(job.machine) and job.machine != store.machine


def _handler(step: str) -> Handler | None:
    return {"publish": reconcile_publish_intent, "release": reconcile_release, "fail": reconcile_fail_intent}.get(step)


def reconcile_fail_intent(config: Config, store: JobStore, intent: Intent) -> None:
    """A failed/ entry: rolled forward, then its job failed if it is still running (the crash came before
    the job was marked failed): a photo whose failure was filed never runs again."""
    reconcile_failure(config, store, intent)
    job = store.get(intent.job_id)
    if job is not None and job.state == "running":
        message = _failure_message(intent.payload)
        store.fail(job.id, message)
        failed = store.get(job.id)
        if failed is not None and failed.state == "failed":  # a shared store's job another machine took: its own
            log.error("job %d: failed %s: %s (recorded after an interruption)", job.id, job.rel_path, message)


def _failure_message(payload: str) -> str:
    """The error line of the report a fail intent filed."""
    try:
        report = FailPlan.from_json(payload).report_text
    except (ValueError, TypeError):
        report = ""
    for line in report.splitlines():
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return "failed (its failed-folder entry was filed before an interruption)"


def reconcile_publish_intent(config: Config, store: JobStore, intent: Intent) -> bool:
    """A result's publish: complete (the job is done) or rolled back (the job is queued, no attempt used).

    False (the intent left open) when the job could not be recorded done: another machine took it meanwhile.
    """
    try:
        payload = PublishPayload.from_json(intent.payload)
    except ValueError as exc:
        log.warning("job %d: unreadable publish intent dropped (%s)", intent.job_id, exc)
        store.clear_intent(intent.id)
        return True
    output = reconcile_publish(payload, held_by_another(store, intent.job_id))
    job = store.get(intent.job_id)
    if job is not None and output is not None:
        if not _record_done(config, store, job, output, payload):
            return False
    elif job is not None and job.state == "running":
        store.requeue(job.id)  # nothing was published: the job runs again, the attempt given back
        log.info("job %d: its interrupted result was not published; re-queued", job.id)
    store.clear_intent(intent.id)
    return True


def _record_done(config: Config, store: JobStore, job: Job, output: Path, payload: PublishPayload) -> bool:
    """Record a job whose result reconciliation found (or completed) done, then release its input.

    False when the store did not take it (a shared store's job another machine holds: finish is a no-op
    without its lease): nothing is said done, nothing released.
    """
    if job.state == "done" and job.output_path == to_text(output):
        return True  # recorded before the crash; only the intent was left
    result = payload.sidecar.get("result")
    seconds = result.get("seconds") if isinstance(result, dict) else None
    store.finish(job.id, float(seconds) if isinstance(seconds, (int, float)) else 0.0, to_text(output))
    done = store.get(job.id)
    if done is None or done.state != "done" or done.output_path != to_text(output):
        log.warning("job %d: its result %s was not recorded: another machine took the job meanwhile; its "
                    "interrupted publish is settled there", job.id, display(output))
        return False
    log.info("job %d: done %s -> %s (its result, published before an interruption, completed)", job.id,
             job.rel_path, display(output))
    release_step(config, store, done)
    return True


def held_by_another(store: JobStore, job_id: int) -> Callable[[Path], bool]:
    """A predicate: is this output name reserved by a job other than `job_id`?"""
    def held(path: Path) -> bool:
        holder = store.job_for_output(to_text(path))
        return holder is not None and holder.id != job_id
    return held
