"""Releasing an input once all its results exist (after_success: delete or move): only if it is still the
content the jobs processed, under an intent, so that a crash ends as if the step ran once or not at all.

The step: the intent is recorded; the input is renamed to a hidden quarantine name in its own folder (from
then on nobody dropping a new file under its name can be touched); the quarantined file is opened without
following links and its sha256 compared with the processed content's. Different: it goes back under its
name (or a free variant if the name was taken meanwhile) and one line says so. Same: it is unlinked, or
moved (safe_move: a hard link, or across file systems a verified copy to a hidden temp file first).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator, Literal

from daemon.config import Config
from daemon.job.sidecar import sidecar_path
from daemon.errors import StyleDaemonError, UnsafeInputError
from daemon.media.derived_names import fit_name
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import display, from_text, to_text
from daemon.media.safe_move import (copy_verified, dash_variants, link_free, open_entry, open_folder,
                                    publish_temp, restore, unlink_entry)
from daemon.service.routing import style_sets_for
from daemon.service.step_plan import StepPlan
from daemon.store import Intent, JobStore

log = logging.getLogger(__name__)

# The quarantine and temp names say whose they are; hidden (the watcher ignores them) and not ending in
# .tmp (sweep_temp_files would take a quarantined input for a temp file and delete it).
QUARANTINE_PREFIX = ".style-daemon-release."
FAIL_PREFIX = ".style-daemon-fail."  # the failed/ entry's step (aftercare.py): its temp file and quarantine
_PREFIXES = (QUARANTINE_PREFIX, FAIL_PREFIX)
_TEMP_SUFFIX = ".part"


@dataclass(frozen=True)
class ReleasePlan(StepPlan):
    """The release intent's payload: what is released, how, and the names the step uses."""

    PREFIX = QUARANTINE_PREFIX

    source: str  # the input's path (path_text)
    content_sha: str
    action: Literal["delete", "move"]
    token: str  # "<job id>-<random>": names the quarantine and the temp file
    target: str | None = None  # the processed/ path asked for (move)
    # The process that recorded it: a worker's death settles the steps it left (worker_deaths.py); None in
    # payloads recorded before the field existed (settled at the next start).
    pid: int | None = None

    @classmethod
    def new(cls, config: Config, source: Path, content_sha: str, job_id: int) -> "ReleasePlan":
        """A plan for releasing `source` now, per the configured after_success."""
        action: Literal["delete", "move"] = "delete" if config.after_success == "delete" else "move"
        target = to_text(config.processed_dir / source.relative_to(config.input)) if action == "move" else None
        return cls(to_text(source), content_sha, action, f"{job_id}-{secrets.token_hex(4)}", target, os.getpid())

    @property
    def temp(self) -> Path | None:
        """The hidden temp file a cross-file-system move copies into (in the target folder)."""
        if self.target is None:
            return None
        target = from_text(self.target)
        return target.with_name(fit_name(f"{QUARANTINE_PREFIX}{self.token}.{target.name}{_TEMP_SUFFIX}"))


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
                if plan.action == "move" and not _same_device(first, plan):
                    # Copied before anything is renamed: a full target leaves the input untouched.
                    temp = _copy_to_temp(first, plan)
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
    try:
        held = open_entry(folder, plan.quarantine)
    except UnsafeInputError:
        _put_back(plan, folder, temp)  # a link (or a folder, a FIFO) was renamed in our place
        return False
    with held:
        if sha256_handle(held) != plan.content_sha:
            _put_back(plan, folder, temp)
            return False
        if plan.action == "delete":
            unlink_entry(folder, plan.quarantine)
            log.info("deleted input %s (all outputs written)", display(plan.path))
            return True
        target = _move(plan, folder, held, temp)
    unlink_entry(folder, plan.quarantine)
    log.info("moved input %s to %s", display(plan.path), display(target))
    return True


def _move(plan: ReleasePlan, folder: int, held: BinaryIO, temp: Path | None) -> Path:
    """Give the checked, quarantined input its name in processed/; the caller then unlinks the quarantine."""
    names = dash_variants(from_text(plan.target or ""))
    if temp is None:
        linked = link_free(folder, plan.quarantine, names)
        if linked is not None:
            return linked
        temp = _copy_to_temp(held, plan)  # EXDEV though the devices matched (bind mounts)
        if temp is None:
            raise OSError(f"{display(plan.path)} changed while it was copied")
    return publish_temp(temp, names)


def _copy_to_temp(handle: BinaryIO, plan: ReleasePlan) -> Path | None:
    """The verified copy in the target folder's hidden temp file; None if the bytes are not the content."""
    temp = plan.temp
    assert temp is not None
    temp.parent.mkdir(parents=True, exist_ok=True)
    return temp if copy_verified(handle, temp, plan.content_sha) else None


def _same_device(handle: BinaryIO, plan: ReleasePlan) -> bool:
    folder = from_text(plan.target or "").parent
    folder.mkdir(parents=True, exist_ok=True)
    return os.fstat(handle.fileno()).st_dev == os.stat(folder).st_dev


def _put_back(plan: ReleasePlan, folder: int, temp: Path | None) -> None:
    _discard(temp)
    name = restore(folder, plan.quarantine, plan.path.name)
    _say_changed(plan, name)


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
        if _exists(folder, plan.quarantine):
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
        if _exists(folder, plan.quarantine):
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
    if _regular(plan.path) and _sha_of(plan.path) == plan.content_sha:
        release_input(config, store, plan.path, plan.content_sha, intent.job_id)


def recorded_by(intent: Intent, pid: int) -> bool:
    """True when a release or fail intent's payload says process `pid` recorded it."""
    if intent.step not in ("release", "fail"):
        return False
    try:
        return json.loads(intent.payload).get("pid") == pid
    except (ValueError, AttributeError):
        return False


def _finish_quarantined(config: Config, plan: ReleasePlan, folder: int) -> None:
    temp = None
    try:
        with open_entry(folder, plan.quarantine) as held:
            if plan.action == "move" and sha256_handle(held) == plan.content_sha:
                done = _complete_target(plan, held)
                if done is not None:  # the crash came after the target was whole: only the quarantine goes
                    unlink_entry(folder, plan.quarantine)
                    log.info("moved input %s to %s (finished after an interruption)", display(plan.path),
                             display(done))
                    return
                if not _same_device(held, plan):
                    temp = _copy_to_temp(held, plan)
    except UnsafeInputError:
        pass  # not a regular file: _release_quarantined puts it back
    if _release_quarantined(config, plan, folder, temp):
        log.info("the interrupted release of %s is finished", display(plan.path))


def _complete_target(plan: ReleasePlan, held: BinaryIO) -> Path | None:
    """The name in processed/ that already holds this input whole (its hard link, or a complete copy)."""
    info = os.fstat(held.fileno())
    for candidate in dash_variants(from_text(plan.target or "")):
        try:
            there = os.stat(candidate, follow_symlinks=False)
        except FileNotFoundError:
            return None  # names are taken in order: past the first free one there is nothing of ours
        if (there.st_dev, there.st_ino) == (info.st_dev, info.st_ino):
            return candidate
        if stat.S_ISREG(there.st_mode) and there.st_size == info.st_size and _sha_of(candidate) == plan.content_sha:
            return candidate
    return None


def _sha_of(path: Path) -> str | None:
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as handle:
            return sha256_handle(handle)
    except OSError:
        return None


def put_back_strays(config: Config, store: JobStore, stop: Callable[[], bool] = lambda: False) -> int:
    """At start, after reconciliation: put back under its own name every input hidden by a release (or an
    on_failure: move) that no open intent explains (a lost or replaced store), and remove such steps' temp
    files from processed/ and failed/; returns how many inputs came back. `stop`: asked once per folder
    walked, so a shutdown does not wait for a huge input tree; the rest waits for the next start."""
    back = 0
    for folder, name in _strays(config.input, config.excluded_dirs(), stop):
        step, token, original = _parse(name)
        if token is None or _intended(store, step, token):
            continue
        try:
            fd = open_folder(config.input, folder)
        except (UnsafeInputError, FileNotFoundError):
            continue
        try:
            got = restore(fd, name, original or name)
        except FileNotFoundError:
            continue  # finished meanwhile by the machine that hid it (a shared store): nothing to put back
        finally:
            os.close(fd)
        back += 1
        log.warning("put back %s: a %s was interrupted and its record is lost", display(folder / got),
                    "release" if step == "release" else "move into the failed folder")
    for root in (config.processed_dir, config.failed_dir):
        for folder, name in _strays(root, [], stop):
            step, token, _ = _parse(name)
            if token is not None and name.endswith(_TEMP_SUFFIX) and not _intended(store, step, token):
                (folder / name).unlink(missing_ok=True)
    return back


def _strays(root: Path, skip: list[Path], stop: Callable[[], bool]) -> Iterator[tuple[Path, str]]:
    """(folder, name) of every entry under `root` with a step's hidden prefix; links not followed, `skip` not
    walked; the walk ends when `stop()` says so."""
    if not root.is_dir():
        return
    for here, dirs, files in os.walk(root):
        if stop():
            return
        folder = Path(here)
        dirs[:] = [d for d in dirs if folder / d not in skip and not (folder / d).is_symlink()]
        for name in files + dirs:
            if name.startswith(_PREFIXES):
                yield folder, name


def _parse(name: str) -> tuple[str, str | None, str | None]:
    """(step, token, original name) of a hidden step name; token None for any other name."""
    for step, prefix in (("release", QUARANTINE_PREFIX), ("fail", FAIL_PREFIX)):
        if name.startswith(prefix):
            token, dot, original = name[len(prefix):].partition(".")
            if dot and "-" in token:
                return step, token, original or None
    return "", None, None


def _intended(store: JobStore, step: str, token: str) -> bool:
    """True when an open intent of the token's job (the step's own) names that token."""
    job = token.split("-", 1)[0]
    if not job.isdigit():
        return False
    for intent in store.intents(int(job)):
        try:
            if intent.step == step and json.loads(intent.payload).get("token") == token:
                return True
        except (ValueError, AttributeError):
            continue
    return False


def _exists(folder: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _regular(path: Path) -> bool:
    """A regular file itself (lstat: a link is not one, whatever it points to)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
