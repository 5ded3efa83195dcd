"""File names that fit: every derived name (result, sidecar, sheet, temp, failed copy) stays within 255 bytes.

A name too long is cut at a UTF-8 character boundary and given a short hash of the whole name, so two
long names that share their first 200 bytes still get different results.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

NAME_MAX = 255  # bytes, for ext4, xfs, btrfs, zfs, NTFS and most others
# Room a result name leaves for what is appended to it: ".json", ".sheet.jpg", ".iter0100" and a counter.
DERIVED_ROOM = 24
_ENCODING = ("utf-8", "surrogateescape")
_MAX_KEPT_SUFFIX = 64  # bytes of ".starry.2.jpg" kept whole when a name is shortened


def name_bytes(name: str) -> int:
    """The length of `name` on disk, in bytes."""
    return len(name.encode(*_ENCODING))


def fit_name(name: str, limit: int = NAME_MAX) -> str:
    """`name` if it fits in `limit` bytes, else a readable prefix + '~' + hash of the full name + suffix."""
    if name_bytes(name) <= limit:
        return name
    suffix = _kept_suffix(name)
    marker = "~" + hashlib.sha256(name.encode(*_ENCODING)).hexdigest()[:10]
    budget = limit - name_bytes(marker) - name_bytes(suffix)
    return _prefix(name[: len(name) - len(suffix)], budget) + marker + suffix


def _kept_suffix(name: str) -> str:
    """The last (up to) three dotted parts, e.g. ".starry.2.jpg", if short enough to keep readable."""
    parts = name.split(".")
    for count in (3, 2, 1):
        if len(parts) > count and parts[0]:
            suffix = "." + ".".join(parts[-count:])
            if name_bytes(suffix) <= _MAX_KEPT_SUFFIX:
                return suffix
    return ""


def _prefix(text: str, budget: int) -> str:
    """The longest start of `text` that fits in `budget` bytes, never splitting a character."""
    kept, used = [], 0
    for char in text:
        size = name_bytes(char)
        if used + size > budget:
            break
        kept.append(char)
        used += size
    return "".join(kept)


def fit_path(path: Path, room: int = 0) -> Path:
    """`path` with its last component fitted so that `room` more bytes can still be appended."""
    return path.with_name(fit_name(path.name, NAME_MAX - room))


def numbered(path: Path, number: int, room: int = 0) -> Path:
    """The n-th distinct variant: holiday.starry.jpg -> holiday.starry.2.jpg (1 gives the path itself)."""
    if number <= 1:
        return fit_path(path, room)
    stem, dot, ext = path.name.rpartition(".")
    name = f"{stem}.{number}.{ext}" if dot and stem else f"{path.name}.{number}"
    return path.with_name(fit_name(name, NAME_MAX - room))


ERROR_REPORT = ".error.txt"
_FAILED_ROOM = len(ERROR_REPORT) + 6  # and a -N counter


def failed_copy_path(folder: Path, name: str, number: int = 0) -> Path:
    """Where a failed input's copy goes (name, or name-N), short enough for its .error.txt beside it."""
    path = folder / name
    if number:
        path = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return fit_path(path, _FAILED_ROOM)


def error_report_path(copy: Path) -> Path:
    """The .error.txt beside a failed input's copy."""
    return copy.with_name(copy.name + ERROR_REPORT)


def variants(path: Path, room: int = 0) -> Iterator[Path]:
    """`path`, then its numbered variants .2, .3, ... (endless; callers stop at the first free one)."""
    number = 1
    while True:
        yield numbered(path, number, room)
        number += 1
