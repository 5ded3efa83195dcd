"""The job store's own faults wait, never crash (#24): the SQLite store's disk really full or failing under the
running service; photos dropped meanwhile are all queued and done afterwards, and the service never exits.

Real faults only: the state folder is a small tmpfs filled to the last byte, or an ext4 image whose file
system the kernel turns read-only after an error (trigger_fs_error). Tests run as root (as CI does).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.support.cli import run_cli
from tests.support.daemon import Daemon, done_jobs, write_config
from tests.support.fleet import distinct_photos, move_in
from tests.support.notify import NotifyListener, notify_env
from tests.support.store_faults import FaultyDisk, fill

PHOTOS = 4
LATER = 2


@pytest.fixture
def state_disk(tmp_path):
    """The state folder (job store, logs) on a real 4 MB tmpfs."""
    disk = FaultyDisk.tmpfs(tmp_path / "state", "4m")
    yield disk
    disk.remove()


def _waiting_lines(output: str, who: str) -> list[str]:
    return [line for line in output.splitlines() if f"{who} waits for the job store" in line]


def _status(config: Path) -> str:
    result = run_cli("status", "-c", str(config))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_full_store_disk_waits_says_so_once_and_queues_every_arrival_after(tmp_path, state_disk):
    listener = NotifyListener(tmp_path / "notify.sock", tmp_path)
    try:
        config = write_config(tmp_path, workers=2, gallery={"index": True, "contact_sheets": False})
        daemon = Daemon(config, env=notify_env(tmp_path))
        daemon.wait_ready()
        filler = fill(state_disk.path)
        staging = tmp_path / "staging"
        staging.mkdir()
        distinct_photos(staging, PHOTOS)
        move_in(staging, tmp_path / "in")

        wait_until(lambda: _waiting_lines(daemon.output(), "the service"), timeout=30,
                   what="the service to say it waits for the job store")
        assert "disk is full" in _waiting_lines(daemon.output(), "the service")[0]
        later = tmp_path / "later"  # arrivals while it waits: noted by the watcher, queued after
        later.mkdir()
        distinct_photos(later, PHOTOS + LATER)
        for path in sorted(later.iterdir())[:PHOTOS]:
            path.unlink()
        move_in(later, tmp_path / "in")
        wait_until(lambda: "waiting for the job store: the job store's disk is full" in _status(config),
                   timeout=15, what="status to say the service waits for the store")
        wait_until(lambda: any("disk is full" in s for s in listener.having("STATUS=waiting for the job store: ")),
                   timeout=15, what="STATUS= to say it")
        gallery = tmp_path / "out" / "index.html"  # the output's disk has room: the page says it there
        wait_until(lambda: "waiting for the job store: the job store&#x27;s disk is full" in gallery.read_text(),
                   timeout=15, what="the gallery to say it")
        waited_since = time.monotonic()
        wait_until(lambda: time.monotonic() - waited_since > 6 and listener.times("WATCHDOG=1")
                   and listener.times("WATCHDOG=1")[-1] > waited_since + 3, timeout=20,
                   what="the watchdog fed while waiting (systemd must not restart a service that waits)")
        assert daemon.proc.poll() is None, daemon.output()

        filler.unlink()  # the cause goes: the service resumes by itself
        wait_until(lambda: len(done_jobs(tmp_path)) == PHOTOS + LATER, timeout=60,
                   what="every photo dropped meanwhile done")
        wait_until(lambda: "waiting for the job store" not in _status(config), timeout=15,
                   what="status to stop saying it")
        assert "waiting for the job store" not in gallery.read_text()
        output = daemon.output()
        assert len(_waiting_lines(output, "the service")) == 1, output  # one line per cause, not one per try
        for index in range(2):
            assert len(_waiting_lines(output, f"worker {index}")) <= 1, output
        assert "the job store answers again" in output
        assert "Traceback" not in output and "cannot rollback" not in output, output
        assert daemon.stop() == 0
        assert sorted(p.name for p in (tmp_path / "out").glob("p*.starry.jpg")) == \
            [f"p{i:03d}.starry.jpg" for i in range(PHOTOS + LATER)]
    finally:
        listener.close()


def test_store_disk_that_fails_under_the_service_waits_and_a_stop_is_still_clean(tmp_path):
    disk = FaultyDisk.ext4(tmp_path / "state", tmp_path / "state.img")
    try:
        config = write_config(tmp_path, workers=1)
        daemon = Daemon(config)
        daemon.wait_ready()
        disk.fail()  # the kernel makes the file system read-only: every write is an I/O error now
        staging = tmp_path / "staging"
        staging.mkdir()
        distinct_photos(staging, 2)
        move_in(staging, tmp_path / "in")
        wait_until(lambda: _waiting_lines(daemon.output(), "the service"), timeout=30,
                   what="the service to say it waits for the job store")
        assert daemon.proc.poll() is None, daemon.output()
        started = time.monotonic()
        code = daemon.stop(timeout=20)
        assert code == 0, daemon.output()
        assert time.monotonic() - started < 15
        assert "Traceback" not in daemon.output(), daemon.output()
    finally:
        disk.remove()


def test_stop_while_the_store_disk_is_full_exits_0_and_a_restart_queues_what_arrived(tmp_path, state_disk):
    config = write_config(tmp_path, workers=1)
    daemon = Daemon(config)
    daemon.wait_ready()
    filler = fill(state_disk.path)
    staging = tmp_path / "staging"
    staging.mkdir()
    distinct_photos(staging, 2)
    move_in(staging, tmp_path / "in")
    wait_until(lambda: _waiting_lines(daemon.output(), "the service"), timeout=30, what="the wait")
    assert daemon.stop(timeout=20) == 0, daemon.output()
    filler.unlink()
    again = Daemon(config)
    wait_until(lambda: len(done_jobs(tmp_path)) == 2, timeout=60, what="the arrivals done after a restart")
    assert again.stop() == 0
    assert "Traceback" not in daemon.output() + again.output()


def test_service_started_on_a_full_store_disk_waits_then_starts_by_itself(tmp_path, state_disk):
    config = write_config(tmp_path, workers=1)
    filler = fill(state_disk.path)
    distinct_photos(tmp_path / "in", 2)
    daemon = Daemon(config)
    try:
        wait_until(lambda: _waiting_lines(daemon.output(), "the service") or daemon.proc.poll() is not None,
                   timeout=30, what="the service to wait for its store at start")
        assert daemon.proc.poll() is None, daemon.output()
        assert "disk is full" in _waiting_lines(daemon.output(), "the service")[0]
        filler.unlink()
        wait_until(lambda: len(done_jobs(tmp_path)) == 2, timeout=60, what="the photos done once there is room")
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.output(), daemon.output()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


def test_a_job_that_cannot_record_its_progress_waits_and_the_watchdog_is_still_fed(tmp_path, state_disk):
    """Nothing arrives, so only the worker meets the full disk (in its progress write): still not a hang."""
    listener = NotifyListener(tmp_path / "notify.sock", tmp_path)
    config = write_config(tmp_path, workers=1, engine={"iterations": 40, "max_size": 64, "scales": 1,
                                                       "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=0.25, env=notify_env(tmp_path))
    try:
        daemon.wait_ready()
        distinct_photos(tmp_path / "in", 1)
        wait_until(lambda: "iter 2/40" in daemon.output(), timeout=30, what="the job to run")
        filler = fill(state_disk.path)
        wait_until(lambda: _waiting_lines(daemon.output(), "worker 0"), timeout=30, what="the worker to wait")
        wait_until(lambda: "waiting for the job store: the job store's disk is full" in _status(config),
                   timeout=15, what="status to say it (the worker's word)")
        waited_since = time.monotonic()
        wait_until(lambda: listener.times("WATCHDOG=1") and listener.times("WATCHDOG=1")[-1] > waited_since + 5,
                   timeout=20, what="the watchdog fed for longer than twice its period while the worker waits")
        assert any("disk is full" in s for s in listener.having("STATUS=waiting for the job store: "))
        filler.unlink()
        wait_until(lambda: len(done_jobs(tmp_path)) == 1, timeout=60, what="the job done once there is room")
        output = daemon.output()
        assert "withholding the watchdog ping" not in output, output
        assert len(_waiting_lines(output, "worker 0")) == 1 and "Traceback" not in output, output
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
        listener.close()
