"""TIFF (8 or 16 bits) and 16-bit PNG encoders: tifffile and pypng, the ICC profile, EXIF text and XMP embedded.

Pillow writes neither 16-bit RGB TIFF nor 16-bit RGB PNG, so these two go through tifffile and pypng; the
float result is scaled straight to 0..65535, never through an 8-bit step.
"""

from __future__ import annotations

import io
import logging
import zlib

import numpy as np
import png
import tifffile
from PIL import Image

log = logging.getLogger(__name__)

# TIFF tags written from the photo's EXIF: the first IFD's text fields (tifffile writes no EXIF sub-IFD from
# bytes, so date taken and lens stay in the XMP, which the metadata step also writes).
_TIFF_TEXT_TAGS = {270: "ImageDescription", 271: "Make", 272: "Model", 305: "Software", 306: "DateTime",
                   315: "Artist", 33432: "Copyright"}
_ICC_TAG, _XMP_TAG = 34675, 700


def to_depth(values: np.ndarray, depth: int) -> np.ndarray:
    """A float array in 0..255 as unsigned integers of `depth` bits (8 or 16), rounded, clipped."""
    if depth == 16:
        return np.rint(np.clip(values, 0, 255) * (65535.0 / 255.0)).astype(np.uint16)
    return np.rint(np.clip(values, 0, 255)).astype(np.uint8)


def encode_tiff(rgb: np.ndarray, depth: int = 16, alpha: np.ndarray | None = None, profile: bytes | None = None,
                exif: bytes | None = None, xmp: bytes | None = None) -> bytes:
    """An RGB(A) TIFF of `depth` bits a channel, deflate-compressed, the ICC profile in tag 34675."""
    pixels = _with_alpha(rgb, alpha, depth)
    text = _exif_text(exif)
    # tifffile writes Software and ImageDescription itself: given here, not twice as extra tags.
    software, description = text.pop(305, "style-daemon"), text.pop(270, None)
    extratags = [(tag, "s", 0, value, True) for tag, value in text.items()]
    if profile:
        extratags.append((_ICC_TAG, "B", len(profile), profile, True))
    if xmp:
        extratags.append((_XMP_TAG, "B", len(xmp), xmp, True))
    buffer = io.BytesIO()
    # Horizontal differencing before deflate: photos compress about a third better, and every reader knows it.
    tifffile.imwrite(buffer, pixels, photometric="rgb", compression="zlib", predictor=True,
                     extrasamples=("unassalpha",) if alpha is not None else None, extratags=extratags,
                     software=software, description=description, metadata=None)
    return buffer.getvalue()


def encode_png16(rgb: np.ndarray, alpha: np.ndarray | None = None, profile: bytes | None = None,
                 exif: bytes | None = None, xmp: bytes | None = None) -> bytes:
    """A 16-bit RGB(A) PNG; the profile as iCCP, the EXIF as eXIf, the XMP as an iTXt chunk."""
    pixels = _with_alpha(rgb, alpha, 16)
    height, width, channels = pixels.shape
    buffer = io.BytesIO()
    writer = png.Writer(width, height, greyscale=False, alpha=channels == 4, bitdepth=16, compression=6)
    writer.write(buffer, pixels.reshape(height, width * channels))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    extra = _png_chunks(profile, exif, xmp)
    out = io.BytesIO()
    # Ancillary chunks go right after IHDR: iCCP must precede the image data (PNG spec 11.3.3.3).
    png.write_chunks(out, chunks[:1] + extra + chunks[1:])
    return out.getvalue()


def _with_alpha(rgb: np.ndarray, alpha: np.ndarray | None, depth: int) -> np.ndarray:
    pixels = to_depth(rgb, depth)
    if alpha is None:
        return pixels
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha is {alpha.shape}, the image {rgb.shape[:2]}: resize it first")
    return np.concatenate([pixels, to_depth(alpha, depth)[..., None]], axis=-1)


def _png_chunks(profile: bytes | None, exif: bytes | None, xmp: bytes | None) -> list[tuple[bytes, bytes]]:
    chunks = []
    if profile:
        chunks.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(profile)))
    if exif:
        chunks.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    if xmp:
        # iTXt: keyword, null, compression flag 0, method 0, empty language tag and translated keyword.
        chunks.append((b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp))
    return chunks


def _exif_text(exif: bytes | None) -> dict[int, str]:
    """The first IFD's text tags of an EXIF block that a TIFF carries as its own tags."""
    if not exif:
        return {}
    parsed = Image.Exif()
    try:
        parsed.load(exif)
    except (SyntaxError, ValueError, OSError):  # a damaged block: the result is still written, without it
        log.debug("EXIF block not readable; the TIFF is written without its text tags")
        return {}
    return {tag: str(parsed[tag]) for tag in _TIFF_TEXT_TAGS if isinstance(parsed.get(tag), str)}
