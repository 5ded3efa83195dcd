"""Moving a file so that a crash never loses it nor leaves a partial file under a real name.

The file is named by a folder descriptor (reached without following any link) and an entry name, so a
folder swapped for a link while we work cannot redirect anything. Same file system: a hard link to the
first free name in the target folder (never replacing a file), then the source entry is unlinked; a crash
leaves both names (one content) or the target alone. Another file system (EXDEV): the bytes are copied
from the open descriptor to a hidden temp file in the target folder, fsynced and checked against the
expected sha256, then linked under the first free name and the folder fsynced; only then does the caller
unlink the source. A crash leaves the source and at most a hidden temp file, or a complete target.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from daemon.errors import UnsafeInputError
from daemon.media.atomic import NO_LINKS, claim_name, fsync_dir, rename_noreplace
from daemon.media.derived_names import fit_path
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display
from daemon.media.safe_open import relative_parts

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
_CHUNK = 1 << 20


def dash_variants(path: Path) -> Iterator[Path]:
    """`path`, then path-1, path-2 ... before the suffix (fitted to 255 bytes): the names a moved file may take."""
    yield fit_path(path)
    for number in range(1, 10_000):
        yield fit_path(path.with_name(f"{path.stem}-{number}{path.suffix}"))


def open_folder(root: Path, folder: Path) -> int:
    """A descriptor of `folder` (`root` itself or below it), reached without following any link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the configured root is trusted
    if Path(folder) == Path(root):
        return fd
    try:
        for part in relative_parts(root, folder):
            child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeInputError(f"{display(folder)}: a folder on the way is a link or not a folder; "
                                   "links are never followed") from None
        raise
    return fd


def open_entry(folder_fd: int, name: str) -> BinaryIO:
    """`name` in the folder, read-only, as a regular file (no link followed, no FIFO or device opened)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafeInputError(f"{display(name)} is a symbolic link; links are never followed") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeInputError(f"{display(name)}: not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def same_file(handle: BinaryIO, folder_fd: int, name: str) -> bool:
    """True when `name` in the folder is (lstat, not followed) the very file `handle` has open."""
    try:
        here = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except OSError:
        return False
    there = os.fstat(handle.fileno())
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def fsync_folder(folder_fd: int) -> None:
    """Make the folder's entries (a link, an unlink, a rename) durable."""
    with contextlib.suppress(OSError):
        os.fsync(folder_fd)


def unlink_entry(folder_fd: int, name: str) -> bool:
    """Unlink `name` in the folder and fsync it; False if it was already gone."""
    try:
        os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        return False
    fsync_folder(folder_fd)
    return True


def link_free(folder_fd: int, name: str, candidates: Iterable[Path]) -> Path | None:
    """Give `name` in the folder a second name: the first free candidate (never replacing); None on EXDEV.

    On a file system without hard links (or links refused) the entry is renamed there instead, never
    replacing (renameat2; an exclusive placeholder only where that is unsupported), so the caller's unlink of `name` then finds nothing: both ways end moved.
    """
    for candidate in candidates:
        try:
            os.link(name, candidate, src_dir_fd=folder_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            if exc.errno not in NO_LINKS:
                raise
            if not _rename_exclusive(folder_fd, name, candidate):
                continue
        fsync_dir(candidate.parent)
        return candidate
    raise OSError(errno.EEXIST, "no free name", display(name))


def _rename_exclusive(folder_fd: int, name: str, target: Path) -> bool:
    """Without hard links: rename the entry to `target` unless it exists. Only where renameat2 cannot, an
    empty exclusive file reserves `target` first (a crash between can leave it empty)."""
    renamed = rename_noreplace(name, target, src_dir_fd=folder_fd)
    if renamed is not None:
        return renamed
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    os.rename(name, target, src_dir_fd=folder_fd)
    return True


def copy_verified(handle: BinaryIO, temp: Path, expected_sha: str) -> bool:
    """Copy the descriptor's bytes to `temp` (created afresh), fsync; False (temp removed) if they are not
    the expected content. Any OSError (a full disk) removes the temp and propagates."""
    handle.seek(0)
    digest = hashlib.sha256()
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # an earlier try's leftover: this name is ours alone
    try:
        with open(temp, "xb") as out:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        info = os.fstat(handle.fileno())
        with contextlib.suppress(OSError):
            os.utime(temp, ns=(info.st_atime_ns, info.st_mtime_ns))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    if digest.hexdigest() != expected_sha:
        temp.unlink()
        return False
    return True


def publish_temp(temp: Path, candidates: Iterable[Path]) -> Path:
    """Link a complete temp file under the first free candidate (never replacing), fsync, drop the temp name."""
    try:
        for candidate in candidates:
            if claim_name(str(temp), candidate):
                fsync_dir(candidate.parent)
                return candidate
        raise OSError(errno.EEXIST, "no free name", str(temp))
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # still there after a link; gone after the no-links rename


def restore(folder_fd: int, hidden: str, name: str) -> str:
    """Put the hidden entry back under `name`, or name-1, name-2 ... if that was taken meanwhile; never
    replaces a file. Returns the name it got."""
    for candidate in dash_variants(Path(name)):
        target = candidate.name
        try:
            os.link(hidden, target, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            # A folder (no hard links to those) or a file system without links: rename where nothing is.
            if exc.errno not in NO_LINKS:
                raise
            if not _rename_free(folder_fd, hidden, target):
                continue
            fsync_folder(folder_fd)
            return target
        os.unlink(hidden, dir_fd=folder_fd)
        fsync_folder(folder_fd)
        return target
    raise OSError(errno.EEXIST, "no free name to put it back", display(name))


def _rename_free(folder_fd: int, hidden: str, target: str) -> bool:
    """Rename within the folder onto a free name: a file reserves it first (exclusive create), a folder
    checks it (a rename of a folder never replaces a file, nor a folder with anything in it); where the
    kernel can, one rename that never replaces does both."""
    renamed = rename_noreplace(hidden, target, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    if renamed is not None:
        return renamed
    try:
        if stat.S_ISDIR(os.stat(hidden, dir_fd=folder_fd, follow_symlinks=False).st_mode):
            if entry_exists(folder_fd, target):
                return False
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=folder_fd))
        os.rename(hidden, target, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            return False
        raise
    return True


def entry_exists(folder_fd: int, name: str) -> bool:
    """True when the folder has an entry `name` (lstat: a dangling link counts)."""
    try:
        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def sha_of(path: Path) -> str | None:
    """The sha256 of the file at `path`, read without following a final link; None if it cannot be read."""
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as handle:
            return sha256_handle(handle)
    except OSError:
        return None
