"""A photo whose job is done, in a real config and a real SQLite job store, ready for its release or failure
(tests of daemon/service/release.py and aftercare.py call those steps directly); and a small tmpfs."""

from __future__ import annotations

import hashlib
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from daemon.config import Config, load_config
from daemon.store import JobSpec, SqliteStore
from tests.support import CONTENT
from tests.support.daemon import write_config


@dataclass
class Bench:
    """One done job for in/<name>: the config, the store, the photo's path, bytes and sha256, the job id."""

    config: Config
    store: SqliteStore
    source: Path
    data: bytes
    sha: str
    job_id: int

    def other_photo(self) -> bytes:
        """Bytes of a different photo (another content)."""
        return (CONTENT / "tubingen.jpg").read_bytes()

    def files(self, folder: Path) -> dict[str, bytes]:
        """Every file under `folder` (relative name -> bytes); links and hidden temp files included."""
        if not folder.exists():
            return {}
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def photo_bytes() -> bytes:
    """A real photo's bytes."""
    return (CONTENT / "chelsea.png").read_bytes()


def bench(tmp_path: Path, name: str = "a.png", **overrides) -> Bench:
    """A config in tmp_path (overrides: top-level keys), the photo in in/<name> and its job done."""
    config_path = write_config(tmp_path, **overrides)
    config = load_config(config_path, create_folders=True)
    store = SqliteStore(config.store_path)
    source = config.input / name
    source.parent.mkdir(parents=True, exist_ok=True)
    data = photo_bytes()
    source.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    output = config.output / f"{Path(name).stem}.starry.jpg"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"result")
    output.with_name(output.name + ".json").write_text("{}")  # the sidecar: a result is image + sidecar
    job = store.enqueue(JobSpec(sha, "starry", "p", str(source), name, str(output)))
    assert job is not None
    claimed = store.claim("w0:1")
    assert claimed is not None and claimed.id == job.id
    store.finish(job.id, 0.1, str(output))
    return Bench(config, store, source, data, sha, job.id)


@contextmanager
def tmpfs(folder: Path, size: str = "2m") -> Iterator[Path]:
    """`folder` as a real tmpfs of `size` (tests run as root; skipped where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler
