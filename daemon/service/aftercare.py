"""What happens to an input once its jobs end: kept, moved to processed/, or deleted; failed/ entries."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from pathlib import Path, PurePosixPath

from daemon.media.atomic import write_atomic
from daemon.config import Config
from daemon.service.environment import ENVIRONMENT_ERRNOS
from daemon.service.fingerprint import style_fingerprints
from daemon.store import Job, JobStore
from daemon.service.routing import style_sets_for

log = logging.getLogger(__name__)


def all_outputs_written(config: Config, journal: JobStore, source: Path, content_sha: str,
                        fingerprints: dict[str, str]) -> bool:
    """True when every job the routing gives this file is done and its output exists."""
    rel = PurePosixPath(source.relative_to(config.input).as_posix())
    wanted = {(s, fingerprints[s]) for s in style_sets_for(rel, config)}
    done = {(j.style_set, j.params_hash): j for j in journal.jobs_for_content(content_sha) if j.state == "done"}
    return bool(wanted) and all(key in done and Path(done[key].output_path).is_file() for key in wanted)


def release_input(config: Config, journal: JobStore, source: Path, content_sha: str,
                  fingerprints: dict[str, str] | None = None) -> None:
    """Apply after_success to `source` once all its outputs are safely written; never earlier."""
    if config.after_success == "keep" or not source.exists():
        return
    prints = fingerprints or style_fingerprints(config)
    if not all_outputs_written(config, journal, source, content_sha, prints):
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
    journal.forget_file(str(source))


def record_failure(config: Config, source: Path, message: str, style_set: str) -> Path:
    """Copy (or move) the input into failed/ beside a .error.txt saying what went wrong and what to do.

    Never leaves a partial copy: the copy appears whole (temp file + rename) or not at all, and it is
    taken back if its report cannot be written.
    """
    folder = config.failed_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder / source.name) if source.exists() else folder / source.name
    placed = False
    if source.exists():
        try:
            _place(source, target, move=config.on_failure == "move")
            placed = True
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise  # full or read-only failed folder: the caller waits and records the failure later
            log.warning("could not %s %s to %s: %s", config.on_failure, source, folder, exc)
    report = target.with_name(target.name + ".error.txt")
    try:
        write_atomic(report, (
            f"file: {source}\n"
            f"style set: {style_set}\n"
            f"failed at: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"error: {message}\n"
            "what to do: fix or replace the file and drop it into the input folder again; "
            "this copy can then be deleted.\n"
        ))
    except OSError:
        if placed:
            with contextlib.suppress(OSError):
                # A copy without its reason only puzzles people; a moved input goes back where it was.
                if config.on_failure == "move":
                    _place(target, source, move=True)
                else:
                    target.unlink()
        raise
    return report


def _place(source: Path, target: Path, move: bool) -> None:
    """Copy (or move) `source` to `target` atomically: a temp name in the target folder, then a rename."""
    if move:
        try:
            os.rename(source, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    temp = target.with_name(f".{target.name}.failed-copy.tmp")
    try:
        shutil.copy2(source, temp)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if move:
        source.unlink()


def withdraw_stale_failures(config: Config, journal: JobStore, done: Job) -> int:
    """Forget earlier failures of the path that just succeeded with the same style set (e.g. a copy
    that stalled and was taken truncated): their failed/ entries and journal rows go; returns how many."""
    withdrawn = 0
    for old in journal.jobs_for_source(done.source_path):
        if old.state != "failed" or old.id == done.id or old.style_set != done.style_set:
            continue
        _remove_failed_entries(config, Path(done.source_path), done.style_set)
        journal.drop(old.id)
        withdrawn += 1
        log.info("job %d: the earlier failure of %s (job %d) is withdrawn: the file has now succeeded",
                 done.id, done.rel_path, old.id)
    return withdrawn


def _remove_failed_entries(config: Config, source: Path, style_set: str) -> None:
    """Delete failed/ reports (and their copies) written for `source` with `style_set`."""
    wanted = {f"file: {source}", f"style set: {style_set}"}
    for report in config.failed_dir.glob("*.error.txt"):
        try:
            lines = set(report.read_text(encoding="utf-8", errors="replace").splitlines()[:2])
        except OSError:
            continue
        if lines != wanted:
            continue
        copy = report.with_name(report.name.removesuffix(".error.txt"))
        if config.on_failure == "move" and copy.exists() and not _is_prefix_of(copy, source):
            continue  # a moved input that is not merely a truncated version of the file: keep it
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()
        report.unlink(missing_ok=True)


def _is_prefix_of(part: Path, whole: Path) -> bool:
    try:
        head = part.read_bytes()
        with open(whole, "rb") as handle:
            return handle.read(len(head)) == head
    except OSError:
        return False


def _free_name(path: Path) -> Path:
    """`path`, or path with -1, -2 ... before the suffix if it is taken."""
    if not path.exists():
        return path
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise OSError(f"no free name for {path}")
