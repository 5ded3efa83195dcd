"""Image I/O with Pillow: every mode and format, EXIF rotation, and every kind of bad file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from daemon.errors import BadInputError
from daemon.media.images import encode_image, load_image, save_image
from tests.support import CONTENT


@pytest.fixture(scope="module")
def photo():
    return Image.open(CONTENT / "chelsea.png").convert("RGB").resize((60, 40))


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"),
                                         ("TIFF", "tif"), ("BMP", "bmp"), ("GIF", "gif")])
def test_every_format_loads_as_rgb(tmp_path, photo, fmt, suffix):
    path = tmp_path / f"p.{suffix}"
    photo.save(path, format=fmt)
    loaded = load_image(path)
    assert loaded.rgb.shape == (40, 60, 3) and loaded.rgb.dtype == np.float32
    assert loaded.format == fmt
    # Lossy formats still resemble the photo.
    assert np.abs(loaded.rgb - np.asarray(photo, np.float32)).mean() < 25


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_loads(tmp_path, photo, mode):
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(photo.convert("L"), dtype=np.float64)
        scale = 257.0 if mode != "F" else 1.0
        image = Image.fromarray((grey * scale).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        image = image.convert(mode) if mode == "I;16" else image
        path = tmp_path / ("p.png" if mode == "I;16" else "p.tif")
    else:
        image = photo.convert(mode)
        path = tmp_path / ("p.tif" if mode == "CMYK" else "p.png")
    image.save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (40, 60, 3)
    assert 10 < loaded.rgb.mean() < 245, "decoded to a flat image"
    if mode in ("L", "I;16", "I", "F"):
        np.testing.assert_allclose(loaded.rgb[..., 0], np.asarray(photo.convert("L"), np.float32), atol=2)


def test_palette_transparency_and_rgba_keep_alpha(tmp_path, photo):
    rgba = photo.convert("RGBA")
    alpha = np.full((40, 60), 255, np.uint8)
    alpha[:, :20] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.alpha is not None and loaded.alpha[:, :20].max() == 0 and loaded.alpha[:, 30:].min() == 255

    pal = photo.convert("P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert load_image(tmp_path / "p.png").alpha is not None

    # Re-applied on PNG output, dropped (flattened) for JPEG.
    out = encode_image(loaded.rgb, "png", alpha=loaded.alpha)
    again = Image.open(io.BytesIO(out))
    assert again.mode == "RGBA" and np.asarray(again)[:, :20, 3].max() == 0
    assert Image.open(io.BytesIO(encode_image(loaded.rgb, "jpg", alpha=loaded.alpha))).mode == "RGB"


def test_exif_orientation_is_applied(tmp_path, photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    photo.save(tmp_path / "r.jpg", exif=exif.tobytes())
    loaded = load_image(tmp_path / "r.jpg")
    assert loaded.rgb.shape == (60, 40, 3)


def test_first_frame_of_animated_gif(tmp_path, photo):
    frames = [photo, Image.new("RGB", photo.size, "black")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "anim.gif").rgb.mean() > 30  # not the black frame


@pytest.mark.parametrize("case,expected", [
    ("empty", "empty (0 bytes)"),
    ("text", "not an image"),
    ("truncated", "truncated"),
    ("missing", "not found"),
])
def test_bad_files_give_one_clear_line(tmp_path, case, expected):
    path = tmp_path / "bad.jpg"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a photo\n")
    elif case == "truncated":
        data = (CONTENT / "tubingen.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadInputError) as info:
        load_image(path)
    message = str(info.value)
    assert expected in message and "\n" not in message and str(path) in message


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    # 20000 x 20000 pixels of one colour compress to a few hundred KB of PNG.
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png")
    with pytest.raises(BadInputError, match="decompression bomb|megapixels"):
        load_image(tmp_path / "bomb.png")
    Image.new("L", (2000, 1000)).save(tmp_path / "large.png")
    with pytest.raises(BadInputError, match="2000x1000 .* above the 0.001 MP limit; .*max_input_pixels"):
        load_image(tmp_path / "large.png", max_pixels=1000)


def test_save_image_writes_requested_format_atomically(tmp_path, photo):
    rgb = np.asarray(photo, np.float32)
    for suffix, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")):
        save_image(rgb, tmp_path / f"out.{suffix}")
        assert Image.open(tmp_path / f"out.{suffix}").format == fmt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg", "out.png", "out.webp"]
    with pytest.raises(BadInputError, match="use jpg, png, webp or tif"):
        save_image(rgb, tmp_path / "out.gif")
