"""Validation writes nothing; run creates only output-side folders; unusable folders are named with owner and fix.

`check-config` run as root used to create OUTPUT/failed owned by root, which then kept the DynamicUser service
from starting (exit 78 with a vague line). Permission cases run the CLI as `nobody` (setpriv), since root is
never denied.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.support import CONTENT, STYLE
from tests.support.daemon import Daemon, drop
from tests.support.cli import error_lines, run_cli


def _config(folder: Path, **overrides) -> Path:
    config = {"input": "in", "output": "out", "state": "state",
              "styles": {"starry": {"images": [str(STYLE / "starry_night.jpg")]}},
              "routing": {"default": ["starry"]}, "watch": {"settle_seconds": 0.3},
              "engine": {"iterations": 2, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"}}
    config.update(overrides)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def shared_dir():
    """A folder `nobody` can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="style-daemon-perm-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_check_config_creates_nothing_and_says_what_run_will_create(tmp_path):
    (tmp_path / "in").mkdir()
    config = _config(tmp_path, output="deep/out", state="var/state", failed="elsewhere/failed",
                     processed="elsewhere/processed", after_success="move")
    before = _tree(tmp_path)
    done = run_cli("check-config", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert _tree(tmp_path) == before
    for key, path in (("output", "deep/out"), ("state", "var/state"), ("failed", "elsewhere/failed"),
                      ("processed", "elsewhere/processed"), ("logging.file", "deep/out/logs")):
        assert f"{key}: {tmp_path / path} does not exist yet; it will be created by run" in done.stderr, key


def test_a_missing_input_folder_is_an_error_for_check_config_and_run(tmp_path):
    config = _config(tmp_path)
    before = _tree(tmp_path)
    for command in ("check-config", "run", "once"):
        done = run_cli(command, "-c", str(config), env={"STYLE_DAEMON_FAKE_ENGINE": "0.01"})
        assert done.returncode == 78, (command, done.stderr)
        [line] = error_lines(done)
        assert line.endswith(f"ERROR style-daemon: {config}: input: folder {tmp_path / 'in'} does not exist; "
                             f"create it (mkdir -p {tmp_path / 'in'}) or fix the path"), done.stderr
        assert _tree(tmp_path) == before, command
        if command == "check-config":  # the rest is still reported
            for key, path in (("output", "out"), ("state", "state"), ("failed", "out/failed")):
                assert f"{key}: {tmp_path / path} does not exist yet; it will be created by run" in done.stderr


def test_run_creates_output_and_state_and_says_so_once(tmp_path):
    (tmp_path / "in").mkdir()
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    daemon = Daemon(_config(tmp_path, output="made/out"), command="once")
    assert daemon.proc.wait(timeout=60) == 0, daemon.output()
    log = daemon.output()
    for key, path in (("output", "made/out"), ("state", "state"), ("failed", "made/out/failed"),
                      ("logging.file", "made/out/logs")):
        assert log.count(f"created the {key} folder {tmp_path / path}") == 1, (key, log)
    assert (tmp_path / "made/out/chelsea.starry.jpg").is_file()


def _denied_cases(base: Path) -> list[tuple[str, Path, dict, str]]:
    """(what, the path to break, config overrides, the permission the message must name)."""
    return [
        ("an output folder root made", base / "out", {}, "write"),
        ("a failed folder root made inside a writable output", base / "out" / "failed", {}, "write"),
        ("a state folder that cannot be created", base / "locked" / "state", {"state": "locked/state"}, "write"),
        ("an unreadable input", base / "in", {}, "read and search (x)"),
        ("a journal file root made", base / "state" / "journal.sqlite3", {}, "write"),
        ("a log file root made", base / "out" / "logs" / "style-daemon.log", {}, "write"),
        ("an input that move needs to write", base / "in", {"after_success": "move"}, "write"),
    ]


@pytest.mark.parametrize("index", range(7))
def test_an_unusable_folder_or_file_is_named_with_permission_owner_and_fix(shared_dir, index):
    what, path, overrides, permission = _denied_cases(shared_dir)[index]
    for folder in ("in", "out", "out/failed", "out/logs", "state", "locked"):
        (shared_dir / folder).mkdir(parents=True, exist_ok=True)
        (shared_dir / folder).chmod(0o777)
    config = _config(shared_dir, **overrides)
    config.chmod(0o644)
    if path.suffix:  # a file root left behind, readable but not writable by others
        path.write_text("")
        path.chmod(0o644)
    blocked = path.parent if "cannot be created" in what else path
    if not path.suffix:
        blocked.mkdir(parents=True, exist_ok=True)
        blocked.chmod({"read and search (x)": 0o700, "write": 0o755}[permission])
    for command in ("check-config", "run"):
        done = run_cli(command, "-c", str(config), as_nobody=True, env={"STYLE_DAEMON_FAKE_ENGINE": "0.01"})
        assert done.returncode == 78, (what, command, done.stderr)
        [line] = error_lines(done)
        assert f": {blocked}: no {permission} permission for user nobody (uid 65534, groups nogroup); it is " \
               "owned by root:root with mode " in line, (what, line)
        assert "; fix: chgrp nogroup " in line and f"chmod g+{'rx' if 'read' in permission else 'w'} {blocked}" \
               in line, (what, line)
