"""Opening an input without ever following a symbolic link: the check is made on the open descriptor.

Each path component below the input folder is opened relative to its parent's descriptor with
O_NOFOLLOW, so a link anywhere on the way (file or folder, present before or swapped in by a rename
at any moment) makes the open fail instead of reaching a file outside the input folder. Only a
regular file is returned; FIFOs and devices are refused without blocking.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from daemon.errors import UnsafeInputError
from daemon.media.path_text import display

_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)


def relative_parts(root: Path, path: Path) -> tuple[str, ...]:
    """The components of `path` below `root`; UnsafeInputError if it is not lexically inside it."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        raise UnsafeInputError(f"{display(path)}: outside the input folder {display(root)}; not read") from None
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise UnsafeInputError(f"{display(path)}: not a file path inside the input folder; not read")
    return parts


def open_fd(root: Path, path: Path) -> int:
    """A read-only descriptor of the regular file `path` under `root`, reached without following any link."""
    parts = relative_parts(root, path)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root itself is configured, trusted
    try:
        for part in parts[:-1]:
            child = _step(folder, part, _DIR_FLAGS, path)
            os.close(folder)
            folder = child
        fd = _step(folder, parts[-1], _FILE_FLAGS, path)
    finally:
        os.close(folder)
    try:
        _require_regular(fd, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_input(root: Path, path: Path) -> BinaryIO:
    """open_fd() as a binary file object (close it, or use it in a with block)."""
    return os.fdopen(open_fd(root, path), "rb")


def _step(parent: int, name: str, flags: int, path: Path) -> int:
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            # O_NOFOLLOW met a link (ELOOP; EMLINK on some BSDs), or a component is not a folder.
            kind = "a symbolic link" if _is_link(parent, name) else "not a folder"
            raise UnsafeInputError(f"{display(path)}: {display(name)} is {kind}; links are never followed, "
                                   "copy the photo itself into the input folder") from None
        raise


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _require_regular(fd: int, path: Path) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise UnsafeInputError(f"{display(path)}: not a regular file (a folder, pipe or device); not read")
