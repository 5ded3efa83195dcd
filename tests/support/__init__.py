"""What every test shares: where the project and the shared images are, and polling for a condition."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "images"
CONTENT = IMAGES / "content"
STYLE = IMAGES / "style"
VGG19_H5 = SHARED / "weights" / "vgg19_notop.weights.h5"


def wait_until(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = ""):
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
