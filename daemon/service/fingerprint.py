"""The hash of a style set's effective parameters: change anything that shapes the result, get new jobs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from daemon.config import Config
from daemon.job.engines import dry_run_seconds
from daemon.media.hashing import sha256_file

# How the result is computed within memory, not what it is: tiling is exact, so changing these
# must not turn queued jobs into a new generation.
_NOT_SHAPING = ("memory_budget", "tiling", "tile_size")


def style_fingerprints(config: Config) -> dict[str, str]:
    """{style set: short hash of its images' content, blend weights, engine parameters and encoding}."""
    prints = {}
    for name, style in config.styles.items():
        params = config.engine.transfer_params(style.params)
        document = {
            "images": [(_content_hash(i.path), i.weight) for i in style.images],
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
        prints[name] = hashlib.sha256(blob).hexdigest()[:16]
    return prints


def _content_hash(path: Path) -> str:
    """The image's sha256, or a marker when it cannot be read now (deleted, a folder, no permission).

    A broken style image must not stop the intake or a worker that hashes it at start or reload: its style set
    is unavailable (the jobs wait, see service.failure_policy), and the marker matches no real result.
    """
    try:
        return sha256_file(path)
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"
