"""What happens to an input once its jobs end: kept, moved to processed/, or deleted; failed/ entries."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path, PurePosixPath

from daemon.media.atomic import write_atomic
from daemon.media.naming import error_report_path, failed_copy_path, fit_path
from daemon.config import Config
from daemon.service.fingerprint import style_fingerprints
from daemon.store import JobStore
from daemon.service.routing import style_sets_for

log = logging.getLogger(__name__)


def all_outputs_written(config: Config, journal: JobStore, source: Path, content_sha: str,
                        fingerprints: dict[str, str]) -> bool:
    """True when every style set the routing gives this file has a done job whose output exists.

    Any parameters count: settings changed later apply to new arrivals, not to photos already done.
    """
    rel = PurePosixPath(source.relative_to(config.input).as_posix())
    wanted = set(style_sets_for(rel, config))
    done = {j.style_set for j in journal.jobs_for_content(content_sha)
            if j.state == "done" and Path(j.output_path).is_file()}
    return bool(wanted) and wanted <= done


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
    """Copy (or move) the input into failed/ beside a .error.txt saying what went wrong and what to do."""
    folder = config.failed_dir
    folder.mkdir(parents=True, exist_ok=True)
    # Shortened when need be: a 255-byte name still gets its copy and its report.
    target = _free_failed_name(folder, source.name) if source.exists() else failed_copy_path(folder, source.name)
    if source.exists():
        try:
            if config.on_failure == "move":
                shutil.move(str(source), str(target))
            else:
                shutil.copy2(source, target)
        except OSError as exc:
            log.warning("could not %s %s to %s: %s", config.on_failure, source, folder, exc)
    report = error_report_path(target)
    write_atomic(report, (
        f"file: {source}\n"
        f"style set: {style_set}\n"
        f"failed at: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
        f"error: {message}\n"
        "what to do: fix or replace the file and drop it into the input folder again; "
        "this copy can then be deleted.\n"
    ))
    return report


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
