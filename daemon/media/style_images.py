"""Reading a style image as the configuration's file, not the photo's: a fault raises StyleUnavailable.

A style image that goes missing, empty or corrupt after start is the configuration's fault; the photo that
meets it must not be blamed (failed/ and "copy the photo again" would send its owner the wrong way).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

from daemon.errors import BadInputError, StyleUnavailable
from daemon.media.images import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from daemon.media.path_text import display

_LABEL = "style"  # load_image's label, cut off again to keep only what is wrong


def load_style_image(path: Path, style_set: str | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a style image; StyleUnavailable (naming the set, the file and what is wrong) when it cannot be."""
    try:
        data = _read_regular(path)
    except OSError as exc:
        raise StyleUnavailable(style_set, display(path), _unreadable(exc)) from None
    if not data:
        raise StyleUnavailable(style_set, display(path), "is empty (0 bytes)")
    try:
        return load_image(io.BytesIO(data), max_pixels, name=_LABEL)
    except BadInputError as exc:
        raise StyleUnavailable(style_set, display(path), f"is not a readable image ({_what(exc)})") from None


def style_problem(path: Path, style_set: str | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> StyleUnavailable | None:
    """What is wrong with a style image now (a full decode, as a job does), or None when it can be used."""
    try:
        load_style_image(path, style_set, max_pixels)
    except StyleUnavailable as exc:
        return exc
    return None


def _read_regular(path: Path) -> bytes:
    """The file's bytes; a pipe, socket or device put in its place is refused, never read (it would block)."""
    # O_NONBLOCK: opening a pipe without a writer must not hang the worker (or `status`) before fstat refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise _NotRegular(errno.EINVAL, "not a regular file", str(path))
        return handle.read()


class _NotRegular(OSError):
    """A pipe, socket or device where the style image should be."""


def _unreadable(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "is missing"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image"
    if isinstance(exc, _NotRegular):
        return "is not a regular file (a pipe, socket or device)"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


def _what(exc: BadInputError) -> str:
    """load_image's reason without its label and without its fix (which speaks of photos)."""
    text = str(exc).removeprefix(f"{_LABEL}: ")
    return text.split(";", 1)[0].strip()
