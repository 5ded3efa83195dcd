"""Helpers for tests that run the real daemon as a subprocess on real folders."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


import yaml

from tests.support import ROOT, STYLE, wait_until


def write_config(folder: Path, **overrides) -> Path:
    """A small, fast config in `folder` (input/output/state inside it); overrides replace top-level keys."""
    config = {
        "input": "in",
        "output": "out",
        "state": "state",
        "styles": {
            "starry": {"images": [str(STYLE / "starry_night.jpg")]},
            "scream": {"images": [str(STYLE / "the_scream.jpg")]},
        },
        "routing": {"default": ["starry"]},
        "watch": {"settle_seconds": 0.5, "rescan_seconds": 300},
        "engine": {"iterations": 5, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"},
        "retries": {"max_attempts": 3, "backoff_seconds": 0.5},
        "logging": {"progress_every": 1},
    }
    config.update(overrides)
    (folder / "in").mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """`style-daemon run` (or once) as a real subprocess, its stderr in a file."""

    def __init__(self, config: Path, command: str = "run", fake_delay: float | None = 0.01,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = config.parent / f"daemon-{time.monotonic_ns()}.log"
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        if fake_delay is not None:
            full_env["STYLE_DAEMON_FAKE_ENGINE"] = str(fake_delay)
        self._log_handle = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon", command, "-c", str(config)], cwd=ROOT,
                                     env=full_env, stdout=self._log_handle, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """Everything the daemon printed so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the service said it is ready."""
        wait_until(lambda: "ready:" in self.output() or self.proc.poll() is not None, timeout, what="ready")
        assert self.proc.poll() is None, self.output()

    def signal(self, signum: int) -> None:
        """Send a signal to the supervisor."""
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._log_handle.close()
        return code

    def kill(self) -> None:
        """kill -9 the supervisor."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._log_handle.close()


def store_url(folder: Path) -> str | None:
    """The PostgreSQL job store named in folder/config.yaml, or None for the SQLite default."""
    config = folder / "config.yaml"
    if not config.exists():
        return None
    settings = yaml.safe_load(config.read_text()) or {}
    value = settings.get("store", settings.get("journal"))  # `journal:` is the deprecated name of the key
    return value if isinstance(value, str) and value.startswith("postgresql://") else None


def pg_rows(url: str, query: str) -> list[dict]:
    """Rows of a query on a PostgreSQL job store ([] while its tables do not exist yet)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        try:
            return conn.execute(query).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def store_rows(folder: Path, query: str = "SELECT * FROM jobs ORDER BY id") -> list[dict]:
    """Rows of the daemon's job store (read-only): its SQLite file, or the PostgreSQL database its config names."""
    url = store_url(folder)
    if url is not None:
        return pg_rows(url, query)
    path = folder / "state" / "journal.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(query).fetchall()]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def done_jobs(folder: Path) -> list[dict]:
    """Jobs in state done."""
    return [r for r in store_rows(folder) if r["state"] == "done"]


def drop(source: Path, target: Path) -> Path:
    """Copy a file into the input folder the way a careful client does: write aside, then rename in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".part")
    tmp.write_bytes(source.read_bytes())
    os.replace(tmp, target)
    return target
