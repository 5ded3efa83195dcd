"""Blame the right thing: a style image broken after start makes its style set unavailable, never the photo failed.

The daemon runs as a subprocess with the dry-run engine (which still decodes every style image). For each way a
style image can break (empty, garbage, truncated, deleted, a folder or a named pipe in its place) the photo
waits without using an attempt, `status` and `check-config` name the style set, the log says it once, and once
the file is restored the photo is processed by the same running daemon (no restart, no reload).
Permissions are not among the faults: the suite runs as root, which reads a file of mode 000 anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from tests.support import CONTENT, STYLE
from tests.support import cli
from tests.support.daemon import Daemon, done_jobs, drop, store_rows, wait_until, write_config

UNAVAILABLE = "style set starry unavailable"


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an image at all\n" * 50)


def _truncated(path: Path) -> None:
    path.write_bytes((STYLE / "starry_night.jpg").read_bytes()[:5000])


def _deleted(path: Path) -> None:
    path.unlink()


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _pipe(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)  # reading it would block a worker forever: it is refused unread


def _restore(path: Path) -> None:
    if path.is_dir():
        path.rmdir()
    # Written aside and renamed in, as a careful person restores a file (a worker never reads half of it).
    aside = path.with_name(".restore.tmp")
    shutil.copyfile(STYLE / "starry_night.jpg", aside)
    aside.replace(path)


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty": (_empty, "is empty (0 bytes)"),
    "garbage": (_garbage, "is not a readable image"),
    "truncated": (_truncated, "is not a readable image"),
    "deleted": (_deleted, "is missing"),
    "folder": (_folder, "is a folder"),
    "pipe": (_pipe, "is not a regular file"),
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return cli.run_cli(*args, env={"STYLE_DAEMON_FAKE_ENGINE": "0.01"}, timeout=60)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose only style set reads a copy of The Starry Night that the test may break."""
    painting = tmp_path / "paintings" / "starry.jpg"
    painting.parent.mkdir()
    shutil.copyfile(STYLE / "starry_night.jpg", painting)
    config = write_config(tmp_path, styles={"starry": {"images": [str(painting)]}},
                          retries={"max_attempts": 2, "backoff_seconds": 0.2, "max_wait_seconds": 0.5})
    return config, painting


def _waiting_row(tmp_path: Path) -> dict | None:
    rows = store_rows(tmp_path)
    row = rows[0] if rows else None
    if row and row["state"] == "queued" and UNAVAILABLE in (row["error"] or ""):
        return row
    return None


def _log_lines(daemon: Daemon, words: str) -> list[str]:
    return [line for line in daemon.output().splitlines() if words in line]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_style_image_broken_after_start_makes_the_photo_wait_until_it_is_restored(tmp_path, fault):
    breaks, words = FAULTS[fault]
    config, painting = _setup(tmp_path)
    daemon = Daemon(config)
    try:
        daemon.wait_ready()
        breaks(painting)
        drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")

        # It waits through several tries, more than max_attempts would allow a photo's fault, using none.
        tries: set[float] = set()

        def waited_often():
            row = _waiting_row(tmp_path)
            if row:
                tries.add(row["updated"])
            return len(tries) >= 3
        wait_until(waited_often, timeout=30, what="the job to wait through several tries")
        row = wait_until(lambda: _waiting_row(tmp_path), timeout=30, what="the job waiting")
        assert row["attempts"] == 0, row
        assert words in row["error"] and str(painting) in row["error"], row["error"]
        assert not [r for r in store_rows(tmp_path) if r["state"] == "failed"]
        assert not (tmp_path / "out" / "failed").exists() or not any((tmp_path / "out" / "failed").iterdir())

        # status (text and JSON) names the style set, the file and what is wrong.
        report = json.loads(run_cli("status", "-c", str(config), "--json").stdout)
        assert report["failed"] == 0
        assert [(s["style_set"], s["path"]) for s in report["unavailable_styles"]] == [("starry", str(painting))]
        assert words in report["unavailable_styles"][0]["problem"]
        text = run_cli("status", "-c", str(config)).stdout
        assert UNAVAILABLE in text and words in text and str(painting) in text, text
        assert text.count(UNAVAILABLE) == 1, text  # the set once, not again for each of its waiting jobs

        # check-config names the key of the broken image (it refuses the file as start would).
        checked = run_cli("check-config", "-c", str(config))
        assert checked.returncode == 78 and "styles.starry.images.0" in checked.stderr, checked.stderr
        assert str(painting) in checked.stderr

        # The log says it once, in one line naming the set, the file and the fix.
        said = _log_lines(daemon, UNAVAILABLE)
        assert len(said) == 1, said
        assert str(painting) in said[0] and "restore the file" in said[0] and words in said[0]

        _restore(painting)  # fixed: the same daemon runs the photo by itself
        wait_until(lambda: done_jobs(tmp_path), timeout=30, what="the photo processed after the fix")
        assert daemon.proc.poll() is None
        row = store_rows(tmp_path)[0]
        assert row["state"] == "done" and row["attempts"] == 1, row
        assert not (tmp_path / "out" / "failed").exists() or not any((tmp_path / "out" / "failed").iterdir())
        assert list((tmp_path / "out").glob("chelsea.starry*.json")), "no result with its sidecar"
        wait_until(lambda: _log_lines(daemon, "resumed: style set starry is available again"), timeout=10,
                   what="the log to say the style set is back")
        report = json.loads(run_cli("status", "-c", str(config), "--json").stdout)
        assert report["unavailable_styles"] == [] and report["waiting_jobs"] == []
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
    assert daemon.output().count("ready:") == 1, "the service was restarted"


def test_a_broken_style_set_holds_only_its_own_photos(tmp_path):
    """Two sets, one broken: the other's photos run meanwhile, and their success does not claim the broken
    set is back (its cause stays said once, and is said resumed only when its file reads again)."""
    painting = tmp_path / "paintings" / "starry.jpg"
    painting.parent.mkdir()
    shutil.copyfile(STYLE / "starry_night.jpg", painting)
    config = write_config(tmp_path, styles={"starry": {"images": [str(painting)]},
                                            "scream": {"images": [str(STYLE / "the_scream.jpg")]}},
                          retries={"max_attempts": 2, "backoff_seconds": 0.2, "max_wait_seconds": 0.5})
    daemon = Daemon(config)
    try:
        daemon.wait_ready()
        _empty(painting)
        drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
        wait_until(lambda: _waiting_row(tmp_path), timeout=30, what="the starry photo waiting")
        for name in ("coffee.png", "astronaut.png"):
            drop(CONTENT / name, tmp_path / "in" / "scream" / name)
        wait_until(lambda: len(done_jobs(tmp_path)) == 2, timeout=30, what="the scream photos done meanwhile")
        wait_until(lambda: _waiting_row(tmp_path), timeout=30, what="the starry photo still waiting")
        assert not _log_lines(daemon, "resumed: style set starry")
        assert len(_log_lines(daemon, UNAVAILABLE)) == 1
        _restore(painting)
        wait_until(lambda: len(done_jobs(tmp_path)) == 3, timeout=30, what="the starry photo done after the fix")
        assert [r["attempts"] for r in store_rows(tmp_path) if r["style_set"] == "starry"] == [1]
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()


def _worker_pids(config: Path) -> list[int]:
    """PIDs of the live `daemon worker` processes started with this config."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] if words else "Z"
        except OSError:
            continue
        if b"worker" in words and str(config).encode() in words and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("fault", ["empty", "deleted"])
def test_a_worker_started_while_the_style_is_broken_starts_and_records_the_restored_fingerprint(tmp_path, fault):
    """The worker reads the config and fingerprints the style sets at start: a broken painting must neither stop
    it (a restart loop) nor leave it a stale fingerprint once restored (the result would not be recognised
    as done at the next start)."""
    config, painting = _setup(tmp_path)
    daemon = Daemon(config)
    try:
        daemon.wait_ready()
        FAULTS[fault][0](painting)
        drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
        queued_with = wait_until(lambda: _waiting_row(tmp_path), timeout=30, what="the job waiting")["params_hash"]
        first = wait_until(lambda: _worker_pids(config), timeout=10, what="the worker")
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: daemon.output().count("worker 0 ready") >= 2, timeout=30, what="a new worker ready")
        assert "exit code 78" not in daemon.output() and "styles.starry.images.0" not in daemon.output()
        wait_until(lambda: _waiting_row(tmp_path), timeout=30, what="the job waiting for the new worker")
        _restore(painting)
        done = wait_until(lambda: done_jobs(tmp_path), timeout=30, what="the photo processed after the fix")[0]
        sidecar = json.loads(next((tmp_path / "out").glob("chelsea.starry*.json")).read_text())
        assert sidecar["params_hash"] == done["params_hash"] == queued_with
        assert not [r for r in store_rows(tmp_path) if r["state"] == "failed"]
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
