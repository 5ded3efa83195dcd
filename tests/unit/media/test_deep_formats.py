"""16-bit results: TIFF and PNG written from the float image without an 8-bit step, their profile, alpha and
metadata embedded; read back with tifffile and Pillow (TIFF), and with the PNG's own bytes and Pillow (PNG)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from daemon.errors import ConfigError
from daemon.media.colour import SRGB_PROFILE
from daemon.media.images import encode_image, save_image
from tests.support.colour import description

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


@pytest.fixture(scope="module")
def result() -> np.ndarray:
    """A float result as the engine returns it: smooth gradients whose values fall between 8-bit levels."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    return np.stack([x * 255 / 63, y * 255 / 47, (x + y) * 255 / 110 * 0.999 + 0.37], axis=-1).astype(np.float32)


def _expected16(rgb: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(rgb, 0, 255) / 255 * 65535).astype(np.uint16)


def _assert_not_from_8bit(values: np.ndarray) -> None:
    """8-bit data scaled to 16 bits is all multiples of 257; a float result written directly is not."""
    share = np.mean(values % 257 != 0)
    assert share > 0.9, f"only {share:.0%} of the values are off the 8-bit levels"


def test_tiff_is_16_bit_from_the_float_image(result):
    data = encode_image(result, "tif", profile=SRGB_PROFILE)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        pixels = page.asarray()
        assert page.dtype == np.uint16 and page.photometric == tifffile.PHOTOMETRIC.RGB
        assert page.tags[34675].value == SRGB_PROFILE
    np.testing.assert_array_equal(pixels, _expected16(result))
    _assert_not_from_8bit(pixels)
    with Image.open(io.BytesIO(data)) as image:  # the second, independent reader
        assert image.format == "TIFF" and image.size == (64, 48)
        assert description(image.info["icc_profile"]) == "sRGB IEC61966-2.1"
        np.testing.assert_allclose(np.asarray(image.convert("RGB"), np.float64), result, atol=1)


def test_tiff_suffixes_and_8_bit_tiff(result, tmp_path):
    for suffix in ("tif", "tiff", ".TIF"):
        assert tifffile.imread(io.BytesIO(encode_image(result, suffix))).dtype == np.uint16
    eight = tifffile.imread(io.BytesIO(encode_image(result, "tif", depth=8)))
    assert eight.dtype == np.uint8
    np.testing.assert_array_equal(eight, np.rint(result).astype(np.uint8))
    save_image(result, tmp_path / "out.tif", profile=SRGB_PROFILE)
    assert tifffile.imread(tmp_path / "out.tif").dtype == np.uint16


def test_tiff_keeps_alpha_and_metadata(result):
    alpha = np.full(result.shape[:2], 255.0, np.float32)
    alpha[:, :10] = 0.0
    exif = Image.Exif()
    exif[271], exif[272], exif[306] = "Canon", "EOS R5", "2024:05:01 10:20:30"
    data = encode_image(result, "tif", alpha=alpha, profile=SRGB_PROFILE, exif=exif.tobytes(), xmp=XMP)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        pixels = page.asarray()
        assert pixels.shape == (48, 64, 4) and pixels[:, :10, 3].max() == 0 and pixels[:, 10:, 3].min() == 65535
        assert page.tags["Make"].value == "Canon" and page.tags["DateTime"].value == "2024:05:01 10:20:30"
        assert page.tags[700].value == XMP
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif()[272] == "EOS R5"


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The PNG's chunks by type (IDAT joined), parsed from the bytes by hand."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        chunks[kind] = chunks.get(kind, b"") + data[at + 8:at + 8 + length]
        at += 12 + length
    return chunks


def test_png_is_16_bit_from_the_float_image(result):
    data = encode_image(result, "png", depth=16, profile=SRGB_PROFILE)
    chunks = _png_chunks(data)
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, bit_depth, colour_type) == (64, 48, 16, 2)  # 16 bits, truecolour
    name, _, compressed = chunks[b"iCCP"].partition(b"\0")
    assert zlib.decompress(compressed[1:]) == SRGB_PROFILE
    _, _, rows, _ = png.Reader(bytes=data).read()
    pixels = np.array([np.asarray(r, np.uint16) for r in rows]).reshape(48, 64, 3)
    np.testing.assert_array_equal(pixels, _expected16(result))
    _assert_not_from_8bit(pixels)
    with Image.open(io.BytesIO(data)) as image:
        assert description(image.info["icc_profile"]) == "sRGB IEC61966-2.1"
        np.testing.assert_allclose(np.asarray(image.convert("RGB"), np.float64), result, atol=1)


def test_png16_keeps_alpha_exif_and_xmp(result):
    alpha = np.full(result.shape[:2], 128.0, np.float32)
    exif = Image.Exif()
    exif[271] = "Apple"
    data = encode_image(result, "png", alpha=alpha, depth=16, profile=SRGB_PROFILE, exif=exif.tobytes(), xmp=XMP)
    chunks = _png_chunks(data)
    assert chunks[b"IHDR"][8:10] == bytes([16, 6])  # 16 bits, truecolour with alpha
    assert chunks[b"iTXt"].startswith(b"XML:com.adobe.xmp\0") and chunks[b"iTXt"].endswith(XMP)
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif()[271] == "Apple" and image.mode == "RGBA"
        assert abs(int(np.asarray(image)[0, 0, 3]) - 128) <= 1


def test_8_bit_formats_refuse_16_bits(result):
    for fmt in ("jpg", "webp"):
        with pytest.raises(ConfigError, match="16 bits"):
            encode_image(result, fmt, depth=16)
    assert Image.open(io.BytesIO(encode_image(result, "png"))).mode == "RGB"  # png stays 8-bit unless asked


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
def test_8_bit_formats_embed_exif_and_xmp(result, fmt):
    exif = Image.Exif()
    exif[271] = "Fujifilm"
    with Image.open(io.BytesIO(encode_image(result, fmt, exif=exif.tobytes(), xmp=XMP))) as image:
        assert image.getexif()[271] == "Fujifilm"
        assert XMP.decode() in str(image.info.get("xmp", image.info.get("XML:com.adobe.xmp")))
