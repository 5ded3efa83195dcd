"""Showing engine progress: a one-line bar on a terminal, a log line every N iterations otherwise."""

from __future__ import annotations

import logging
from typing import TextIO

from daemon.engine.params import Progress

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """12.3 -> '12s', 125 -> '2m05s', 3725 -> '1h02m'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(progress: Progress) -> str:
    """A compact human line for one progress snapshot."""
    return (
        f"iter {progress.iteration}/{progress.total_iterations} "
        f"scale {progress.scale}/{progress.scales} {progress.size[0]}x{progress.size[1]} "
        f"loss {progress.loss:.4g} (content {progress.content_loss:.3g}, style {progress.style_loss:.3g}, "
        f"tv {progress.tv_loss:.3g}) elapsed {format_duration(progress.elapsed)} "
        f"eta {format_duration(progress.eta)}"
    )


class ProgressReporter:
    """Callable progress sink; `stream` set and a terminal -> bar, else log lines."""

    def __init__(self, label: str, log_every: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.log_every = log_every
        self.stream = stream if stream is not None and stream.isatty() else None

    def __call__(self, progress: Progress) -> None:
        if self.stream is not None:
            self._bar(progress)
        elif progress.iteration % self.log_every == 0 or progress.iteration == progress.total_iterations:
            log.info("%s: %s", self.label, describe(progress))

    def _bar(self, progress: Progress) -> None:
        width = 24
        filled = int(width * progress.iteration / max(progress.total_iterations, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {describe(progress)}\x1b[K")
        if progress.iteration == progress.total_iterations:
            self.stream.write("\n")
        self.stream.flush()
