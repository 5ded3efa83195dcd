"""EXIF blocks as typed directories: read from a photo's TIFF-structured EXIF, written back as a new block.

Pillow's own Exif object forgets each tag's TIFF type and guesses it again when it writes (a maker note or
a UserComment comes out as BYTE, a UTF-8 description as '?'), so the directories are read and written here
with its ImageFileDirectory_v2, the type of every tag kept from the photo.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from PIL import TiffTags
from PIL.ExifTags import IFD, Base
from PIL.TiffImagePlugin import ImageFileDirectory_v2

EXIF_PREFIX = b"Exif\x00\x00"  # what a JPEG's APP1 segment holds before the TIFF header
_HEADERS = {b"II": b"II\x2a\x00\x08\x00\x00\x00", b"MM": b"MM\x00\x2a\x00\x00\x00\x08"}
# The sub-directories carried: the Exif IFD (date taken, exposure, lens) and the GPS IFD. The Interop IFD
# only says which colour space a DCF file was in, which a result's own profile states instead.
SUB_DIRECTORIES = (IFD.Exif, IFD.GPSInfo)
# Offsets into the photo's block, never copied as numbers (330: SubIFDs); Exif and GPS are pointed to anew.
_POINTERS = frozenset({IFD.Exif, IFD.GPSInfo, IFD.Interop, 330})
_MAX_BLOCK = 1 << 20  # a larger EXIF block is a damaged or hostile one


@dataclass(frozen=True)
class Entry:
    """One tag's TIFF type (TiffTags.ASCII, RATIONAL, ...) and its value as Pillow reads it."""

    type: int
    value: Any


@dataclass(frozen=True)
class ExifBlock:
    """The first image directory and its Exif and GPS sub-directories, each tag with its type."""

    byte_order: bytes = b"II"  # kept: a UNICODE UserComment and a maker note are in the photo's byte order
    ifd0: Mapping[int, Entry] = field(default_factory=dict)
    exif: Mapping[int, Entry] = field(default_factory=dict)
    gps: Mapping[int, Entry] = field(default_factory=dict)
    has_thumbnail: bool = False  # a second directory (IFD1: the camera's thumbnail) followed the first


def tiff_start(data: bytes) -> int | None:
    """Where the TIFF header of an EXIF block starts (after an 'Exif' prefix, if any), or None."""
    for start in (0, len(EXIF_PREFIX)):
        if data[start:start + 4] in (b"II\x2a\x00", b"MM\x00\x2a"):
            return start
    return None


def read_block(data: bytes) -> ExifBlock | None:
    """The directories of a TIFF-structured EXIF block (or a whole TIFF file), or None when it is not one."""
    start = tiff_start(data)
    if start is None:
        return None
    fp = io.BytesIO(data[start:start + _MAX_BLOCK] if start else data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about damaged tags; they are skipped either way
        head = fp.read(8)
        first = ImageFileDirectory_v2(head)
        fp.seek(first.next)
        first.load(fp)
        subs = {pointer: _read_sub(fp, head, first.get(pointer), pointer) for pointer in SUB_DIRECTORIES}
        ifd0 = _entries(first, skip=_POINTERS)
    return ExifBlock(head[:2], ifd0, subs[IFD.Exif], subs[IFD.GPSInfo], first.next != 0)


def _read_sub(fp: io.BytesIO, head: bytes, offset: Any, group: int) -> dict[int, Entry]:
    if not isinstance(offset, int) or offset <= 0:
        return {}
    directory = ImageFileDirectory_v2(head, group=group)
    try:
        fp.seek(offset)
        directory.load(fp)
    except (OSError, struct.error, ValueError):  # a pointer past the end: no such directory
        return {}
    return _entries(directory, skip=_POINTERS)  # a pointer inside a sub-directory is stale or a loop


def _entries(directory: ImageFileDirectory_v2, skip: set[int]) -> dict[int, Entry]:
    entries = {}
    for tag in list(directory.keys()):
        if tag in skip:
            continue
        try:
            entries[tag] = Entry(directory.tagtype[tag], directory[tag])
        except (ValueError, TypeError, KeyError, struct.error, ZeroDivisionError):
            continue  # one undecodable tag does not cost the others
    return entries


def write_block(block: ExifBlock) -> bytes:
    """The EXIF block of `block` (TIFF header, IFD0 and its sub-directories), without the 'Exif' prefix."""
    head = _HEADERS[block.byte_order]
    first = build_directory(head, None, block.ifd0)
    subs = [(pointer, entries) for pointer, entries in ((IFD.Exif, block.exif), (IFD.GPSInfo, block.gps)) if entries]
    for pointer, _ in subs:
        first.tagtype[pointer] = TiffTags.LONG
        first[pointer] = 0  # placeholder of the same size: IFD0's length does not depend on it
    offset = 8 + len(first.tobytes(8))
    tails = []
    for pointer, entries in subs:
        first[pointer] = offset
        tail = build_directory(head, pointer, entries).tobytes(offset)
        tails.append(tail)
        offset += len(tail)
    return head + first.tobytes(8) + b"".join(tails)


def build_directory(head: bytes, group: int | None, entries: Mapping[int, Entry]) -> ImageFileDirectory_v2:
    """A Pillow directory of `entries` (IFD0 with group None, else the sub-directory's pointer tag); a tag
    that cannot be written as read (a value out of its type's range) is left out, not the whole block."""
    directory = ImageFileDirectory_v2(head, group=group)
    for tag, entry in sorted(entries.items()):
        if _set(ImageFileDirectory_v2(head, group=group), tag, entry, check=True):
            _set(directory, tag, entry)
    return directory


def _set(directory: ImageFileDirectory_v2, tag: int, entry: Entry, check: bool = False) -> bool:
    try:
        directory.tagtype[tag] = entry.type  # the photo's type, not Pillow's guess
        directory[tag] = _writable(entry)
        if check:
            directory.tobytes(8)
    except (struct.error, ValueError, TypeError, KeyError, OverflowError, ZeroDivisionError):
        return False
    return True


def _writable(entry: Entry) -> Any:
    """Text as the photo's own bytes: Pillow reads ASCII as Latin-1 and would write non-ASCII back as '?'."""
    if entry.type == TiffTags.ASCII and isinstance(entry.value, str):
        return entry.value.encode("latin-1", "replace")
    return entry.value


def ascii_entry(text: str) -> Entry:
    """An ASCII tag holding `text` (UTF-8 bytes: what photo tools write and read in practice)."""
    return Entry(TiffTags.ASCII, text.encode("utf-8"))


def user_comment(text: str, byte_order: bytes) -> Entry:
    """A UserComment: the EXIF character-code prefix, then the text (UTF-16 in the block's byte order)."""
    if text.isascii():
        return Entry(TiffTags.UNDEFINED, b"ASCII\x00\x00\x00" + text.encode("ascii"))
    codec = "utf-16-le" if byte_order == b"II" else "utf-16-be"
    return Entry(TiffTags.UNDEFINED, b"UNICODE\x00" + text.encode(codec))


def comment_text(entry: Entry | None, byte_order: bytes) -> str:
    """The text of a UserComment entry ('' for none, a blank one or one in an unknown code)."""
    if entry is None or not isinstance(entry.value, bytes):
        return ""
    code, body = entry.value[:8], entry.value[8:]
    if code.startswith(b"ASCII") or code == b"\x00" * 8:
        text = body.decode("utf-8", "replace")
    elif code.startswith(b"UNICODE"):
        text = body.decode("utf-16-le" if byte_order == b"II" else "utf-16-be", "replace")
    else:
        return ""
    return text.replace("\x00", "").strip()


def in_byte_order(block: ExifBlock, byte_order: bytes) -> ExifBlock:
    """`block` to be written in `byte_order`: a UNICODE UserComment is re-encoded (Pillow re-packs the rest)."""
    if block.byte_order == byte_order or Base.UserComment not in block.exif:
        return block
    exif = dict(block.exif)
    exif[Base.UserComment] = user_comment(comment_text(exif[Base.UserComment], block.byte_order), byte_order)
    return ExifBlock(byte_order, block.ifd0, exif, block.gps, block.has_thumbnail)
