"""Signals at any moment of start-up: from the first instruction of the package, a service process notes
SIGHUP, SIGTERM and SIGINT, and acts on them once its own handlers are in place (a reload asked while
starting is applied once ready; a stop stops), instead of dying silently of SIGHUP's default action."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support import CONTENT, wait_until
from tests.support.daemon import Daemon, done_jobs, drop, write_config


def _catches(pid: int, signum: int) -> bool:
    """True once the process has a handler for `signum` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (signum - 1) & 1)


def _started(tmp_path: Path) -> Daemon:
    """The daemon, caught at the first moment it handles SIGHUP: while it is still importing and starting."""
    daemon = Daemon(write_config(tmp_path))
    wait_until(lambda: _catches(daemon.proc.pid, signal.SIGHUP) or daemon.proc.poll() is not None,
               interval=0.001, what="the package's first instruction")
    assert "ready:" not in daemon.output(), "the window of start-up was missed"
    return daemon


def test_a_reload_asked_while_starting_is_applied_once_ready(tmp_path):
    daemon = _started(tmp_path)
    try:
        daemon.signal(signal.SIGHUP)
        daemon.wait_ready()
        wait_until(lambda: "supervisor: reloaded" in daemon.output(), what="the early reload applied")
        assert daemon.output().count("supervisor: reloaded") == 1
        drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
        wait_until(lambda: done_jobs(tmp_path), what="the service working after it")
    finally:
        assert daemon.stop() == 0, daemon.output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_asked_while_starting_stops_cleanly(tmp_path, signum):
    daemon = _started(tmp_path)
    daemon.signal(signum)
    assert daemon.proc.wait(timeout=60) == 0, daemon.output()
    assert "Traceback" not in daemon.output()
    assert "ready:" not in daemon.output(), "a service asked to stop while starting said it was ready"

