"""Colour references for the tests, independent of the code under test: real ICC profiles from Debian's
colord-data and icc-profiles-free, and the published conversion matrices (CSS Color 4, D65)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

ICC_DIR = Path("/usr/share/color/icc")
PACKAGES = "colord-data icc-profiles-free"

# CSS Color Module Level 4, section 18 (sample code): linear RGB -> XYZ (D65) and XYZ -> linear sRGB.
P3_TO_XYZ = np.array([[0.4865709486482162, 0.26566769316909306, 0.1982172852343625],
                      [0.2289745640697488, 0.6917385218365064, 0.079286914093745],
                      [0.0, 0.04511338185890264, 1.043944368900976]])
ADOBE_TO_XYZ = np.array([[0.5766690429101305, 0.1855582379065463, 0.1882286462349947],
                         [0.29734497525053605, 0.6273635662554661, 0.0752914584939978],
                         [0.02703136138641234, 0.07068885253582723, 0.9913375368376388]])
XYZ_TO_SRGB = np.array([[3.2409699419045226, -1.537383177570094, -0.4986107602930034],
                        [-0.9692436362808796, 1.8759675015077202, 0.04155505740717559],
                        [0.05563007969699366, -0.20397695888897652, 1.0569715142428786]])


def real_profile(name: str) -> bytes:
    """The bytes of a profile the Debian packages ship (relative to /usr/share/color/icc)."""
    path = ICC_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the Debian packages {PACKAGES} (the README's set-up command)")
    return path.read_bytes()


def description(profile: bytes) -> str:
    """A profile's description as LittleCMS reads it."""
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()


def srgb_decode(values: np.ndarray) -> np.ndarray:
    """sRGB (and Display P3) encoded 0..255 -> linear 0..1 (IEC 61966-2-1)."""
    v = np.asarray(values, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear -> sRGB encoded 0..255, out-of-gamut values clipped first (as relative colorimetric does)."""
    v = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def p3_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """Display P3 0..255 -> sRGB 0..255 by the published matrices."""
    return srgb_encode(srgb_decode(rgb) @ (XYZ_TO_SRGB @ P3_TO_XYZ).T)


def srgb_to_p3(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 -> Display P3 0..255 by the published matrices (every sRGB colour is inside P3)."""
    return srgb_encode(srgb_decode(rgb) @ np.linalg.inv(XYZ_TO_SRGB @ P3_TO_XYZ).T)


def adobe_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """Adobe RGB (1998) 0..255 (gamma 563/256) -> sRGB 0..255 by the published matrices."""
    linear = (np.asarray(rgb, np.float64) / 255.0) ** (563 / 256)
    return srgb_encode(linear @ (XYZ_TO_SRGB @ ADOBE_TO_XYZ).T)


def patches(colours: list[tuple[int, int, int]], side: int = 16) -> Image.Image:
    """One flat square per colour, side by side (flat, so lossy formats keep their centres)."""
    row = np.concatenate([np.full((side, side, 3), c, np.uint8) for c in colours], axis=1)
    return Image.fromarray(row, mode="RGB")


def patch_centres(rgb: np.ndarray, count: int, side: int = 16) -> np.ndarray:
    """The centre pixel of each patch of a decoded `patches` image: count x 3."""
    return np.array([rgb[side // 2, i * side + side // 2, :3] for i in range(count)], np.float64)


def exif_uncalibrated_r03() -> bytes:
    """An EXIF block as cameras in Adobe RGB mode write it: ColorSpace 'uncalibrated' (0xFFFF) and the DCF
    interoperability index "R03", in its own IFD (written by hand: Pillow does not write that IFD)."""
    import struct

    def ifd(entries: list[tuple[int, int, int, bytes]], next_at: int = 0) -> bytes:
        body = struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        return body + struct.pack("<I", next_at)

    header = b"II*\0" + struct.pack("<I", 8)
    ifd0_at = 8
    exif_at = ifd0_at + 2 + 12 + 4
    interop_at = exif_at + 2 + 2 * 12 + 4
    ifd0 = ifd([(0x8769, 4, 1, struct.pack("<I", exif_at))])
    exif = ifd([(0xA001, 3, 1, struct.pack("<H", 0xFFFF)), (0xA005, 4, 1, struct.pack("<I", interop_at))])
    interop = ifd([(0x0001, 2, 4, b"R03\0")])
    return b"Exif\0\0" + header + ifd0 + exif + interop


def srgb_to_adobe(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 -> Adobe RGB (1998) 0..255 by the published matrices."""
    linear = srgb_decode(rgb) @ np.linalg.inv(XYZ_TO_SRGB @ ADOBE_TO_XYZ).T
    return 255.0 * np.clip(linear, 0.0, 1.0) ** (256 / 563)
