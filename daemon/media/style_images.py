"""Reading a style image as the configuration's file, not the photo's: a fault raises StyleUnavailable.

A style image that goes missing, empty or corrupt after start is the configuration's fault; the photo that
meets it must not be blamed (failed/ and "copy the photo again" would send its owner the wrong way).
"""

from __future__ import annotations

import io
from pathlib import Path

from daemon.errors import BadInputError, StyleUnavailable
from daemon.media.images import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from daemon.media.path_text import display

_LABEL = "style"  # load_image's label, cut off again to keep only what is wrong


def load_style_image(path: Path, style_set: str | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a style image; StyleUnavailable (naming the set, the file and what is wrong) when it cannot be."""
    try:
        data = path.read_bytes()
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


def _unreadable(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "is missing"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


def _what(exc: BadInputError) -> str:
    """load_image's reason without its label and without its fix (which speaks of photos)."""
    text = str(exc).removeprefix(f"{_LABEL}: ")
    return text.split(";", 1)[0].strip()
