"""The one rule for an input hidden under a quarantine name before it is removed (a release, on_failure: move):
check it again, then unlink it only if it is still the content the step was about, else put it back."""

from __future__ import annotations

import os
from typing import BinaryIO, Callable

from daemon.errors import UnsafeInputError
from daemon.media.hashing import sha256_handle
from daemon.media.safe_move import open_entry, restore, unlink_entry


def remove_if_same(folder: int, hidden: str, name: str, sha: str, *, opened: BinaryIO | None = None,
                   before_unlink: Callable[[BinaryIO], object] | None = None) -> str | None:
    """Unlink the hidden entry of the folder if it is a regular file with sha256 `sha` (and the very file
    `opened`, when given), after `before_unlink(held)` (a move giving it its new name) ran; otherwise put it
    back under `name` (or name-1 ... if that was taken meanwhile). None when removed, else the name it got.
    """
    try:
        held = open_entry(folder, hidden)
    except UnsafeInputError:
        return restore(folder, hidden, name)  # a link (or a folder, a FIFO) was renamed in our place
    with held:
        if not ((opened is None or _same_descriptor(held, opened)) and sha256_handle(held) == sha):
            return restore(folder, hidden, name)
        if before_unlink is not None:
            before_unlink(held)
    unlink_entry(folder, hidden)
    return None


def _same_descriptor(one: BinaryIO, other: BinaryIO) -> bool:
    a, b = os.fstat(one.fileno()), os.fstat(other.fileno())
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
