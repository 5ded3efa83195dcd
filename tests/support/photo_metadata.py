"""Photos with a story for the metadata tests: EXIF with date, camera, lens, exposure, description, orientation 6,
GPS, serial numbers and a maker note, and XMP with a place; and two independent readers of a result.

The photos are written with Pillow's own Exif writer (not the code under test); results are read back both
with Pillow (getexif/get_ifd) and with exifread, a separate pure-Python EXIF parser.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import exifread
import numpy as np
import pillow_heif
from PIL import Image
from PIL.ExifTags import IFD, Base
from PIL.TiffImagePlugin import IFDRational

from tests.support import CONTENT

pillow_heif.register_heif_opener()  # HEIC photos are written here too

DESCRIPTION = "Café at dusk"  # not ASCII: it must survive as UTF-8
TITLE = "Evening on the quay"
MAKE, MODEL = "FUJIFILM", "X-T4"
LENS_MAKE, LENS_MODEL = "FUJIFILM", "XF23mmF2 R WR"
TAKEN = "2024:06:01 21:14:07"
OFFSET = "+02:00"
SUBSEC = "123"
BODY_SERIAL, LENS_SERIAL, OWNER = "5AB12345", "19C00777", "Owner Of The Camera"
MAKER_NOTE = b"FUJIFILM\x0c\x00\x00\x00" + b"\x01\x02\x03\x04" * 8
CITY = "Lyon"

XMP = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    tiff:Orientation="6" tiff:ImageWidth="96" exif:GPSLatitude="45,45.6N" exif:GPSLongitude="4,50.4E"
    photoshop:City="{CITY}" photoshop:Country="France" aux:SerialNumber="{BODY_SERIAL}"
    xmp:CreateDate="2024-06-01T21:14:07+02:00" xmp:CreatorTool="Camera firmware 1.0">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{TITLE}</rdf:li></rdf:Alt></dc:title>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{DESCRIPTION}</rdf:li></rdf:Alt></dc:description>
   <Iptc4xmpCore:Location>Quai Saint-Antoine</Iptc4xmpCore:Location>
   <Iptc4xmpExt:LocationCreated><rdf:Bag><rdf:li rdf:parseType="Resource">
    <Iptc4xmpExt:City>{CITY}</Iptc4xmpExt:City></rdf:li></rdf:Bag></Iptc4xmpExt:LocationCreated>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode("utf-8")


def story_exif(byte_order: str = ">") -> Image.Exif:
    """The EXIF of a photo with every kind of field the policies tell apart, big- (">") or little-endian."""
    exif = Image.Exif()
    exif.endian = byte_order
    exif[Base.Make], exif[Base.Model] = MAKE, MODEL
    exif[Base.ImageDescription] = DESCRIPTION.encode("utf-8")
    exif[Base.XPTitle] = TITLE.encode("utf-16-le") + b"\0\0"
    exif[Base.Artist], exif[Base.Copyright] = "Jane Doe", "(c) 2024 Jane Doe"
    exif[Base.Orientation] = 6
    exif[Base.DateTime] = TAKEN
    exif[Base.Software] = "Camera firmware 1.0"
    sub = exif.get_ifd(IFD.Exif)
    sub.update({
        Base.DateTimeOriginal: TAKEN, Base.DateTimeDigitized: TAKEN, Base.OffsetTimeOriginal: OFFSET,
        Base.SubsecTimeOriginal: SUBSEC, Base.ExposureTime: IFDRational(1, 250), Base.FNumber: IFDRational(28, 10),
        Base.ISOSpeedRatings: 400, Base.FocalLength: IFDRational(23, 1), Base.LensMake: LENS_MAKE,
        Base.LensModel: LENS_MODEL, Base.LensSpecification: (IFDRational(23), IFDRational(23), IFDRational(2),
                                                             IFDRational(2)),
        Base.BodySerialNumber: BODY_SERIAL, Base.LensSerialNumber: LENS_SERIAL, Base.CameraOwnerName: OWNER,
        Base.MakerNote: MAKER_NOTE, 40962: 96, 40963: 64,
    })
    gps = exif.get_ifd(IFD.GPSInfo)
    gps.update({1: "N", 2: (IFDRational(45), IFDRational(45), IFDRational(36, 10)), 3: "E",
                4: (IFDRational(4), IFDRational(50), IFDRational(24, 10)), 6: IFDRational(170)})
    return exif


def write_story_photo(path: Path, size: tuple[int, int] = (96, 64), byte_order: str = ">") -> Path:
    """A photo (JPEG, PNG, WebP, HEIC or AVIF by `path`'s suffix) carrying story_exif() and XMP; stored sideways
    (orientation 6), so the upright picture is size[1] wide and size[0] high."""
    pixels = np.array(Image.open(CONTENT / "chelsea.png").convert("RGB").resize(size))
    pixels[:, : size[0] // 4] = (255, 0, 0)  # a red band on the left of the stored pixels: the top once upright
    image = Image.fromarray(pixels, "RGB")
    fmt = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".heic": "HEIF", ".avif": "AVIF"}[path.suffix]
    options: dict = {"exif": story_exif(byte_order).tobytes()}
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"))
        options["pnginfo"] = info
    else:
        options["xmp"] = XMP
    image.save(path, format=fmt, **options)
    return path


@dataclass(frozen=True)
class ReadBack:
    """A result's metadata as two independent readers see it."""

    pillow: dict[str, object]  # "ifd0", "exif", "gps" -> {tag: value}
    exifread: dict[str, str]  # exifread's "Image Make" -> printable value
    xmp: bytes | None


def read_back(path: Path) -> ReadBack:
    """The result's EXIF through Pillow and through exifread, and its XMP as Pillow finds it."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        exif = image.getexif()
        pillow = {"ifd0": dict(exif), "exif": dict(exif.get_ifd(IFD.Exif)), "gps": dict(exif.get_ifd(IFD.GPSInfo))}
        xmp = image.info.get("xmp")
    tags = exifread.process_file(io.BytesIO(_webp_exif(data) if data[8:12] == b"WEBP" else data), details=True)
    return ReadBack(pillow, {k: str(v.printable if hasattr(v, "printable") else v) for k, v in tags.items()},
                    xmp.encode("utf-8") if isinstance(xmp, str) else xmp)


def _webp_exif(data: bytes) -> bytes:
    """The EXIF chunk of a WebP file (the bare TIFF-structured block the spec puts there, which exifread reads
    on its own but not inside a WebP file: it expects an 'Exif' prefix Pillow does not write)."""
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack("<L", data[at + 4:at + 8])[0]
        if kind == b"EXIF":
            return data[at + 8:at + 8 + size]
        at += 8 + size + (size & 1)
    return b""
