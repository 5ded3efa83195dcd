"""Trust under attack, the process side: a corrupt journal, a broken environment, stale failures, dead
workers, orphaned workers and small lies in validation and summaries. The daemon runs as a real subprocess
with the dry-run engine; faults are real where a test can cause them (tmpfs, kill -9, garbage bytes)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.support import CONTENT, STYLE
from tests.support.daemon import ROOT, Daemon, done_jobs, drop, store_rows, wait_until, write_config
from tests.support.fleet import distinct_photos
from tests.support import cli

STORE_CORRUPT_EXIT = 76


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`style-daemon ARGS` on the dry-run engine."""
    return cli.run_cli(*args, env={"STYLE_DAEMON_FAKE_ENGINE": "0.01"}, timeout=timeout)


def status_json(config: Path) -> dict:
    done = run_cli("status", "-c", str(config), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def failed_files(folder: Path) -> list[str]:
    failed = folder / "out" / "failed"
    return sorted(p.name for p in failed.iterdir()) if failed.is_dir() else []


def processes_of(config: Path, role: str = "worker") -> list[int]:
    """PIDs of live (not zombie) `daemon <role>` processes started with this config."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if role in words and "daemon" in words and str(config) in words and state != "Z":
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def one_done_job(folder: Path, config: Path) -> None:
    """A journal with real content: one photo processed, daemon stopped cleanly."""
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: done_jobs(folder), what="first job done")
    assert daemon.stop() == 0


def assert_one_journal_line(text: str, journal: Path) -> None:
    lines = [line for line in text.splitlines() if "is corrupt" in line]
    assert len(lines) == 1, text
    assert str(journal) in lines[0] and f"mv {journal} {journal}.corrupt" in lines[0], lines[0]
    assert "Traceback" not in text, text


# -- 1. a corrupt journal ---------------------------------------------------------------------------


def _long_history(journal: Path) -> None:
    """A journal that has seen many files, checkpointed into the file itself, so that most of its pages
    are read from the file (not from the write-ahead log) by a running daemon."""
    db = sqlite3.connect(journal)
    db.executemany("INSERT INTO files (path, size, mtime_ns, sha, seen) VALUES (?, 1, 1, ?, 0)",
                   [(f"/gone/photo-{n:05d}.jpg", f"{n:064x}") for n in range(3000)])
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _garbage_everywhere(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size or 8192))


def _garbage_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"this is not SQLite at all" * 4)


def _garbage_after_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # every page but the first: tables and indexes
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    _long_history(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_garbage_everywhere, _garbage_header, _garbage_after_header, _truncated])
def test_corrupt_journal_at_start_is_one_line_and_exit_76_for_every_command(tmp_path, damage):
    config = write_config(tmp_path)
    one_done_job(tmp_path, config)
    journal = tmp_path / "state" / "journal.sqlite3"
    assert journal.stat().st_size > 4096
    damage(journal)

    for command in ("run", "once", "status", "check-config"):
        done = run_cli(command, "-c", str(config))
        assert done.returncode == STORE_CORRUPT_EXIT, (command, done.stdout, done.stderr)
        assert_one_journal_line(done.stderr, journal)
    assert not processes_of(config), "a worker outlived the refused start"
    unit = (ROOT / "systemd" / "style-daemon.service").read_text()
    prevent = [line for line in unit.splitlines() if line.startswith("RestartPreventExitStatus=")]
    assert prevent and "76" in prevent[0].split("=", 1)[1].split(), "a corrupt journal would crash-loop"


def test_empty_journal_file_is_a_new_journal_not_a_corrupt_one(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.sqlite3").write_bytes(b"")
    for command in ("status", "check-config"):
        done = run_cli(command, "-c", str(config))
        assert done.returncode == 0 and "corrupt" not in done.stderr, (command, done.stderr)
    daemon = Daemon(config)
    daemon.wait_ready()
    assert daemon.stop() == 0


@pytest.mark.parametrize("wal_too", [False, True])
def test_journal_corrupted_while_running_stops_the_service_with_exit_76(tmp_path, wal_too):
    config = write_config(tmp_path)
    one_done_job(tmp_path, config)
    _long_history(tmp_path / "state" / "journal.sqlite3")
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "rocket.jpg", tmp_path / "in" / "rocket.jpg")
    wait_until(lambda: len(done_jobs(tmp_path)) == 2, what="a job done by this run")
    wait_until(lambda: "queue drained" in daemon.output(), what="idle")
    journal = tmp_path / "state" / "journal.sqlite3"
    _garbage_after_header(journal)
    for extra in journal.parent.glob("journal.sqlite3-wal") if wal_too else ():
        extra.write_bytes(os.urandom(extra.stat().st_size))  # nothing healthy left to read
    drop(CONTENT / "coffee.png", tmp_path / "in" / "coffee.png")

    wait_until(lambda: daemon.proc.poll() is not None, timeout=30, what="the service to stop")
    assert daemon.proc.returncode == STORE_CORRUPT_EXIT, daemon.output()
    assert_one_journal_line(daemon.output(), journal)
    wait_until(lambda: not processes_of(config), timeout=10, what="workers gone")


# -- 2. the environment's fault is not the photo's --------------------------------------------------

_FAULTS = [("ENOSPC", "output disk full"), ("EDQUOT", "disk quota exceeded"), ("EACCES", "permission denied"),
           ("EPERM", "permission denied"), ("EROFS", "read-only"), ("EIO", "I/O error"),
           ("OOM", "out of memory")]


@pytest.mark.parametrize("fault, words", _FAULTS)
def test_environment_faults_keep_the_job_waiting_without_burning_attempts(tmp_path, fault, words):
    """Fault injection (the dry-run engine raises the errno): root ignores permissions, so EACCES,
    EDQUOT, EIO and OOM cannot be caused for real here; ENOSPC and EROFS are also tested for real below."""
    cause = tmp_path / "cause"
    cause.write_text("the environment is broken while this file exists")
    config = write_config(tmp_path, retries={"max_attempts": 2, "backoff_seconds": 0.1})
    daemon = Daemon(config, env={"STYLE_DAEMON_FAKE_FAULT": fault, "STYLE_DAEMON_FAKE_FAULT_WHILE": str(cause)})
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")

    tries: set[float] = set()

    def waited_often():
        rows = store_rows(tmp_path)
        if rows and rows[0]["state"] == "queued" and (rows[0]["error"] or "").startswith("waiting: "):
            tries.add(rows[0]["updated"])
        return len(tries) >= 4  # more tries than max_attempts allows for a photo's fault
    wait_until(waited_often, timeout=30, what="the job to wait through several tries")

    # Between two tries the job is briefly running: read it while it waits (the backoff keeps growing).
    row = wait_until(lambda: next((r for r in store_rows(tmp_path) if r["state"] == "queued"), None),
                     timeout=30, what="the job back in the queue")
    assert row["attempts"] == 0 and row["next_attempt"] > row["updated"]
    assert words in row["error"], row["error"]
    report = wait_until(lambda: (r := status_json(config))["waiting_jobs"] and r, timeout=30,
                        what="status to show the waiting job")
    assert report["failed"] == 0 and report["waiting_jobs"][0]["input"] == "chelsea.png"
    text = wait_until(lambda: t if "waiting: " in (t := run_cli("status", "-c", str(config)).stdout) else None,
                      timeout=30, what="status text to show the waiting job")
    assert words in text and "resumes by itself" in text, text
    assert words in (tmp_path / "out" / "index.html").read_text()
    assert daemon.output().count("waiting: ") == 1, "the cause must be logged once, not at every retry"
    assert failed_files(tmp_path) == []

    cause.unlink()  # the cause is fixed: the job resumes by itself, no re-drop
    wait_until(lambda: done_jobs(tmp_path), timeout=20, what="the job to resume and finish")
    daemon.stop()
    row = store_rows(tmp_path)[0]
    assert row["attempts"] == 1 and failed_files(tmp_path) == []
    assert "resumed: no longer waiting" in daemon.output()
    assert "Traceback" not in daemon.output()


@pytest.fixture
def small_output(tmp_path):
    """The output folder on a real 1 MB tmpfs (tests run as root)."""
    out = tmp_path / "out"
    out.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(out)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); "
                    "the fault-injection test above covers the class")
    yield out
    for _ in range(3):  # the tmpfs, and a read-only bind on it if a test left one
        if subprocess.run(["umount", "-l", str(out)], capture_output=True).returncode != 0:
            break


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def _break(kind: str, out: Path) -> Path | None:
    if kind == "full":
        return _fill(out)
    # A read-only bind mount on top: new writes fail with EROFS (the open log file stays writable).
    subprocess.run(["mount", "--bind", str(out), str(out)], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(out)], check=True)
    return None


def _repair(kind: str, out: Path, filler: Path | None) -> None:
    if kind == "full":
        filler.unlink()
    else:
        subprocess.run(["umount", str(out)], check=True)  # the read-only bind goes, the tmpfs stays


@pytest.mark.parametrize("kind, words", [("full", "output disk full: 0 bytes free on"), ("read-only", "read-only")])
def test_real_full_or_read_only_output_waits_then_resumes(tmp_path, small_output, kind, words):
    config = write_config(tmp_path, output=str(small_output),
                          retries={"max_attempts": 2, "backoff_seconds": 0.2},
                          gallery={"contact_sheets": False, "index": True})
    daemon = Daemon(config)
    daemon.wait_ready()
    filler = _break(kind, small_output)
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")  # the photo's fault: it goes to failed/
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a photo at all" * 200)

    tries: set[float] = set()

    def waited_often():
        rows = [r for r in store_rows(tmp_path) if r["rel_path"] == "chelsea.png"]
        if rows and rows[0]["state"] == "queued" and (rows[0]["error"] or "").startswith("waiting: "):
            tries.add(rows[0]["updated"])
        return len(tries) >= 4
    wait_until(waited_often, timeout=30, what="the job to wait through several tries")
    rows = {r["rel_path"]: r for r in store_rows(tmp_path)}
    assert rows["chelsea.png"]["attempts"] == 0 and words in rows["chelsea.png"]["error"]
    assert rows["broken.jpg"]["state"] == "queued", "a photo's failure that cannot be recorded must wait"
    text = run_cli("status", "-c", str(config)).stdout
    assert words in text, text
    assert not list((small_output / "failed").glob("*")) if (small_output / "failed").is_dir() else True
    output = daemon.output()
    assert "--- Logging error ---" not in output and output.count("cannot write the log file") <= 1, output

    _repair(kind, small_output, filler)
    wait_until(lambda: len(done_jobs(tmp_path)) == 1 and
               any(r["state"] == "failed" for r in store_rows(tmp_path)), timeout=30, what="both resolved")
    daemon.stop()
    assert (small_output / "chelsea.starry.jpg").stat().st_size > 0
    assert failed_files(tmp_path) == ["broken.jpg", "broken.jpg.error.txt"]
    assert (tmp_path / "out" / "failed" / "broken.jpg").stat().st_size == 3600
    assert not [p for p in small_output.rglob(".*") if p.is_file()], "temp file left behind"
    assert "Traceback" not in daemon.output()


# -- 3. a stale failure of a file that later succeeds -------------------------------------------------


@pytest.mark.parametrize("on_failure", ["copy", "move"])
def test_truncated_copy_failure_is_withdrawn_when_the_complete_file_succeeds(tmp_path, on_failure):
    config = write_config(tmp_path, on_failure=on_failure, routing={"default": ["starry", "scream"]},
                          watch={"settle_seconds": 0.5, "rescan_seconds": 300})
    daemon = Daemon(config)
    daemon.wait_ready()
    data = (CONTENT / "tubingen.jpg").read_bytes()
    target = tmp_path / "in" / "stalled.jpg"
    handle = open(target, "wb")
    handle.write(data[: len(data) // 2])  # the copy stalls longer than settle_seconds
    handle.flush()
    # copy: both style sets fail; move: the first failure moves the input away, the second job is dropped
    failures = 2 if on_failure == "copy" else 1
    wait_until(lambda: [r["state"] for r in store_rows(tmp_path)] == ["failed"] * failures,
               what="the truncated file failed")
    assert "stalled.jpg.error.txt" in failed_files(tmp_path)
    if on_failure == "copy":
        handle.write(data[len(data) // 2:])  # the copy completes
        handle.close()
    else:
        handle.close()
        drop(CONTENT / "tubingen.jpg", target)  # moved away: the client copies it again
    wait_until(lambda: len(done_jobs(tmp_path)) == 2, what="the complete file processed")
    wait_until(lambda: not failed_files(tmp_path), timeout=10, what="stale failures withdrawn")
    daemon.stop()
    report = status_json(config)
    assert report["failed"] == 0 and report["last_errors"] == []
    assert "Failed" not in (tmp_path / "out" / "index.html").read_text()
    assert [r["state"] for r in store_rows(tmp_path)] == ["done", "done"]


def test_a_real_failure_of_another_file_or_style_is_not_withdrawn(tmp_path):
    config = write_config(tmp_path)
    daemon = Daemon(config)
    daemon.wait_ready()
    (tmp_path / "in" / "broken.jpg").write_bytes(b"nope" * 100)
    wait_until(lambda: [r for r in store_rows(tmp_path) if r["state"] == "failed"], what="failure")
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    wait_until(lambda: done_jobs(tmp_path), what="another file done")
    daemon.stop()
    assert failed_files(tmp_path) == ["broken.jpg", "broken.jpg.error.txt"]
    assert status_json(config)["failed"] == 1


# -- 4. a dead worker ---------------------------------------------------------------------------------


def test_worker_killed_mid_job_requeues_at_once_and_status_tells_the_truth(tmp_path):
    config = write_config(tmp_path, engine={"iterations": 60, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=0.1)
    daemon.wait_ready()
    drop(CONTENT / "astronaut.png", tmp_path / "in" / "astronaut.png")
    wait_until(lambda: any((r["progress_iteration"] or 0) >= 3 for r in store_rows(tmp_path)), what="running")
    pid = store_rows(tmp_path, "SELECT pid FROM workers")[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # At once: long before the 30 s lease would lapse; a loaded machine may take a few seconds to notice.
    wait_until(lambda: store_rows(tmp_path)[0]["state"] == "queued", timeout=10, interval=0.02,
               what="the job re-queued")
    assert time.monotonic() - killed < 10
    row = store_rows(tmp_path)[0]
    assert row["attempts"] == 1 and "worker process died" in row["error"] and "signal 9" in row["error"]

    report = status_json(config)  # the worker restarts after 2 s: this is the gap
    assert report["running"] == 0 and report["running_jobs"] == []
    states = {w["id"]: w["state"] for w in report["workers"]}
    assert states.get(f"w0:{pid}") == "restarting", states
    assert not [s for s in states.values() if s in ("busy", "ready")], states

    wait_until(lambda: done_jobs(tmp_path), timeout=60, what="done by the restarted worker")
    report = status_json(config)
    assert [w["state"] for w in report["workers"]] in (["ready"], ["busy"]), report["workers"]
    daemon.stop()
    assert store_rows(tmp_path)[0]["attempts"] == 2
    assert "worker 0 ended (signal 9, SIGKILL)" in daemon.output()


def test_photo_that_kills_the_worker_every_time_fails_after_max_attempts(tmp_path):
    config = write_config(tmp_path, retries={"max_attempts": 2, "backoff_seconds": 0.1})
    daemon = Daemon(config, env={"STYLE_DAEMON_FAKE_CRASH": "1"})
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    wait_until(lambda: [r for r in store_rows(tmp_path) if r["state"] == "failed"], timeout=40,
               what="failed for good")
    daemon.stop()
    row = store_rows(tmp_path)[0]
    assert row["attempts"] == 2
    assert row["error"].startswith("the worker process died while processing this photo (signal 9"), row["error"]
    assert "chelsea.png.error.txt" in failed_files(tmp_path)


# -- 5. no worker outlives its supervisor ---------------------------------------------------------------


def test_supervisor_killed_right_after_spawning_leaves_no_orphan_worker(tmp_path):
    config = write_config(tmp_path)
    rng = random.Random(5)
    leftovers: list[int] = []
    try:
        for attempt in range(5):
            daemon = Daemon(config)
            wait_until(lambda: processes_of(config), timeout=30, interval=0.005, what="a worker spawned")
            time.sleep(rng.uniform(0.0, 0.4))  # the fault's timing, not a synchronisation
            daemon.kill()
            try:
                wait_until(lambda: not processes_of(config), timeout=10, what=f"no orphan worker (try {attempt})")
            finally:
                leftovers = processes_of(config)
    finally:
        kill_all(processes_of(config))
    assert not leftovers


def test_workers_hold_the_state_lock_and_the_lock_names_its_holder(tmp_path):
    config = write_config(tmp_path)
    daemon = Daemon(config)
    daemon.wait_ready()
    lock = tmp_path / "state" / "daemon.lock"
    pid, host = lock.read_text().split()
    assert int(pid) == daemon.proc.pid and host == os.uname().nodename
    worker = processes_of(config)[0]
    held = [os.readlink(f) for f in Path(f"/proc/{worker}/fd").iterdir() if os.path.exists(f)]
    assert str(lock) in held, "the worker does not hold the state lock"

    second = run_cli("run", "-c", str(config), timeout=60)  # waits a while, then refuses with the holder
    daemon.stop()
    assert second.returncode == 75, second.stderr
    assert f"pid {pid} on host {host}" in second.stderr and "Traceback" not in second.stderr


# -- 6. smaller lies ----------------------------------------------------------------------------------------


def _config_with(tmp_path: Path, **overrides) -> Path:
    return write_config(tmp_path, **overrides)


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("this is not an image"), "is not a readable image"),
    (lambda p: p.write_bytes((STYLE / "starry_night.jpg").read_bytes()[:5000]), "is not a readable image"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_style_image_that_is_not_an_image_is_refused_by_check_config(tmp_path, make, words):
    bad = tmp_path / "bad-style.jpg"
    make(bad)
    config = _config_with(tmp_path, styles={"starry": {"images": [str(STYLE / "starry_night.jpg")]},
                                            "oops": {"images": [str(STYLE / "the_scream.jpg"), str(bad)]}})
    done = run_cli("check-config", "-c", str(config))
    assert done.returncode == 78, done.stderr
    assert "styles.oops.images.1" in done.stderr and words in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("size", [(1, 1), (10, 200), (31, 31)])
def test_too_small_photo_says_so(tmp_path, size):
    config = write_config(tmp_path)
    daemon = Daemon(config)
    daemon.wait_ready()
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(tmp_path / "in" / "tiny.png")
    wait_until(lambda: [r for r in store_rows(tmp_path) if r["state"] == "failed"], what="failed")
    daemon.stop()
    error = store_rows(tmp_path)[0]["error"]
    assert "photo is too small" in error and f"{size[0]}x{size[1]}" in error and "max_size" not in error


@pytest.mark.parametrize("key, value", [
    ("workers", True), ("engine.iterations", True), ("retries.backoff_seconds", False),
    ("watch.settle_seconds", True), ("naming.quality", True), ("retries.max_attempts", "3"),
    ("engine.style_weight", True),
])
def test_booleans_and_strings_where_numbers_are_meant_are_refused(tmp_path, key, value):
    config = write_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    section, _, name = key.rpartition(".")
    (data.setdefault(section, {}) if section else data)[name] = value
    config.write_text(yaml.safe_dump(data))
    done = run_cli("check-config", "-c", str(config))
    assert done.returncode == 78, (key, done.stdout, done.stderr)
    assert key in done.stderr and "expected" in done.stderr and "Traceback" not in done.stderr


def test_drain_summary_counts_every_job_of_the_batch(tmp_path, tmp_path_factory):
    config = write_config(tmp_path, workers=2, engine={"iterations": 1, "max_size": 32, "scales": 1,
                                                        "backbone": "vgg16-hed"},
                          gallery={"contact_sheets": False, "index": False})
    staging = tmp_path_factory.mktemp("staging")
    distinct_photos(staging, 200)
    daemon = Daemon(config, fake_delay=0.0)
    daemon.wait_ready()
    for path in staging.iterdir():
        os.replace(path, tmp_path / "in" / path.name)
    wait_until(lambda: len(done_jobs(tmp_path)) == 200, timeout=300, interval=0.2, what="200 jobs done")
    wait_until(lambda: "queue drained" in daemon.output(), timeout=10, what="the summary")
    daemon.stop()
    import re

    counts = [int(n) for n in re.findall(r"queue drained: (\d+) done", daemon.output())]
    assert sum(counts) == 200, counts
