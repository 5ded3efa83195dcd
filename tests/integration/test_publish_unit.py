"""A result and its sidecar are one unit: a worker killed at any point of publishing leaves, once settled,
exactly one complete result (image + sidecar of the photo's content), never a second one (.2) nor an image
without its sidecar.

The daemon runs as a real subprocess (dry-run engine, real SQLite job store). The worker is killed by strace's
fault injection at the entry of a chosen system call of its main thread - no hook in the product:
- the image's link (linkat): nothing published yet, the job must run again;
- the first rename: the sidecar's (the image is linked, its sidecar not yet);
- the second rename: the contact sheet's (image and sidecar written, the job not yet recorded done).
Each is settled two ways: by the running supervisor when it sees the worker die, and by a restart (the
supervisor frozen before it could notice, then killed, and the service started again); the SQLite job store
for all, PostgreSQL for the issue's two failures.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import CONTENT, wait_until
from tests.support.daemon import Daemon, done_jobs, drop, store_rows, write_config

RENAMES = "rename,renameat,renameat2"
LINKS = "link,linkat"


@dataclass(frozen=True)
class KillPoint:
    """Where the worker dies: at the entry of the `when`-th call of `syscalls` in its main thread."""

    syscalls: str
    when: int
    left: tuple[str, ...]  # what the kill leaves under real names in out/
    settled_by: str  # the log line that says how reconciliation settled it


KILL_POINTS = {
    "before_link": KillPoint(LINKS, 1, (), "the interrupted publish left no result; rolled back"),
    "after_link_before_sidecar": KillPoint(RENAMES, 1, ("chelsea.starry.jpg",), "completed an interrupted publish"),
    "after_sidecar_before_done": KillPoint(RENAMES, 2, ("chelsea.starry.jpg", "chelsea.starry.jpg.json"),
                                           "published before an interruption, completed"),
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _worker_pid(folder: Path) -> int:
    rows = wait_until(lambda: store_rows(folder, "SELECT pid, state FROM workers WHERE state='ready'"),
                      what="a ready worker")
    return rows[0]["pid"]


def _kill_at(pid: int, point: KillPoint, log: Path) -> subprocess.Popen:
    """strace attached to the worker's main thread, SIGKILLing it at the chosen call; returns once attached."""
    handle = open(log, "w")
    tracer = subprocess.Popen(["strace", "-o", "/dev/null", "-p", str(pid), "-e", f"trace={LINKS},{RENAMES}",
                               "-e", f"inject={point.syscalls}:signal=SIGKILL:when={point.when}"],
                              stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    wait_until(lambda: "attached" in log.read_text() or tracer.poll() is not None, what="strace attached")
    assert tracer.poll() is None, log.read_text()
    return tracer


def _visible_files(out: Path) -> list[str]:
    """Every file under out/ a person sees (not hidden temp files, not the gallery page or the logs)."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and p.name != "index.html"
                  and "logs" not in p.relative_to(out).parts)


def _assert_one_complete_result(folder: Path, photo: Path) -> None:
    out = folder / "out"
    files = _visible_files(out)
    # The contact sheet is a view of the result, written after it: a kill before it leaves none.
    assert [f for f in files if f != "chelsea.starry.jpg.sheet.jpg"] == ["chelsea.starry.jpg",
                                                                       "chelsea.starry.jpg.json"], files
    sidecar = json.loads((out / "chelsea.starry.jpg.json").read_text())
    assert sidecar["content"]["sha256"] == _sha(photo)
    assert sidecar["output"] == str(out / "chelsea.starry.jpg")
    rows = store_rows(folder)  # PostgreSQL keeps it relative to its root ('output:NAME'): compare names
    names = [(r["state"], r["output_path"].rpartition("/")[2].rpartition(":")[2]) for r in rows]
    assert names == [("done", "chelsea.starry.jpg")]
    assert store_rows(folder, "SELECT * FROM intents") == []


# Every kill point settled both ways on SQLite; the two failures on PostgreSQL too (its own claims,
# leases and intents table), one way each to keep the suite short.
CASES = [(point, settle, "sqlite") for settle in ("worker_death", "restart") for point in KILL_POINTS] + [
    ("after_link_before_sidecar", "worker_death", "postgres"), ("after_sidecar_before_done", "restart", "postgres")]


@pytest.mark.parametrize("point, settle, store", CASES)
def test_worker_killed_while_publishing_leaves_one_complete_result(folder, request, point, settle, store):
    kill = KILL_POINTS[point]
    extra = {"store": request.getfixturevalue("pg_cluster").new_database()} if store == "postgres" else {}
    config = write_config(folder, engine={"iterations": 4, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"},
                          **extra)
    daemon = Daemon(config, fake_delay=0.25)  # a job of about a second: long enough to freeze the supervisor
    daemon.wait_ready()
    tracer = _kill_at(_worker_pid(folder), kill, folder / "strace.log")
    photo = drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    if settle == "restart":
        wait_until(lambda: [r for r in store_rows(folder) if r["state"] == "running"], what="job running")
        daemon.signal(signal.SIGSTOP)  # the supervisor cannot settle the death: the next start must
    tracer.wait(timeout=60)  # the worker was killed at the chosen call
    if settle == "restart":
        # The harness itself: the kill point is where it says, the job not recorded done, its intent open.
        assert _visible_files(folder / "out") == list(kill.left)
        assert not done_jobs(folder)
        assert [r["step"] for r in store_rows(folder, "SELECT step FROM intents")] == ["publish"]
        daemon.kill()
        daemon = Daemon(config, fake_delay=0.01)
        daemon.wait_ready()
    wait_until(lambda: done_jobs(folder) and not store_rows(folder, "SELECT * FROM intents"),
               what="the job settled")
    assert daemon.stop() == 0
    output = daemon.output()
    assert kill.settled_by in output, output
    assert "Traceback" not in output, output
    _assert_one_complete_result(folder, photo)
