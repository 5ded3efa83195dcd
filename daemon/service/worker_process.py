"""A worker process: claims jobs from the job store, runs the engine on each, publishes the results."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from daemon import take_over_signals
from daemon.config import load_config
from daemon.engine.params import Progress
from daemon.engine.protocol import DRY_RUN_BACKEND, Engine
from daemon.errors import BadInputError, StoreCorrupt, LeaseLost, StopRequested, StyleDaemonError
from daemon.job.engines import make_engine
from daemon.job.pipeline import StyleRef, StylizeOutcome, StylizeRequest, run_stylize
from daemon.media.path_text import from_text, to_text
from daemon.review.contact_sheet import sheet_path
from daemon.review.gallery import write_gallery
from daemon.review.progress import LogRhythm, describe
from daemon.service.aftercare import release_input, withdraw_stale_failures
from daemon.service.fingerprint import style_fingerprints
from daemon.service.job_failures import JobFailures, is_transient
from daemon.service.job_source import locate_source
from daemon.service.store_outage import StoreOutage, waiting_store
from daemon.service.worker_pool import SUPERVISOR_PID_ENV
from daemon.store import Job, open_store, worker_id

if TYPE_CHECKING:
    from daemon.config import Config, StyleSet

    EngineFactory = Callable[[Config], Engine]

log = logging.getLogger(__name__)

__all__ = ["Worker", "die_with_parent", "engine_for", "is_transient"]


def engine_for(config: Config) -> Engine:
    """The engine the config asks for (or the dry-run engine, when one was asked for): job/engines.py."""
    return make_engine(config.engine.backbone, config.engine.weights)


class Worker:
    """Runs jobs one at a time until asked to stop (or, with exit_when_idle, until the queue is empty)."""

    def __init__(self, config_path: Path, index: int, exit_when_idle: bool = False,
                 engines: EngineFactory = engine_for) -> None:
        self.config_path = config_path
        self.index = index
        self.exit_when_idle = exit_when_idle
        self.engines = engines
        self.id = worker_id(index)
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.config = load_config(config_path, styles=False)  # a broken style image: its jobs wait, see load_inputs
        self.fingerprints = style_fingerprints(self.config)
        outage = StoreOutage(f"worker {index}", self.stop.is_set)  # a store that is down: wait, never crash-loop
        self.store = waiting_store(open_store(self.config.store_target, give_up=outage.give_up), outage)
        self.failures = JobFailures(self.store, lambda: self.config, self._update_gallery)
        self.dry_run = False
        self._last_progress = 0.0
        self._state: tuple[str, float] = ("", 0.0)
        self._parent = _expected_parent()
        self._gallery_error = ""

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop at the next iteration; SIGHUP re-reads the config between jobs."""
        take_over_signals({signal.SIGTERM: self.stop.set, signal.SIGINT: self.stop.set,
                           signal.SIGHUP: self.reload.set})

    def run(self) -> int:
        """The worker loop; returns the process exit code."""
        self._set_state("starting")
        engine = self.engines(self.config)
        self.dry_run = engine.backend() == DRY_RUN_BACKEND
        self.store.worker_state(self.id, "ready", engine.source.backbone)
        self._state = ("ready", time.monotonic())
        if self.dry_run:
            log.warning("worker %d ready (DRY RUN: no model is loaded; results are the photo tinted towards its "
                        "style, marked dry_run in their sidecars)", self.index)
        else:
            log.info("worker %d ready (backbone %s)", self.index, engine.source.backbone)
        while not self.stop.is_set():
            self._maybe_reload()
            if not self._in_schedule():
                self._set_state("waiting")
                self.stop.wait(1.0)
                continue
            if self._parent is not None and os.getppid() != self._parent:
                log.error("worker %d: the supervisor (pid %d) is gone; exiting", self.index, self._parent)
                break  # an orphan must never take a job: a new supervisor may run its own workers
            job = self.store.claim(self.id)
            if job is None:
                if self.exit_when_idle and self.store.counts().queued == 0:
                    break
                self._set_state("ready")
                self.stop.wait(0.25)
                continue
            self._set_state("busy")
            self.process(engine, job)
        self._set_state("stopped")
        return 0

    def _set_state(self, state: str) -> None:
        """Record the worker's state when it changes (and once a minute as a heartbeat), not every poll."""
        now = time.monotonic()
        if (state, ) != self._state[:1] or now - self._state[1] > 60:
            self.store.worker_state(self.id, state)
            self._state = (state, now)

    def _maybe_reload(self) -> None:
        if not self.reload.is_set():
            return
        self.reload.clear()
        try:
            self.config = load_config(self.config_path, styles=False)
            self.fingerprints = style_fingerprints(self.config)
            log.info("worker %d reloaded %s", self.index, self.config_path)
        except StyleDaemonError as exc:
            log.error("worker %d kept the old config: %s", self.index, exc)

    def _in_schedule(self) -> bool:
        schedule = self.config.schedule
        return schedule is None or schedule.allows(datetime.now().time())

    def process(self, engine: Engine, job: Job) -> None:
        """Run one job to done, failed, retry-later or re-queued (on stop)."""
        located = locate_source(self.config, self.store, job)
        if located is None:
            return
        try:
            with located.handle:
                self._run(engine, located.job, located.path, located.handle)
        except LeaseLost:
            # Another machine took the job after this worker's lease lapsed (frozen, cut off): it owns it now.
            log.warning("job %d: this worker's claim lapsed and another worker took the job; abandoned here, "
                        "nothing written", located.job.id)

    def _current_settings(self, job: Job) -> tuple[Job, StyleSet, str] | None:
        """The job under its style set's current settings; None (dropped) when the set was removed."""
        style = self.config.styles.get(job.style_set)
        if style is None:
            log.info("job %d: style set %s was removed since it was queued; dropped", job.id, job.style_set)
            self.store.drop(job.id)
            return None
        params_hash = self.fingerprints[job.style_set]
        if params_hash != job.params_hash:
            # Settings apply to every photo not yet started, including those queued before the change.
            self.store.reparam(job.id, params_hash)
            job = self.store.get(job.id) or job
            log.info("job %d: runs with the current settings of style set %s", job.id, job.style_set)
        return job, style, params_hash

    def _request(self, job: Job, style: StyleSet, params_hash: str, source: Path,
                 handle: BinaryIO) -> StylizeRequest:
        """What the pipeline needs for this job, from the job and the current config."""
        return StylizeRequest(
            content=source,
            styles=tuple(StyleRef(i.path, i.weight) for i in style.images),
            output=from_text(job.output_path),
            params=self.config.engine.transfer_params(style.params),
            quality=self.config.naming.quality,
            style_set=job.style_set,
            max_input_pixels=self.config.max_input_pixels,
            contact_sheet=self.config.gallery.contact_sheets,
            content_sha256=job.content_sha,  # verified against the descriptor just above
            content_file=handle,  # decoded from the descriptor that was hashed, never re-opened by name
            params_hash=params_hash,
            generation=job.generation,
            name_taken=self._held_by_another(job.id),
            before_publish=lambda: self.store.renew(job.id),  # a worker whose claim lapsed writes nothing
        )

    def _run(self, engine: Engine, job: Job, source: Path, handle: BinaryIO) -> None:
        current = self._current_settings(job)
        if current is None:
            return
        job, style, params_hash = current
        request = self._request(job, style, params_hash, source, handle)
        log.info("job %d: start %s with style %s (attempt %d)", job.id, job.rel_path, job.style_set, job.attempts)
        try:
            outcome = run_stylize(engine, request, self._progress(job), self.stop.is_set)
        except LeaseLost:
            raise
        except StopRequested:
            self.store.requeue(job.id)
            log.info("job %d: interrupted by shutdown; re-queued", job.id)
            return
        except BadInputError as exc:
            self.failures.fail(job, source, str(exc), handle)
            return
        except StoreCorrupt:
            raise  # the job store itself is broken: nothing can be recorded, the worker must stop
        except Exception as exc:  # noqa: BLE001 - every failure must end in a recorded state
            self.failures.handle_error(job, source, exc, handle)
            return
        self._finish(job, source, outcome)

    def _finish(self, job: Job, source: Path, outcome: StylizeOutcome) -> None:
        """Record the job done, then tidy up after it: stale failures, the input, the gallery."""
        try:
            self.store.finish(job.id, outcome.seconds, to_text(outcome.output))
        except LeaseLost:
            _withdraw(outcome)  # published just now; the job's new holder writes it
            raise
        log.info("job %d: done %s -> %s in %.1fs%s", job.id, job.rel_path, outcome.output, outcome.seconds,
                 " (dry run: not stylised)" if self.dry_run else "")
        self.failures.recovered()
        withdraw_stale_failures(self.config, self.store, job)
        if source.is_relative_to(self.config.input):  # a redo may run from the processed folder
            release_input(self.config, self.store, source, job.content_sha)
        self._update_gallery()

    def _held_by_another(self, job_id: int) -> Callable[[Path], bool]:
        """A predicate for run_stylize: is this output name reserved by another job?"""
        def held(path: Path) -> bool:
            holder = self.store.job_for_output(to_text(path))
            return holder is not None and holder.id != job_id
        return held

    def _update_gallery(self) -> None:
        if not self.config.gallery.index:
            return
        try:
            with self.store.exclusive("gallery"):  # one machine at a time rebuilds the shared page
                write_gallery(self.config, self.store)
        except OSError as exc:
            if str(exc.strerror) != self._gallery_error:  # once per cause, not at every job on a full disk
                log.warning("could not update the gallery: %s", exc)
            self._gallery_error = str(exc.strerror)
        else:
            self._gallery_error = ""

    def _progress(self, job: Job) -> Callable[[Progress], None]:
        rhythm = LogRhythm(self.config.logging.progress_every)

        def report(progress: Progress) -> None:
            # Every report is a heartbeat, a tile's too (a tiled print-size iteration takes minutes and the
            # watchdog wants progress within one period); the job store hears of it at most twice a second.
            now = time.monotonic()
            last = progress.iteration == progress.total_iterations and not progress.tiles
            if now - self._last_progress >= 0.5 or last:
                self._last_progress = now
                self.store.progress(job.id, progress.iteration, progress.total_iterations, progress.loss,
                                    progress.eta)
            if rhythm.due(progress):
                log.info("job %d: %s", job.id, describe(progress))

        return report


def _withdraw(outcome: StylizeOutcome) -> None:
    """Remove a result this worker published after its claim lapsed (and its sheet), so none is doubled."""
    for path in (outcome.output, outcome.sidecar, sheet_path(outcome.output)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _expected_parent() -> int | None:
    """The supervisor's pid as it told us at spawn (None when started by hand)."""
    value = os.environ.get(SUPERVISOR_PID_ENV, "")
    return int(value) if value.isdigit() else None


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the supervisor) dies, even by kill -9."""
    # The parent pid comes from the supervisor itself: reading getppid() here would be too late when
    # the supervisor died between spawning us and this call (we would already belong to init).
    parent = _expected_parent()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
