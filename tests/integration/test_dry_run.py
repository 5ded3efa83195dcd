"""The dry-run engine as an administrator uses it: `once --dry-run` checks folders, routing and the service
without weights, and every result says it is a dry run; STYLE_DAEMON_FAKE_ENGINE=SECONDS still chooses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CONTENT
from tests.support.daemon import ROOT, drop, write_config

DRY_RUN_ENV = "STYLE_DAEMON_FAKE_ENGINE"


def _once(config: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != DRY_RUN_ENV}
    return subprocess.run([sys.executable, "-m", "daemon", "once", *flags, "-c", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=dict(base, **(env or {})))


def _sidecars(folder: Path) -> dict[str, dict]:
    out = folder / "out"
    return {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in sorted(out.rglob("*.jpg.json"))}


def test_once_dry_run_needs_no_weights_and_marks_every_result(tmp_path: Path) -> None:
    # vgg19 with no weights file and no download allowed: the real engine could not even start (exit 69).
    config = write_config(tmp_path, after_success="move", engine={"iterations": 5, "max_size": 64, "scales": 1,
                                                                  "backbone": "vgg19"},
                          routing={"default": ["starry"], "rules": [{"glob": "portraits/**", "styles": ["scream"]}]})
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    drop(CONTENT / "astronaut.png", tmp_path / "in" / "portraits" / "astronaut.png")
    without = _once(config)
    assert without.returncode != 0 and "VGG19 weights are not cached" in without.stderr, without.stderr
    done = _once(config, "--dry-run")
    assert done.returncode == 0, done.stderr
    sidecars = _sidecars(tmp_path)
    # The routing sent each photo to its own style set; the output mirrors the input's folders.
    assert set(sidecars) == {"chelsea.starry.jpg.json", "portraits/astronaut.scream.jpg.json"}, sidecars.keys()
    for doc in sidecars.values():
        assert doc["dry_run"] is True and doc["keras_backend"] == "dry-run", doc
        assert all("dry run" in scale["stop_detail"] for scale in doc["result"]["scales"])
    assert (tmp_path / "out" / "portraits" / "astronaut.scream.jpg").is_file()
    assert sorted(p.name for p in (tmp_path / "out" / "processed").rglob("*.png")) == ["astronaut.png", "chelsea.png"]
    assert "DRY RUN" in done.stderr and done.stderr.count("(dry run: not stylised)") == 2, done.stderr


@pytest.mark.parametrize("flags", [(), ("--dry-run",)], ids=["env-only", "env-and-flag"])
def test_the_environment_switch_chooses_the_dry_run_and_its_seconds_per_iteration(tmp_path: Path,
                                                                                  flags: tuple[str, ...]) -> None:
    config = write_config(tmp_path, engine={"iterations": 8, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    done = _once(config, *flags, env={DRY_RUN_ENV: "0.1"})
    assert done.returncode == 0, done.stderr
    (doc,) = _sidecars(tmp_path).values()
    assert doc["dry_run"] is True and doc["result"]["iterations"] == 8
    assert doc["result"]["seconds"] >= 0.8  # 8 iterations of the 0.1 s asked for, not the flag's default


@pytest.mark.engine  # the real engine runs after the dry run
def test_a_dry_run_never_deletes_photos_and_redo_then_gives_the_real_result(tmp_path: Path) -> None:
    engine = {"iterations": 2, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"}
    deleting = write_config(tmp_path, after_success="delete", engine=engine)
    photo = drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    refused = _once(deleting, "--dry-run")
    assert refused.returncode != 0 and "after_success: delete with --dry-run" in refused.stderr, refused.stderr
    assert photo.is_file() and not _sidecars(tmp_path)

    keeping = write_config(tmp_path, engine=engine)
    assert _once(keeping, "--dry-run").returncode == 0
    assert [doc["dry_run"] for doc in _sidecars(tmp_path).values()] == [True]
    # After a dry run, `redo` queues the photo again for the real engine; its result is written beside.
    redo = subprocess.run([sys.executable, "-m", "daemon", "redo", "-c", str(keeping)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != DRY_RUN_ENV})
    assert redo.returncode == 0, redo.stderr
    real = _once(keeping)
    assert real.returncode == 0, real.stderr
    marks = sorted(doc.get("dry_run", False) for doc in _sidecars(tmp_path).values())
    assert marks == [False, True], marks
