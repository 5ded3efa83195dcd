"""Content hashes of files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (for trusted paths: style images, weights)."""
    with open(path, "rb") as handle:
        return sha256_handle(handle)


def sha256_handle(handle: BinaryIO) -> str:
    """Hex sha256 of an open binary file from its start (inputs: a descriptor from safe_open)."""
    handle.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()
