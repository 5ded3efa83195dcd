"""The hash of a style set's effective parameters: change anything that shapes the result, get new jobs."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from daemon.config import Config
from daemon.job.engines import dry_run_seconds
from daemon.media.hashing import sha256_file
from daemon.media.style_images import style_problem

# How the result is computed within memory, not what it is: tiling is exact, so changing these
# must not turn queued jobs into a new generation.
_NOT_SHAPING = ("memory_budget", "tiling", "tile_size")


# The fingerprint of a style set that cannot be used now: it matches no real result, and it is not kept.
UNAVAILABLE = "unavailable"


class StyleFingerprints(dict):
    """{style set: fingerprint}, computed once; a set unavailable then (a style image missing, empty or not an
    image) is computed again at each look-up until it reads, so that a worker started or reloaded while a
    painting was broken records the restored painting's fingerprint, not a stale one, in its results."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config
        for name in config.styles:
            fingerprint = _fingerprint(config, name)
            if fingerprint is not None:
                self[name] = fingerprint

    def __missing__(self, name: str) -> str:
        if name not in self._config.styles:
            raise KeyError(name)
        fingerprint = _fingerprint(self._config, name)
        if fingerprint is None:
            return UNAVAILABLE  # its jobs wait (StyleUnavailable when they load it): nothing is published
        self[name] = fingerprint
        return fingerprint


def style_fingerprints(config: Config) -> StyleFingerprints:
    """{style set: short hash of its images' content, blend weights, engine parameters and encoding}."""
    return StyleFingerprints(config)


def _fingerprint(config: Config, name: str) -> str | None:
    """The style set's fingerprint, or None while one of its images cannot be used (see StyleFingerprints)."""
    style = config.styles[name]
    if any(style_problem(i.path, name, config.max_input_pixels) is not None for i in style.images):
        return None  # never hashed as it is now: a broken file must not stop the intake or a worker either
    params = config.engine.transfer_params(style.params)
    document = {
        "images": [(sha256_file(i.path), i.weight) for i in style.images],
        "params": {k: v for k, v in dataclasses.asdict(params).items() if k not in _NOT_SHAPING},
        "backbone": config.engine.backbone,
        "weights": str(config.engine.weights) if config.engine.weights else None,
        "format": config.naming.format,
        "quality": config.naming.quality,
    }
    if config.naming.depth is not None or config.naming.color_space != "srgb":
        # Only when set: a config without them keeps its fingerprints (no new generation on upgrading).
        document.update(depth=config.naming.depth, color_space=config.naming.color_space)
    if dry_run_seconds() is not None:
        # A dry run's tinted results must not count as done for the real engine that runs later.
        document["engine"] = "dry-run"
    blob = json.dumps(document, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
