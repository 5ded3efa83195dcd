"""The supervisor's view of its worker processes: start, relay their logs, stop, restart."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUPERVISOR_PID_ENV = "STYLE_DAEMON_SUPERVISOR_PID"

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


@dataclass(frozen=True)
class EndedWorker:
    """A worker process seen ended without being asked to stop."""

    index: int
    pid: int
    code: int
    restart_in: float

    def how(self) -> str:
        """'signal 9, SIGKILL' or 'exit code 1'."""
        if self.code < 0:
            try:
                return f"signal {-self.code}, {signal.Signals(-self.code).name}"
            except ValueError:
                return f"signal {-self.code}"
        return f"exit code {self.code}"


class WorkerProcess:
    """One `style-daemon worker` subprocess; its stderr lines are re-logged by the supervisor."""

    def __init__(self, index: int, config_path: Path, gpu: str | None, exit_when_idle: bool,
                 lock_fd: int | None = None) -> None:
        self.index = index
        self.lock_fd = lock_fd
        self.config_path = config_path
        self.gpu = gpu
        self.exit_when_idle = exit_when_idle
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0
        self._relay: threading.Thread | None = None
        self._dead_since: float | None = None

    def start(self) -> None:
        """Spawn the worker."""
        # The worker compares its parent with this pid after PR_SET_PDEATHSIG, closing the start-up race.
        env = dict(os.environ, PYTHONUNBUFFERED="1", STYLE_DAEMON_WORKER="1", **{SUPERVISOR_PID_ENV: str(os.getpid())})
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        command = [sys.executable, "-m", "daemon", "worker", "-c", str(self.config_path), "--index", str(self.index)]
        if self.exit_when_idle:
            command.append("--exit-when-idle")
        # The worker inherits the state lock: no new supervisor can start while any worker of ours lives.
        inherit = (self.lock_fd,) if self.lock_fd is not None else ()
        self.proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace", pass_fds=inherit)
        self._relay = threading.Thread(target=self._relay_lines, args=(self.proc,), daemon=True)
        self._relay.start()

    def _relay_lines(self, proc: subprocess.Popen) -> None:
        logger = logging.getLogger(f"daemon.service.worker_process{self.index}")
        level = logging.INFO
        for line in proc.stderr:
            line = line.rstrip("\n")
            head, _, rest = line.partition(" ")
            if head in _LEVELS:
                level = _LEVELS[head]
                name, _, message = rest.partition(": ")
                logging.getLogger(name if name.startswith("daemon") else f"daemon.service.worker_process{self.index}").log(level, "%s", message)
            elif line:
                logger.log(level, "%s", line)  # traceback lines and native output

    def alive(self) -> bool:
        """True while the process runs."""
        running = self.proc is not None and self.proc.poll() is None
        if running:
            self._dead_since = None
        elif self._dead_since is None:
            self._dead_since = time.monotonic()
        return running

    def dead_for(self) -> float:
        """Seconds since the process was first seen ended (0 while it runs)."""
        if self.alive() or self._dead_since is None:
            return 0.0
        return time.monotonic() - self._dead_since

    def exit_code(self) -> int | None:
        """The exit status once it has ended."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, signum: int) -> None:
        """Send a signal if it is running."""
        if self.alive():
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True if it ended."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        if self._relay is not None:
            self._relay.join(timeout=2)
        return True


class WorkerPool:
    """All workers; restarts crashed ones with a growing delay."""

    def __init__(self, count: int, config_path: Path, gpus: list[str] | None, exit_when_idle: bool = False,
                 lock_fd: int | None = None) -> None:
        self.workers = [WorkerProcess(i, config_path, gpus[i] if gpus else None, exit_when_idle, lock_fd)
                        for i in range(count)]

    def start(self) -> None:
        """Start every worker."""
        for worker in self.workers:
            worker.start()

    def pids(self) -> set[int]:
        """PIDs of running workers."""
        return {w.proc.pid for w in self.workers if w.alive()}

    def supervise(self) -> list[EndedWorker]:
        """Restart workers that died (not on purpose), waiting longer after each crash; returns new deaths."""
        now = time.monotonic()
        ended = []
        for worker in self.workers:
            code = worker.exit_code()
            if worker.proc is None or code is None:
                continue
            if worker.next_start == 0.0:
                delay = min(60.0, 2.0 * 2**worker.restarts)
                worker.next_start = now + delay
                ended.append(EndedWorker(worker.index, worker.proc.pid, code, delay))
            elif now >= worker.next_start:
                worker.restarts += 1
                worker.next_start = 0.0
                worker.start()
        return ended

    def all_ended(self) -> bool:
        """True when no worker runs."""
        return not any(w.alive() for w in self.workers)

    def broadcast(self, signum: int) -> None:
        """Signal every worker."""
        for worker in self.workers:
            worker.signal(signum)

    def stop(self, grace: float) -> None:
        """SIGTERM everyone, wait up to `grace` seconds, then SIGKILL the rest."""
        self.broadcast(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in self.workers:
            if not worker.wait(deadline - time.monotonic()):
                log.warning("worker %d did not stop in time; killing it", worker.index)
                worker.signal(signal.SIGKILL)
                worker.wait(2)
