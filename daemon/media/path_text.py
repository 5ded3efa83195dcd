"""File names as the filesystem gives them (any bytes but / and NUL) and as text for SQLite, JSON and people.

Python decodes undecodable name bytes to lone surrogates U+DC80..U+DCFF (surrogateescape), which
SQLite, JSON and UTF-8 files refuse. to_text() maps each such byte 0xNN to the private-use
character U+F700+0xNN (U+F780..U+F7FF); a name that really contains one of those private-use
characters has that character's own UTF-8 bytes mapped the same way, so from_text() inverts
to_text() exactly, byte for byte. display() makes any name one printable line for logs and pages.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

_SURROGATE_LO, _SURROGATE_HI = 0xDC80, 0xDCFF  # surrogateescape's bytes 0x80..0xFF
_PRIVATE_LO, _PRIVATE_HI = 0xF780, 0xF7FF  # our stand-ins for those bytes
_SHIFT = _PRIVATE_LO - _SURROGATE_LO
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}  # controls, format (bidi), surrogates, private, breaks


def to_text(value: str | os.PathLike) -> str:
    """A str with no lone surrogates (storable in SQLite/JSON/UTF-8) that from_text() turns back into the path."""
    raw = os.fsdecode(os.fspath(value))
    out = []
    for char in raw:
        code = ord(char)
        if _SURROGATE_LO <= code <= _SURROGATE_HI:
            out.append(chr(code + _SHIFT))
        elif _PRIVATE_LO <= code <= _PRIVATE_HI:
            # A literal stand-in character: keep it by its bytes, so the mapping stays one-to-one.
            out.extend(chr(byte - 0x80 + _PRIVATE_LO) for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def from_text(text: str) -> Path:
    """The path whose name bytes to_text() encoded as `text`."""
    escaped = "".join(chr(ord(c) - _SHIFT) if _PRIVATE_LO <= ord(c) <= _PRIVATE_HI else c for c in text)
    # Round-trip through bytes so that stand-ins of valid UTF-8 become ordinary characters again.
    return Path(os.fsdecode(os.fsencode(escaped)))


def display(value: str | bytes | os.PathLike) -> str:
    """One printable line: control, format and line-break characters escaped, undecodable bytes as \\xNN.

    Takes a path or str as the OS gives it or as to_text() stored it: U+F780..U+F7FF are read as
    to_text()'s stand-ins for bytes (a real name holding one is shown by its bytes once stored).
    """
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    text = os.fsdecode(text) if isinstance(text, bytes) else text
    if text.isprintable():
        return text  # the common case, quickly
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if _SURROGATE_LO <= code <= _SURROGATE_HI:
        return f"\\x{code - _SURROGATE_LO + 0x80:02x}"
    if _PRIVATE_LO <= code <= _PRIVATE_HI:
        return f"\\x{code - _PRIVATE_LO + 0x80:02x}"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if char == " " or unicodedata.category(char) not in _UNPRINTABLE:
        return char
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
