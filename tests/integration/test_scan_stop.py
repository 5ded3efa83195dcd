"""SIGTERM stops the service within the unit's promise even during the scan of a huge folder (#24), and a
reload asked then is honoured after it. The folder is cheap: tens of thousands of empty *.jpg files (the
scan's cost is walking and stat, not decoding), made once per test session.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.support.daemon import Daemon, write_config

FILES = 40_000
FOLDERS = 40
STOP_PROMISE = 5.0  # seconds; the unit allows TimeoutStopSec=20, the scan alone takes longer than this on CI


@pytest.fixture(scope="module")
def huge_folder(tmp_path_factory) -> Path:
    """FOLDERS folders of empty photos, FILES in all (about 3 s to make)."""
    root = tmp_path_factory.mktemp("huge")
    for folder in range(FOLDERS):
        here = root / f"d{folder:02d}"
        here.mkdir()
        for index in range(FILES // FOLDERS):
            os.close(os.open(here / f"p{index:04d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    return root


def _daemon_on(tmp_path: Path, huge: Path) -> tuple[Daemon, Path]:
    config = write_config(tmp_path, input=str(huge), workers=1)
    return Daemon(config), config


def _scan_began(daemon: Daemon, times: int = 1) -> None:
    wait_until(lambda: daemon.output().count("service.watcher: watching") >= times or daemon.proc.poll() is not None,
               timeout=60, what="the scan to begin")
    assert daemon.proc.poll() is None, daemon.output()


def _exits_within(daemon: Daemon, seconds: float) -> float:
    began = time.monotonic()
    wait_until(lambda: daemon.proc.poll() is not None, timeout=seconds, interval=0.02,
               what=f"the daemon to exit within {seconds}s of SIGTERM")
    return time.monotonic() - began


def test_sigterm_during_the_startup_scan_of_a_huge_folder_exits_0_at_once(tmp_path, huge_folder):
    daemon, _ = _daemon_on(tmp_path, huge_folder)
    _scan_began(daemon)
    daemon.signal(signal.SIGTERM)
    _exits_within(daemon, STOP_PROMISE)
    assert daemon.proc.returncode == 0, daemon.output()
    output = daemon.output()
    cut = re.search(r"startup scan of .* cut short by the stop after (\d+) file", output)
    assert cut and int(cut.group(1)) < FILES, output  # it ended early, not at the end of the walk
    assert "Traceback" not in output


def test_reload_during_the_scan_is_honoured_after_it_and_sigterm_during_the_next_scan_or_hashing_is_prompt(
        tmp_path, huge_folder):
    daemon, _ = _daemon_on(tmp_path, huge_folder)
    _scan_began(daemon)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in daemon.output() or daemon.proc.poll() is not None, timeout=60,
               what="the reload asked during the scan")
    output = daemon.output()
    assert output.index("startup scan:") < output.index("reloaded"), output  # after the scan, not lost
    assert daemon.proc.poll() is None, output
    daemon.signal(signal.SIGTERM)  # the new config's scan, or the hashing of thousands of settled files
    _exits_within(daemon, STOP_PROMISE)
    assert daemon.proc.returncode == 0, daemon.output()
    assert "Traceback" not in daemon.output()
