"""Reading and writing images with Pillow: every common mode and format in, RGB arrays out."""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from daemon.media.atomic import write_atomic
from daemon.errors import BadInputError, ConfigError
from daemon.media.colour import UNTAGGED, SourceSpace, source_space, to_working_space
from daemon.media.deep_formats import encode_png16, encode_tiff, to_depth
from daemon.media.path_text import display

log = logging.getLogger(__name__)

# HEIC/HEIF (iPhones, many cameras) through pillow-heif; AVIF is read by Pillow itself (its own libavif).
pillow_heif.register_heif_opener()

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".hif", ".avif"}
)
# The formats in words, for messages: what a user may drop into the input folder.
READABLE_FORMATS = "JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF, AVIF"
OUTPUT_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF"}
# Bits a channel each output format can have: 16 only where the format and its writer hold them.
DEPTHS = {"jpg": (8,), "png": (8, 16), "webp": (8,), "tif": (8, 16)}
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class LoadedImage:
    """An image decoded to float32 sRGB in 0..255 (converted from its own colour space), with its alpha if it
    had one and the space it came in (its profile, for writing the result back in it)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    mode: str
    space: SourceSpace = UNTAGGED

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(source: Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS,
               name: str | Path | None = None) -> LoadedImage:
    """Decode a path or an open binary file (EXIF orientation applied), or raise BadInputError with one clear line.

    `name` labels the messages (default: the path); it is shown escaped, whatever bytes it holds.
    """
    label = display(name if name is not None else ("input" if hasattr(source, "read") else source))
    try:
        data = _read_all(source)
    except FileNotFoundError:
        raise BadInputError(f"{label}: file not found; check the path") from None
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read ({exc.strerror}); check its permissions") from None
    if not data:
        raise BadInputError(f"{label}: file is empty (0 bytes); copy the photo again")
    try:
        return _decode(data, max_pixels)
    except BadInputError as exc:
        raise BadInputError(f"{label}: {exc}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{label}: {_describe(exc)}") from None


def _read_all(source: Path | BinaryIO) -> bytes:
    if hasattr(source, "read"):
        source.seek(0)  # an input opened by safe_open: decoded from that descriptor, never re-opened by name
        return source.read()
    return Path(source).read_bytes()


def _decode(data: bytes, max_pixels: int) -> LoadedImage:
    with warnings.catch_warnings():
        # Pillow only warns between the limit and twice the limit; refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombWarning as exc:
            raise Image.DecompressionBombError(str(exc)) from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadInputError(
            f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels), above the "
            f"{max_pixels / 1e6:g} MP limit; downscale it or raise max_input_pixels"
        )
    fmt = image.format or "unknown"
    image.seek(0)  # first frame of animations
    image.load()  # raises on truncated data
    space = source_space(image)  # before exif_transpose, which need not keep the profile in info
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    # Into sRGB before anything else reads the pixels: the network and every later step work in sRGB.
    rgb, alpha = _to_rgb_alpha(to_working_space(_widened(image), space))
    return LoadedImage(rgb=rgb, alpha=alpha, format=fmt, mode=mode, space=space)


def _widened(image: Image.Image) -> Image.Image:
    """Palette images with transparency as RGBA, high-depth grey as 8-bit L: modes LittleCMS converts."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _high_depth_to_l(image)
    return image


def _to_rgb_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    alpha = None
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32)
        if alpha.min() >= 255:
            alpha = None  # fully opaque: nothing to keep
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return rgb, alpha


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    peak = float(values.max()) if values.size else 0.0
    if image.mode == "F":
        # Float images are either 0..1 or 0..255 by convention; anything else is stretched.
        factor = 255.0 if peak <= 1.0 else (1.0 if peak <= 255.0 else 255.0 / peak)
    else:
        factor = 255.0 / 65535.0 if peak > 255 else 1.0  # 16-bit data, or 8-bit data stored wide
    scaled = np.clip(np.rint(values * factor), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        return "image has too many pixels (possible decompression bomb); refusing to decode it"
    if isinstance(exc, UnidentifiedImageError) or "cannot identify image" in text:
        return f"not an image Pillow can read ({READABLE_FORMATS}); check the file"
    if "truncated" in text or "broken data stream" in text or "image file is truncated" in text:
        return "image data is truncated (incomplete copy?); copy the photo again"
    return f"cannot decode image ({text}); re-export it as JPEG or PNG"


def resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Resize an HxWx3 float array so that its longer side is `long_side` (aspect kept)."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return resize_to(rgb, size)


def resize_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float HxW or HxWxC array in 0..255 to (width, height) with Lanczos."""
    if (array.shape[1], array.shape[0]) == size:
        return array.astype(np.float32)
    channels = [array] if array.ndim == 2 else [array[..., c] for c in range(array.shape[2])]
    out = [
        np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize(size, Image.LANCZOS))
        for c in channels
    ]
    result = out[0] if array.ndim == 2 else np.stack(out, axis=-1)
    return np.clip(result, 0, 255).astype(np.float32)


def output_key(fmt: str) -> str | None:
    """A format name or suffix ('.JPEG', 'tiff', 'png') as its OUTPUT_FORMATS key ('jpg', 'tif'), or None."""
    key = fmt.lower().lstrip(".")
    key = {"jpeg": "jpg", "tiff": "tif"}.get(key, key)
    return key if key in OUTPUT_FORMATS else None


def default_depth(fmt: str) -> int:
    """Bits a channel a format gets unless told: 16 for TIFF (the print format), 8 for the others."""
    return 16 if output_key(fmt) == "tif" else 8


def encode_image(rgb: np.ndarray, fmt: str, quality: int = 92, alpha: np.ndarray | None = None, *,
                 profile: bytes | None = None, exif: bytes | None = None, xmp: bytes | None = None,
                 depth: int | None = None) -> bytes:
    """Encode a float RGB array (0..255) as jpg, png, webp or tif; alpha is kept where the format allows.

    `profile` (ICC bytes: the space the pixels are in), `exif` and `xmp` are embedded as each format allows.
    `depth` is bits a channel: 8, or 16 for png and tif (None: default_depth); 16 bits are scaled from the
    float values, never through an 8-bit step.
    """
    key = output_key(fmt)
    if key is None:
        raise BadInputError(f"output format {fmt!r} is not supported; use jpg, png, webp or tif")
    depth = depth or default_depth(key)
    if depth not in DEPTHS[key]:
        raise ConfigError(f"{key} results cannot have {depth} bits a channel; use png or tif for 16 bits")
    if alpha is not None:
        alpha = resize_to(alpha, (rgb.shape[1], rgb.shape[0]))
    if key == "tif":
        return encode_tiff(rgb, depth, alpha, profile, exif, xmp)
    if depth == 16:
        return encode_png16(rgb, alpha, profile, exif, xmp)
    return _encode_8bit(rgb, OUTPUT_FORMATS[key], quality, alpha, profile, exif, xmp)


def _encode_8bit(rgb: np.ndarray, pil_format: str, quality: int, alpha: np.ndarray | None,
                 profile: bytes | None, exif: bytes | None, xmp: bytes | None) -> bytes:
    image = Image.fromarray(to_depth(rgb, 8), mode="RGB")
    if alpha is not None and pil_format in ("PNG", "WEBP"):
        image.putalpha(Image.fromarray(to_depth(alpha, 8), mode="L"))
    buffer = io.BytesIO()
    options: dict = {"quality": quality} if pil_format in ("JPEG", "WEBP") else {"optimize": True}
    if profile:
        options["icc_profile"] = profile
    if exif:
        options["exif"] = exif
    if xmp and pil_format == "PNG":  # Pillow's PNG writer takes XMP as the iTXt chunk Adobe defined
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        options["pnginfo"] = info
    elif xmp:
        options["xmp"] = xmp
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def save_image(
    rgb: np.ndarray, path: Path, quality: int = 92, alpha: np.ndarray | None = None, *,
    profile: bytes | None = None, depth: int | None = None,
) -> None:
    """Write an RGB array to `path` atomically, the format taken from its extension."""
    path = Path(path)
    write_atomic(path, encode_image(rgb, path.suffix, quality, alpha, profile=profile, depth=depth))
