"""failed/ entries (a copy, or the input moved, beside a .error.txt) under a "fail" intent; the withdrawal of
stale ones is stale_failures.py, what happens to an input after success daemon/service/release.py."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from daemon.config import Config
from daemon.errors import UnsafeInputError
from daemon.media.atomic import write_atomic
from daemon.media.derived_names import error_report_path, failed_copy_path
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display, from_text, to_text
from daemon.media.safe_move import copy_verified, entry_exists, open_folder, publish_temp, sha_of
from daemon.media.safe_open import open_input
from daemon.service.environment import ENVIRONMENT_ERRNOS
from daemon.service.quarantine import remove_if_same
from daemon.service.step_plan import FailPlan
from daemon.store import Intent, JobStore

# Still importable from here for callers written before the split (job_release.py); new code imports them
# from step_plan.py and stale_failures.py.
log = logging.getLogger(__name__)


def record_failure(config: Config, source: Path, message: str, style_set: str,
                   handle: BinaryIO | None = None, *, store: JobStore | None = None,
                   job_id: int | None = None) -> Path:
    """Copy (or move) the input into failed/ beside a .error.txt saying what went wrong and what to do.

    The copy is read from `handle` (the job's descriptor from safe_open) or a fresh safe_open of `source`:
    a link is never read. It appears whole (temp file + link) or not at all, and is taken back if its
    report cannot be written; a full or read-only failed folder raises, so the caller waits and retries.
    With `store` and `job_id` the step runs under a "fail" intent (reconcile_failure rolls it forward
    after a crash), and a failure already recorded for this content and style set is not copied twice.
    With on_failure: move the input is removed only if it is still that content (sha256, same file).
    """
    folder = config.failed_dir
    folder.mkdir(parents=True, exist_ok=True)
    with _reopen(config, source, handle) as opened:
        sha = sha256_handle(opened) if opened is not None else None
        earlier, free = _entries(folder, source, style_set, sha)
        if earlier is not None:  # a re-run of a job whose failure was already filed: one copy, report renewed
            write_atomic(error_report_path(earlier), _report(source, style_set, message))
            return error_report_path(earlier)
        plan = FailPlan(to_text(source), style_set, config.on_failure, to_text(free),
                        _report(source, style_set, message), f"{job_id or 0}-{secrets.token_hex(4)}", sha,
                        os.getpid())
        intent = store.record_intent(job_id, "fail", plan.to_json()) if store and job_id is not None else None
        try:
            report = _file_failure(config, plan, opened)
        except OSError:
            if intent is not None:
                plan.temp.unlink(missing_ok=True)
                if not os.path.lexists(plan.path.with_name(plan.quarantine)):
                    store.clear_intent(intent)  # rolled back just now: the copy went with its missing report
                # else the input is still hidden (its removal failed): the open intent puts it right later
            raise
    if intent is not None:
        store.clear_intent(intent)
    return report


def _file_failure(config: Config, plan: FailPlan, opened: BinaryIO | None) -> Path:
    """The copy (when there is something safe to copy), then its report, then (move) the input's removal."""
    copy = None
    if opened is not None and plan.sha is not None:
        try:
            copy = _place_copy(plan, opened)
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise
            log.warning("could not %s %s to %s: %s", plan.action, display(plan.path), from_text(plan.copy).parent, exc)
    report = error_report_path(copy or from_text(plan.copy))
    try:
        write_atomic(report, plan.report_text)
    except OSError:
        if copy is not None:
            copy.unlink(missing_ok=True)  # a copy without its reason only puzzles people
        raise
    if copy is not None and plan.action == "move":
        _remove_input(config, plan, opened)
    return report


def _place_copy(plan: FailPlan, opened: BinaryIO) -> Path | None:
    """The verified copy under the first free failed/ name; None if the bytes changed while copied."""
    if plan.sha is None or not copy_verified(opened, plan.temp, plan.sha):
        return None
    return publish_temp(plan.temp, plan.candidates())


def _remove_input(config: Config, plan: FailPlan, opened: BinaryIO | None) -> None:
    """on_failure: move - unlink the input, only if it is still the content copied (the same file, when known)."""
    source = plan.path
    root = config.input if source.is_relative_to(config.input) else source.parent
    try:
        folder = open_folder(root, source.parent)
    except (UnsafeInputError, FileNotFoundError):
        return
    try:
        if not entry_exists(folder, plan.quarantine):
            try:
                os.rename(source.name, plan.quarantine, src_dir_fd=folder, dst_dir_fd=folder)
            except FileNotFoundError:
                return
        got = remove_if_same(folder, plan.quarantine, source.name, plan.sha or "", opened=opened)
        if got is not None:
            log.warning("not moved into the failed folder: %s changed since it was copied; kept%s",
                        display(source), "" if got == source.name else f" as {display(got)}")
    finally:
        os.close(folder)


def reconcile_failure(config: Config, store: JobStore, intent: Intent) -> None:
    """Roll an interrupted failed/ entry forward, idempotently: exactly one copy (when there was one to
    make) with its report, the input removed for on_failure: move if still that content; then clear the intent."""
    try:
        plan = FailPlan.from_json(intent.payload)
    except (ValueError, TypeError) as exc:
        log.warning("job %d: unreadable failed-folder intent dropped (%s)", intent.job_id, exc)
        store.clear_intent(intent.id)
        return
    copy = _our_copy(plan)
    if copy is None and plan.sha is not None:
        copy = _copy_again(config, plan)
    plan.temp.unlink(missing_ok=True)
    report = error_report_path(copy or from_text(plan.copy))
    if not report.exists():
        write_atomic(report, plan.report_text)
    if copy is not None and plan.action == "move":
        _remove_input(config, plan, None)
    store.clear_intent(intent.id)
    log.info("the interrupted failed-folder entry for %s is complete (%s)", display(plan.path), display(report))


def _our_copy(plan: FailPlan) -> Path | None:
    """The copy this intent made already: the content's sha256, and no report or this intent's report."""
    for candidate in plan.candidates():
        if not candidate.exists():
            return None
        report = error_report_path(candidate)
        if sha_of(candidate) == plan.sha and (not report.exists() or _text(report) == plan.report_text):
            return candidate
    return None


def _copy_again(config: Config, plan: FailPlan) -> Path | None:
    """The copy from a complete temp file, else from the input (still that content, under either name)."""
    if plan.temp.exists() and sha_of(plan.temp) == plan.sha:
        return publish_temp(plan.temp, plan.candidates())
    for name in (plan.path.name, plan.quarantine):
        try:
            with open_input(config.input, plan.path.with_name(name)) as opened:
                if sha256_handle(opened) == plan.sha:
                    return _place_copy(plan, opened)
        except (OSError, UnsafeInputError):
            continue
    return None


def _entries(folder: Path, source: Path, style_set: str, sha: str | None) -> tuple[Path | None, Path]:
    """(an earlier entry of this content and style set for this file, the first free copy name)."""
    head = [f"file: {display(source)}", f"style set: {style_set}"]
    for n in range(10_000):
        candidate = failed_copy_path(folder, source.name, n)
        if not candidate.exists():
            return None, candidate
        report = error_report_path(candidate)
        if sha is not None and _text(report).splitlines()[:2] == head and sha_of(candidate) == sha:
            return candidate, candidate
    raise OSError(f"no free name for {source.name} in {folder}")


def _report(source: Path, style_set: str, message: str) -> str:
    return (f"file: {display(source)}\n"
            f"style set: {style_set}\n"
            f"failed at: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"error: {display(message)}\n"
            "what to do: fix or replace the file and drop it into the input folder again; "
            "this copy can then be deleted.\n")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


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
