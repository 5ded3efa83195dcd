"""8-bit JPEG previews of results a browser cannot show (TIFF), for the gallery: OUTPUT/.previews/REL.jpg.

Made when the gallery is rendered, not when the result is published: a preview is a view, not part of the
result, and the publish unit (image + sidecar) stays two files. The folder is hidden so that it does not
read as results; the gallery links it relatively, so it works offline from a share like the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from daemon.errors import BadInputError
from daemon.media.atomic import write_atomic
from daemon.media.colour import SRGB_PROFILE
from daemon.media.images import encode_image, load_image, resize_long_side
from daemon.media.path_text import display

log = logging.getLogger(__name__)

PREVIEW_DIR = ".previews"
PREVIEW_SIDE = 1200  # px, long side: sharp at the gallery's width on a high-density screen
BROWSER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif"})


def needs_preview(path: Path) -> bool:
    """True for a result browsers do not display (a TIFF)."""
    return path.suffix.lower() not in BROWSER_SUFFIXES


def preview_path(output_root: Path, result: Path) -> Path:
    """Where the preview of `result` goes: OUTPUT/.previews/<its path under OUTPUT>.jpg."""
    try:
        rel = result.relative_to(output_root)
    except ValueError:
        rel = Path(result.name)
    return output_root / PREVIEW_DIR / rel.with_name(rel.name + ".jpg")


def ensure_preview(output_root: Path, result: Path) -> Path | None:
    """The preview of `result`, written (sRGB JPEG) when missing or older than it; None when it cannot be."""
    target = preview_path(output_root, result)
    if not result.exists():  # removed by its owner: the gallery shows its name, nothing to preview
        return None
    try:
        if target.exists() and target.stat().st_mtime >= result.stat().st_mtime:
            return target
        loaded = load_image(result)  # colour-managed: a Display P3 TIFF previews in sRGB like the rest
    except (OSError, BadInputError) as exc:
        log.warning("no gallery preview for %s: %s", display(result.name), exc)
        return None
    rgb = loaded.rgb if max(loaded.size) <= PREVIEW_SIDE else resize_long_side(loaded.rgb, PREVIEW_SIDE)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, encode_image(rgb, "jpg", 85, profile=SRGB_PROFILE))
    return target
