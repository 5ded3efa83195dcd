"""Testing hooks of the dry-run engine: faults a test cannot cause for real (it runs as root, on a disk
that is not full), switched on by environment variables only, never by the config.

| variable | effect |
|---|---|
| STYLE_DAEMON_FAKE_HANG_AFTER=N | the optimisation hangs after N iterations, ignoring stop requests (the watchdog) |
| STYLE_DAEMON_FAKE_DISK_FULL=N | the first N jobs of the process fail with ENOSPC |
| STYLE_DAEMON_FAKE_FAULT=NAME | jobs fail with errno NAME (ENOSPC, EDQUOT, EACCES, EIO, EAGAIN, ...) or OOM |
| STYLE_DAEMON_FAKE_FAULT_TIMES=N | ... for the first N jobs of the process only (default: every job) |
| STYLE_DAEMON_FAKE_FAULT_WHILE=FILE | ... only while FILE exists (the "cause" a test fixes by deleting it) |
| STYLE_DAEMON_FAKE_CRASH=1 | the worker kills itself (SIGKILL) in every job |
| STYLE_DAEMON_FAKE_TILES=N | every iteration is evaluated in N tiles (unless tiling is never) |

docs/dry-run.md has the same table for test authors.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

from daemon.engine.params import TransferParams

HANG_AFTER_ENV = "STYLE_DAEMON_FAKE_HANG_AFTER"
DISK_FULL_ENV = "STYLE_DAEMON_FAKE_DISK_FULL"
FAULT_ENV = "STYLE_DAEMON_FAKE_FAULT"
FAULT_TIMES_ENV = "STYLE_DAEMON_FAKE_FAULT_TIMES"
FAULT_WHILE_ENV = "STYLE_DAEMON_FAKE_FAULT_WHILE"
CRASH_ENV = "STYLE_DAEMON_FAKE_CRASH"
TILES_ENV = "STYLE_DAEMON_FAKE_TILES"
TILES_WHEN_FORCED = 4  # tiling: always without STYLE_DAEMON_FAKE_TILES


def _count(name: str) -> int:
    return int(os.environ.get(name, "0") or 0)


class TestHooks:
    """The hooks as the environment set them when the engine was built (counters run down per job)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self) -> None:
        self.hang_after = _count(HANG_AFTER_ENV)  # 0: never hangs
        self.disk_full = _count(DISK_FULL_ENV)
        self.faults_left: int | None = _count(FAULT_TIMES_ENV) or None  # None: every job

    def before_job(self) -> None:
        """Fail (or die) as the hooks ask, at the start of a job: disk full, then crash, then the fault."""
        if self.disk_full > 0:
            self.disk_full -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        if os.environ.get(CRASH_ENV):
            os.kill(os.getpid(), signal.SIGKILL)
        self._injected_fault()

    def _injected_fault(self) -> None:
        fault = os.environ.get(FAULT_ENV)
        switch = os.environ.get(FAULT_WHILE_ENV)
        if not fault or (switch and not Path(switch).exists()) or self.faults_left == 0:
            return
        if self.faults_left is not None:
            self.faults_left -= 1
        if fault == "OOM":
            raise RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[1,64,512,512]")
        code = getattr(errno, fault)
        raise OSError(code, os.strerror(code))

    def hangs_at(self, step: int) -> bool:
        """True once the optimisation should hang (after hang_after iterations)."""
        return bool(self.hang_after) and step > self.hang_after

    @staticmethod
    def tiles(params: TransferParams) -> int:
        """Tiles per evaluation: STYLE_DAEMON_FAKE_TILES, else 4 when tiling is forced; none when it is never."""
        if params.tiling == "never":
            return 0
        return _count(TILES_ENV) or (TILES_WHEN_FORCED if params.tiling == "always" else 0)
