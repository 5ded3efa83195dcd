"""Atomic file writes: temp file in the target folder, fsync, rename (or link, never overwriting), fsync the folder."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from daemon.media.derived_names import NAME_MAX, fit_name

# mkstemp adds 8 random characters; with the leading dot and the .tmp suffix a temp name is 13 bytes longer.
_TEMP_ROOM = 16
# Filesystems without hard links (some network and FAT mounts) answer these to os.link; so does a file owned
# by another user under fs.protected_hardlinks=1 (EPERM).
NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only if the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(path)
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
    fsync_dir(path.parent)


def _temp_file(path: Path) -> tuple[int, str]:
    # A hidden name with a .tmp suffix so the watcher (and people) ignore it, short enough for any name.
    prefix = "." + fit_name(path.name, NAME_MAX - _TEMP_ROOM) + "."
    return tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)


def publish_exclusive(candidates: Iterable[Path], writer: Callable[[BinaryIO], None]) -> Path:
    """Write once, then publish under the first candidate name not taken; never replaces a file.

    All candidates must be in one folder. A hard link fails with EEXIST when the name exists, so
    two writers (or a writer and a person) can never overwrite each other's file.
    """
    names = iter(candidates)
    first = next(names)
    first.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(first)
    try:
        with os.fdopen(fd, "wb") as handle:
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        for candidate in _chain(first, names):
            if claim_name(tmp, candidate):
                fsync_dir(candidate.parent)
                return candidate
        raise OSError(errno.EEXIST, "no free name", str(first))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _chain(first: Path, rest: Iterator[Path]) -> Iterator[Path]:
    yield first
    yield from rest


def claim_name(tmp: str, target: Path) -> bool:
    """Link `tmp` to `target`; False if `target` exists. Without hard links: a rename that never replaces
    (renameat2 RENAME_NOREPLACE); only where that is unsupported an exclusive placeholder, then a replace."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_LINKS:
            raise
    renamed = rename_noreplace(tmp, target)
    if renamed is not None:
        return renamed
    try:
        # The empty placeholder reserves the name; the rename then fills it whole.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    os.replace(tmp, target)
    return True


# renameat2's flag: fail with EEXIST instead of replacing the target (Linux 3.15+, glibc 2.28+).
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
# The kernel or the file system does not know the flag: the caller needs another way.
_NOREPLACE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS}


def _load_renameat2() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None  # no such libc function (musl before 1.2.?, an old glibc): the placeholder way
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def rename_noreplace(source: str | Path, target: str | Path, *, src_dir_fd: int | None = None,
                     dst_dir_fd: int | None = None) -> bool | None:
    """Rename `source` to `target` in one atomic step that never replaces: True done, False `target` exists,
    None where the kernel or file system cannot (then nothing happened). Other errors raise OSError.

    One system call, so no crash can leave a placeholder or a partial file under `target`.
    """
    if _renameat2 is None:
        return None
    result = _renameat2(_AT_FDCWD if src_dir_fd is None else src_dir_fd, os.fsencode(source),
                        _AT_FDCWD if dst_dir_fd is None else dst_dir_fd, os.fsencode(target), _RENAME_NOREPLACE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        return False
    if code in _NOREPLACE_UNSUPPORTED:
        return None
    raise OSError(code, os.strerror(code), str(target))


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


def fsync_dir(folder: Path) -> None:
    """Make `folder`'s entries (a new name, a removed one) durable; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sweep_temp_files(folder: Path, older_than: float = 0.0) -> int:
    """Delete temp files an interrupted atomic write left under `folder` (at least `older_than` s old); how many."""
    removed = 0
    cutoff = time.time() - older_than
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file() and (not older_than or path.stat().st_mtime < cutoff):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
