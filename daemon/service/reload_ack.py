"""A synchronous reload: `style-daemon reload` sends SIGHUP and waits for the service's answer in the state folder.

`systemctl reload` returns when ExecReload exits; a bare `kill -HUP` exits at once, before the daemon has
even read the new config, and always succeeds. The service writes the outcome of each reload to
STATE/reload.ack.json (atomically), stamped with its pid and the CLOCK_MONOTONIC time at which it read the
config, so the requester knows the answer is about a read that began after its signal was sent.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from daemon.errors import ConfigError, StyleDaemonError
from daemon.media.atomic import write_atomic

log = logging.getLogger(__name__)

ACK_FILE = "reload.ack.json"
LOCK_FILE = "daemon.lock"


class ReloadTimeout(StyleDaemonError):
    """The service did not answer a reload request in time."""

    exit_code = 75  # EX_TEMPFAIL


@dataclass(frozen=True)
class ReloadAck:
    """The outcome of one reload: who, when the config was read (monotonic), and the error if it was refused."""

    pid: int
    read_at: float
    error: str | None = None


class Acknowledger:
    """Started when the service begins a reload, finished with its outcome (the service side)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.read_at = time.monotonic()

    def finish(self, error: str | None = None) -> None:
        """Publish the outcome; a failure to write is logged, never raised (the reload itself stands)."""
        ack = ReloadAck(os.getpid(), self.read_at, error)
        try:
            write_atomic(self.state / ACK_FILE, json.dumps(asdict(ack)))
        except OSError as exc:
            log.warning("could not write the reload acknowledgement to %s: %s", self.state, exc)


def request_reload(pid: int, state: Path, timeout: float) -> ReloadAck:
    """SIGHUP the service `pid` using `state`, and wait until it has applied or refused the config."""
    _check_owner(pid, state)
    sent = time.monotonic()
    os.kill(pid, signal.SIGHUP)
    deadline = sent + timeout
    while time.monotonic() < deadline:
        ack = read_ack(state)
        if ack is not None and ack.pid == pid and ack.read_at >= sent:
            return ack
        if not _alive(pid):
            raise ConfigError(f"style-daemon (pid {pid}) exited during the reload; see its log")
        time.sleep(0.02)
    raise ReloadTimeout(f"no answer to the reload from style-daemon (pid {pid}) within {timeout:.0f}s "
                        f"(expected in {state / ACK_FILE}); see its log")


def read_ack(state: Path) -> ReloadAck | None:
    """The last reload's outcome, or None when there is none (yet) or it cannot be read."""
    try:
        data = json.loads((state / ACK_FILE).read_text(encoding="utf-8"))
        return ReloadAck(int(data["pid"]), float(data["read_at"]), data.get("error"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_owner(pid: int, state: Path) -> None:
    """The service `pid` must be the one holding `state`'s lock, else its answer would never come here."""
    if not _alive(pid):
        raise ConfigError(f"no process {pid}: style-daemon is not running (start it instead of reloading)")
    try:
        fields = (state / LOCK_FILE).read_text(encoding="utf-8").split()  # "PID HOST" (service/state_lock.py)
    except OSError as exc:
        raise ConfigError(f"cannot read {state / LOCK_FILE} ({exc.strerror}): is style-daemon running with "
                          f"state folder {state}?") from None
    holder = fields[0] if fields else ""
    if holder != str(pid):
        raise ConfigError(f"process {pid} is not the style-daemon of state folder {state} (that is pid "
                          f"{holder or 'none'}); a changed 'state' needs a restart, not a reload")
    if not _lock_held(state / LOCK_FILE):  # a stale pid in the file may now be some other process
        raise ConfigError(f"no style-daemon holds {state / LOCK_FILE}: it is not running (start it instead of "
                          "reloading)")


def _lock_held(path: Path) -> bool:
    """True while a running daemon holds its exclusive lock on `path`."""
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
