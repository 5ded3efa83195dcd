"""Releasing an input once all its results exist (after_success: delete or move): only if it is still the
content the jobs processed, under an intent, so that a crash ends as if the step ran once or not at all.

The step: the intent is recorded; the input is renamed to a hidden quarantine name in its own folder (from
then on nobody dropping a new file under its name can be touched); the quarantined file is opened without
following links and its sha256 compared with the processed content's (quarantine.py). Different: it goes
back under its name (or a free variant if the name was taken meanwhile) and one line says so. Same: it is
unlinked, or moved (release_move.py: a hard link, or across file systems a verified copy first).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from daemon.config import Config
from daemon.errors import StyleDaemonError, UnsafeInputError
from daemon.job.sidecar import sidecar_path
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display, from_text
from daemon.media.safe_move import entry_exists, open_entry, open_folder, restore, sha_of, unlink_entry
from daemon.service.quarantine import remove_if_same
from daemon.service.release_move import complete_target, copy_to_temp, move_into_processed, same_device
from daemon.service.routing import style_sets_for
from daemon.service.step_plan import ReleasePlan
from daemon.store import Intent, JobStore

log = logging.getLogger(__name__)


def all_outputs_written(config: Config, store: JobStore, source: Path, content_sha: str) -> bool:
    """True when every style set the routing gives this file has a done job whose output and sidecar exist.

    Any parameters count: settings changed later apply to new arrivals, not to photos already done.
    """
    rel = PurePosixPath(source.relative_to(config.input).as_posix())
    wanted = set(style_sets_for(rel, config))
    done = {j.style_set for j in store.jobs_for_content(content_sha)
            if j.state == "done" and _written(from_text(j.output_path))}
    return bool(wanted) and wanted <= done


def _written(output: Path) -> bool:
    # The sidecar is published after the image: an image alone is a result still being written.
    return output.is_file() and sidecar_path(output).exists()


def release_input(config: Config, store: JobStore, source: Path, content_sha: str,
                  job_id: int | None = None) -> None:
    """Apply after_success to `source` once all its outputs are written, and only if it still holds
    `content_sha` (the content the jobs processed); `job_id`: the job that triggered it (else any done one)."""
    if config.after_success == "keep" or not _regular(source):
        return  # gone, or replaced by a link: a link is never moved or deleted for an input
    if not all_outputs_written(config, store, source, content_sha):
        return
    if job_id is None:
        job_id = next((j.id for j in store.jobs_for_content(content_sha) if j.state == "done"), None)
        if job_id is None:
            return
    plan = ReleasePlan.new(config, source, content_sha, job_id)
    intent = store.record_intent(job_id, "release", plan.to_json())
    try:
        released = _carry_out(config, plan)
    except OSError as exc:
        log.warning("could not %s input %s: %s; it stays where it is", plan.action, display(source), exc)
        try:
            _abandon(config, plan)
        except (OSError, StyleDaemonError) as exc:  # a folder on the way swapped for a link, say: never a crash
            log.warning("could not undo the %s of %s: %s; the next start finishes or undoes it", plan.action,
                        display(source), exc)
            return  # the intent stays open: the next start (or a worker's death) finishes or undoes it
        released = False
    store.clear_intent(intent)
    if released:
        store.forget_file(plan.source)


def _carry_out(config: Config, plan: ReleasePlan) -> bool:
    """The step itself; True when the input was deleted or moved, False when it was left alone."""
    source = plan.path
    try:
        folder = open_folder(config.input, source.parent)
    except (UnsafeInputError, FileNotFoundError) as exc:
        log.info("not releasing %s: %s", display(source), exc)
        return False
    try:
        temp = None
        try:
            with open_entry(folder, source.name) as first:
                if sha256_handle(first) != plan.content_sha:
                    _say_changed(plan)
                    return False
                if plan.action == "move" and not same_device(first, plan):
                    # Copied before anything is renamed: a full target leaves the input untouched.
                    temp = copy_to_temp(first, plan)
                    if temp is None:
                        _say_changed(plan)
                        return False
        except (UnsafeInputError, FileNotFoundError):
            return False  # gone, or a link or something else swapped in: never ours to release
        try:
            os.rename(source.name, plan.quarantine, src_dir_fd=folder, dst_dir_fd=folder)
        except FileNotFoundError:
            _discard(temp)
            return False  # taken by another worker's release (or the person) first
        return _release_quarantined(config, plan, folder, temp)
    finally:
        os.close(folder)


def _release_quarantined(config: Config, plan: ReleasePlan, folder: int, temp: Path | None) -> bool:
    """The input is under its quarantine name: check it, then delete or move it, or put it back."""
    moved: list[Path] = []

    def move(held: BinaryIO) -> None:
        moved.append(move_into_processed(plan, folder, held, temp))

    kept = remove_if_same(folder, plan.quarantine, plan.path.name, plan.content_sha,
                          before_unlink=move if plan.action == "move" else None)
    if kept is not None:
        _discard(temp)
        _say_changed(plan, kept)
        return False
    if moved:
        log.info("moved input %s to %s", display(plan.path), display(moved[0]))
    else:
        log.info("deleted input %s (all outputs written)", display(plan.path))
    return True


def _say_changed(plan: ReleasePlan, name: str | None = None) -> None:
    verb = "deleted" if plan.action == "delete" else "moved"
    where = "" if name in (None, plan.path.name) else f" (kept as {display(name)}: the name was taken meanwhile)"
    log.warning("not %s: %s changed since it was processed; kept%s", verb, display(plan.path), where)


def _discard(temp: Path | None) -> None:
    if temp is not None:
        temp.unlink(missing_ok=True)


def _abandon(config: Config, plan: ReleasePlan) -> None:
    """After an unexpected error: no temp file left, and the input back under its name if it was renamed."""
    _discard(plan.temp)
    folder = open_folder(config.input, plan.path.parent)
    try:
        if entry_exists(folder, plan.quarantine):
            restore(folder, plan.quarantine, plan.path.name)
    finally:
        os.close(folder)


def reconcile_release(config: Config, store: JobStore, intent: Intent) -> None:
    """Finish or undo an interrupted release, idempotently, then clear its intent.

    Quarantine present: checked again and finished (deleted, or moved unless a complete target with the
    same content is already in processed/, then only the quarantine goes), or put back if it differs.
    Quarantine absent (the source untouched or back, or the step complete): only the temp file goes.
    """
    try:
        plan = ReleasePlan.from_json(intent.payload)
    except (ValueError, TypeError) as exc:
        log.warning("job %d: unreadable release intent dropped (%s)", intent.job_id, exc)
        store.clear_intent(intent.id)
        return
    _discard(plan.temp)  # partial or complete, a temp is never a result: the step redoes it from the input
    try:
        folder = open_folder(config.input, plan.path.parent)
    except (UnsafeInputError, FileNotFoundError):
        store.clear_intent(intent.id)
        return
    try:
        if entry_exists(folder, plan.quarantine):
            _finish_quarantined(config, plan, folder)
    finally:
        os.close(folder)
    store.clear_intent(intent.id)


def resume_release(config: Config, store: JobStore, intent: Intent) -> None:
    """After `intent` was reconciled while the service runs (its worker died): if the step had not begun (the
    input still under its name, still that content), run it now instead of waiting for the next scan."""
    try:
        plan = ReleasePlan.from_json(intent.payload)
    except (ValueError, TypeError):
        return  # reconcile_release said so and dropped it
    if _regular(plan.path) and sha_of(plan.path) == plan.content_sha:
        release_input(config, store, plan.path, plan.content_sha, intent.job_id)


def _finish_quarantined(config: Config, plan: ReleasePlan, folder: int) -> None:
    temp = None
    try:
        with open_entry(folder, plan.quarantine) as held:
            if plan.action == "move" and sha256_handle(held) == plan.content_sha:
                done = complete_target(plan, held)
                if done is not None:  # the crash came after the target was whole: only the quarantine goes
                    unlink_entry(folder, plan.quarantine)
                    log.info("moved input %s to %s (finished after an interruption)", display(plan.path),
                             display(done))
                    return
                if not same_device(held, plan):
                    temp = copy_to_temp(held, plan)
    except UnsafeInputError:
        pass  # not a regular file: _release_quarantined puts it back
    if _release_quarantined(config, plan, folder, temp):
        log.info("the interrupted release of %s is finished", display(plan.path))


def _regular(path: Path) -> bool:
    """A regular file itself (lstat: a link is not one, whatever it points to)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
