"""The engine factory: the Keras engine, or the dry-run engine when a dry run was asked for.

A dry run is asked for by STYLE_DAEMON_FAKE_ENGINE=SECONDS (seconds per iteration), which
`style-daemon run --dry-run` and `once --dry-run` set for the service and its workers. The variable's
name predates the feature; checks outside this repository set it, so it stays. See docs/dry-run.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.engine.protocol import Engine

log = logging.getLogger(__name__)

DRY_RUN_ENV = "STYLE_DAEMON_FAKE_ENGINE"
DRY_RUN_SECONDS = 0.01  # per iteration with --dry-run: a photo at the default 400 iterations takes ~4 s


def dry_run_seconds() -> float | None:
    """Seconds per iteration of the dry run asked for in the environment, or None for the real engine."""
    value = os.environ.get(DRY_RUN_ENV)
    return float(value) if value else None


def request_dry_run() -> None:
    """Ask this process and the workers it starts for the dry-run engine (a delay already set is kept)."""
    if not os.environ.get(DRY_RUN_ENV):
        os.environ[DRY_RUN_ENV] = str(DRY_RUN_SECONDS)
    log.warning("DRY RUN: no model is loaded; each result is the photo tinted towards its style's colour, "
                "marked \"dry_run\" in its sidecar")


def make_engine(backbone: str, weights: Path | None) -> Engine:
    """The engine a worker runs: the dry-run engine when asked for, else the Keras engine with `backbone`
    (and its `weights` file, if given) loaded."""
    delay = dry_run_seconds()
    if delay is not None:
        from daemon.engine.dry_run import DryRunEngine

        return DryRunEngine(delay)
    from daemon.engine.backbones import resolve_backbone
    from daemon.engine.transfer import StyleTransfer

    source = resolve_backbone(backbone, weights)
    log.info("loading backbone %s (%s weights from %s)", source.backbone, source.origin, source.path)
    return StyleTransfer(source)
