"""Gallery previews of TIFF results: an 8-bit sRGB JPEG under OUTPUT/.previews, remade when the result is newer."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from daemon.media import icc
from daemon.media.colour import SRGB_PROFILE
from daemon.media.images import save_image
from daemon.review.previews import ensure_preview, needs_preview, preview_path
from tests.support.colour import description, p3_to_srgb


def test_tiff_result_gets_a_jpeg_preview_in_srgb(tmp_path):
    result = tmp_path / "sub" / "photo.starry.tif"
    result.parent.mkdir()
    save_image(np.full((30, 40, 3), (200.4, 120.2, 60.7), np.float32), result, profile=icc.build_profile(icc.DISPLAY_P3))
    preview = ensure_preview(tmp_path, result)
    assert preview == tmp_path / ".previews" / "sub" / "photo.starry.tif.jpg" == preview_path(tmp_path, result)
    with Image.open(preview) as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (40, 30)
        assert description(image.info["icc_profile"]) == "sRGB IEC61966-2.1"
        # The P3 TIFF previews in sRGB: the colours converted, as a colour-managed viewer shows them.
        np.testing.assert_allclose(np.asarray(image)[15, 20], p3_to_srgb(np.array([200, 120, 61])), atol=4)


def test_preview_is_kept_then_remade_when_the_result_changes(tmp_path):
    result = tmp_path / "a.tif"
    save_image(np.zeros((20, 20, 3), np.float32), result, profile=SRGB_PROFILE)
    preview = ensure_preview(tmp_path, result)
    first = preview.stat().st_mtime_ns
    assert ensure_preview(tmp_path, result).stat().st_mtime_ns == first  # not rewritten
    save_image(np.full((20, 20, 3), 255.0, np.float32), result, profile=SRGB_PROFILE)
    os.utime(preview, ns=(first - 10**9, first - 10**9))  # older than the new result
    assert np.asarray(Image.open(ensure_preview(tmp_path, result))).min() > 250


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's word on the broken file, expected
def test_large_result_previews_small_and_missing_or_broken_results_get_none(tmp_path):
    big = tmp_path / "big.tif"
    save_image(np.zeros((300, 2400, 3), np.float32), big)
    assert Image.open(ensure_preview(tmp_path, big)).size == (1200, 150)
    assert ensure_preview(tmp_path, tmp_path / "gone.tif") is None
    (tmp_path / "broken.tif").write_bytes(b"II*\0 not a tiff")
    assert ensure_preview(tmp_path, tmp_path / "broken.tif") is None


def test_only_tiff_needs_a_preview(tmp_path):
    assert needs_preview(tmp_path / "a.tif") and needs_preview(tmp_path / "a.TIFF")
    assert not any(needs_preview(tmp_path / f"a.{s}") for s in ("jpg", "png", "webp"))
