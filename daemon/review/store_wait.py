"""The service's word that it waits for its job store (a full or read-only disk, a lost server): STATE/store-wait.json.

`status` reads it when the job store cannot tell: the store is the thing that is down. The supervisor writes
it in place over a file it padded at start, so that even on the full disk that holds the store the word gets
through (overwriting pages a file already has needs no free space); where even that fails, `status` is told by
the folder itself (read-only).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WAIT_NAME = "store-wait.json"
_SIZE = 2048  # the padded file's size: room for a cause and a path in any script


@dataclass(frozen=True)
class StoreWait:
    """Whether the service (pid) waits for its job store, why, and since when (wall clock)."""

    waiting: bool = False
    cause: str = ""
    since: float | None = None
    pid: int | None = None


def wait_path(state: Path, who: str = "") -> Path:
    """Where the word of the service (who empty) or of one worker (who: its id) lives in the state folder."""
    return Path(state) / (f"store-wait.{who}.json" if who else WAIT_NAME)


def write_wait(state: Path, wait: StoreWait, who: str = "") -> bool:
    """Overwrite the word in place (creating the padded file when it is missing); False when it cannot be written."""
    text = json.dumps(asdict(wait))[: _SIZE - 1]
    data = (text + " " * (_SIZE - 1 - len(text)) + "\n").encode()
    path = wait_path(state, who)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never truncated: no page is freed
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        log.debug("cannot write %s: %s", path, exc)
        return False
    return True


def read_wait(state: Path) -> StoreWait:
    """The word of the service or of a worker of it that waits (a live pid), the service's first; else not waiting."""
    workers = sorted(Path(state).glob("store-wait.*.json"))  # a worker alone meets it when nothing arrives
    for path in [wait_path(state), *workers]:
        wait = _read(path)
        if wait.waiting:
            return wait
    return StoreWait()


def _read(path: Path) -> StoreWait:
    try:
        data = json.loads(path.read_text(encoding="utf-8").strip() or "{}")
        wait = StoreWait(bool(data.get("waiting")), str(data.get("cause", "")), data.get("since"), data.get("pid"))
    except (OSError, ValueError, TypeError, AttributeError):
        return StoreWait()
    if not wait.waiting or not isinstance(wait.pid, int) or not _alive(wait.pid):
        return StoreWait()
    return wait


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
