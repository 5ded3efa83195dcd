"""The photo's metadata through the front doors, with the dry-run engine: `style-daemon stylize` with each
--metadata policy and output format, and `once` with naming.metadata; read back by Pillow and exifread."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile
from PIL.ExifTags import Base

from daemon.media.metadata import software_name
from tests.support import STYLE
from tests.support.cli import run_cli
from tests.support.daemon import ROOT, drop, write_config
from tests.support.photo_metadata import BODY_SERIAL, CITY, LENS_MODEL, MODEL, TAKEN, read_back, write_story_photo

DRY_RUN = {"STYLE_DAEMON_FAKE_ENGINE": "0.01"}
STARRY = STYLE / "starry_night.jpg"


@pytest.mark.parametrize("policy,fmt", [(None, "jpg"), ("keep", "tif"), ("none", "png"), ("private", "webp")])
def test_stylize_carries_the_metadata_its_policy_allows(tmp_path: Path, policy: str | None, fmt: str) -> None:
    write_story_photo(tmp_path / "photo.jpg")
    shutil.copy(STARRY, tmp_path / "starry.jpg")
    flags = ["--metadata", policy] if policy else []
    done = run_cli("stylize", "photo.jpg", "-s", "starry.jpg", "-o", f"result.{fmt}", "--size", "64",
                   "--iterations", "2", *flags, cwd=tmp_path, env=DRY_RUN)
    assert done.returncode == 0, done.stderr
    result = tmp_path / f"result.{fmt}"
    back = read_back(result)
    applied = policy or "private"  # the default
    assert back.pillow["ifd0"][Base.Software] == software_name() == back.exifread["Image Software"]
    assert back.exifread["EXIF UserComment"] == "stylised with starry.jpg"
    if applied == "none":
        assert "Image Model" not in back.exifread and back.xmp is None
    else:
        assert back.pillow["ifd0"][Base.Model] == MODEL and back.exifread["EXIF DateTimeOriginal"] == TAKEN
        assert back.exifread["EXIF LensModel"] == LENS_MODEL and back.pillow["ifd0"][Base.Orientation] == 1
        assert ("GPS GPSLatitude" in back.exifread) == (applied == "keep")
        assert (BODY_SERIAL.encode() in result.read_bytes()) == (applied == "keep")
        assert (CITY in back.xmp.decode()) == (applied == "keep")
    if fmt == "tif":
        assert tifffile.imread(result).dtype.name == "uint16"  # still the 16-bit print TIFF
    sidecar = json.loads((tmp_path / f"result.{fmt}.json").read_text())
    assert sidecar["metadata"]["policy"] == applied
    assert ("gps" in sidecar["metadata"]["removed"]) == (applied == "private")


def test_stylize_refuses_an_unknown_policy(tmp_path: Path) -> None:
    done = run_cli("stylize", "photo.jpg", "-s", str(STARRY), "-o", "r.jpg", "--metadata", "public", cwd=tmp_path)
    assert done.returncode == 2 and "--metadata" in done.stderr, done.stderr


def test_the_service_applies_naming_metadata(tmp_path: Path) -> None:
    config = write_config(tmp_path, naming={"metadata": "keep"})
    drop(write_story_photo(tmp_path / "photo.jpg"), tmp_path / "in" / "photo.jpg")
    env = {k: v for k, v in os.environ.items() if k != "STYLE_DAEMON_FAKE_ENGINE"}
    done = subprocess.run([sys.executable, "-m", "daemon", "once", "--dry-run", "-c", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    result = tmp_path / "out" / "photo.starry.jpg"
    back = read_back(result)
    assert back.exifread["GPS GPSLatitudeRef"] == "N" and back.pillow["ifd0"][Base.Model] == MODEL
    assert back.exifread["EXIF UserComment"] == "stylised with starry (starry_night.jpg)"
    assert json.loads(result.with_name(result.name + ".json").read_text())["metadata"]["policy"] == "keep"
