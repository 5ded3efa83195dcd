"""Failures of the machine, not of the photo: full disk, read-only or forbidden folders, I/O errors, OOM.

Such a job waits (its attempt is given back) and resumes by itself once the cause is fixed; the
reason is said in words, with the folder and its free space, for the log, `status` and the gallery.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Config
from daemon.errors import is_out_of_memory
from daemon.review.status import WAITING_PREFIX

# Errors of the machine when they concern our own folders (see environment_problem).
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})

_RESUMES = "the job resumes by itself"


@dataclass(frozen=True)
class EnvironmentProblem:
    """Why jobs cannot run now; `key` is one per cause, so the log says it once."""

    key: str
    text: str

    @property
    def reason(self) -> str:
        """The job's error text in the job store: 'waiting: ...'."""
        return WAITING_PREFIX + self.text


def environment_problem(exc: BaseException, config: Config) -> EnvironmentProblem | None:
    """The environmental cause of `exc`, or None when the photo (or our code) is at fault."""
    if is_out_of_memory(exc):
        return EnvironmentProblem("oom", "accelerator out of memory (free memory on the device, or lower "
                                  f"engine.max_size if it keeps happening; {_RESUMES})")
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    # A copy names both ends (filename -> filename2): the end in one of our folders is the one that failed.
    named = [Path(f) for f in (exc.filename2, exc.filename) if isinstance(f, (str, Path))]
    ours = [f for f in named if _ours(f, config)]
    filename = ours[0] if ours else (named[0] if named else None)
    if filename is not None and not ours and _inside(filename, config.input):
        return None  # reading the photo failed: that is the photo's (or its permissions') problem
    label, folder = _folder_of(filename, config)
    code = exc.errno
    if code == errno.ENOSPC:
        return EnvironmentProblem(f"ENOSPC:{folder}", f"{label} disk full: {_free(folder)} free on {folder} "
                                  f"(free space; {_RESUMES})")
    if code == errno.EDQUOT:
        return EnvironmentProblem(f"EDQUOT:{folder}", f"{label} disk quota exceeded: {_free(folder)} free on "
                                  f"{folder} (raise the quota or free space; {_RESUMES})")
    if code == errno.EROFS:
        return EnvironmentProblem(f"EROFS:{folder}", f"{label} folder {folder} is on a read-only file system "
                                  f"(remount it read-write; {_RESUMES})")
    if code in (errno.EACCES, errno.EPERM):
        where = filename or folder
        return EnvironmentProblem(f"EACCES:{folder}", f"{label} folder not writable: permission denied on "
                                  f"{where} (fix its owner or permissions; {_RESUMES})")
    if code == errno.EIO:
        return EnvironmentProblem(f"EIO:{folder}", f"{label} folder I/O error on {folder} (check the disk or "
                                  f"the network share; {_RESUMES})")
    return None


def _folder_of(filename: Path | None, config: Config) -> tuple[str, Path]:
    """Which of our folders the failing file is in (the output folder when the error does not say)."""
    if filename is not None:
        for label, folder in (("failed", config.failed_dir), ("logs", config.logs_dir), ("state", config.state),
                              ("processed", config.processed_dir), ("output", config.output)):
            if _inside(filename, folder):
                return label, folder
    return "output", config.output


def _ours(path: Path, config: Config) -> bool:
    return any(_inside(path, folder) for folder in config.excluded_dirs())


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path == folder or folder in path.parents
    except (TypeError, ValueError):
        return False


def _free(folder: Path) -> str:
    """Free space for an ordinary user on `folder`'s file system, in words."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return "unknown space"
    free = stats.f_bavail * stats.f_frsize
    if free < 1024:
        return f"{free} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        free /= 1024
        if free < 1024 or unit == "TB":
            return f"{free:.1f} {unit}"
    return f"{free:.1f} TB"
