"""Colour management: every photo and style image into sRGB before the network sees it, and the result out
with the profile of the space it is in (LittleCMS through Pillow's ImageCms).

Where a photo's colours come from, in order: its embedded ICC profile; else EXIF's ColorSpace (Adobe RGB
as cameras mark it); else a HEIF's NCLX colour box (primaries and curve); else nothing, and it is taken as
sRGB, as every browser and viewer takes an untagged photo.

Intent: relative colorimetric (with black point compensation). The profiles photos carry (sRGB, Display P3,
Adobe RGB, ProPhoto) are matrix/TRC profiles without perceptual tables, for which LittleCMS computes the
colorimetric conversion whatever the intent asked; relative colorimetric says so, keeps every colour inside
sRGB exactly as the photographer saw it, and clips the few outside (a P3 red) to the gamut's edge - what a
colour-managed viewer does when it shows a P3 photo on an sRGB screen. Black point compensation only
matters for the rare LUT profile (a scanner's), whose shadows it keeps open.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageCms

from daemon.media import icc

log = logging.getLogger(__name__)

INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
_FLAGS = ImageCms.Flags.BLACKPOINTCOMPENSATION
SRGB_PROFILE = icc.build_profile(icc.SRGB)  # the working space's profile, embedded in every sRGB result
SRGB_NAME = icc.SRGB.name
ColourChoice = Literal["srgb", "original"]
_SRGB_MATRIX = icc.read_matrix_profile(SRGB_PROFILE)  # made here: always a matrix profile
# The mode a profile's colour space decodes from (ICC header bytes 16..20).
_MODES = {b"RGB ": "RGB", b"GRAY": "L", b"CMYK": "CMYK"}
# NCLX colour primaries (ITU-T H.273 table 2) whose space is made here; 1 (BT.709) is sRGB's.
_NCLX_SPACES = {9: icc.REC2020, 12: icc.DISPLAY_P3}
_EXIF_IFD, _INTEROP_IFD, _COLOR_SPACE, _INTEROP_INDEX = 0x8769, 0xA005, 0xA001, 0x0001


@dataclass(frozen=True)
class SourceSpace:
    """The colour space a photo came in: its profile (as embedded or made from EXIF/NCLX) and its name."""

    profile: bytes | None  # None: no colour information; the photo is taken as sRGB
    name: str  # the profile's description, e.g. "Display P3"
    origin: Literal["icc", "exif", "nclx", "none"] = "none"


UNTAGGED = SourceSpace(None, "sRGB (no profile: taken as sRGB)")


def source_space(image: Image.Image) -> SourceSpace:
    """Where `image`'s colours come from: its ICC profile, EXIF ColorSpace, NCLX box, or none (sRGB)."""
    data = image.info.get("icc_profile")
    if data:
        name = describe(data)
        if name is not None:
            return SourceSpace(bytes(data), name, "icc")
        log.warning("the photo's embedded colour profile cannot be read; its colours are taken as sRGB")
        return UNTAGGED
    return _nclx_space(image.info.get("nclx_profile")) or _exif_space(image) or UNTAGGED


def describe(profile: bytes) -> str | None:
    """A profile's description (e.g. "Display P3"), or None when LittleCMS cannot read it."""
    try:
        return ImageCms.getProfileDescription(_open(bytes(profile))).strip() or "unnamed profile"
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return None


def _nclx_space(nclx: object) -> SourceSpace | None:
    if not isinstance(nclx, dict):
        return None
    space = _NCLX_SPACES.get(nclx.get("color_primaries"))
    if space is None:
        return None  # BT.709 (sRGB's primaries), unspecified or a space not made here: taken as sRGB
    if nclx.get("transfer_characteristics") in (16, 18):
        log.warning("HDR photo (%s curve): converted by its %s primaries only, its curve taken as sRGB's; "
                    "export an SDR version for true colours",
                    "PQ" if nclx["transfer_characteristics"] == 16 else "HLG", space.name)
    return SourceSpace(icc.build_profile(space), space.name, "nclx")


def _exif_space(image: Image.Image) -> SourceSpace | None:
    """Adobe RGB as cameras mark it: ColorSpace 2, or 'uncalibrated' with the DCF interoperability R03."""
    try:
        exif = image.getexif()
        color_space = exif.get_ifd(_EXIF_IFD).get(_COLOR_SPACE)
        interop = exif.get_ifd(_INTEROP_IFD).get(_INTEROP_INDEX) if color_space == 0xFFFF else None
    except (SyntaxError, ValueError, OSError, KeyError, TypeError):  # damaged EXIF: no colour information
        return None
    if color_space == 2 or (isinstance(interop, str) and interop.strip("\0") == "R03"):
        return SourceSpace(icc.build_profile(icc.ADOBE_RGB), icc.ADOBE_RGB.name, "exif")
    return None


def to_working_space(image: Image.Image, space: SourceSpace) -> Image.Image:
    """`image` converted from `space` into sRGB (RGB, or RGBA with its alpha kept); untouched when untagged.

    A profile that does not fit the pixels (an RGB profile on a grey image) is ignored with a log line.
    """
    if space.profile is None:
        return image
    mode = _MODES.get(space.profile[16:20])
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    if mode is None or not _fits(image.mode, mode):
        log.warning("the photo's colour profile (%s) does not fit its %s pixels; its colours are taken as sRGB",
                    space.name, image.mode)
        return image
    converted = ImageCms.applyTransform(image.convert(mode), _transform(space.profile, mode))
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _fits(image_mode: str, profile_mode: str) -> bool:
    families = {"RGB": ("RGB", "RGBA", "RGBX", "RGBa", "YCbCr"), "L": ("L", "LA", "La", "1"), "CMYK": ("CMYK",)}
    return image_mode in families[profile_mode]


@functools.lru_cache(maxsize=16)
def _transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """The LittleCMS transform from `profile` (decoding `mode`) to sRGB, kept for the next photo alike."""
    return ImageCms.buildTransform(_open(profile), _open(SRGB_PROFILE), mode, "RGB", INTENT, _FLAGS)


@functools.lru_cache(maxsize=16)
def _open(profile: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(profile))


@dataclass(frozen=True)
class OutputColour:
    """A result's pixels in the space it is written in, and that space's profile and name."""

    rgb: np.ndarray  # float32 0..255
    profile: bytes
    name: str


def for_output(rgb: np.ndarray, space: SourceSpace, choice: ColourChoice = "srgb") -> OutputColour:
    """The result (float sRGB 0..255) as written: sRGB with its profile, or with `choice` original back in
    the photo's own RGB space (e.g. Display P3), in float, so a 16-bit file keeps every step.

    The way back is the profile's own matrix and curves (the arithmetic LittleCMS does for a matrix/TRC
    profile, relative colorimetric), because Pillow's LittleCMS transforms take 8-bit RGB only. A photo that
    was sRGB or untagged, grey, CMYK, or tagged with a LUT profile stays sRGB.
    """
    if choice == "original" and space.profile is not None and not _is_srgb(space):
        target = icc.read_matrix_profile(space.profile)
        if target is not None:
            return OutputColour(_convert(rgb, _SRGB_MATRIX, target), space.profile, space.name)
        log.info("the result stays in sRGB: the photo's %s profile (%s) cannot be written back to",
                 _kind(space.profile), space.name)
    return OutputColour(rgb, SRGB_PROFILE, SRGB_NAME)


def _is_srgb(space: SourceSpace) -> bool:
    return "srgb" in space.name.lower().replace(" ", "")


def _kind(profile: bytes) -> str:
    return {"L": "grey", "CMYK": "CMYK"}.get(_MODES.get(profile[16:20], ""), "table-based")


def _convert(rgb: np.ndarray, source: icc.MatrixProfile, target: icc.MatrixProfile) -> np.ndarray:
    """Float RGB 0..255 from one matrix/TRC profile to another: linearise, through XYZ (D50), re-encode.

    Done a band of rows at a time in float32: a 24 MP print would need gigabytes in float64 at once.
    """
    matrix = (np.linalg.inv(target.matrix) @ source.matrix).T.astype(np.float32)
    out = np.empty(rgb.shape, np.float32)
    for top in range(0, rgb.shape[0], _BAND_ROWS):
        band = rgb[top:top + _BAND_ROWS].astype(np.float32) / np.float32(255.0)
        out[top:top + _BAND_ROWS] = target.encode(source.decode(band) @ matrix) * np.float32(255.0)
    return out


_BAND_ROWS = 256
