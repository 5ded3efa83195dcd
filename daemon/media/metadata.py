"""The photo's story carried into its result, privately: EXIF and XMP read from the photo, filtered by the
`metadata` policy (keep | private | none), with the software and a note of the style added.

- private (the default): date and time, camera, lens, exposure, title, description, artist and copyright;
  no GPS, no place names, no serial numbers or owner, no maker note, no thumbnail.
- keep: everything but what cannot be right any more (orientation, thumbnail, pixel size, colour space).
- none: only the software tag and the style note.
Every policy sets Orientation to 1: the result's pixels are already upright (load_image applies it).
Reading never fails a job: a photo whose metadata cannot be read gives a result without it, and a warning.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Mapping, Sequence

import numpy as np
from PIL import Image, TiffTags
from PIL.ExifTags import Base

from daemon.media.exif_block import (EXIF_PREFIX, Entry, ExifBlock, ascii_entry, comment_text, read_block,
                                     user_comment, write_block)
from daemon.media.images import encode_image, output_key
from daemon.media.tiff_exif import embed_exif
from daemon.media.xmp_packet import edit_packet

log = logging.getLogger(__name__)

Policy = Literal["keep", "private", "none"]
POLICIES: tuple[str, ...] = ("keep", "private", "none")
DEFAULT_POLICY: Policy = "private"

# What `private` copies: the photo's story (when, with what, how exposed, what it is, whose work it is).
PRIVATE_IFD0 = frozenset({
    Base.ImageDescription, Base.Make, Base.Model, Base.DateTime, Base.Artist, Base.Copyright,
    Base.XPTitle, Base.XPComment, Base.XPAuthor, Base.XPKeywords, Base.XPSubject, Base.Rating, Base.RatingPercent,
})
PRIVATE_EXIF = frozenset({
    Base.ExifVersion, Base.DateTimeOriginal, Base.DateTimeDigitized, Base.OffsetTime, Base.OffsetTimeOriginal,
    Base.OffsetTimeDigitized, Base.SubsecTime, Base.SubsecTimeOriginal, Base.SubsecTimeDigitized,
    Base.ExposureTime, Base.FNumber, Base.ExposureProgram, Base.ISOSpeedRatings, Base.SensitivityType,
    Base.StandardOutputSensitivity, Base.RecommendedExposureIndex, Base.ShutterSpeedValue, Base.ApertureValue,
    Base.BrightnessValue, Base.ExposureBiasValue, Base.MaxApertureValue, Base.SubjectDistance, Base.MeteringMode,
    Base.LightSource, Base.Flash, Base.FocalLength, Base.ExposureMode, Base.WhiteBalance, Base.DigitalZoomRatio,
    Base.FocalLengthIn35mmFilm, Base.SceneCaptureType, Base.Contrast, Base.Saturation, Base.Sharpness,
    Base.SubjectDistanceRange, Base.LensSpecification, Base.LensMake, Base.LensModel,
})
# Which camera or lens it was, or whose (removed by private, listed in the sidecar).
SERIAL_TAGS = frozenset({Base.BodySerialNumber, Base.LensSerialNumber, Base.CameraSerialNumber,
                         Base.CameraOwnerName, Base.ImageUniqueID})
# What cannot be right in a result, whatever the policy: how the photo's pixels were stored (a TIFF photo's
# first directory is its image's), their size, orientation and colour space, and blocks that hold a preview.
_STALE_IFD0 = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 301, 317, 318, 319, 320, 322, 323, 324, 325,
    330, 338, 339, 347, 513, 514, 529, 530, 531, 532,  # image structure (TIFF 6.0) and the JPEG thumbnail
    Base.Orientation, Base.XMLPacket, Base.InterColorProfile, Base.ImageResources, Base.Software,
})
_STALE_EXIF = frozenset({
    40962, 40963, 37396, Base.SubjectLocation,  # pixel size and subject position in the photo's pixels
    Base.ColorSpace, Base.Gamma, Base.ComponentsConfiguration, Base.CompressedBitsPerPixel, Base.UserComment,
})
_ORIENTATION_UP = Entry(TiffTags.SHORT, 1)
_EXIF_VERSION = Entry(TiffTags.UNDEFINED, b"0232")  # EXIF 2.32: the version whose OffsetTime tags are used


@dataclass(frozen=True)
class PhotoMetadata:
    """What a photo carries: its EXIF directories and its XMP packet, each None when it has none."""

    exif: ExifBlock | None = None
    xmp: bytes | None = None


@dataclass(frozen=True)
class MetadataRecord:
    """The sidecar's account: the policy applied, what of the photo's metadata it removed, and if XMP went in."""

    policy: str
    removed: list[str] = field(default_factory=list)
    xmp: bool = False


@dataclass(frozen=True)
class ResultMetadata:
    """What a result carries: the EXIF block (TIFF-structured, no 'Exif' prefix), the XMP packet, the record."""

    exif: bytes
    xmp: bytes | None
    record: MetadataRecord

    def exif_for(self, fmt: str) -> bytes:
        """The EXIF block as format `fmt` embeds it: a JPEG's APP1 segment begins with 'Exif\\0\\0'; PNG's eXIf,
        WebP's EXIF chunk and a TIFF take the bare block."""
        return EXIF_PREFIX + self.exif if fmt.lower().lstrip(".") in ("jpg", "jpeg") else self.exif


def software_name() -> str:
    """The Software tag of every result: 'style-daemon <version>'."""
    try:
        return f"style-daemon {importlib.metadata.version('style-daemon')}"
    except importlib.metadata.PackageNotFoundError:
        return "style-daemon"


def style_note(style_set: str | None, paintings: Sequence[str]) -> str:
    """The note of the style: 'stylised with <style set> (<paintings>)', or with the paintings alone."""
    names = ", ".join(paintings)
    return f"stylised with {style_set} ({names})" if style_set else f"stylised with {names}"


def read_metadata(source: Path | BinaryIO | bytes) -> PhotoMetadata:
    """The EXIF and XMP of a photo (a path, an open binary file or its bytes); empty when unreadable."""
    try:
        data = _read_all(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged metadata is Pillow's warning; here it is only left out
            with Image.open(io.BytesIO(data)) as image:
                return _from_image(image, data)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, Image.DecompressionBombError) as exc:
        log.warning("the photo's metadata cannot be read (%s); the result is written without it", exc)
        return PhotoMetadata()


def _read_all(source: Path | BinaryIO | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    if hasattr(source, "read"):
        source.seek(0)  # the daemon's input: read through its descriptor, never re-opened by name
        return source.read()
    return Path(source).read_bytes()


def _from_image(image: Image.Image, data: bytes) -> PhotoMetadata:
    # A TIFF photo's first directory holds its EXIF tags itself; other formats carry an EXIF block.
    raw = data if image.format == "TIFF" else image.info.get("exif")
    block = read_block(raw) if isinstance(raw, bytes) and raw else None
    xmp = image.info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return PhotoMetadata(block, xmp if isinstance(xmp, bytes) and xmp.strip() else None)


def result_metadata(photo: PhotoMetadata, policy: str, note: str, software: str | None = None) -> ResultMetadata:
    """What the result of `photo` carries under `policy`, with the software tag and `note` (the style) added."""
    if policy not in POLICIES:
        raise ValueError(f"metadata policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    software = software or software_name()
    source = photo.exif or ExifBlock()
    block, removed = _filter_exif(source, policy)
    block = _with_additions(block, source, policy, note, software)
    xmp, xmp_removed = _filter_xmp(photo.xmp, policy, software)
    return ResultMetadata(write_block(block), xmp, MetadataRecord(policy, removed + xmp_removed, xmp is not None))


def _filter_exif(source: ExifBlock, policy: str) -> tuple[ExifBlock, list[str]]:
    """The photo's directories as `policy` allows, and the names of what it removed."""
    removed = ["thumbnail"] if source.has_thumbnail else []
    if policy == "none":
        if source.ifd0 or source.exif or source.gps:
            removed.append("exif")
        return ExifBlock(source.byte_order), removed
    ifd0 = _without(source.ifd0, _STALE_IFD0)
    exif = _without(source.exif, _STALE_EXIF)
    if policy == "keep":
        return ExifBlock(source.byte_order, ifd0, exif, dict(source.gps)), removed
    tags = set(source.ifd0) | set(source.exif)
    removed += [name for name, present in (("gps", bool(source.gps)), ("serial_numbers", bool(tags & SERIAL_TAGS)),
                                          ("maker_note", Base.MakerNote in tags)) if present]
    return ExifBlock(source.byte_order, _only(ifd0, PRIVATE_IFD0), _only(exif, PRIVATE_EXIF)), removed


def _without(entries: Mapping[int, Entry], tags: frozenset[int]) -> dict[int, Entry]:
    return {tag: entry for tag, entry in entries.items() if tag not in tags}


def _only(entries: Mapping[int, Entry], tags: frozenset[int]) -> dict[int, Entry]:
    return {tag: entry for tag, entry in entries.items() if tag in tags}


def _with_additions(block: ExifBlock, source: ExifBlock, policy: str, note: str, software: str) -> ExifBlock:
    """Orientation 1, the software tag and the style note (after the photo's own comment, when kept)."""
    ifd0, exif = dict(block.ifd0), dict(block.exif)
    if policy != "none":
        ifd0[Base.Orientation] = _ORIENTATION_UP
    ifd0[Base.Software] = ascii_entry(software)
    own = "" if policy == "none" else comment_text(source.exif.get(Base.UserComment), source.byte_order)
    exif[Base.UserComment] = user_comment(f"{own}; {note}" if own else note, block.byte_order)
    exif.setdefault(Base.ExifVersion, _EXIF_VERSION)  # an Exif directory must say its version
    return ExifBlock(block.byte_order, ifd0, exif, block.gps)


def _filter_xmp(packet: bytes | None, policy: str, software: str) -> tuple[bytes | None, list[str]]:
    if packet is None:
        return None, []
    if policy == "none":
        return None, ["xmp"]
    edit = edit_packet(packet, private=policy == "private", creator_tool=software)
    removed = [name for name, done in (("xmp_location", edit.removed_location),
                                       ("xmp_serial_numbers", edit.removed_serials),
                                       ("xmp", edit.packet is None)) if done]
    return edit.packet, removed


def encode_result(rgb: np.ndarray, fmt: str, metadata: ResultMetadata, quality: int = 92,
                  alpha: np.ndarray | None = None, **options: Any) -> bytes:
    """encode_image with the result's EXIF and XMP embedded; `options` are encode_image's (profile, depth).

    A TIFF gets its EXIF after tifffile has written it (media/tiff_exif.py): tifffile takes 7-bit text only.
    """
    if output_key(fmt) == "tif":
        data = encode_image(rgb, fmt, quality, alpha, xmp=metadata.xmp, **options)
        return embed_exif(data, metadata.exif)
    return encode_image(rgb, fmt, quality, alpha, exif=metadata.exif_for(fmt), xmp=metadata.xmp, **options)
