"""A worker process: its loop (schedule, reloads, the supervisor's presence) around its jobs' lives.

Each job's life, step by step (claim, open, stylise, publish, record, release), is service/job_life.py.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from daemon import take_over_signals
from daemon.config import load_config
from daemon.engine.protocol import DRY_RUN_BACKEND, Engine
from daemon.errors import StyleDaemonError
from daemon.job.engines import make_engine
from daemon.review.gallery import write_gallery
from daemon.service.fingerprint import style_fingerprints
from daemon.service.job_failures import JobFailures
from daemon.service.job_life import JobLife
from daemon.service.store_outage import waiting_store, worker_outage
from daemon.service.worker_pool import SUPERVISOR_PID_ENV
from daemon.store import open_store, worker_id

if TYPE_CHECKING:
    from daemon.config import Config

    EngineFactory = Callable[[Config], Engine]

log = logging.getLogger(__name__)

__all__ = ["Worker", "die_with_parent", "engine_for"]


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
        outage = worker_outage(self.config.state, index, self.stop.is_set)  # a store down: wait, never crash-loop
        self.store = waiting_store(outage.opened(lambda: open_store(self.config.store_target, give_up=outage.give_up)),
                                   outage)
        self.failures = JobFailures(self.store, lambda: self.config, self._update_gallery)
        self.life = JobLife(self.store, self.id, self.stop, self.failures, self._update_gallery)
        self.dry_run = False
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
            job = self.life.claim(self.config)
            if job is None:
                if self.exit_when_idle and self.store.counts().queued == 0:
                    break
                self._set_state("ready")
                self.stop.wait(0.25)
                continue
            self._set_state("busy")
            self.life.live(engine, self.config, self.fingerprints, job)
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
