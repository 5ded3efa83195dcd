"""Withdrawing stale failures: when a path succeeds, earlier failures of it with the same style set (say a copy
that stalled and was taken truncated) leave failed/ and the job store."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from daemon.config import Config
from daemon.errors import UnsafeInputError
from daemon.media.derived_names import ERROR_REPORT
from daemon.media.path_text import display, from_text
from daemon.media.safe_open import open_input
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)


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

