"""One service per state folder: an flock on STATE/daemon.lock, held by the supervisor and its workers.

The workers inherit the lock's file descriptor, so the lock is free only once every process of the
old service has ended: a new supervisor never runs beside an old worker.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from daemon.errors import StateLockedError

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 10.0


def take_state_lock(state: Path, wait: float = LOCK_WAIT_SECONDS) -> int:
    """The locked file descriptor (kept open for the process's life); waits up to `wait` seconds."""
    path = state / "daemon.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = lock_holder(path)
                os.close(fd)
                raise StateLockedError(
                    f"another style-daemon ({holder}, or one of its workers) is using the state folder "
                    f"{state} (lock {path}); stop it first or give this one its own state folder") from None
            if not said:
                log.info("waiting up to %.0fs for %s to release %s", wait, lock_holder(path), path)
                said = True
            time.sleep(0.1)
    label = f"{os.getpid()} {socket.gethostname()}\n".encode()
    try:  # over the last holder's line first: its page is reused, so a full disk can still take it
        os.pwrite(fd, label, 0)
        os.ftruncate(fd, len(label))
    except OSError:  # a full or read-only state disk: the lock holds all the same, only its label is missing
        log.debug("cannot label the state lock %s", path)
    return fd


def lock_holder(path: Path) -> str:
    """'pid 123 on host x' from the lock file, as far as it says."""
    try:
        fields = path.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        fields = []
    if not fields:
        return "an unknown process"
    return f"pid {fields[0]} on host {fields[1]}" if len(fields) > 1 else f"pid {fields[0]}"
