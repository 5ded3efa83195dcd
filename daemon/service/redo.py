"""`style-daemon redo`: queue earlier photos again under the current settings, results beside the old ones.

It only writes jobs into the store, so it works whether the service runs (its workers pick them up)
or not (the next `run` or `once` does them). Each redo job is a new generation of its key and gets
a fresh output name: earlier results are never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Iterator

from daemon.config import Config
from daemon.errors import ConfigError
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display, from_text, to_text
from daemon.media.safe_open import open_input
from daemon.service.fingerprint import style_fingerprints
from daemon.service.routing import free_output_names, output_path_for, style_sets_for
from daemon.service.watcher import InputFilter, scan
from daemon.store import JobSpec, JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedoRequest:
    """Which photos to redo: PATHs (default: the whole input folder), one style set or the routed ones."""

    paths: tuple[Path, ...] = ()
    style: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Queued:
    """One redo job as queued."""

    job_id: int
    photo: str
    style_set: str
    output: str


def queue_redo(config: Config, store: JobStore, request: RedoRequest) -> list[Queued]:
    """Queue a new job per selected photo and style set; returns what was queued."""
    if request.style is not None and request.style not in config.styles:
        raise ConfigError(f"--style {request.style}: no such style set; defined: {', '.join(sorted(config.styles))}")
    fingerprints = style_fingerprints(config)
    queued = []
    for path, root in _photos(config, request.paths):
        rel = PurePosixPath(path.relative_to(root).as_posix())
        sha = _content_sha(root, path)
        if request.since is not None and not _arrived_since(store, sha, request.since):
            continue
        for style_set in [request.style] if request.style else style_sets_for(rel, config):
            names = free_output_names(output_path_for(rel, style_set, config))
            spec = JobSpec(sha, style_set, fingerprints[style_set], to_text(path), to_text(rel), next(names))
            job = store.enqueue(spec, names=names, redo=True)
            if job is not None:
                queued.append(Queued(job.id, display(rel), style_set, display(from_text(job.output_path))))
                log.info("redo: queued %s with style %s (job %d)", rel, style_set, job.id)
    return queued


def _content_sha(root: Path, path: Path) -> str:
    """The photo's sha256, read through a descriptor that follows no link (media/safe_open.py)."""
    with open_input(root, path) as handle:
        return sha256_handle(handle)


def _arrived_since(store: JobStore, sha: str, since: datetime) -> bool:
    """True if the photo's first job was queued at or after `since` (or it has none yet)."""
    created = [j.created for j in store.jobs_for_content(sha)]
    return not created or min(created) >= since.timestamp()


def _photos(config: Config, paths: tuple[Path, ...]) -> Iterator[tuple[Path, Path]]:
    """(photo, folder it is relative to) for each PATH, file or folder, under the input or processed folder."""
    roots = [config.input.resolve(), config.processed_dir.resolve()]
    for given in paths or (config.input,):
        path = Path(given).absolute()
        root = next((r for r in roots if path.resolve().is_relative_to(r)), None)
        if root is None or not path.exists():
            raise ConfigError(f"{given}: not a file or folder under the input folder {config.input} "
                              f"(or {config.processed_dir}); give a photo the service has seen")
        resolved = path.resolve()
        accept = InputFilter(root, [] if root != roots[0] else config.excluded_dirs())
        found = [resolved] if resolved.is_file() else scan(resolved, accept)
        for photo in found:
            if accept.accepts(photo):
                yield photo, root
