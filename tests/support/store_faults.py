"""Real faults for the disk under a job store: a small tmpfs to fill, an ext4 image the kernel turns read-only."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def fill(folder: Path) -> Path:
    """Write zeros into folder/filler.bin until its file system is full; the file (unlink it to free the space)."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0" * 512)  # the last partial block too
        except OSError:
            pass
    return filler


@dataclass
class FaultyDisk:
    """A file system mounted on `path` for one test; skips the test where mounting is not allowed."""

    path: Path
    image: Path | None = None

    @classmethod
    def tmpfs(cls, path: Path, size: str) -> "FaultyDisk":
        """A tmpfs of `size` (e.g. 4m) on `path`."""
        path.mkdir(parents=True, exist_ok=True)
        _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
        return cls(path)

    @classmethod
    def ext4(cls, path: Path, image: Path, size_mb: int = 16) -> "FaultyDisk":
        """An ext4 image (loop device) on `path`, mounted errors=remount-ro so that fail() makes it read-only."""
        path.mkdir(parents=True, exist_ok=True)
        with open(image, "wb") as handle:
            handle.truncate(size_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        _mount(["mount", "-o", "loop,errors=remount-ro", str(image), str(path)])
        return cls(path, image)

    def fail(self) -> None:
        """A file system error as the kernel reports one: ext4 goes read-only, every write fails from now on."""
        device = os.path.basename(_source(self.path))
        Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("style-daemon test\n")

    def remove(self) -> None:
        """Unmount (lazily: a killed daemon may still hold a file open)."""
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def _mount(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); run the suite as root on a machine that allows it")


def _source(path: Path) -> str:
    result = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "--target", str(path)], capture_output=True, text=True,
                            check=True)
    return result.stdout.strip()
