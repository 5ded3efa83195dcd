"""`style-daemon reload` (the unit's ExecReload) returns only once the running daemon applied or refused the config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CONTENT
from tests.support.daemon import ROOT, Daemon, drop, wait_until, write_config
from tests.support.cli import error_lines


def _reload(config: Path, pid: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", "reload", "--pid", str(pid), "-c", str(config), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=90)


@pytest.fixture
def running(tmp_path):
    config = write_config(tmp_path)
    daemon = Daemon(config)
    daemon.wait_ready()
    yield config, daemon
    daemon.stop()


def test_reload_returns_once_the_new_config_is_live(running, tmp_path):
    config, daemon = running
    for count, routed in enumerate(("scream", "starry", "scream"), start=1):  # each waits for its own answer
        write_config(tmp_path, routing={"default": [routed]})
        done = _reload(config, daemon.proc.pid)
        assert done.returncode == 0, done.stderr
        assert daemon.output().count("supervisor: reloaded") == count  # logged before the answer, so already
    photo = drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")  # the moment reload returned
    wait_until(lambda: (tmp_path / "out" / "chelsea.scream.jpg.json").exists(), what="routed by the new config")
    assert not (tmp_path / "out" / "chelsea.starry.jpg").exists() and photo.exists()


def test_reload_fails_with_the_daemons_reason_and_the_old_config_stays(running, tmp_path):
    config, daemon = running
    good = config.read_text()
    config.write_text(good.replace("default:\n  - starry", "default:\n  - nope"))
    done = _reload(config, daemon.proc.pid)
    assert done.returncode == 78
    [line] = error_lines(done)
    assert line.endswith(f"reload refused, the old config is kept: {config}: (top level): routing names unknown "
                         "style set(s) nope; defined: scream, starry")
    assert "reload failed, keeping the old config" in daemon.output()  # the daemon itself answered
    config.write_text("styles: [this is: not valid")
    done = _reload(config, daemon.proc.pid)
    assert done.returncode == 78 and "reload refused, the old config is kept: cannot read" in error_lines(done)[0]
    drop(CONTENT / "coffee.png", tmp_path / "in" / "coffee.png")
    wait_until(lambda: (tmp_path / "out" / "coffee.starry.jpg.json").exists(), what="old config still serving")
    assert daemon.proc.poll() is None



@pytest.mark.parametrize("key, folder", [("input", "/"), ("input", "/home"), ("output", "/etc")])
def test_reload_refuses_a_system_folder_at_once_and_the_old_config_keeps_serving(running, tmp_path, key, folder):
    config, daemon = running
    written = {"input": "in", "output": "out"}[key]  # as tests/support/daemon.py writes them
    config.write_text(config.read_text().replace(f"{key}: {written}\n", f"{key}: {folder}\n"))
    assert f"{key}: {folder}" in config.read_text()
    done = _reload(config, daemon.proc.pid)
    assert done.returncode == 78, done.stderr
    [line] = error_lines(done)
    assert f"reload refused, the old config is kept: {config}: {key}: {folder} is " in line, line
    assert "ignored" not in daemon.output()  # nothing of the refused folder was walked
    drop(CONTENT / "coffee.png", tmp_path / "in" / "coffee.png")
    wait_until(lambda: (tmp_path / "out" / "coffee.starry.jpg.json").exists(), what="old config still serving")
    assert daemon.proc.poll() is None

def test_reload_refuses_a_pid_that_is_not_this_daemon(running, tmp_path):
    config, daemon = running
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    done = _reload(config, dead.pid)
    assert done.returncode == 78 and f"no process {dead.pid}: style-daemon is not running" in error_lines(done)[0]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        done = _reload(config, sleeper.pid)
        assert done.returncode == 78
        assert f"process {sleeper.pid} is not the style-daemon of state folder {tmp_path / 'state'} (that is pid " \
               f"{daemon.proc.pid})" in error_lines(done)[0]
        assert sleeper.poll() is None  # not signalled
    finally:
        sleeper.kill()
        sleeper.wait()


def _holder(lock: Path) -> subprocess.Popen:
    """A process that holds `lock` like a daemon would, and ignores SIGHUP (never answers)."""
    code = ("import fcntl, os, signal, sys, time; f = open(sys.argv[1], 'w'); f.write(f'{os.getpid()}\\n'); "
            "f.flush(); fcntl.flock(f, fcntl.LOCK_EX); signal.signal(signal.SIGHUP, signal.SIG_IGN); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_reload_times_out_when_the_daemon_does_not_answer(tmp_path):
    (tmp_path / "state").mkdir()
    config = write_config(tmp_path)
    mute = _holder(tmp_path / "state" / "daemon.lock")
    try:
        done = _reload(config, mute.pid, "--timeout", "1")
        assert done.returncode == 75
        assert f"no answer to the reload from style-daemon (pid {mute.pid}) within 1s" in error_lines(done)[0]
    finally:
        mute.kill()
        mute.wait()


def test_reload_never_signals_a_stale_pid_left_in_the_lock_file(tmp_path):
    (tmp_path / "state").mkdir()
    config = write_config(tmp_path)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "state" / "daemon.lock").write_text(f"{bystander.pid}\n")  # no daemon holds the lock
        done = _reload(config, bystander.pid)
        assert done.returncode == 78 and "it is not running (start it instead of reloading)" in error_lines(done)[0]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
