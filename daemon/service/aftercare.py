"""What happens to an input once its jobs end: kept, moved to processed/, or deleted; failed/ entries."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from daemon.errors import UnsafeInputError
from daemon.media.atomic import write_atomic, write_atomic_with
from daemon.media.path_text import display, from_text, to_text
from daemon.media.safe_open import open_input
from daemon.media.derived_names import ERROR_REPORT, error_report_path, failed_copy_path, fit_path
from daemon.config import Config
from daemon.service.environment import ENVIRONMENT_ERRNOS
from daemon.store import Job, JobStore
from daemon.service.routing import style_sets_for

log = logging.getLogger(__name__)


def all_outputs_written(config: Config, store: JobStore, source: Path, content_sha: str) -> bool:
    """True when every style set the routing gives this file has a done job whose output exists.

    Any parameters count: settings changed later apply to new arrivals, not to photos already done.
    """
    rel = PurePosixPath(source.relative_to(config.input).as_posix())
    wanted = set(style_sets_for(rel, config))
    done = {j.style_set for j in store.jobs_for_content(content_sha)
            if j.state == "done" and from_text(j.output_path).is_file()}
    return bool(wanted) and wanted <= done


def release_input(config: Config, store: JobStore, source: Path, content_sha: str) -> None:
    """Apply after_success to `source` once all its outputs are safely written; never earlier."""
    if config.after_success == "keep" or not _regular(source):
        return  # gone, or replaced by a link: a link is never moved or deleted for an input
    if not all_outputs_written(config, store, source, content_sha):
        return
    try:
        if config.after_success == "delete":
            source.unlink()
            log.info("deleted input %s (all outputs written)", source)
        else:
            target = _free_name(config.processed_dir / source.relative_to(config.input))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), str(target))
            log.info("moved input %s to %s", source, target)
    except FileNotFoundError:
        return  # another process got there first
    store.forget_file(to_text(source))


def record_failure(config: Config, source: Path, message: str, style_set: str,
                   handle: BinaryIO | None = None) -> Path:
    """Copy (or move) the input into failed/ beside a .error.txt saying what went wrong and what to do.

    The copy is read from `handle` (the job's descriptor from safe_open) or a fresh safe_open of `source`:
    a link is never read. It appears whole (temp file + rename) or not at all, and is taken back if its
    report cannot be written; a full or read-only failed folder raises, so the caller waits and retries.
    """
    folder = config.failed_dir
    folder.mkdir(parents=True, exist_ok=True)
    # Shortened when need be: a 255-byte name still gets its copy and its report.
    target = _free_failed_name(folder, source.name) if _regular(source) else failed_copy_path(folder, source.name)
    placed = False
    try:
        with _reopen(config, source, handle) as opened:
            if opened is not None:
                _keep_copy(config, source, opened, target)
                placed = True
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise
        log.warning("could not %s %s to %s: %s", config.on_failure, display(source), folder, exc)
    report = error_report_path(target)
    try:
        write_atomic(report, (
            f"file: {display(source)}\n"
            f"style set: {style_set}\n"
            f"failed at: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"error: {display(message)}\n"
            "what to do: fix or replace the file and drop it into the input folder again; "
            "this copy can then be deleted.\n"
        ))
    except OSError:
        if placed:
            _take_back(config, source, target)
        raise
    return report


def _take_back(config: Config, source: Path, target: Path) -> None:
    """A copy without its reason only puzzles people; a moved input goes back where it was."""
    with contextlib.suppress(OSError):
        if config.on_failure == "move" and not os.path.lexists(source):
            os.rename(target, source)
        else:
            target.unlink()


@contextlib.contextmanager
def _reopen(config: Config, source: Path, handle: BinaryIO | None) -> Iterator[BinaryIO | None]:
    """The job's own descriptor, or a safe one of `source`, or None when there is nothing safe to copy."""
    if handle is not None:
        yield handle
        return
    try:
        opened = open_input(config.input, source)
    except (UnsafeInputError, FileNotFoundError) as exc:
        log.info("no copy of %s in the failed folder: %s", source, exc)
        yield None
        return
    with opened:
        yield opened


def _keep_copy(config: Config, source: Path, handle: BinaryIO, target: Path) -> None:
    """Copy the descriptor's bytes to `target`; with on_failure: move, then remove `source` if it is still that file."""
    handle.seek(0)
    write_atomic_with(target, lambda out: shutil.copyfileobj(handle, out, 1 << 20))
    info = os.fstat(handle.fileno())
    with contextlib.suppress(OSError):
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    if config.on_failure == "move" and _same_file(source, info):
        source.unlink()


def _regular(path: Path) -> bool:
    """A regular file itself (lstat: a link is not one, whatever it points to)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def withdraw_stale_failures(config: Config, store: JobStore, done: Job) -> int:
    """Forget earlier failures of the path that just succeeded with the same style set (e.g. a copy
    that stalled and was taken truncated): their failed/ entries and job store rows go; returns how many."""
    withdrawn = 0
    for old in store.jobs_for_source(done.source_path):
        if old.state != "failed" or old.id == done.id or old.style_set != done.style_set:
            continue
        _remove_failed_entries(config, from_text(done.source_path), done.style_set)
        store.drop(old.id)
        withdrawn += 1
        log.info("job %d: the earlier failure of %s (job %d) is withdrawn: the file has now succeeded",
                 done.id, done.rel_path, old.id)
    return withdrawn


def _remove_failed_entries(config: Config, source: Path, style_set: str) -> None:
    """Delete failed/ reports (and their copies) written for `source` with `style_set`."""
    wanted = {f"file: {display(source)}", f"style set: {style_set}"}
    for report in config.failed_dir.glob("*.error.txt"):
        try:
            lines = set(report.read_text(encoding="utf-8", errors="replace").splitlines()[:2])
        except OSError:
            continue
        if lines != wanted:
            continue
        copy = report.with_name(report.name.removesuffix(ERROR_REPORT))
        if config.on_failure == "move" and copy.exists() and not _is_prefix_of(config, copy, source):
            continue  # a moved input that is not merely a truncated version of the file: keep it
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()
        report.unlink(missing_ok=True)


def _is_prefix_of(config: Config, part: Path, whole: Path) -> bool:
    try:
        head = part.read_bytes()
        with open_input(config.input, whole) as handle:
            return handle.read(len(head)) == head
    except (OSError, UnsafeInputError):
        return False


def _same_file(path: Path, info: os.stat_result) -> bool:
    try:
        here = os.lstat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (info.st_dev, info.st_ino)


def _free_failed_name(folder: Path, name: str) -> Path:
    """The failed/ copy's path, or name-1, name-2 ... if it is taken."""
    for n in range(10_000):
        candidate = failed_copy_path(folder, name, n)
        if not candidate.exists():
            return candidate
    raise OSError(f"no free name for {name} in {folder}")


def _free_name(path: Path) -> Path:
    """`path`, or path with -1, -2 ... before the suffix if it is taken (shortened to fit if need be)."""
    if not path.exists():
        return path
    for n in range(1, 10_000):
        candidate = fit_path(path.with_name(f"{path.stem}-{n}{path.suffix}"))
        if not candidate.exists():
            return candidate
    raise OSError(f"no free name for {path}")
