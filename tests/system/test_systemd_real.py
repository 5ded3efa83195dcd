"""The shipped unit under a real systemd 252 (PID 1 of a systemd-nspawn container), with the dry-run engine.

Start to READY, a photo processed as the DynamicUser, a synchronous reload (and a refused one), the watchdog
restarting a hung job, a clean stop that re-queues the running job, and folders made by someone else.
Needs root, systemd-container and debootstrap (see tests/systemd_container.py); fails, never skips, without.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from tests.support import CONTENT, STYLE
from tests.support.daemon import ROOT, wait_until
from tests.support.systemd_container import Container, build_wheels, ensure_root, install_project, missing_tools, root_lock

UNIT = "style-daemon"
CONFIG = "/etc/style-daemon/config.yaml"
SHARE = "/srv/style-daemon"
DROPIN = "/etc/systemd/system/style-daemon.service.d"
STATE = "/var/lib/private/style-daemon"  # where DynamicUser's StateDirectory really is


@pytest.fixture(scope="session")
def box(tmp_path_factory):
    """The booted container with the project installed and the unit in place; powered off at the end."""
    reason = missing_tools()
    if reason:
        pytest.fail(f"cannot boot a real systemd: {reason}", pytrace=False)
    work = tmp_path_factory.mktemp("systemd")
    with root_lock():
        started = time.monotonic()
        ensure_root(work / "debootstrap.log")
        wheels = build_wheels(ROOT, work / "wheelhouse")
        container = Container(work / "console.log")
        try:
            install_project(container, wheels, work / "wheelhouse")
            _install_unit(container)
            print(f"\ncontainer ready in {time.monotonic() - started:.1f}s")
            yield container
        finally:
            container.poweroff()


def _install_unit(box: Container) -> None:
    """docs/service.md 'The systemd unit', steps 2, 3 and 5 (no weights: the dry-run engine needs none)."""
    box.run("sh", "-c", "getent group stylers >/dev/null || groupadd --system stylers")
    box.run("install", "-d", "-m", "2775", "-g", "stylers", SHARE, f"{SHARE}/input", f"{SHARE}/output",
            f"{SHARE}/styles")
    for name in ("starry_night.jpg", "the_scream.jpg"):
        box.path(f"{SHARE}/styles/{name}").write_bytes((STYLE / name).read_bytes())
    box.path("/etc/style-daemon").mkdir(exist_ok=True)
    box.path("/etc/systemd/system/style-daemon.service").write_text(
        (ROOT / "systemd" / "style-daemon.service").read_text())  # as shipped: ExecStart is already /opt/...
    box.path("/etc/default/style-daemon").write_text((ROOT / "systemd" / "style-daemon.default").read_text())


class Service:
    """The unit in a clean state for one test: nothing queued, empty share, the dry-run engine."""

    def __init__(self, box: Container) -> None:
        self.box = box
        box.run("systemctl", "kill", "-s", "KILL", UNIT, check=False)
        box.run("systemctl", "stop", UNIT, check=False)
        box.run("systemctl", "reset-failed", UNIT, check=False)
        box.run("sh", "-c", f"rm -rf {DROPIN} {STATE} /var/lib/style-daemon /opt/sd-out {SHARE}/input/* "
                            f"{SHARE}/output/* {SHARE}/input/.[!.]*")
        self.configure()
        self.dropin("engine", "Environment=STYLE_DAEMON_FAKE_ENGINE=0.01")
        self.cursor = box.run("journalctl", "-n", "0", "--show-cursor", "-q").stdout.split("cursor: ")[-1].strip()

    def configure(self, **overrides) -> None:
        """Write the service's config (small and fast) with top-level overrides."""
        config = {"input": f"{SHARE}/input", "output": f"{SHARE}/output", "state": "/var/lib/style-daemon",
                  "styles": {"starry": {"images": [f"{SHARE}/styles/starry_night.jpg"]},
                             "scream": {"images": [f"{SHARE}/styles/the_scream.jpg"]}},
                  "routing": {"default": ["starry"]},
                  "watch": {"settle_seconds": 0.3},
                  "engine": {"iterations": 5, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"},
                  "logging": {"progress_every": 1}}
        config.update(overrides)
        self.box.path(CONFIG).write_text(yaml.safe_dump(config))

    def dropin(self, name: str, *lines: str) -> None:
        """A drop-in for the unit (test-only settings), then daemon-reload."""
        folder = self.box.path(DROPIN)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.conf").write_text("[Service]\n" + "\n".join(lines) + "\n")
        self.box.run("systemctl", "daemon-reload")

    def systemctl(self, *args: str, check: bool = True):
        """systemctl ARGS style-daemon inside the container."""
        return self.box.run("systemctl", *args, UNIT, check=check, timeout=120)

    def show(self, prop: str) -> str:
        """One property of the unit (systemctl show -p PROP --value)."""
        return self.systemctl("show", "-p", prop, "--value").stdout.strip()

    def journal(self) -> str:
        """The unit's journal since this test began (the daemon's lines and systemd's about it)."""
        return self.box.run("journalctl", "-u", UNIT, "-o", "cat", "--no-pager", f"--after-cursor={self.cursor}",
                            check=False).stdout

    def wait_journal(self, text: str, timeout: float = 30) -> str:
        """Until `text` is in the journal (journald writes asynchronously)."""
        try:
            return wait_until(lambda: text in self.journal() and self.journal(), timeout, 0.2, what=repr(text))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the journal:\n{self.journal()[-6000:]}") from None

    def drop(self, photo: str, name: str | None = None) -> Path:
        """A photo dropped into the share the way a client does: written aside, renamed in."""
        target = self.box.path(f"{SHARE}/input/{name or photo}")
        hidden = target.with_name(f".{target.name}.part")
        hidden.write_bytes((CONTENT / photo).read_bytes())
        os.replace(hidden, target)
        return target

    def output(self, name: str) -> Path:
        """A file in the share's output folder, as seen from the host."""
        return self.box.path(f"{SHARE}/output/{name}")

    def job_states(self) -> list[str]:
        """States of the jobs in the service's journal (read from the host)."""
        db = sqlite3.connect(f"file:{self.box.path(STATE)}/journal.sqlite3?mode=ro", uri=True, timeout=10)
        try:
            return [row[0] for row in db.execute("SELECT state FROM jobs ORDER BY id")]
        finally:
            db.close()


@pytest.fixture
def service(box):
    unit = Service(box)
    yield unit
    box.run("systemctl", "kill", "-s", "KILL", UNIT, check=False)  # a hung job would hold a stop for 20 s


def test_starts_ready_and_processes_a_photo_as_the_dynamic_user(service):
    started = time.monotonic()
    service.systemctl("start")  # Type=notify: returns once the daemon said READY=1
    print(f"\nstart to READY {time.monotonic() - started:.2f}s")
    assert service.show("ActiveState") == "active"
    assert service.show("StatusText").startswith(("ready", "idle"))
    service.drop("chelsea.png")
    result = service.output("chelsea.starry.jpg")
    wait_until(lambda: service.output("chelsea.starry.jpg.json").exists(), 60, 0.2, what="result")
    info = result.stat()
    stylers = int(service.box.run("getent", "group", "stylers").stdout.split(":")[2])
    assert info.st_uid != 0 and info.st_gid == stylers and info.st_mode & 0o777 == 0o660  # UMask=0007, setgid
    assert "ready: 1 worker(s)" in service.journal()


def test_reload_returns_once_the_new_config_is_live_and_fails_when_it_is_refused(service):
    service.systemctl("start")
    pid = service.show("MainPID")
    service.configure(routing={"default": ["scream"]})
    assert service.systemctl("reload", check=False).returncode == 0
    assert service.show("StatusText") == "reloaded"  # already: the daemon answered before ExecReload exited
    service.drop("chelsea.png")
    wait_until(lambda: service.output("chelsea.scream.jpg.json").exists(), 60, 0.2, what="new routing")
    assert not service.output("chelsea.starry.jpg").exists()

    service.configure(routing={"default": ["nope"]})
    refused = service.systemctl("reload", check=False)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    service.wait_journal("reload refused, the old config is kept: /etc/style-daemon/config.yaml: (top level): "
                         "routing names "
                         "unknown style set(s) nope")
    service.box.path(CONFIG).write_text("styles: [this is: not valid")
    assert service.systemctl("reload", check=False).returncode != 0
    service.wait_journal("reload refused, the old config is kept: cannot read /etc/style-daemon/config.yaml")
    assert service.show("ActiveState") == "active" and service.show("MainPID") == pid
    service.drop("coffee.png")
    wait_until(lambda: service.output("coffee.scream.jpg.json").exists(), 60, 0.2, what="old config kept")


def test_watchdog_restarts_the_service_when_a_job_hangs(service):
    service.dropin("watchdog", "WatchdogSec=3s", "RestartSec=1s", "Environment=STYLE_DAEMON_FAKE_HANG_AFTER=2")
    service.systemctl("start")
    pid = service.show("MainPID")
    service.drop("chelsea.png")
    wait_until(lambda: int(service.show("NRestarts")) >= 1 and service.show("ActiveState") == "active"
               and service.show("MainPID") not in ("0", pid), 60, 0.5, what="a restart by the watchdog")
    journal = service.wait_journal("Watchdog timeout")
    assert "withholding the watchdog ping: job 1 (chelsea.png) made no progress" in journal
    service.wait_journal("re-queued")  # the restarted daemon took the interrupted job back


def test_stop_during_a_long_job_exits_cleanly_and_requeues_it(service):
    service.configure(engine={"iterations": 3000, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    service.systemctl("start")
    service.drop("chelsea.png")
    wait_until(lambda: " iter " in service.show("StatusText"), 60, 0.2, what="the job running")
    started = time.monotonic()
    service.systemctl("stop")
    assert time.monotonic() - started < 10
    assert (service.show("Result"), service.show("ExecMainStatus")) == ("success", "0")
    service.wait_journal("interrupted by shutdown; re-queued")
    assert service.job_states() == ["queued"]
    assert not service.output("chelsea.starry.jpg").exists()


def test_check_config_as_root_writes_nothing_and_the_service_then_starts(service):
    done = service.box.run("/opt/style-daemon/venv/bin/style-daemon", "check-config", "-c", CONFIG)
    assert "failed: /srv/style-daemon/output/failed does not exist yet; it will be created by run" in done.stderr
    assert list(service.box.path(f"{SHARE}/output").iterdir()) == []
    service.systemctl("start")
    assert service.show("ActiveState") == "active"
    assert "created the failed folder /srv/style-daemon/output/failed" in service.wait_journal("created the")


def test_a_folder_the_service_cannot_write_is_named_with_owner_and_fix(service):
    service.box.run("install", "-d", "-m", "2755", f"{SHARE}/output/failed")  # root's, as old check-config made it
    assert service.systemctl("start", check=False).returncode != 0
    assert service.show("ExecMainStatus") == "78" and service.show("ActiveState") == "failed"
    line = service.wait_journal("failed: /srv/style-daemon/output/failed: no write permission for user")
    # The share's setgid bit gave it the group; the group just lacks write permission.
    assert ("(uid " in line and "groups stylers, style-daemon); it is owned by root:stylers with mode drwxr-sr-x; "
            "fix: chmod g+w /srv/style-daemon/output/failed") in line, line

    service.box.run("install", "-d", "-m", "2775", "-g", "stylers", "/opt/sd-out")  # outside ReadWritePaths=
    service.configure(output="/opt/sd-out")
    service.systemctl("reset-failed")
    assert service.systemctl("start", check=False).returncode != 0
    assert "output: /opt/sd-out: no write permission" in service.wait_journal("/opt/sd-out is on a file system "
                                                                             "that is read-only to this process")
    assert "add it to ReadWritePaths= in the unit" in service.journal()
