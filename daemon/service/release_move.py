"""The move half of a release (after_success: move): the checked input's new name in processed/, by a hard
link, or across file systems a verified copy in a hidden temp file first; and after a crash, finding the
name in processed/ that already holds it whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from daemon.media.path_text import display, from_text
from daemon.media.safe_move import copy_verified, dash_variants, link_free, publish_temp, sha_of
from daemon.service.step_plan import ReleasePlan


def move_into_processed(plan: ReleasePlan, folder: int, held: BinaryIO, temp: Path | None) -> Path:
    """Give the checked, quarantined input its name in processed/; the caller then unlinks the quarantine."""
    names = dash_variants(from_text(plan.target or ""))
    if temp is None:
        linked = link_free(folder, plan.quarantine, names)
        if linked is not None:
            return linked
        temp = copy_to_temp(held, plan)  # EXDEV though the devices matched (bind mounts)
        if temp is None:
            raise OSError(f"{display(plan.path)} changed while it was copied")
    return publish_temp(temp, names)


def copy_to_temp(handle: BinaryIO, plan: ReleasePlan) -> Path | None:
    """The verified copy in the target folder's hidden temp file; None if the bytes are not the content."""
    temp = plan.temp
    assert temp is not None
    temp.parent.mkdir(parents=True, exist_ok=True)
    return temp if copy_verified(handle, temp, plan.content_sha) else None


def same_device(handle: BinaryIO, plan: ReleasePlan) -> bool:
    """True when the target folder (created if missing) is on the open input's file system."""
    folder = from_text(plan.target or "").parent
    folder.mkdir(parents=True, exist_ok=True)
    return os.fstat(handle.fileno()).st_dev == os.stat(folder).st_dev


def complete_target(plan: ReleasePlan, held: BinaryIO) -> Path | None:
    """The name in processed/ that already holds this input whole (its hard link, or a complete copy)."""
    info = os.fstat(held.fileno())
    for candidate in dash_variants(from_text(plan.target or "")):
        try:
            there = os.stat(candidate, follow_symlinks=False)
        except FileNotFoundError:
            return None  # names are taken in order: past the first free one there is nothing of ours
        if (there.st_dev, there.st_ino) == (info.st_dev, info.st_ino):
            return candidate
        if stat.S_ISREG(there.st_mode) and there.st_size == info.st_size and sha_of(candidate) == plan.content_sha:
            return candidate
    return None
