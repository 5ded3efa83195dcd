"""Atomic file writes: temp file in the target folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only if the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name with a .tmp suffix so the watcher (and people) ignore it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write bytes or UTF-8 text to `path` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_open(path) as handle:
        handle.write(payload)


def write_atomic_with(path: Path, writer: Callable[[BinaryIO], None]) -> None:
    """Let `writer` fill a file object that becomes `path` atomically."""
    with atomic_open(path) as handle:
        writer(handle)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask() is process-wide and racy to toggle from threads.
_UMASK = _read_umask()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sweep_temp_files(folder: Path) -> int:
    """Delete temp files an interrupted atomic write left under `folder`; returns how many."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
