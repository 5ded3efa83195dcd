"""A release (after_success delete or move) that was cut short is settled, against the real daemon (dry-run
engine, real SQLite job store):
- a worker killed in the middle of it, its job already done, is settled by the running service when it sees
  the death (not at the next start): the input deleted or moved once, no quarantine name left, no open intent;
- an input left under a release's (or an on_failure: move's) hidden name whose intent is lost with the store
  is put back under its own name at start, then treated as the config says.

The worker is killed by strace's fault injection at the entry of a chosen call of its main thread (no hook in
the product), as in test_publish_unit.py: its first renameat is the rename to the quarantine name, its first
linkat the move's link into processed/, its first unlinkat the quarantine's unlink (publishing uses link,
unlink and rename on full paths, so none of these counts before the release).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import CONTENT, wait_until
from tests.support.daemon import Daemon, done_jobs, drop, store_rows, write_config

TRACED = "renameat,linkat,unlinkat"
QUARANTINE = ".style-daemon-release."


def _worker_pid(folder: Path) -> int:
    rows = wait_until(lambda: store_rows(folder, "SELECT pid, state FROM workers WHERE state='ready'"),
                      what="a ready worker")
    return rows[0]["pid"]


def _kill_at(pid: int, syscall: str, log: Path) -> subprocess.Popen:
    """strace attached to the worker's main thread, SIGKILLing it at its first `syscall`; returns once attached."""
    handle = open(log, "w")
    tracer = subprocess.Popen(["strace", "-o", "/dev/null", "-p", str(pid), "-e", f"trace={TRACED}",
                               "-e", f"inject={syscall}:signal=SIGKILL:when=1"],
                              stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    wait_until(lambda: "attached" in log.read_text() or tracer.poll() is not None, what="strace attached")
    assert tracer.poll() is None, log.read_text()
    return tracer


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# (after_success, the call the worker dies at): before the quarantine rename (the step not begun), at the
# delete's unlink (quarantined), at the move's link (quarantined, no target), at the move's unlink (the
# target complete, the quarantine still there).
KILLS = [("delete", "renameat"), ("delete", "unlinkat"), ("move", "linkat"), ("move", "unlinkat")]


@pytest.mark.parametrize("action, syscall", KILLS)
def test_a_worker_killed_during_the_release_is_settled_while_the_service_runs(folder, action, syscall):
    config = write_config(folder, after_success=action)
    daemon = Daemon(config)
    daemon.wait_ready()
    tracer = _kill_at(_worker_pid(folder), syscall, folder / "strace.log")
    data = (CONTENT / "chelsea.png").read_bytes()
    source = drop(CONTENT / "chelsea.png", folder / "in" / "a.png")
    tracer.wait(timeout=60)  # the worker was killed at the chosen call, its job already recorded done
    assert len(done_jobs(folder)) == 1
    wait_until(lambda: "worker 0 ended" in daemon.output(), what="the supervisor saw the death")
    processed = folder / "out" / "processed"
    wait_until(lambda: not source.exists() and _names(folder / "in") == []
               and not store_rows(folder, "SELECT * FROM intents"), timeout=20,
               what="the release settled by the running service")
    assert daemon.proc.poll() is None  # the same supervisor: no restart did it
    assert daemon.output().count("ready:") == 1
    if action == "move":
        assert _names(processed) == ["a.png"] and (processed / "a.png").read_bytes() == data
    else:
        assert _names(processed) == []
    assert daemon.stop() == 0
    output = daemon.output()
    assert "Traceback" not in output, output
    assert output.count("deleted input" if action == "delete" else "moved input") == 1, output
    assert [r["state"] for r in store_rows(folder)] == ["done"]


@pytest.mark.parametrize("action", ["keep", "delete"])
def test_an_input_hidden_by_a_step_whose_record_is_lost_is_put_back_at_start(folder, action):
    config = write_config(folder, after_success=action)
    inbox = folder / "in"
    # Left by a release and by an on_failure: move, each interrupted; the job store then lost (none here).
    released = drop(CONTENT / "chelsea.png", inbox / f"{QUARANTINE}7-0a1b2c3d.a.png")
    failed = drop(CONTENT / "coffee.png", inbox / "sub" / ".style-daemon-fail.9-4e5f6a7b.b.png")
    daemon = Daemon(config)
    daemon.wait_ready()
    assert "put back 2 input(s)" in daemon.output()
    wait_until(lambda: len(done_jobs(folder)) == 2, what="both photos processed")
    if action == "delete":
        wait_until(lambda: _names(inbox) == ["sub"] and _names(inbox / "sub") == [], what="both released")
    else:
        assert (inbox / "a.png").read_bytes() == (CONTENT / "chelsea.png").read_bytes()
        assert (inbox / "sub" / "b.png").read_bytes() == (CONTENT / "coffee.png").read_bytes()
        assert _names(inbox) == ["a.png", "sub"] and _names(inbox / "sub") == ["b.png"]
    assert not released.exists() and not failed.exists()
    assert daemon.stop() == 0
    assert sorted(r["rel_path"] for r in done_jobs(folder)) == ["a.png", "sub/b.png"]
    assert "Traceback" not in daemon.output()
