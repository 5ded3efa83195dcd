"""One job's life in a worker, as named steps: claim -> open -> stylise -> publish -> record -> release.

Each step is a short method; the steps end in ONE value, an Outcome (service/job_outcome.py), and `act` is
the one place that does what an outcome asks. Every exception of a step goes through the one failure policy
(service/failure_policy.py), and every side effect on the files runs under an intent in the job store
(service/reconcile.py): a crash at any point ends as if the step had run exactly once, or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from daemon.config import Config, StyleSet
from daemon.engine.protocol import DRY_RUN_BACKEND, Engine
from daemon.errors import LeaseLost, StopRequested, StoreCorrupt
from daemon.job.pipeline import StyleRef, StylizeOutcome, StylizeRequest, Stylized, publish_result, stylise
from daemon.job.publish import PublishPayload, find_published
from daemon.job.sidecar import sidecar_path
from daemon.media.path_text import display, from_text, to_text
from daemon.review.contact_sheet import sheet_path
from daemon.review.status import WAITING_PREFIX
from daemon.service.failure_policy import WAIT_FLOOR_SECONDS, backoff_delay, classify
from daemon.service.job_failures import JobFailures
from daemon.service.job_outcome import Outcome
from daemon.service.job_progress import ProgressRecorder
from daemon.service.job_release import release_step
from daemon.service.job_source import locate_source
from daemon.service.reconcile import held_by_another, reconcile_all
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)


@dataclass
class JobRun:
    """A claimed job while it lives: its photo (path and open descriptor), its request, its publish intent."""

    job: Job
    source: Path
    handle: BinaryIO
    request: StylizeRequest | None = None
    intent: int | None = None  # the publish intent's id once recorded
    payload: str | None = None  # and its payload (job/publish.py)


class JobLife:
    """The steps of a worker's jobs, over its job store; the worker's config is read at every job (reloads)."""

    def __init__(self, store: JobStore, worker_id: str, stop: threading.Event, failures: JobFailures,
                 update_gallery: Callable[[], None]) -> None:
        self.store = store
        self.worker_id = worker_id
        self.stop = stop
        self.failures = failures
        self.update_gallery = update_gallery
        self.progress = ProgressRecorder(store)

    # -- claim ------------------------------------------------------------------------------------

    def claim(self, config: Config) -> Job | None:
        """The next job to run, its interrupted steps settled first; None when there is none to run now."""
        job = self.store.claim(self.worker_id)
        if job is None or not self.store.intents(job.id):
            return job
        # A step of this job was interrupted (a worker died with it): settle it before anything runs again.
        reconcile_all(config, self.store, job.id)
        if self.store.intents(job.id):  # cannot be settled now (a full disk): wait, no attempt used
            delay = backoff_delay(config.retries, self.failures.waits, WAIT_FLOOR_SECONDS)
            self.store.retry_later(job.id, WAITING_PREFIX + "an interrupted step of this job cannot be settled "
                                   "yet (see the log)", delay, count_attempt=False)
            return None
        settled = self.store.get(job.id)
        if settled is not None and settled.state == "running":
            return settled
        if settled is not None and settled.state in ("done", "failed"):  # a failure filed is failed, never run
            self.update_gallery()
        return None

    # -- the life of a claimed job ------------------------------------------------------------------

    def live(self, engine: Engine, config: Config, fingerprints: dict[str, str], job: Job) -> None:
        """Open, stylise, publish and record one claimed job, then act on its outcome."""
        run = self.open(config, fingerprints, job)
        if run is None:
            return
        with run.handle:
            self.act(engine, config, run, self.steps(engine, config, run))

    def steps(self, engine: Engine, config: Config, run: JobRun) -> Outcome:
        """stylise -> publish -> record; an exception becomes the failure policy's verdict."""
        try:
            stylized = self.stylise(engine, config, run)
            published = self.publish(engine, run, stylized)
            return self.record(run, published)
        except StoreCorrupt:
            raise  # the job store itself is broken: nothing can be recorded, the worker must stop
        except Exception as exc:  # noqa: BLE001 - every failure must end in a recorded state
            return Outcome.of_error(exc, classify(exc, run.job, config, self.failures.waits))

    def act(self, engine: Engine, config: Config, run: JobRun, outcome: Outcome) -> None:
        """The one place an outcome is acted on."""
        if outcome.kind == "done" and outcome.result is not None:
            self.release(engine, config, run, outcome.result)
        elif outcome.kind == "requeue" and isinstance(outcome.error, StopRequested):
            self.store.requeue(run.job.id)
            log.info("job %d: interrupted by shutdown; re-queued", run.job.id)
        elif outcome.verdict is not None and outcome.error is not None:
            self.failures.apply(run.job, run.source, outcome.error, outcome.verdict, run.handle)

    # -- open -------------------------------------------------------------------------------------

    def open(self, config: Config, fingerprints: dict[str, str], job: Job) -> JobRun | None:
        """The job's photo opened and checked, under its style set's current settings; None when dropped."""
        located = locate_source(config, self.store, job)
        if located is None:
            return None
        current = self._current_settings(config, fingerprints, located.job)
        if current is None:
            located.handle.close()
            return None
        job, style = current
        run = JobRun(job, located.path, located.handle)
        run.request = self._request(config, run, style, fingerprints[job.style_set])
        return run

    def _current_settings(self, config: Config, fingerprints: dict[str, str],
                          job: Job) -> tuple[Job, StyleSet] | None:
        """The job under its style set's current settings; None (dropped) when the set was removed."""
        style = config.styles.get(job.style_set)
        if style is None:
            log.info("job %d: style set %s was removed since it was queued; dropped", job.id, job.style_set)
            self.store.drop(job.id)
            return None
        if fingerprints[job.style_set] != job.params_hash:
            # Settings apply to every photo not yet started, including those queued before the change.
            self.store.reparam(job.id, fingerprints[job.style_set])
            job = self.store.get(job.id) or job
            log.info("job %d: runs with the current settings of style set %s", job.id, job.style_set)
        return job, style

    def _request(self, config: Config, run: JobRun, style: StyleSet, params_hash: str) -> StylizeRequest:
        """What the pipeline needs for this job, from the job and the current config."""
        job = run.job
        return StylizeRequest(
            content=run.source,
            styles=tuple(StyleRef(i.path, i.weight) for i in style.images),
            output=from_text(job.output_path),
            params=config.engine.transfer_params(style.params),
            quality=config.naming.quality,
            metadata=config.naming.metadata,
            style_set=job.style_set,
            max_input_pixels=config.max_input_pixels,
            contact_sheet=config.gallery.contact_sheets,
            content_sha256=job.content_sha,  # verified against the descriptor by locate_source
            content_file=run.handle,  # decoded from the descriptor that was hashed, never re-opened by name
            params_hash=params_hash,
            generation=job.generation,
            name_taken=held_by_another(self.store, job.id),
            before_link=lambda payload: self._record_intent(run, payload),
        )

    # -- stylise, publish, record ---------------------------------------------------------------------

    def stylise(self, engine: Engine, config: Config, run: JobRun) -> Stylized:
        """Run the engine (StopRequested when a stop is asked)."""
        job = run.job
        log.info("job %d: start %s with style %s (attempt %d)", job.id, job.rel_path, job.style_set, job.attempts)
        assert run.request is not None
        return stylise(engine, run.request, self.progress.for_job(job, config.logging.progress_every),
                       self.stop.is_set)

    def _record_intent(self, run: JobRun, payload: str) -> None:
        """Before the result is linked: the claim still ours (a lapsed one writes nothing), the intent durable."""
        self.store.renew(run.job.id)
        run.intent = self.store.record_intent(run.job.id, "publish", payload)
        run.payload = payload

    def publish(self, engine: Engine, run: JobRun, stylized: Stylized) -> StylizeOutcome:
        """The result and its sidecar, as one unit; a publish that fails half-way is rolled back."""
        assert run.request is not None
        try:
            return publish_result(engine, run.request, stylized)
        except Exception:
            self._roll_back(run)
            raise

    def _roll_back(self, run: JobRun) -> None:
        """Undo a publish that raised after its intent (the sidecar could not be written): no image stays
        without its sidecar. Left to reconciliation (the intent stays open) when even that fails."""
        if run.intent is None or run.payload is None:
            return
        try:
            image = find_published(PublishPayload.from_json(run.payload), held_by_another(self.store, run.job.id))
            if image is not None and sidecar_path(image).exists():
                return  # complete after all: reconciliation records it when the job is next claimed
            if image is not None:
                image.unlink()
        except OSError as exc:
            log.warning("job %d: could not take back a half-published result (%s); settled later", run.job.id,
                        exc)
            return
        self.store.clear_intent(run.intent)
        run.intent = None

    def record(self, run: JobRun, published: StylizeOutcome) -> Outcome:
        """The job done in the job store, then its intent cleared: the result is now the job's."""
        try:
            self.store.finish(run.job.id, published.seconds, to_text(published.output))
        except LeaseLost:
            self._withdraw_lapsed(run, published)
            return Outcome.gone()
        if run.intent is not None:
            try:
                self.store.clear_intent(run.intent)
            except StoreCorrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - the job is done; an intent left open is only cleared later
                log.warning("job %d: done, but its publish intent stays open until it is reconciled (%s)",
                            run.job.id, exc)
        return Outcome.done(published)

    def _withdraw_lapsed(self, run: JobRun, published: StylizeOutcome) -> None:
        """This worker's claim lapsed while it published: the job's new holder owns the result, or it goes."""
        job = self.store.get(run.job.id)
        if job is not None and job.state == "done" and job.output_path == to_text(published.output):
            log.warning("job %d: this worker's claim lapsed; its result was recorded by the job's new holder",
                        run.job.id)
            return
        for path in (published.output, published.sidecar, sheet_path(published.output)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if run.intent is not None:
            self.store.clear_intent(run.intent)
        log.warning("job %d: this worker's claim lapsed and another worker took the job; abandoned here, its "
                    "result withdrawn", run.job.id)

    # -- release ------------------------------------------------------------------------------------

    def release(self, engine: Engine, config: Config, run: JobRun, published: StylizeOutcome) -> None:
        """A job done: said, the environment known to work again, the input released, the gallery updated."""
        job = run.job
        log.info("job %d: done %s -> %s in %.1fs%s", job.id, job.rel_path, display(published.output),
                 published.seconds, " (dry run: not stylised)" if engine.backend() == DRY_RUN_BACKEND else "")
        self.failures.recovered()
        release_step(config, self.store, self.store.get(job.id) or job)
        self.update_gallery()
