"""Several daemons sharing one folder and one PostgreSQL job store: the fleet the multi-machine tests and
bench/store_throughput.py drive, and the photos they are given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support import CONTENT
from tests.support.daemon import Daemon, pg_rows, write_config

FAST = {"iterations": 1, "max_size": 32, "scales": 1, "backbone": "vgg16-hed"}


def slow(iterations: int) -> dict:
    """Engine settings whose jobs take `iterations` stand-in iterations (long enough to be caught mid-job)."""
    return {"iterations": iterations, "max_size": 32, "scales": 1, "backbone": "vgg16-hed"}


class Fleet:
    """N daemons, each with its own state and its own mount paths of one shared input and output folder."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.shared_in, self.shared_out = root / "shared" / "in", root / "shared" / "out"
        self.shared_in.mkdir(parents=True)
        self.shared_out.mkdir(parents=True)
        self.configs: list[Path] = []
        self.daemons: list[Daemon | None] = []
        self._mounts: list[Path] = []

    def add(self, workers: int, engine: dict = FAST, lease: float = 2.0, name: str | None = None) -> Path:
        """A machine: bind mounts of the shared folders at its own paths, its own state and name."""
        machine = self.root / f"m{len(self.configs)}"
        for folder, shared in (("in", self.shared_in), ("out", self.shared_out)):
            (machine / folder).mkdir(parents=True)
            subprocess.run(["mount", "--bind", str(shared), str(machine / folder)], check=True)
            self._mounts.append(machine / folder)
        config = write_config(machine, workers=workers, store=self.url, machine=name or machine.name, lease_seconds=lease,
                              engine=engine, logging={"progress_every": 1, "file": False})
        self.configs.append(config)
        self.daemons.append(None)
        return config

    def start(self, index: int, delay: float = 0.0) -> Daemon:
        self.daemons[index] = Daemon(self.configs[index], fake_delay=delay)
        return self.daemons[index]

    def start_all(self, delay: float = 0.0) -> list[Daemon]:
        started = [self.start(i, delay) for i in range(len(self.configs))]
        for daemon in started:
            daemon.wait_ready()
        return started

    def rows(self, query: str = "SELECT * FROM jobs ORDER BY id") -> list[dict]:
        return pg_rows(self.url, query)

    def done(self) -> int:
        return self.rows("SELECT count(*) AS n FROM jobs WHERE state='done'")[0]["n"]

    def outputs(self) -> list[str]:
        """Results in the shared output folder (not sidecars, sheets, the gallery page or logs)."""
        return sorted(p.name for p in self.shared_out.iterdir() if p.suffix == ".jpg" and ".sheet" not in p.name)

    def temp_files(self) -> list[Path]:
        return [p for p in self.shared_out.rglob(".*") if p.is_file()]

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon is not None and daemon.proc.poll() is None:
                daemon.kill()
        for mount in reversed(self._mounts):
            subprocess.run(["umount", "-l", str(mount)], check=False)


def distinct_photos(folder: Path, count: int) -> None:
    """`count` small photos that differ in content (so each is its own job), written into `folder`."""
    base = np.asarray(Image.open(CONTENT / "chelsea.png").convert("RGB").resize((48, 32)))
    for index in range(count):
        pixels = base.copy()
        pixels[0, 0] = (index % 256, index // 256, 9)
        Image.fromarray(pixels).save(folder / f"p{index:03d}.png")


def move_in(staging: Path, target: Path) -> None:
    """Every file of `staging` renamed into `target` at once (arrivals a watcher sees complete)."""
    for path in staging.iterdir():
        os.replace(path, target / path.name)
