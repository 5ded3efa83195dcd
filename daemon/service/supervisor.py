"""The long-running service: intake in the main process, workers in child processes, all via the job store."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from daemon import take_over_signals
from daemon.media.atomic import sweep_temp_files
from daemon.service.adopt import adopt_results
from daemon.config import Config, load_config
from daemon.errors import ConfigError, StoreCorrupt, StoreUnreachable, StyleDaemonError, store_corrupt_message
from daemon.logs import make_formatter
from daemon.service.fingerprint import style_fingerprints
from daemon.service.intake import Intake
from daemon.service.log_file import QuietRotatingFileHandler
from daemon.service.reconcile import reconcile_all
from daemon.service.stray_inputs import put_back_strays
from daemon.service.state_lock import take_state_lock
from daemon.service.store_outage import StoreOutage, waiting_store
from daemon.review.store_wait import StoreWait, read_wait, write_wait
from daemon.review.gallery import write_gallery
from daemon.service.worker_deaths import settle_dead_worker
from daemon.store import JobStore, open_store
from daemon.review.metrics import MetricsExporter
from daemon.service.health import HealthReporter
from daemon.service.notify import Notifier
from daemon.service.reload_ack import Acknowledger
from daemon.service.worker_pool import EndedWorker, WorkerPool

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 8.0


class Supervisor:
    """Owns the config, the job store, the intake and the worker pool; reacts to signals."""

    def __init__(self, config_path: Path, once: bool = False) -> None:
        self.config_path = config_path
        self.once = once
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.notifier = Notifier()
        self.health = HealthReporter(self.notifier)
        self.config: Config = load_config(config_path, create_folders=True)
        self._file_handler: logging.Handler | None = None
        self._lock_fd: int | None = None
        self._drained_until = time.time()  # jobs finished after this belong to the next drain summary
        self._drained_counts: tuple[int, int] = (-1, -1)
        self._intake: Intake | None = None  # the store's waiting hook keeps it noticing arrivals
        self._pool: WorkerPool | None = None

    def run(self) -> int:
        """Run until stopped (or, with once, until the queue is empty); returns the exit code."""
        self._attach_file_log()
        self._take_lock()
        self._install_signals()
        store = self._open_waiting_store()  # the store's own faults wait, never crash (store_outage.py)
        store.claim_machine()
        store.clear_workers()  # this machine's rows only; recover() below likewise touches only its jobs
        # Steps a crash interrupted (publish, release, fail) are finished or undone before any job runs again.
        settled = reconcile_all(self.config, store)
        if settled:
            log.info("settled %d step(s) interrupted by the last shutdown or crash", settled)
        self._put_back_strays(store)
        recovered = store.recover()
        if recovered:
            log.info("re-queued %d job(s) interrupted by the last shutdown or crash", recovered)
        # A shared output folder holds other machines' writes in flight: sweep only ones long abandoned.
        swept = sweep_temp_files(self.config.output, 120.0 if self.config.store_shared else 0.0)
        if swept:
            log.info("removed %d partial output file(s) left by an interrupted write", swept)
        adopt_results(self.config, store)
        intake = self._intake = Intake(self.config, store, style_fingerprints(self.config), self.stop.is_set,
                                            self._reload_asked)
        started = self._drained_until = time.time()
        try:
            if self.once:
                return self._run_once(intake, store, started)
            return self._run_forever(intake, store)
        finally:
            intake.stop()
            store.close()

    # -- modes --------------------------------------------------------------------------

    def _run_once(self, intake: Intake, store: JobStore, started: float) -> int:
        intake.scan_all()
        while intake.busy() and not self.stop.is_set():
            intake.step()
            self.stop.wait(0.2)
        pool = WorkerPool(self.config.workers, self.config_path, self.config.gpus, exit_when_idle=True,
                          lock_fd=self._lock_fd)
        pool.start()
        while not pool.all_ended():
            if self.stop.is_set():
                pool.stop(STOP_GRACE_SECONDS)
                break
            time.sleep(0.2)
        if any(w.exit_code() == StoreCorrupt.exit_code for w in pool.workers):
            raise self._store_error()
        store.recover()
        failed = [j for j in store.jobs("failed") if j.updated >= started]
        self._summary(store)
        return 1 if failed or any(w.exit_code() not in (0, None) for w in pool.workers) else 0

    def _run_forever(self, intake: Intake, store: JobStore) -> int:
        try:
            metrics = MetricsExporter(self.config.metrics, self.config.store_target)
        except OSError as exc:
            raise ConfigError(f"metrics.listen {self.config.metrics.listen}: cannot listen ({exc.strerror}); "
                              "pick a free local port") from None
        if self.stop.is_set():  # asked to stop while starting (noted from the first instruction)
            metrics.close()
            log.info("stopped while starting")
            return 0
        pool = self._pool = WorkerPool(self.config.workers, self.config_path, self.config.gpus,
                                       lock_fd=self._lock_fd)
        pool.start()
        try:
            intake.start()  # its scan ends early when a stop is asked
            self._wait_ready(store, pool)
            while not self.stop.is_set():
                if self.reload.is_set():  # asked during a long scan or a wait for the store: honoured now
                    intake = self._intake = self._reload(intake, store, pool)
                intake.step()
                self._supervise(store, pool)
                self.health.tick(store, pool)
                self._tick_metrics(metrics)
                if not store.pending() and not intake.busy():
                    self._summary(store)
                self.stop.wait(0.2)
        except StoreUnreachable as exc:
            self.notifier.send("STOPPING=1")
            pool.stop(STOP_GRACE_SECONDS)  # nothing can be recorded now: stop at once, keep the files
            if not self.stop.is_set():
                raise
            log.info("stopped while waiting for the job store: %s", exc)  # asked to stop: not a failure
            metrics.close()
            return 0
        except StoreCorrupt:
            self.notifier.send("STOPPING=1")
            pool.stop(STOP_GRACE_SECONDS)  # nothing can be recorded any more: stop at once, keep the files
            raise
        self.notifier.send("STOPPING=1")
        log.info("stopping (a running job is interrupted and re-queued)")
        intake.stop()
        pool.stop(STOP_GRACE_SECONDS)
        store.recover()
        metrics.close()
        log.info("stopped")
        return 0

    def _wait_ready(self, store: JobStore, pool: WorkerPool) -> None:
        """READY=1 only once every worker has loaded its model."""
        while not self.stop.is_set():
            states = {w.id: w.state for w in store.workers() if (w.machine or "") == store.machine}
            ready = [s for s in states.values() if s in ("ready", "busy", "waiting")]
            if len(ready) >= len(pool.workers):
                break
            self._supervise(store, pool)
            self.health.tick(store, pool)
            self.stop.wait(0.2)
        if self.stop.is_set():
            return  # stopped while the models loaded: never ready
        log.info("ready: %d worker(s), watching %s", len(pool.workers), self.config.input)
        self.notifier.send("READY=1", "STATUS=ready")

    def _reload(self, intake: Intake, store: JobStore, pool: WorkerPool) -> Intake:
        self.reload.clear()
        ack = Acknowledger(self.config.state)  # `style-daemon reload` (ExecReload) waits for its answer
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1e6)}")
        try:
            config = load_config(self.config_path, create_folders=True)
        except StyleDaemonError as exc:
            log.error("reload failed, keeping the old config: %s", exc)
            self.notifier.send("READY=1", "STATUS=reload failed; old config kept")
            ack.finish(str(exc))
            return intake
        self.config = config
        intake.stop()
        intake = Intake(config, store, style_fingerprints(config), self.stop.is_set, self.reload.is_set)
        intake.start()  # its scan queues photos only for style sets newly routed to them
        pool.broadcast(signal.SIGHUP)
        log.info("reloaded %s", self.config_path)
        self.notifier.send("READY=1", "STATUS=reloaded")
        ack.finish()
        return intake

    # -- the store's own faults: wait, tell, go on (store_outage.py) --------------------

    def _open_waiting_store(self) -> JobStore:
        """The job store, every call of which waits while the store itself is down (full disk, server gone)."""
        self._outage = StoreOutage("the service", self.stop.is_set, self._while_store_waits, self._store_state)
        write_wait(self.config.state, StoreWait())  # padded now, while there is room: a full disk can still say it
        self.health.store_waits = lambda: read_wait(self.config.state).cause
        self._raw_store = self._outage.opened(lambda: open_store(self.config.store_target,
                                                                 give_up=self._outage.give_up))
        return waiting_store(self._raw_store, self._outage)

    def _while_store_waits(self, cause: str) -> None:
        """While a store call waits: keep noticing arrivals, tell systemd, keep the watchdog fed."""
        if self._intake is not None:
            self._intake.notice()
        self.health.waiting(cause, self._pool)

    def _store_state(self, cause: str | None) -> None:
        """The waiting state began, changed cause or ended: `status`, STATUS= and the gallery hear of it."""
        write_wait(self.config.state, StoreWait(cause is not None, cause or "", time.time(), os.getpid()))
        self.health.waiting(cause, self._pool)
        if self.config.gallery.index and not self.config.store_shared:  # a server that is gone cannot be read
            try:  # SQLite still reads on a full or read-only disk; the page is in the output folder
                with self._raw_store.exclusive("gallery"):  # every rebuild under the one lock (worker_process.py)
                    write_gallery(self.config, self._raw_store)
            except Exception as exc:  # noqa: BLE001 - only a display: where it cannot be written, it is not
                log.debug("gallery not rewritten while the job store waits: %s", exc)

    def _put_back_strays(self, store: JobStore) -> None:
        """Inputs a release or an on_failure: move hid, whose intent is lost (a lost or replaced store), back
        under their names before the scan (which then treats them as the config says)."""
        try:
            back = put_back_strays(self.config, store, stop=self.stop.is_set)
        except OSError as exc:  # a read-only input folder, say: they stay hidden, the service still runs
            log.warning("could not put back inputs hidden by an interrupted step: %s", exc)
            return
        if back:
            log.info("put back %d input(s) hidden by an interrupted step whose record is lost", back)

    def _reload_asked(self) -> bool:
        """A reload the loop will apply (run only: once never reloads, its intake must not wait for one)."""
        return not self.once and self.reload.is_set()

    def _tick_metrics(self, metrics: MetricsExporter) -> None:
        try:
            metrics.tick()
        except StoreUnreachable as exc:  # its own read-only look; the waiting state says the rest
            log.debug("metrics not written: %s", exc)

    # -- plumbing -----------------------------------------------------------------------

    def _supervise(self, store: JobStore, pool: WorkerPool) -> None:
        """Restart dead workers; their jobs are re-queued at once; a worker's corrupt-store exit is fatal."""
        for ended in pool.supervise():
            self._on_worker_ended(store, ended)

    def _on_worker_ended(self, store: JobStore, ended: EndedWorker) -> None:
        if ended.code == StoreCorrupt.exit_code:
            raise self._store_error()
        log.error("worker %d ended (%s); restarting in %.0fs", ended.index, ended.how(), ended.restart_in)
        settle_dead_worker(self.config, store, ended)

    def _store_error(self) -> StoreCorrupt:
        """The error a worker met: re-checked here, so the one line names the damage."""
        try:
            open_store(self.config.store_path, readonly=True).close()
        except StoreCorrupt as exc:
            return exc
        return StoreCorrupt(store_corrupt_message(self.config.store_path, "a worker could not read it"))

    def _summary(self, store: JobStore) -> None:
        """One line per drained batch: every job that finished since the last such line, counted once."""
        counts = store.counts()
        if (counts.done, counts.failed) == self._drained_counts:
            return  # nothing finished since the last look: no need to read the jobs
        self._drained_counts = (counts.done, counts.failed)
        recent = [j for j in store.jobs(limit=1_000_000) if j.finished and j.finished > self._drained_until]
        if not recent:
            return
        self._drained_until = max(j.finished for j in recent)
        done = [j for j in recent if j.state == "done"]
        failed = [j for j in recent if j.state == "failed"]
        mean = sum(j.seconds or 0 for j in done) / len(done) if done else 0.0
        began = min(j.started or j.finished for j in recent)
        log.info("queue drained: %d done, %d failed in %.0fs (%.1fs per job)", len(done), len(failed),
                 time.time() - began, mean)

    def _install_signals(self) -> None:
        take_over_signals({signal.SIGTERM: self.stop.set, signal.SIGINT: self.stop.set,
                           signal.SIGHUP: self.reload.set})

    def _attach_file_log(self) -> None:
        settings = self.config.logging
        logging.getLogger().setLevel(settings.level)
        if not settings.file:
            return
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        handler = QuietRotatingFileHandler(
            self.config.logs_dir / "style-daemon.log", maxBytes=settings.max_bytes, backupCount=settings.backups,
            encoding="utf-8",
        )
        handler.setFormatter(make_formatter())  # escapes names: no forged lines (daemon/logs.py)
        logging.getLogger().addHandler(handler)
        self._file_handler = handler

    def _take_lock(self) -> None:
        self._lock_fd = take_state_lock(self.config.state)
