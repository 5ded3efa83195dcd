"""The long-running service: intake in the main process, workers in child processes, all via the journal."""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import signal
import threading
import time
from pathlib import Path

from daemon.media.atomic import sweep_temp_files
from daemon.service.adopt import adopt_results
from daemon.config import Config, load_config
from daemon.errors import ConfigError, StyleDaemonError
from daemon.service.fingerprint import style_fingerprints
from daemon.service.intake import Intake
from daemon.store import JobStore, open_store
from daemon.review.metrics import MetricsExporter
from daemon.service.health import HealthReporter
from daemon.service.notify import Notifier
from daemon.service.worker_pool import WorkerPool

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 8.0


class Supervisor:
    """Owns the config, the journal, the intake and the worker pool; reacts to signals."""

    def __init__(self, config_path: Path, once: bool = False) -> None:
        self.config_path = config_path
        self.once = once
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.notifier = Notifier()
        self.health = HealthReporter(self.notifier)
        self.config: Config = load_config(config_path)
        self._file_handler: logging.Handler | None = None
        self._lock_fd: int | None = None

    def run(self) -> int:
        """Run until stopped (or, with once, until the queue is empty); returns the exit code."""
        self._attach_file_log()
        self._take_lock()
        self._install_signals()
        journal = open_store(self.config.journal_path)
        journal.clear_workers()
        recovered = journal.recover()
        if recovered:
            log.info("re-queued %d job(s) interrupted by the last shutdown or crash", recovered)
        swept = sweep_temp_files(self.config.output)
        if swept:
            log.info("removed %d partial output file(s) left by an interrupted write", swept)
        adopt_results(self.config, journal)
        intake = Intake(self.config, journal, style_fingerprints(self.config))
        started = time.time()
        try:
            if self.once:
                return self._run_once(intake, journal, started)
            return self._run_forever(intake, journal)
        finally:
            intake.stop()
            journal.close()

    # -- modes --------------------------------------------------------------------------

    def _run_once(self, intake: Intake, journal: JobStore, started: float) -> int:
        intake.scan_all()
        while intake.busy() and not self.stop.is_set():
            intake.step()
            self.stop.wait(0.2)
        pool = WorkerPool(self.config.workers, self.config_path, self.config.gpus, exit_when_idle=True)
        pool.start()
        while not pool.all_ended():
            if self.stop.is_set():
                pool.stop(STOP_GRACE_SECONDS)
                break
            time.sleep(0.2)
        journal.recover()
        failed = [j for j in journal.jobs("failed") if j.updated >= started]
        self._summary(journal, started)
        return 1 if failed or any(w.exit_code() not in (0, None) for w in pool.workers) else 0

    def _run_forever(self, intake: Intake, journal: JobStore) -> int:
        try:
            metrics = MetricsExporter(self.config.metrics, self.config.journal_path)
        except OSError as exc:
            raise ConfigError(f"metrics.listen {self.config.metrics.listen}: cannot listen ({exc.strerror}); "
                              "pick a free local port") from None
        pool = WorkerPool(self.config.workers, self.config_path, self.config.gpus)
        pool.start()
        intake.start()
        self._wait_ready(journal, pool)
        busy_since: float | None = None
        while not self.stop.is_set():
            if self.reload.is_set():
                intake = self._reload(intake, journal, pool)
            intake.step()
            pool.supervise()
            self.health.tick(journal, pool)
            metrics.tick()
            pending = journal.pending()
            if pending and busy_since is None:
                busy_since = time.time()
            elif not pending and busy_since is not None and not intake.busy():
                self._summary(journal, busy_since)
                busy_since = None
            self.stop.wait(0.2)
        self.notifier.send("STOPPING=1")
        log.info("stopping (a running job is interrupted and re-queued)")
        intake.stop()
        pool.stop(STOP_GRACE_SECONDS)
        journal.recover()
        metrics.close()
        log.info("stopped")
        return 0

    def _wait_ready(self, journal: JobStore, pool: WorkerPool) -> None:
        """READY=1 only once every worker has loaded its model."""
        while not self.stop.is_set():
            states = {w.id: w.state for w in journal.workers()}
            ready = [s for s in states.values() if s in ("ready", "busy", "waiting")]
            if len(ready) >= len(pool.workers):
                break
            pool.supervise()
            self.health.tick(journal, pool)
            self.stop.wait(0.2)
        log.info("ready: %d worker(s), watching %s", len(pool.workers), self.config.input)
        self.notifier.send("READY=1", "STATUS=ready")

    def _reload(self, intake: Intake, journal: JobStore, pool: WorkerPool) -> Intake:
        self.reload.clear()
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1e6)}")
        try:
            config = load_config(self.config_path)
        except StyleDaemonError as exc:
            log.error("reload failed, keeping the old config: %s", exc)
            self.notifier.send("READY=1", "STATUS=reload failed; old config kept")
            return intake
        self.config = config
        intake.stop()
        intake = Intake(config, journal, style_fingerprints(config))
        intake.start()  # its scan queues photos only for style sets newly routed to them
        pool.broadcast(signal.SIGHUP)
        log.info("reloaded %s", self.config_path)
        self.notifier.send("READY=1", "STATUS=reloaded")
        return intake

    # -- plumbing -----------------------------------------------------------------------

    def _summary(self, journal: JobStore, since: float) -> None:
        recent = [j for j in journal.jobs(limit=100000) if j.finished and j.finished >= since]
        done = [j for j in recent if j.state == "done"]
        failed = [j for j in recent if j.state == "failed"]
        mean = sum(j.seconds or 0 for j in done) / len(done) if done else 0.0
        log.info("queue drained: %d done, %d failed in %.0fs (%.1fs per job)", len(done), len(failed),
                 time.time() - since, mean)

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload.set())

    def _attach_file_log(self) -> None:
        settings = self.config.logging
        logging.getLogger().setLevel(settings.level)
        if not settings.file:
            return
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            self.config.logs_dir / "style-daemon.log", maxBytes=settings.max_bytes, backupCount=settings.backups,
            encoding="utf-8",
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        self._file_handler = handler

    def _take_lock(self) -> None:
        path = self.config.state / "daemon.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another style-daemon is already running with state folder {self.config.state}; "
                "stop it first or give this one its own state folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
