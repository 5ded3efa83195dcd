"""Issue 12, the front door (media side): HEIC/AVIF, ignored and arriving files, ETA, progress bar, sheet labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CONTENT
from tests.helpers import ROOT, Daemon, done_jobs, wait_until, write_config

ORIENTATION = 0x0112


def _two_colour(width: int = 48, height: int = 24) -> Image.Image:
    """Left half red, right half blue: a rotation shows where the colours end up."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(pixels)


def _save(image: Image.Image, path: Path, orientation: int | None = None) -> Path:
    """Write `image` as HEIC or AVIF (by suffix), with an EXIF orientation tag when given."""
    fmt = "AVIF" if path.suffix.lower() == ".avif" else "HEIF"
    options = {"quality": 95}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        options["exif"] = exif.tobytes()
    image.save(path, format=fmt, **options)
    return path


@pytest.fixture
def heif_writer():
    """pillow-heif's opener, needed here only to write HEIC files (the loader registers it itself)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


# --- 1. HEIC / HEIF / AVIF -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "photo.heic", "camera.heif", "phone.avif", "PHONE.AVIF"])
def test_heif_and_avif_are_photo_extensions(name):
    from daemon.media.images import IMAGE_EXTENSIONS

    assert Path(name).suffix.lower() in IMAGE_EXTENSIONS


@pytest.mark.parametrize("suffix", [".heic", ".heif", ".avif"])
@pytest.mark.parametrize("orientation, size, top, bottom", [
    (1, (48, 24), None, None),             # upright: red left, blue right
    (6, (24, 48), "red", "blue"),          # rotate 90 clockwise: the left (red) half goes on top
    (8, (24, 48), "blue", "red"),          # rotate 90 counter-clockwise: the right (blue) half goes on top
    (3, (48, 24), None, None),             # upside down: red ends up on the right
])
def test_heif_and_avif_decode_with_their_exif_orientation(tmp_path, heif_writer, suffix, orientation, size, top,
                                                          bottom):
    from daemon.media.images import load_image

    path = _save(_two_colour(), tmp_path / f"shot{suffix}", orientation)
    loaded = load_image(path)
    assert loaded.size == size
    colour = {"red": np.array([255, 0, 0]), "blue": np.array([0, 0, 255])}
    rgb = loaded.rgb
    if top is not None:
        assert np.abs(rgb[2, size[0] // 2] - colour[top]).max() < 40
        assert np.abs(rgb[-3, size[0] // 2] - colour[bottom]).max() < 40
    else:
        left, right = ("blue", "red") if orientation == 3 else ("red", "blue")
        assert np.abs(rgb[size[1] // 2, 2] - colour[left]).max() < 40
        assert np.abs(rgb[size[1] // 2, -3] - colour[right]).max() < 40


def test_heic_of_a_real_photo_keeps_its_pixels(tmp_path, heif_writer):
    from daemon.media.images import load_image

    original = Image.open(CONTENT / "chelsea.png").convert("RGB")
    path = _save(original, tmp_path / "chelsea.HEIC")
    loaded = load_image(path)
    assert loaded.size == original.size
    assert np.abs(loaded.rgb - np.asarray(original, np.float32)).mean() < 8  # lossy, but the same picture


def test_heic_and_avif_dropped_in_the_input_folder_are_processed(tmp_path, heif_writer):
    config = write_config(tmp_path)
    photo = Image.open(CONTENT / "chelsea.png").convert("RGB")
    daemon = Daemon(config)
    try:
        daemon.wait_ready()
        _save(photo, tmp_path / "in" / "IMG_0001.HEIC", orientation=6)
        _save(photo, tmp_path / "in" / "phone.avif")
        jobs = wait_until(lambda: len(done_jobs(tmp_path)) == 2 and done_jobs(tmp_path), timeout=60,
                          what="both photos processed")
    finally:
        assert daemon.stop() == 0, daemon.output()
    names = sorted(Path(j["rel_path"]).name for j in jobs)
    assert names == ["IMG_0001.HEIC", "phone.avif"]
    for job in jobs:
        output = Path(job["output_path"])
        assert output.exists() and Path(str(output) + ".json").exists()
    rotated = next(Path(j["output_path"]) for j in jobs if j["rel_path"].endswith(".HEIC"))
    with Image.open(rotated) as result:
        assert result.height > result.width  # the EXIF orientation was applied before stylising
