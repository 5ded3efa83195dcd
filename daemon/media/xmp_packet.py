"""A photo's XMP packet made fit for its result: location and serial numbers out (when private), what the
result changed (orientation, pixel size, the creating tool) put right.

Properties are found both as attributes of rdf:Description (the short form) and as its child elements.
"""

from __future__ import annotations

import io
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

log = logging.getLogger(__name__)

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP = "http://ns.adobe.com/xap/1.0/"
TIFF = "http://ns.adobe.com/tiff/1.0/"
EXIF = "http://ns.adobe.com/exif/1.0/"
EXIF_EX = "http://cipa.jp/exif/1.0/"
AUX = "http://ns.adobe.com/exif/1.0/aux/"
PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_XPACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"  # the id every XMP packet carries (XMP spec part 1, 7.3.2)
_MAX_PACKET = 4 << 20

# Where the photo was: GPS in the exif namespace, the place names of Photoshop and IPTC.
_LOCATION = {
    EXIF: re.compile(r"GPS"),
    EXIF_EX: re.compile(r"GPS"),
    PHOTOSHOP: re.compile(r"(City|State|Country)$"),
    IPTC_CORE: re.compile(r"(Location|CountryCode)$"),
    IPTC_EXT: re.compile(r"(LocationCreated|LocationShown)$"),
}
# Which camera or lens it was, or whose: serial numbers and owner names.
_SERIALS = {
    AUX: re.compile(r"(SerialNumber|LensSerialNumber|OwnerName)$"),
    EXIF_EX: re.compile(r"(BodySerialNumber|LensSerialNumber|CameraOwnerName)$"),
}
# What cannot be right in the result: the photo's pixel size (its orientation is set to 1 instead).
_STALE = {
    TIFF: re.compile(r"(ImageWidth|ImageLength)$"),
    EXIF: re.compile(r"(PixelXDimension|PixelYDimension)$"),
}


@dataclass(frozen=True)
class XmpEdit:
    """The packet for the result, and what was taken out of it (for the sidecar)."""

    packet: bytes | None
    removed_location: bool = False
    removed_serials: bool = False


def edit_packet(packet: bytes, *, private: bool, creator_tool: str) -> XmpEdit:
    """The photo's XMP fit for the result; `private` also removes location fields and serial numbers.

    A packet that does not parse (or declares a DTD or entities, which XMP never needs) is dropped, not copied.
    """
    root = _parse(packet)
    if root is None:
        return XmpEdit(None)
    removed_location = private and _remove(root, _LOCATION)
    removed_serials = private and _remove(root, _SERIALS)
    _remove(root, _STALE)
    _set_property(root, TIFF, "Orientation", "1")
    _set_property(root, XMP, "CreatorTool", creator_tool)
    return XmpEdit(_serialise(root), removed_location, removed_serials)


def _parse(packet: bytes) -> ET.Element | None:
    if len(packet) > _MAX_PACKET or b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        log.warning("the photo's XMP is too large or declares entities; it is not copied")
        return None
    try:
        for prefix, uri in (("x", "adobe:ns:meta/"), ("rdf", RDF), ("xmp", XMP), ("tiff", TIFF)):
            ET.register_namespace(prefix, uri)  # for the properties set here, should the packet lack them
        _register_prefixes(packet)
        return ET.fromstring(packet)
    except ET.ParseError as exc:
        log.warning("the photo's XMP does not parse (%s); it is not copied", exc)
        return None


def _register_prefixes(packet: bytes) -> None:
    """Keep the packet's own prefixes (exif:, dc:, ...) when it is written again, not ns0:, ns1:."""
    for _, (prefix, uri) in ET.iterparse(io.BytesIO(packet), events=("start-ns",)):
        if prefix and not re.match(r"ns\d+$", prefix):
            ET.register_namespace(prefix, uri)


def _split(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        uri, _, local = name[1:].partition("}")
        return uri, local
    return "", name


def _matches(name: str, patterns: dict[str, re.Pattern[str]]) -> bool:
    uri, local = _split(name)
    pattern = patterns.get(uri)
    return bool(pattern and pattern.match(local))


def _descriptions(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{{{RDF}}}Description")]


def _remove(root: ET.Element, patterns: dict[str, re.Pattern[str]]) -> bool:
    """Remove the matching properties (attributes and elements) of every rdf:Description; True if any."""
    removed = False
    for description in _descriptions(root):
        for name in [n for n in description.attrib if _matches(n, patterns)]:
            del description.attrib[name]
            removed = True
        for child in [c for c in description if _matches(c.tag, patterns)]:
            description.remove(child)
            removed = True
    return removed


def _set_property(root: ET.Element, uri: str, local: str, value: str) -> None:
    """Set a simple property where it is, or add it to the first rdf:Description."""
    name = f"{{{uri}}}{local}"
    descriptions = _descriptions(root)
    for description in descriptions:
        if name in description.attrib:
            description.set(name, value)
            return
        element = description.find(name)
        if element is not None:
            element.text, element[:] = value, []
            return
    if descriptions:
        descriptions[0].set(name, value)


def _serialise(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode")
    return (f'<?xpacket begin="\ufeff" id="{_XPACKET_ID}"?>\n{body}\n<?xpacket end="w"?>').encode("utf-8")
