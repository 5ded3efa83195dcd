"""A worker process: claims jobs from the journal, runs the engine, writes results, records failures."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from daemon.service.aftercare import record_failure, release_input, withdraw_stale_failures
from daemon.config import Config, load_config
from daemon.errors import BadInputError, JournalError, LeaseLost, StopRequested, StyleDaemonError, UnsafeInputError, is_out_of_memory
from daemon.service.environment import EnvironmentProblem, environment_problem
from daemon.service.fingerprint import style_fingerprints
from daemon.review.gallery import write_gallery
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display, from_text, to_text
from daemon.media.safe_open import open_input
from daemon.store import Job, open_store, worker_id
from daemon.service.worker_pool import SUPERVISOR_PID_ENV
from daemon.review.progress import LogRhythm, describe
from daemon.job.pipeline import StyleRef, StylizeRequest, run_stylize
from daemon.review.contact_sheet import sheet_path
from daemon.service.routing import free_output_names, output_path_for

log = logging.getLogger(__name__)

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EDQUOT, errno.EAGAIN}


def make_engine(config: Config):
    """The real Keras engine, or the fast stand-in when STYLE_DAEMON_FAKE_ENGINE is set (tests)."""
    delay = os.environ.get("STYLE_DAEMON_FAKE_ENGINE")
    if delay:
        from daemon.testsupport.stand_in_engine import FakeTransfer

        return FakeTransfer(float(delay))
    from daemon.engine.backbones import resolve_backbone
    from daemon.engine.transfer import StyleTransfer

    source = resolve_backbone(config.engine.backbone, config.engine.weights)
    log.info("loading backbone %s (%s weights from %s)", source.backbone, source.origin, source.path)
    return StyleTransfer(source)


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying later: disk full, permissions, I/O, accelerator out of memory."""
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return is_out_of_memory(exc)


class Worker:
    """Runs jobs one at a time until asked to stop (or, with exit_when_idle, until the queue is empty)."""

    def __init__(self, config_path: Path, index: int, exit_when_idle: bool = False) -> None:
        self.config_path = config_path
        self.index = index
        self.exit_when_idle = exit_when_idle
        self.id = worker_id(index)
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.config = load_config(config_path)
        self.fingerprints = style_fingerprints(self.config)
        self.journal = open_store(self.config.store_target, give_up=self.stop.is_set)
        self._last_progress = 0.0
        self._state: tuple[str, float] = ("", 0.0)
        self._parent = _expected_parent()
        self._waits = 0  # environment failures in a row: the backoff grows with them
        self._announced: dict[str, EnvironmentProblem] = {}  # causes already logged, until jobs run again
        self._gallery_error = ""

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop at the next iteration; SIGHUP re-reads the config between jobs."""
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload.set())

    def run(self) -> int:
        """The worker loop; returns the process exit code."""
        self._set_state("starting")
        engine = make_engine(self.config)
        self.journal.worker_state(self.id, "ready", engine.source.backbone)
        self._state = ("ready", time.monotonic())
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
            job = self.journal.claim(self.id)
            if job is None:
                if self.exit_when_idle and self.journal.counts().queued == 0:
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
            self.journal.worker_state(self.id, state)
            self._state = (state, now)

    def _maybe_reload(self) -> None:
        if not self.reload.is_set():
            return
        self.reload.clear()
        try:
            self.config = load_config(self.config_path)
            self.fingerprints = style_fingerprints(self.config)
            log.info("worker %d reloaded %s", self.index, self.config_path)
        except StyleDaemonError as exc:
            log.error("worker %d kept the old config: %s", self.index, exc)

    def _in_schedule(self) -> bool:
        schedule = self.config.schedule
        return schedule is None or schedule.allows(datetime.now().time())

    def process(self, engine, job: Job) -> None:
        """Run one job to done, failed, retry-later or re-queued (on stop)."""
        located = self._locate_source(job)
        if located is None:
            return
        job, source, handle = located
        try:
            with handle:
                self._run(engine, job, source, handle)
        except LeaseLost:
            # Another machine took the job after this worker's lease lapsed (frozen, cut off): it owns it now.
            log.warning("job %d: this worker's claim lapsed and another worker took the job; abandoned here, "
                        "nothing written", job.id)

    def _run(self, engine, job: Job, source: Path, handle: BinaryIO) -> None:
        style = self.config.styles.get(job.style_set)
        if style is None:
            log.info("job %d: style set %s was removed since it was queued; dropped", job.id, job.style_set)
            self.journal.drop(job.id)
            return
        params_hash = self.fingerprints[job.style_set]
        if params_hash != job.params_hash:
            # Settings apply to every photo not yet started, including those queued before the change.
            self.journal.reparam(job.id, params_hash)
            job = self.journal.get(job.id) or job
            log.info("job %d: runs with the current settings of style set %s", job.id, job.style_set)
        request = StylizeRequest(
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
            before_publish=lambda: self.journal.renew(job.id),  # a worker whose claim lapsed writes nothing
        )
        log.info("job %d: start %s with style %s (attempt %d)", job.id, job.rel_path, job.style_set, job.attempts)
        try:
            outcome = run_stylize(engine, request, self._progress(job), self.stop.is_set)
        except LeaseLost:
            raise
        except StopRequested:
            self.journal.requeue(job.id)
            log.info("job %d: interrupted by shutdown; re-queued", job.id)
            return
        except BadInputError as exc:
            self._fail(job, source, str(exc), handle)
            return
        except JournalError:
            raise  # the journal itself is broken: nothing can be recorded, the worker must stop
        except Exception as exc:  # noqa: BLE001 - every failure must end in a recorded state
            self._handle_error(job, source, exc, handle)
            return
        try:
            self.journal.finish(job.id, outcome.seconds, to_text(outcome.output))
        except LeaseLost:
            _withdraw(outcome.output, outcome.sidecar)  # published just now; the job's new holder writes it
            raise
        log.info("job %d: done %s -> %s in %.1fs", job.id, job.rel_path, outcome.output, outcome.seconds)
        self._environment_recovered()
        withdraw_stale_failures(self.config, self.journal, job)
        if source.is_relative_to(self.config.input):  # a redo may run from the processed folder
            release_input(self.config, self.journal, source, job.content_sha)
        self._update_gallery()

    def _open_checked(self, job: Job, path: Path) -> BinaryIO | None:
        """`path` opened by safe_open below its root (input, or processed for a redo) if it holds the job's content."""
        root = self.config.input if path.is_relative_to(self.config.input) else self.config.processed_dir
        try:
            handle = open_input(root, path)
        except UnsafeInputError as exc:
            log.warning("job %d: not reading %s: %s", job.id, display(path), exc)
            return None
        except OSError:
            return None
        try:
            if sha256_handle(handle) == job.content_sha:
                return handle
        except OSError:
            pass
        handle.close()
        return None

    def _held_by_another(self, job_id: int):
        """A predicate for run_stylize: is this output name reserved by another job?"""
        def held(path: Path) -> bool:
            holder = self.journal.job_for_output(to_text(path))
            return holder is not None and holder.id != job_id
        return held

    def _update_gallery(self) -> None:
        if not self.config.gallery.index:
            return
        try:
            with self.journal.exclusive("gallery"):  # one machine at a time rebuilds the shared page
                write_gallery(self.config, self.journal)
        except OSError as exc:
            if str(exc.strerror) != self._gallery_error:  # once per cause, not at every job on a full disk
                log.warning("could not update the gallery: %s", exc)
            self._gallery_error = str(exc.strerror)
        else:
            self._gallery_error = ""

    def _locate_source(self, job: Job) -> tuple[Job, Path, BinaryIO] | None:
        """The job's photo, or another known copy of the same content, opened without following any link and
        checked against the job's hash; drops the job only when no copy is left."""
        paths = [job.source_path] + [p for p in self.journal.copies_of(job.content_sha) if p != job.source_path]
        for text in paths:
            path = from_text(text)
            handle = self._open_checked(job, path)
            if handle is None:
                if not os.path.lexists(path):
                    self.journal.forget_file(text)
                continue
            if text == job.source_path:
                return job, path, handle
            if not path.is_relative_to(self.config.input):
                handle.close()
                continue
            rel = PurePosixPath(path.relative_to(self.config.input).as_posix())
            base = output_path_for(rel, job.style_set, self.config)
            moved = self.journal.move_source(job.id, text, to_text(rel), free_output_names(base))
            log.info("job %d: %s vanished or changed while queued; running from its copy %s", job.id,
                     job.rel_path, rel)
            return (moved or job), path, handle
        # Dropped before it is said, so whoever reads the line finds the journal already agreeing.
        self.journal.drop(job.id)
        log.warning("job %d: %s vanished or changed while queued and no other copy of it is left in the input "
                    "folder; dropped (dropping the photo again makes a new job)", job.id, job.rel_path)
        return None

    def _progress(self, job: Job):
        rhythm = LogRhythm(self.config.logging.progress_every)

        def report(progress) -> None:
            # Every report is a heartbeat, a tile's too (a tiled print-size iteration takes minutes and the
            # watchdog wants progress within one period); the journal hears of it at most twice a second.
            now = time.monotonic()
            last = progress.iteration == progress.total_iterations and not progress.tiles
            if now - self._last_progress >= 0.5 or last:
                self._last_progress = now
                self.journal.progress(job.id, progress.iteration, progress.total_iterations, progress.loss,
                                      progress.eta)
            if rhythm.due(progress):
                log.info("job %d: %s", job.id, describe(progress))

        return report

    def _handle_error(self, job: Job, source: Path, exc: Exception, handle: BinaryIO | None = None) -> None:
        problem = environment_problem(exc, self.config)
        if problem is not None:
            self._wait_for_environment(job, problem)
            return
        if is_transient(exc) and job.attempts < self.config.retries.max_attempts:
            delay = self.config.retries.backoff_seconds * 2 ** (job.attempts - 1)
            log.warning("job %d: %s; retry %d/%d in %.0fs", job.id, _one_line(exc), job.attempts + 1,
                        self.config.retries.max_attempts, delay)
            self.journal.retry_later(job.id, _one_line(exc), delay)
            return
        if isinstance(exc, StyleDaemonError) or is_transient(exc):
            self._fail(job, source, _one_line(exc), handle)
            return
        log.exception("job %d: unexpected error", job.id)
        self._fail(job, source, f"unexpected error: {_one_line(exc)} (see the log for the traceback)", handle)

    def _wait_for_environment(self, job: Job, problem: EnvironmentProblem) -> None:
        """Keep the job queued without counting the attempt; say the cause once, not at every retry."""
        retries = self.config.retries
        delay = min(retries.max_wait_seconds, (retries.backoff_seconds or 1.0) * 2.0 ** min(self._waits, 30))
        self._waits += 1
        self.journal.retry_later(job.id, problem.reason, delay, count_attempt=False)
        if problem.key not in self._announced:
            log.warning("%s (job %d %s waits; tried again with growing delays up to %gs)", problem.reason,
                        job.id, job.rel_path, retries.max_wait_seconds)
            self._announced[problem.key] = problem
        self._update_gallery()

    def _environment_recovered(self) -> None:
        self._waits = 0
        for problem in self._announced.values():
            log.info("resumed: no longer %s", problem.reason)
        self._announced.clear()

    def _fail(self, job: Job, source: Path, message: str, handle: BinaryIO | None = None) -> None:
        message = display(message)  # one line of text, whatever bytes a name in it holds
        try:
            report = record_failure(self.config, source, message, job.style_set, handle)
        except OSError as exc:
            problem = environment_problem(exc, self.config)
            if problem is not None:  # the failure cannot be recorded now: wait, record it once it can be
                self._wait_for_environment(job, problem)
                return
            report = None
            log.warning("job %d: could not write to the failed folder: %s", job.id, exc)
        self.journal.fail(job.id, message)
        log.error("job %d: failed %s: %s%s", job.id, job.rel_path, message,
                  f" (see {report})" if report else "")
        self._update_gallery()


def _withdraw(output: Path, sidecar: Path) -> None:
    """Remove a result this worker published after its claim lapsed (and its sheet), so none is doubled."""
    for path in (output, sidecar, sheet_path(output)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _one_line(exc: BaseException) -> str:
    """The first line of the message; prefixed with the type unless it is one of our own errors."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, StyleDaemonError) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


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
