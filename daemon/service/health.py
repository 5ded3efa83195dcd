"""What the service tells systemd while it runs: STATUS lines, and WATCHDOG=1 only while work progresses."""

from __future__ import annotations

import logging
import time
from typing import Callable

from daemon.store import JobStore
from daemon.service.notify import Notifier
from daemon.media.path_text import display
from daemon.review.progress import format_duration
from daemon.review.status import WAITING_PREFIX
from daemon.service.worker_pool import WorkerPool

log = logging.getLogger(__name__)

STORE_WAITING = "waiting for the job store: "  # STATUS= while the store itself is down (store_outage.py)


class HealthReporter:
    """Called from the main loop; pings the watchdog at half its interval while every worker is healthy.

    Healthy means: each worker process is alive (or was restarted less than one watchdog period ago),
    and each running job reported progress within one watchdog period. A hung optimisation or a worker
    that cannot start therefore lets systemd's watchdog fire; a long job that keeps iterating does not, nor
    does a print-size job whose single iteration takes minutes: it reports progress after every tile.
    """

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.ping_every = notifier.watchdog_interval()
        self.limit = self.ping_every * 2 if self.ping_every else None
        self._last_ping = 0.0
        self._last_status = ""
        self._last_status_at = 0.0
        self._unhealthy_logged = False
        # The cause while the job store itself is down for the service or one of its workers (STATE/store-wait*):
        # a job that cannot record its progress then waits, it is not hung.
        self.store_waits: Callable[[], str] = lambda: ""

    def tick(self, store: JobStore, pool: WorkerPool) -> None:
        """Send STATUS when it changed (at most once a second) and WATCHDOG=1 when due and healthy."""
        if not self.notifier.enabled:
            return
        now = time.monotonic()
        if now - self._last_status_at >= 1.0:
            cause = self.store_waits()
            status = f"{STORE_WAITING}{cause}" if cause else self.status_line(store)
            if status != self._last_status:
                self.notifier.send(f"STATUS={status}")
                self._last_status = status
            self._last_status_at = now
        if self.ping_every is None or now - self._last_ping < self.ping_every:
            return
        problem = self.problem(store, pool)
        if problem is None:
            self.notifier.send("WATCHDOG=1")
            self._last_ping = now
            self._unhealthy_logged = False
        elif not self._unhealthy_logged:
            log.error("withholding the watchdog ping: %s", problem)
            self._unhealthy_logged = True

    def waiting(self, cause: str | None, pool: WorkerPool | None) -> None:
        """While the job store itself is down (cause) or once it is back (None): say so, and keep the watchdog fed.

        Waiting for the store is the service doing its job (nothing is lost, it resumes by itself): systemd must
        not restart it for that, so the ping goes on while the worker processes live; the store is not read.
        """
        if not self.notifier.enabled:
            return
        status = f"{STORE_WAITING}{cause}" if cause is not None else "job store answers again; going on"
        if status != self._last_status:
            self.notifier.send(f"STATUS={status}")
            self._last_status, self._last_status_at = status, time.monotonic()
        now = time.monotonic()
        if cause is None or self.ping_every is None or now - self._last_ping < self.ping_every:
            return
        workers = pool.workers if pool is not None else []
        if all(w.alive() or w.dead_for() <= self.limit for w in workers):
            self.notifier.send("WATCHDOG=1")
            self._last_ping = now

    def problem(self, store: JobStore, pool: WorkerPool) -> str | None:
        """Why the service is not healthy now, or None."""
        now_wall = time.time()
        for worker in pool.workers:
            if not worker.alive() and worker.dead_for() > self.limit:
                return f"worker {worker.index} has been down for {worker.dead_for():.0f}s"
        if self.store_waits():
            return None  # the workers' progress cannot be recorded now: they wait for the store, they are not hung
        for job in store.jobs("running"):
            beat = job.heartbeat or job.started or now_wall
            if now_wall - beat > self.limit:
                return f"job {job.id} ({display(job.rel_path)}) made no progress for {now_wall - beat:.0f}s"
        return None

    @staticmethod
    def status_line(store: JobStore) -> str:
        """'queue 3; job 12 photo.jpg [starry] iter 40/300, eta 2m10s' or 'idle; 40 done, 1 failed'."""
        counts = store.counts()
        running = store.jobs("running", limit=1)
        if running:
            job = running[0]
            progress = f"iter {job.progress_iteration or 0}/{job.progress_total or '?'}"
            eta = f", eta {format_duration(job.progress_eta)}" if job.progress_eta is not None else ""
            # display(): a newline in a name would start a forged sd_notify field (STATUS= is one line).
            return f"queue {counts.queued}; job {job.id} {display(job.rel_path)} [{job.style_set}] {progress}{eta}"
        if counts.queued:
            held = [j.error for j in store.jobs("queued", limit=50) if (j.error or "").startswith(WAITING_PREFIX)]
            return f"queue {counts.queued}; {held[0]}" if held else f"queue {counts.queued}; waiting"
        return f"idle; {counts.done} done, {counts.failed} failed"
