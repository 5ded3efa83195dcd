"""Adoption: results in the output folder whose sidecars identify their job count as done.

The output folder describes itself, so the job store is a cache: deleted or emptied, it is rebuilt at
start from the sidecars instead of redoing every photo. Only *.json files are read, never images.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from daemon.config import Config
from daemon.media.path_text import to_text
from daemon.job.sidecar import read_sidecar_key
from daemon.store import JobSpec, JobStore

log = logging.getLogger(__name__)

# Sidecars written before they recorded the parameters' hash; their results still count as done.
UNKNOWN_PARAMS = "unknown"


def adopt_results(config: Config, store: JobStore) -> int:
    """Record results the job store does not know as done jobs; returns how many."""
    adopted = 0
    for sidecar in _sidecars(config):
        output = sidecar.with_name(sidecar.name.removesuffix(".json"))
        if store.job_for_output(to_text(output)) is not None or not output.is_file():
            continue  # known already (the usual case at each start), or an orphan sidecar
        key = read_sidecar_key(sidecar)
        if key is None:
            continue
        spec = JobSpec(key.content_sha, key.style_set, key.params_hash or UNKNOWN_PARAMS, key.content_path,
                       _rel_path(config, key.content_path), to_text(output))
        if store.adopt(spec, key.generation, sidecar.stat().st_mtime, key.seconds) is not None:
            adopted += 1
    if adopted:
        log.info("adopted %d result(s) from sidecars in %s", adopted, config.output)
    return adopted


def _sidecars(config: Config) -> Iterator[Path]:
    """*.json files under the output folder, not in our other folders (failed, processed, logs, state)."""
    skip = {p.resolve() for p in (config.failed_dir, config.processed_dir, config.logs_dir, config.state)}
    for folder, dirs, files in os.walk(config.output):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skip]
        for name in files:
            if name.endswith(".json") and not name.startswith("."):
                yield here / name


def _rel_path(config: Config, content_path: str) -> str:
    """The photo's path relative to the input folder when it was there, else its name."""
    path = Path(content_path)
    if path.is_relative_to(config.input):
        return PurePosixPath(path.relative_to(config.input).as_posix()).as_posix()
    return path.name or "?"
