"""Colour management: photos tagged Display P3, Adobe RGB or grey reach the network in sRGB, in every format
read; untagged photos are taken as sRGB; results carry the profile of the space they are written in.

Expected colours come from the published matrices (tests/support/colour.py), not from the code under test;
Display P3 is made by daemon.media.icc because no Debian package ships it, so its bytes are also checked
against the published matrix through LittleCMS alone.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image, ImageCms

from daemon.media import icc
from daemon.media.colour import SRGB_PROFILE, UNTAGGED, for_output
from daemon.media.images import encode_image, load_image
from daemon.media.style_images import load_style_image
from tests.support.colour import (adobe_to_srgb, description, exif_uncalibrated_r03, p3_to_srgb, patch_centres,
                                  patches, real_profile, srgb_encode, srgb_to_adobe, srgb_to_p3)

P3 = icc.build_profile(icc.DISPLAY_P3)
# Pure P3 red (outside sRGB: clipped to sRGB's red), then colours inside sRGB that move when converted.
COLOURS = [(255, 0, 0), (200, 120, 60), (60, 180, 90), (90, 110, 200), (128, 128, 128)]
# Lossless formats: LittleCMS's 8-bit arithmetic against float matrices. Lossy ones: flat patches at top
# quality still move a few levels through YCbCr.
LOSSLESS, LOSSY = 1.5, 4.0
FORMATS = [("PNG", {}, LOSSLESS), ("TIFF", {}, LOSSLESS), ("WEBP", {"lossless": True}, LOSSLESS),
           ("JPEG", {"quality": 100, "subsampling": 0}, LOSSY), ("HEIF", {"quality": 100}, LOSSY),
           ("AVIF", {"quality": 100}, LOSSY)]


def _encoded(image: Image.Image, fmt: str, **options) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("fmt,options,tolerance", FORMATS, ids=[f[0] for f in FORMATS])
def test_display_p3_photo_reaches_the_network_in_srgb(fmt, options, tolerance):
    loaded = load_image(_encoded(patches(COLOURS), fmt, icc_profile=P3, **options))
    got = patch_centres(loaded.rgb, len(COLOURS))
    expected = p3_to_srgb(np.array(COLOURS))
    np.testing.assert_allclose(got, expected, atol=tolerance)
    assert np.abs(got[1:4] - np.array(COLOURS[1:4])).max() > 10, "the colours were not converted"
    np.testing.assert_allclose(got[0], [255, 0, 0], atol=tolerance)  # P3 red: clipped to the edge of sRGB
    assert loaded.space.name == "Display P3" and loaded.space.origin == "icc" and loaded.space.profile == P3


def test_p3_red_is_the_published_srgb_colour():
    """The pure P3 red: linear sRGB (1.2249, -0.0421, -0.0197) by the published matrices, clipped to red."""
    loaded = load_image(_encoded(patches([(255, 0, 0), (255, 128, 128)]), "PNG", icc_profile=P3))
    got = patch_centres(loaded.rgb, 2)
    np.testing.assert_allclose(got[0], [255, 0, 0], atol=1)
    # A lighter P3 red: its red clipped too, its green and blue moved as the matrices say.
    np.testing.assert_allclose(got[1], p3_to_srgb(np.array([255, 128, 128])), atol=LOSSLESS)
    assert np.abs(got[1] - [255, 128, 128]).max() > 5


@pytest.mark.parametrize("fmt,options,tolerance", [FORMATS[0], FORMATS[3], FORMATS[1]], ids=["PNG", "JPEG", "TIFF"])
def test_adobe_rgb_photo_with_colord_profile(fmt, options, tolerance):
    colours = [(200, 120, 60), (60, 180, 90), (90, 110, 200), (30, 200, 40)]
    profile = real_profile("colord/AdobeRGB1998.icc")
    loaded = load_image(_encoded(patches(colours), fmt, icc_profile=profile, **options))
    np.testing.assert_allclose(patch_centres(loaded.rgb, 4), adobe_to_srgb(np.array(colours)), atol=tolerance)
    assert loaded.space.name == "Compatible with Adobe RGB (1998)"


def test_grey_profile_photo_is_converted_and_stays_neutral():
    # icc-profiles-free's Gray.icc has a linear tone curve (gamma 1.0): grey 128 is half the light.
    profile = real_profile("Gray.icc")
    image = Image.fromarray(np.repeat(np.arange(0, 256, 16, dtype=np.uint8)[None], 8, axis=0), mode="L")
    loaded = load_image(_encoded(image, "PNG", icc_profile=profile))
    row = loaded.rgb[4]
    assert np.abs(row - row[:, :1]).max() == 0, "grey did not stay neutral"
    np.testing.assert_allclose(row[:, 0], srgb_encode(np.arange(0, 256, 16) / 255.0), atol=LOSSLESS)
    assert loaded.space.name == "Gray"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_untagged_photo_is_taken_as_srgb_unchanged(fmt):
    loaded = load_image(_encoded(patches(COLOURS), fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    np.testing.assert_array_equal(patch_centres(loaded.rgb, len(COLOURS)), np.array(COLOURS))
    assert loaded.space == UNTAGGED


def test_untagged_photo_from_the_shared_set_is_unchanged():
    from tests.support import CONTENT

    path = CONTENT / "coffee.png"
    assert "icc_profile" not in Image.open(path).info
    np.testing.assert_array_equal(load_image(path).rgb, np.asarray(Image.open(path).convert("RGB"), np.float32))


@pytest.mark.parametrize("marking", ["ColorSpace 2", "uncalibrated R03"])
def test_exif_adobe_rgb_without_profile(marking):
    colours = [(200, 120, 60), (60, 180, 90)]
    if marking == "ColorSpace 2":
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0xA001] = 2
        block = exif.tobytes()
    else:
        block = exif_uncalibrated_r03()
    loaded = load_image(_encoded(patches(colours), "JPEG", quality=100, subsampling=0, exif=block))
    np.testing.assert_allclose(patch_centres(loaded.rgb, 2), adobe_to_srgb(np.array(colours)), atol=LOSSY)
    assert loaded.space.origin == "exif"


def test_exif_srgb_colour_space_is_not_converted():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA001] = 1
    loaded = load_image(_encoded(patches(COLOURS), "PNG", exif=exif.tobytes()))
    np.testing.assert_array_equal(patch_centres(loaded.rgb, len(COLOURS)), np.array(COLOURS))


def test_heic_nclx_display_p3_without_profile():
    image = patches(COLOURS)
    loaded = load_image(_encoded(image, "HEIF", quality=100, color_primaries=12, transfer_characteristics=13))
    np.testing.assert_allclose(patch_centres(loaded.rgb, len(COLOURS)), p3_to_srgb(np.array(COLOURS)), atol=LOSSY)
    assert loaded.space.origin == "nclx" and loaded.space.name == "Display P3"


def test_style_images_are_converted_too(tmp_path):
    path = tmp_path / "painting.png"
    patches(COLOURS).save(path, icc_profile=P3)
    style = load_style_image(path, "set")
    np.testing.assert_allclose(patch_centres(style.rgb, len(COLOURS)), p3_to_srgb(np.array(COLOURS)), atol=LOSSLESS)


def test_unreadable_profile_is_taken_as_srgb_with_a_warning(caplog):
    broken = b"\0\0\0\x80" + b"not a profile" * 12
    with caplog.at_level(logging.WARNING, logger="daemon.media.colour"):
        loaded = load_image(_encoded(patches(COLOURS), "PNG", icc_profile=broken))
    np.testing.assert_array_equal(patch_centres(loaded.rgb, len(COLOURS)), np.array(COLOURS))
    assert "cannot be read" in caplog.text


def test_rgb_profile_on_grey_pixels_is_ignored_with_a_warning(caplog):
    image = Image.new("L", (16, 16), 100)
    with caplog.at_level(logging.WARNING, logger="daemon.media.colour"):
        loaded = load_image(_encoded(image, "TIFF", icc_profile=P3))
    assert loaded.rgb[0, 0].tolist() == [100, 100, 100] and "does not fit" in caplog.text


def test_made_profiles_agree_with_real_ones_through_littlecms():
    """Our sRGB and Adobe RGB profiles convert like colord's; our Display P3 like the published matrix."""
    grid = np.stack(np.meshgrid(*[np.arange(0, 256, 17)] * 3), -1).reshape(1, -1, 3).astype(np.uint8)
    image = Image.fromarray(grid, mode="RGB")
    colord_srgb = ImageCms.ImageCmsProfile(io.BytesIO(real_profile("colord/sRGB.icc")))

    def through(profile: bytes, target=colord_srgb) -> np.ndarray:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return np.asarray(ImageCms.profileToProfile(image, source, target, renderingIntent=1), np.float64)[0]

    np.testing.assert_allclose(through(SRGB_PROFILE), grid[0], atol=1)
    np.testing.assert_allclose(through(icc.build_profile(icc.ADOBE_RGB)), through(real_profile("colord/AdobeRGB1998.icc")),
                               atol=1)
    np.testing.assert_allclose(through(P3), p3_to_srgb(grid[0]), atol=LOSSLESS)


@pytest.mark.parametrize("fmt,depth", [("jpg", 8), ("png", 8), ("webp", 8), ("tif", 16), ("png", 16)])
def test_results_carry_the_srgb_profile(fmt, depth):
    rgb = np.asarray(patches(COLOURS), np.float32)
    out = for_output(rgb, UNTAGGED, "srgb")
    data = encode_image(out.rgb, fmt, profile=out.profile, depth=depth)
    read = Image.open(io.BytesIO(data))
    assert description(read.info["icc_profile"]) == "sRGB IEC61966-2.1"
    np.testing.assert_allclose(patch_centres(np.asarray(read.convert("RGB")), len(COLOURS)), np.array(COLOURS),
                               atol=LOSSY if fmt in ("jpg", "webp") else 1)


def test_original_colour_space_writes_the_photo_back_in_display_p3():
    # A P3 photo whose colours are all inside sRGB: loaded into sRGB, written back in P3, it comes back.
    colours = _inside_srgb(srgb_to_p3)
    loaded = load_image(_encoded(patches(colours), "PNG", icc_profile=P3))
    out = for_output(loaded.rgb, loaded.space, "original")
    assert out.profile == P3 and out.name == "Display P3"
    np.testing.assert_allclose(patch_centres(out.rgb, 4), np.array(colours), atol=LOSSLESS)
    # The float path agrees with the published matrices on unrounded values too.
    np.testing.assert_allclose(patch_centres(out.rgb, 4), srgb_to_p3(patch_centres(loaded.rgb, 4)), atol=0.05)
    data = encode_image(out.rgb, "tif", profile=out.profile)
    assert description(Image.open(io.BytesIO(data)).info["icc_profile"]) == "Display P3"


def test_original_colour_space_is_srgb_for_untagged_grey_and_lut_sources():
    rgb = np.asarray(patches(COLOURS), np.float32)
    grey = load_image(_encoded(Image.new("L", (16, 16), 90), "PNG", icc_profile=real_profile("Gray.icc"))).space
    for space in (UNTAGGED, grey):
        out = for_output(rgb, space, "original")
        assert out.profile == SRGB_PROFILE and out.rgb is rgb


def test_original_colour_space_with_a_real_adobe_profile_matches_littlecms():
    profile = real_profile("colord/AdobeRGB1998.icc")
    colours = _inside_srgb(srgb_to_adobe)
    loaded = load_image(_encoded(patches(colours), "PNG", icc_profile=profile))
    out = for_output(loaded.rgb, loaded.space, "original")
    np.testing.assert_allclose(patch_centres(out.rgb, 4), np.array(colours), atol=LOSSLESS)
    # LittleCMS's own way back (8-bit, the same profiles) lands on the same values.
    back = ImageCms.profileToProfile(Image.fromarray(np.rint(loaded.rgb).astype(np.uint8)),
                                     ImageCms.ImageCmsProfile(io.BytesIO(SRGB_PROFILE)),
                                     ImageCms.ImageCmsProfile(io.BytesIO(profile)), renderingIntent=1)
    np.testing.assert_allclose(patch_centres(out.rgb, 4), patch_centres(np.asarray(back, np.float64), 4), atol=1.5)


def _inside_srgb(from_srgb) -> list[tuple[int, int, int]]:
    """Colours of a wider space that lie inside sRGB (so that they survive the way into sRGB and back)."""
    srgb = np.array([(200, 120, 60), (60, 180, 90), (90, 110, 200), (128, 128, 128)])
    return [tuple(int(v) for v in row) for row in np.rint(from_srgb(srgb))]


REAL_RGB_PROFILES = ["sRGB.icc", "compatibleWithAdobeRGB1998.icc", "colord/AdobeRGB1998.icc", "colord/ProPhotoRGB.icc",
                     "colord/Rec709.icc", "colord/AppleRGB.icc", "colord/WideGamutRGB.icc", "colord/ECI-RGBv2.icc",
                     "colord/BestRGB.icc", "colord/CIE-RGB.icc"]


@pytest.mark.parametrize("name", REAL_RGB_PROFILES)
def test_the_way_back_agrees_with_littlecms_for_real_profiles(name):
    """Every kind of tone curve real profiles use (gamma, tables, parametric) read back as LittleCMS reads it."""
    from daemon.media.colour import SourceSpace

    profile = real_profile(name)
    grid = np.stack(np.meshgrid(*[np.arange(0, 256, 17)] * 3), -1).reshape(1, -1, 3).astype(np.uint8)
    lcms = ImageCms.profileToProfile(Image.fromarray(grid, mode="RGB"), ImageCms.ImageCmsProfile(io.BytesIO(SRGB_PROFILE)),
                                     ImageCms.ImageCmsProfile(io.BytesIO(profile)), renderingIntent=1)
    ours = for_output(grid.astype(np.float32), SourceSpace(profile, description(profile), "icc"), "original")
    if "sRGB" in name:
        assert ours.profile == SRGB_PROFILE  # an sRGB photo's result stays in our sRGB
        return
    assert ours.profile == profile
    difference = np.abs(ours.rgb[0] - np.asarray(lcms, np.float64)[0])
    # Up to 3 levels where a channel should be black: the two profiles' colorants, each rounded to 1/65536,
    # leave ~1e-4 of light there, which a gamma curve's steep start lifts and LittleCMS's 8-bit pipeline drops.
    assert difference.max() <= 3.0 and difference.mean() < 0.6, (difference.max(), difference.mean())


def test_hdr_heic_is_converted_by_its_primaries_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="daemon.media.colour"):
        loaded = load_image(_encoded(patches(COLOURS), "HEIF", quality=100, color_primaries=9,
                                     transfer_characteristics=16))
    assert loaded.space.name == "Rec. 2020" and "HDR photo (PQ curve)" in caplog.text
    assert np.abs(patch_centres(loaded.rgb, len(COLOURS))[1:4] - np.array(COLOURS[1:4])).max() > 10
