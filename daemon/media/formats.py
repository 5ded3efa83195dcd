"""Why a file is not a photo style-daemon reads: one line a user can act on."""

from __future__ import annotations

from pathlib import PurePath

from daemon.media.images import IMAGE_EXTENSIONS

# Camera RAW formats: need demosaicing and a colour pipeline; the camera or an editor exports them well.
RAW_EXTENSIONS = frozenset({
    ".3fr", ".ari", ".arw", ".bay", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff", ".iiq", ".k25",
    ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2",
    ".srf", ".srw", ".x3f",
})
VIDEO_EXTENSIONS = frozenset({
    ".3gp", ".avi", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpg", ".mpeg", ".mts", ".webm", ".wmv",
})


def supported() -> str:
    """The extensions read, for messages: '.avif, .bmp, ...'."""
    return ", ".join(sorted(IMAGE_EXTENSIONS))


def why_not_read(name: str | PurePath) -> str | None:
    """None for a photo extension style-daemon reads, else the reason it is not taken (what to do)."""
    suffix = PurePath(name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return None
    if suffix in RAW_EXTENSIONS:
        return f"camera RAW files are not read ({suffix}); export a JPEG or TIFF"
    if suffix in VIDEO_EXTENSIONS:
        return f"a video, not a photo ({suffix}); export a still frame as JPEG or PNG"
    shown = suffix or "no extension"
    return f"not a photo format style-daemon reads ({shown}); supported: {supported()}"
