"""Logging set-up: plain lines on stderr (no timestamps under journald, which adds its own)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str = "INFO", plain: bool = False) -> None:
    """Configure the root logger once; plain (no timestamp) for workers, whose lines the service relays."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald or plain else (
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
