"""Finding a claimed job's photo: its own file, or another known copy of the same content, opened without
following any link and checked against the job's hash."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from daemon.config import Config
from daemon.errors import UnsafeInputError
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display, from_text, to_text
from daemon.media.safe_open import open_input
from daemon.service.routing import free_output_names, output_path_for
from daemon.store import Job, JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSource:
    """The photo a job runs from: the job (updated if it moved to a copy), the path and the open handle."""

    job: Job
    path: Path
    handle: BinaryIO


def locate_source(config: Config, store: JobStore, job: Job) -> JobSource | None:
    """The job's photo or another copy of it in the input folder; drops the job (None) when no copy is left."""
    paths = [job.source_path] + [p for p in store.copies_of(job.content_sha) if p != job.source_path]
    for text in paths:
        path = from_text(text)
        handle = _open_checked(config, job, path)
        if handle is None:
            if not os.path.lexists(path):
                store.forget_file(text)
            continue
        if text == job.source_path:
            return JobSource(job, path, handle)
        if not path.is_relative_to(config.input):
            handle.close()
            continue
        rel = PurePosixPath(path.relative_to(config.input).as_posix())
        base = output_path_for(rel, job.style_set, config)
        moved = store.move_source(job.id, text, to_text(rel), free_output_names(base))
        log.info("job %d: %s vanished or changed while queued; running from its copy %s", job.id,
                 job.rel_path, rel)
        return JobSource(moved or job, path, handle)
    # Dropped before it is said, so whoever reads the line finds the job store already agreeing.
    store.drop(job.id)
    log.warning("job %d: %s vanished or changed while queued and no other copy of it is left in the input "
                "folder; dropped (dropping the photo again makes a new job)", job.id, job.rel_path)
    return None


def _open_checked(config: Config, job: Job, path: Path) -> BinaryIO | None:
    """`path` opened by safe_open below its root (input, or processed for a redo) if it holds the job's content."""
    root = config.input if path.is_relative_to(config.input) else config.processed_dir
    try:
        handle = open_input(root, path)
    except UnsafeInputError as exc:
        log.warning("job %d: not reading %s: %s", job.id, display(path), exc)
        return None
    except OSError:
        return None
    try:
        if sha256_handle(handle) == job.content_sha:
            return handle
    except OSError:
        pass
    handle.close()
    return None
