"""EXIF into a TIFF that tifffile wrote: the first directory's tags and the Exif and GPS sub-directories.

tifffile writes ASCII tags of 7-bit text only and no EXIF sub-directory, so the metadata is added after it
has written the image: the sub-directories and a new first directory (tifffile's entries plus the EXIF
block's, which win) are appended, and the header is pointed at the new directory. Nothing already in the
file moves, so the image data and every offset tifffile wrote stay valid; the old directory stays unused.
"""

from __future__ import annotations

import struct

from PIL import TiffTags
from PIL.ExifTags import IFD
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from daemon.media.exif_block import Entry, build_directory, in_byte_order, read_block

_ENTRY = 12  # bytes of one classic TIFF directory entry


def embed_exif(tiff: bytes, exif: bytes) -> bytes:
    """`tiff` with the tags of the EXIF block `exif` (with or without its 'Exif' prefix) added.

    A BigTIFF, or a block that does not parse, leaves the file as it is.
    """
    block = read_block(exif)
    if block is None or tiff[:4] not in (b"II\x2a\x00", b"MM\x00\x2a"):
        return tiff
    block = in_byte_order(block, tiff[:2])
    order = "<" if tiff[:2] == b"II" else ">"
    head = tiff[:8]
    out = bytearray(tiff)
    pointers: dict[int, int] = {}
    for pointer, entries in ((IFD.Exif, block.exif), (IFD.GPSInfo, block.gps)):
        if entries:
            pointers[pointer] = _append(out, _directory(head, pointer, entries, {}))
    ours_at = _pad(out)
    ours = _directory(head, None, block.ifd0, pointers).tobytes(ours_at)
    out += ours
    first = struct.unpack(order + "L", tiff[4:8])[0]
    merged, following = _merge(_entries(tiff, first, order), _entries(ours, 0, order)), _next(tiff, first, order)
    table_at = _pad(out)
    out += struct.pack(order + "H", len(merged)) + b"".join(merged.values()) + struct.pack(order + "L", following)
    out[4:8] = struct.pack(order + "L", table_at)
    return bytes(out)


def _directory(head: bytes, group: int | None, entries: dict[int, Entry],
               pointers: dict[int, int]) -> ImageFileDirectory_v2:
    directory = build_directory(head, group, entries)
    for tag, offset in pointers.items():
        directory.tagtype[tag] = TiffTags.LONG
        directory[tag] = offset
    return directory


def _append(out: bytearray, directory: ImageFileDirectory_v2) -> int:
    at = _pad(out)
    out += directory.tobytes(at)
    return at


def _pad(out: bytearray) -> int:
    """Word-align the end of `out` (TIFF directories start on an even offset); the new end."""
    if len(out) % 2:
        out += b"\0"
    return len(out)


def _entries(data: bytes, at: int, order: str) -> dict[int, bytes]:
    """The raw 12-byte entries of the directory at `at`, by tag."""
    (count,) = struct.unpack_from(order + "H", data, at)
    entries = {}
    for index in range(count):
        raw = data[at + 2 + index * _ENTRY: at + 2 + (index + 1) * _ENTRY]
        entries[struct.unpack_from(order + "H", raw)[0]] = bytes(raw)
    return entries


def _next(data: bytes, at: int, order: str) -> int:
    (count,) = struct.unpack_from(order + "H", data, at)
    return struct.unpack_from(order + "L", data, at + 2 + count * _ENTRY)[0]


def _merge(theirs: dict[int, bytes], ours: dict[int, bytes]) -> dict[int, bytes]:
    """Both directories' entries, ascending by tag as TIFF requires; ours replace theirs."""
    merged = {**theirs, **ours}
    return {tag: merged[tag] for tag in sorted(merged)}

