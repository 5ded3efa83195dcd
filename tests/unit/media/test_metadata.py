"""The photo's metadata in its result: every policy, every output format, read back by two independent readers
(Pillow and exifread); private leaves no location, serial number or maker note anywhere in the file."""

from __future__ import annotations

import io

import pytest
from PIL import Image, TiffTags
from PIL.ExifTags import IFD, Base

from daemon.media.exif_block import Entry, ExifBlock
from daemon.media.images import load_image
from daemon.media.metadata import (PhotoMetadata, encode_result, read_metadata, result_metadata, software_name,
                                   style_note)
from daemon.media.xmp_packet import edit_packet
from tests.support.photo_metadata import (BODY_SERIAL, CITY, DESCRIPTION, LENS_MODEL, LENS_SERIAL, MAKE, MAKER_NOTE,
                                          MODEL, OFFSET, OWNER, TAKEN, TITLE, XMP, read_back, write_story_photo)

FORMATS = ("jpg", "png", "webp", "tif")
NOTE = style_note("starry", ["The_Starry_Night.jpg"])
# Bytes that must not be anywhere in a private result, whatever reader looks.
PRIVATE_BYTES = (BODY_SERIAL.encode(), LENS_SERIAL.encode(), OWNER.encode(), MAKER_NOTE, CITY.encode(),
                 b"Quai Saint-Antoine", b"GPSLatitude")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return write_story_photo(tmp_path_factory.mktemp("photo") / "photo.jpg")


def _result(tmp_path, photo, fmt, policy, depth=None):
    loaded = load_image(photo)
    metadata = result_metadata(read_metadata(photo), policy, NOTE)
    options = {"depth": depth} if depth else {}
    path = tmp_path / f"result.{fmt}"
    path.write_bytes(encode_result(loaded.rgb, fmt, metadata, **options))
    return path, metadata


@pytest.mark.parametrize("fmt", FORMATS)
def test_private_keeps_the_story_and_drops_what_says_where_and_whose(tmp_path, photo, fmt):
    path, metadata = _result(tmp_path, photo, fmt, "private")
    back = read_back(path)
    ifd0, exif, gps = back.pillow["ifd0"], back.pillow["exif"], back.pillow["gps"]
    # Pillow: date, camera, lens, exposure, description kept; orientation 1; software and the style note set.
    assert (ifd0[Base.Make], ifd0[Base.Model], exif[Base.LensModel]) == (MAKE, MODEL, LENS_MODEL)
    assert (exif[Base.DateTimeOriginal], exif[Base.OffsetTimeOriginal]) == (TAKEN, OFFSET)
    assert ifd0[Base.ImageDescription].encode("latin-1").decode("utf-8") == DESCRIPTION
    assert ifd0[Base.XPTitle].decode("utf-16-le").rstrip("\0") == TITLE
    assert float(exif[Base.FNumber]) == 2.8 and exif[Base.ISOSpeedRatings] == 400
    assert len(exif[Base.LensSpecification]) == 4
    assert ifd0[Base.Orientation] == 1 and ifd0[Base.Software] == software_name()
    assert not gps and IFD.GPSInfo not in ifd0
    for tag in (Base.BodySerialNumber, Base.LensSerialNumber, Base.CameraOwnerName, Base.MakerNote):
        assert tag not in exif
    # exifread, the second reader, sees the same.
    tags = back.exifread
    assert tags["Image Make"] == MAKE and tags["EXIF LensModel"] == LENS_MODEL
    assert tags["EXIF DateTimeOriginal"] == TAKEN and tags["EXIF SubSecTimeOriginal"] == "123"
    assert tags["Image ImageDescription"] == DESCRIPTION
    assert tags["Image Orientation"] == "Horizontal (normal)" and tags["Image Software"] == software_name()
    assert tags["EXIF UserComment"] == NOTE
    assert not [key for key in tags if key.startswith(("GPS", "MakerNote")) or "Serial" in key or "Owner" in key]
    # No reader at all: none of it is anywhere in the file.
    data = path.read_bytes()
    assert not [secret for secret in PRIVATE_BYTES if secret in data]
    assert metadata.record.policy == "private"
    assert {"gps", "serial_numbers", "maker_note", "xmp_location", "xmp_serial_numbers"} <= set(metadata.record.removed)


@pytest.mark.parametrize("fmt", FORMATS)
def test_private_xmp_keeps_title_and_description_without_the_place(tmp_path, photo, fmt):
    back = read_back(_result(tmp_path, photo, fmt, "private")[0])
    assert back.xmp is not None
    text = back.xmp.decode("utf-8")
    assert TITLE in text and DESCRIPTION in text and "2024-06-01T21:14:07" in text
    assert CITY not in text and "GPS" not in text and "Location" not in text and BODY_SERIAL not in text
    root = _xmp_description(back.xmp)
    assert root.get("{http://ns.adobe.com/tiff/1.0/}Orientation") == "1"
    assert root.get("{http://ns.adobe.com/xap/1.0/}CreatorTool") == software_name()
    assert "{http://ns.adobe.com/tiff/1.0/}ImageWidth" not in root.attrib  # the photo's size, not the result's


@pytest.mark.parametrize("fmt", FORMATS)
def test_keep_keeps_gps_serials_and_place(tmp_path, photo, fmt):
    path, metadata = _result(tmp_path, photo, fmt, "keep")
    back = read_back(path)
    assert back.pillow["gps"][1] == "N" and len(back.pillow["gps"][2]) == 3
    assert back.pillow["exif"][Base.BodySerialNumber] == BODY_SERIAL
    assert back.pillow["exif"][Base.MakerNote] == MAKER_NOTE
    assert back.exifread["GPS GPSLatitudeRef"] == "N" and back.exifread["EXIF LensSerialNumber"] == LENS_SERIAL
    # What cannot be right any more is not kept: orientation (1), the photo's pixel size.
    assert back.pillow["ifd0"][Base.Orientation] == 1 and 40962 not in back.pillow["exif"]
    assert back.exifread["Image Orientation"] == "Horizontal (normal)"
    assert CITY in back.xmp.decode("utf-8")
    assert metadata.record.removed == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_none_writes_only_the_software_and_the_style_note(tmp_path, photo, fmt):
    path, metadata = _result(tmp_path, photo, fmt, "none")
    back = read_back(path)
    exif_tags = {k: v for k, v in back.exifread.items() if k.startswith(("EXIF", "GPS", "MakerNote"))
                 or k in ("Image Make", "Image Model", "Image ImageDescription", "Image Artist", "Image DateTime")}
    assert exif_tags == {"EXIF ExifVersion": "0232", "EXIF UserComment": NOTE}
    assert back.pillow["ifd0"][Base.Software] == software_name() and not back.pillow["gps"]
    assert set(back.pillow["exif"]) == {Base.ExifVersion, Base.UserComment}
    assert back.xmp is None
    data = path.read_bytes()
    assert MAKE.encode() not in data and TITLE.encode() not in data and TAKEN.encode() not in data
    assert set(metadata.record.removed) == {"exif", "xmp"}


def test_a_sixteen_bit_png_carries_it_too(tmp_path, photo):
    back = read_back(_result(tmp_path, photo, "png", "private", depth=16)[0])
    assert back.exifread["EXIF DateTimeOriginal"] == TAKEN and back.pillow["ifd0"][Base.Model] == MODEL
    assert "GPS GPSLatitude" not in back.exifread and CITY not in back.xmp.decode()


@pytest.mark.parametrize("source", ["png", "webp", "heic", "avif"])
@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_every_photo_format_and_byte_order_is_read(tmp_path, source, byte_order):
    photo = write_story_photo(tmp_path / f"photo.{source}", byte_order=byte_order)
    metadata = read_metadata(photo)
    assert metadata.exif is not None and metadata.xmp is not None
    assert metadata.exif.ifd0[Base.Model].value == MODEL
    assert metadata.exif.exif[Base.DateTimeOriginal].value == TAKEN
    assert metadata.exif.gps, "GPS is read (and then left out by the policy)"
    path = tmp_path / "result.jpg"
    path.write_bytes(encode_result(load_image(photo).rgb, "jpg", result_metadata(metadata, "private", NOTE)))
    back = read_back(path)
    assert back.exifread["EXIF LensModel"] == LENS_MODEL and "GPS GPSLatitude" not in back.exifread


@pytest.mark.parametrize("policy", ["keep", "private"])
def test_a_tiff_photos_own_image_tags_are_not_taken_for_metadata(tmp_path, policy):
    exif = Image.Exif()
    exif[Base.Make], exif[Base.Artist], exif[Base.Orientation] = MAKE, "Jane Doe", 6
    photo = tmp_path / "photo.tif"
    Image.new("RGB", (80, 60), "grey").save(photo, exif=exif)
    metadata = result_metadata(read_metadata(photo), policy, NOTE)
    tags = read_back(_write(tmp_path, photo, metadata)).exifread
    assert tags["Image Make"] == MAKE and tags["Image Artist"] == "Jane Doe"
    assert tags["Image Orientation"] == "Horizontal (normal)"
    assert not {"Image ImageWidth", "Image StripOffsets", "Image BitsPerSample", "Image Compression"} & set(tags)


def test_the_result_is_upright_and_says_so(tmp_path, photo):
    path, _ = _result(tmp_path, photo, "jpg", "keep")
    with Image.open(path) as result:
        # Stored sideways (orientation 6) with a red band on the left: upright, the band is at the top.
        assert result.size == (64, 96)
        top, bottom = result.getpixel((32, 2)), result.getpixel((32, 93))
    assert top[0] > 200 and top[1] < 60 and not (bottom[0] > 200 and bottom[1] < 60)
    assert read_back(path).pillow["ifd0"][Base.Orientation] == 1


def test_the_photos_own_comment_is_kept_before_the_style_note(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(IFD.Exif)[Base.UserComment] = b"ASCII\0\0\0Birthday, first candle"
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (80, 60), "grey").save(photo, exif=exif.tobytes())
    metadata = result_metadata(read_metadata(photo), "private", NOTE)
    path = tmp_path / "result.jpg"
    path.write_bytes(encode_result(load_image(photo).rgb, "jpg", metadata))
    assert read_back(path).exifread["EXIF UserComment"] == f"Birthday, first candle; {NOTE}"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "loop"])
def test_damaged_exif_never_fails_the_result(tmp_path, damage, caplog):
    good = Image.Exif()
    good[Base.Make] = MAKE
    block = good.tobytes()
    bad = {"garbage": b"Exif\0\0" + b"\xff" * 40, "truncated": block[:14],
           "loop": b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x87\x69\0\x04\0\0\0\x01\0\0\0\x08\0\0\0\0"}[damage]
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (80, 60), "grey").save(photo, exif=bad)
    metadata = result_metadata(read_metadata(photo), "keep", NOTE)
    path = tmp_path / "result.jpg"
    path.write_bytes(encode_result(load_image(photo).rgb, "jpg", metadata))
    back = read_back(path)
    assert back.pillow["ifd0"][Base.Software] == software_name() and back.exifread["EXIF UserComment"] == NOTE


def test_a_tag_that_cannot_be_written_as_read_is_left_out_alone():
    ifd0 = {Base.Make: Entry(TiffTags.ASCII, MAKE), Base.Rating: Entry(TiffTags.SHORT, 70000)}
    metadata = result_metadata(PhotoMetadata(ExifBlock(b"II", ifd0)), "keep", NOTE)
    written = Image.Exif()
    written.load(metadata.exif)
    assert written[Base.Make] == MAKE and Base.Rating not in written and written[Base.Software] == software_name()


def test_a_photo_without_metadata_gets_the_software_and_note_only(tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), "grey").save(photo)
    assert read_metadata(photo) == PhotoMetadata()
    for policy in ("keep", "private", "none"):
        metadata = result_metadata(read_metadata(photo), policy, NOTE)
        assert metadata.xmp is None and metadata.record.removed == []
        back = read_back(_write(tmp_path, photo, metadata))
        assert back.exifread["EXIF UserComment"] == NOTE and not back.pillow["gps"]


def test_an_unreadable_photo_gives_no_metadata_and_a_warning(tmp_path, caplog):
    assert read_metadata(b"not an image") == PhotoMetadata()
    assert "metadata cannot be read" in caplog.text


@pytest.mark.parametrize("packet", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>',
    b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>",
])
def test_an_xmp_packet_with_entities_or_broken_is_not_copied(packet):
    assert edit_packet(packet, private=False, creator_tool="t").packet is None
    metadata = result_metadata(PhotoMetadata(None, packet), "keep", NOTE)
    assert metadata.xmp is None and "xmp" in metadata.record.removed


def test_xmp_properties_written_as_elements_are_filtered_too():
    packet = XMP.replace(b'photoshop:City="Lyon"', b"").replace(
        b"<dc:title>", b"<photoshop:City>Lyon</photoshop:City><exif:GPSAltitude>170/1</exif:GPSAltitude><dc:title>")
    edited = edit_packet(packet, private=True, creator_tool="t").packet.decode()
    assert "Lyon" not in edited and "GPSAltitude" not in edited and TITLE in edited


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="keep, private, none"):
        result_metadata(PhotoMetadata(), "public", NOTE)


def test_the_style_note_names_the_set_and_the_paintings():
    assert style_note("starry", ["a.jpg", "b.png"]) == "stylised with starry (a.jpg, b.png)"
    assert style_note(None, ["a.jpg"]) == "stylised with a.jpg"


def _write(tmp_path, photo, metadata):
    path = tmp_path / "result.jpg"
    path.write_bytes(encode_result(load_image(photo).rgb, "jpg", metadata))
    return path


def _xmp_description(packet: bytes):
    import xml.etree.ElementTree as ET

    root = ET.fromstring(packet[packet.index(b"<x:xmpmeta"):packet.index(b"</x:xmpmeta>") + 12])
    return root.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
