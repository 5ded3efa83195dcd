"""Identity before anything destructive, against the real daemon (dry-run engine): an input is deleted or
moved only if it is still the content its jobs processed, and a move to another file system never leaves a
partial file, even when that file system is full. The release's every race and crash state is covered step
by step in tests/unit/service/test_release_steps.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support import CONTENT
from tests.support.daemon import Daemon, done_jobs, drop, store_rows, wait_until, write_config
from tests.support.release_bench import fill, tmpfs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _visible(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("action", ["delete", "move"])
def test_a_photo_replaced_while_its_job_runs_survives_and_is_processed_as_its_own_job(folder, action):
    config = write_config(folder, after_success=action)
    daemon = Daemon(config, fake_delay=0.4)  # 5 iterations: about 2 s a job, time to replace the photo
    daemon.wait_ready()
    first, second = (CONTENT / "chelsea.png").read_bytes(), (CONTENT / "coffee.png").read_bytes()
    source = drop(CONTENT / "chelsea.png", folder / "in" / "a.png")
    wait_until(lambda: any(r["state"] == "running" for r in store_rows(folder)), what="the first job running")
    drop(CONTENT / "coffee.png", source)  # a different photo under the same name, while the job runs
    verb = "deleted" if action == "delete" else "moved"
    kept = f"not {verb}: {source} changed since it was processed; kept"
    wait_until(lambda: kept in daemon.output(), what="the release refused")
    assert source.read_bytes() == second  # untouched, at once after the refusal
    wait_until(lambda: len(done_jobs(folder)) == 2 and not source.exists(), timeout=60,
               what="the new photo's own job done and released")
    daemon.stop()
    assert sorted(r["content_sha"] for r in done_jobs(folder)) == sorted([_sha(first), _sha(second)])
    assert daemon.output().count(kept) == 1
    processed = folder / "out" / "processed"
    if action == "move":
        assert _visible(processed) == {"a.png": second}  # the first photo was replaced by its owner, not by us
    else:
        assert not processed.exists() or _visible(processed) == {}
    assert [p.name for p in (folder / "in").iterdir()] == []  # no quarantine left behind


@pytest.fixture
def small_processed(tmp_path):
    """processed/ on its own 1 MB tmpfs: another file system than the input's."""
    with tmpfs(tmp_path / "processed", size="1m") as mount:
        yield mount


def test_a_move_to_another_file_system_is_whole_and_a_full_one_keeps_the_photo(folder, small_processed):
    config = write_config(folder, after_success="move", processed=str(small_processed))
    daemon = Daemon(config)
    daemon.wait_ready()
    data = (CONTENT / "chelsea.png").read_bytes()
    drop(CONTENT / "chelsea.png", folder / "in" / "a.png")
    wait_until(lambda: "a.png" in _visible(small_processed), what="moved to the other file system")
    assert _visible(small_processed) == {"a.png": data}
    filler = fill(small_processed)
    source = drop(CONTENT / "coffee.png", folder / "in" / "b.png")
    wait_until(lambda: "could not move input" in daemon.output(), what="the move refused")
    wait_until(lambda: len(done_jobs(folder)) == 2, what="the job recorded")
    assert source.read_bytes() == (CONTENT / "coffee.png").read_bytes()
    assert sorted(p.name for p in small_processed.iterdir()) == ["a.png", "filler.bin"]  # no partial, no temp
    lines = [line for line in daemon.output().splitlines() if "could not move" in line]
    assert len(lines) == 1 and "No space left on device" in lines[0], lines
    daemon.stop()
    filler.unlink()
    again = Daemon(config)  # the start-up scan tries again: now it fits
    again.wait_ready()
    wait_until(lambda: not source.exists(), what="moved once there is room")
    again.stop()
    assert _visible(small_processed) == {"a.png": data, "b.png": (CONTENT / "coffee.png").read_bytes()}
