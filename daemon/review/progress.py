"""Showing engine progress: a tqdm bar fitted to the terminal, a log line every N iterations otherwise."""

from __future__ import annotations

import logging
import os
import time
from typing import TextIO

from tqdm import tqdm

from daemon.engine.params import Progress

log = logging.getLogger(__name__)

# A tiled print-size iteration takes minutes and reports after every tile: a log line for each would flood
# the log, none would leave it silent for minutes. So: the first tile report of a run, then one this often.
TILE_LOG_SECONDS = 30.0


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
    tile = f"tile {progress.tile}/{progress.tiles} " if progress.tiles else ""
    return (
        f"iter {progress.iteration}/{progress.total_iterations} {tile}"
        f"scale {progress.scale}/{progress.scales} {progress.size[0]}x{progress.size[1]} "
        f"loss {progress.loss:.4g} (content {progress.content_loss:.3g}, style {progress.style_loss:.3g}, "
        f"tv {progress.tv_loss:.3g}) elapsed {format_duration(progress.elapsed)} "
        f"eta {format_eta(progress.eta)}"
    )


def format_eta(seconds: float | None) -> str:
    """The time left, or 'estimating' while the engine has not measured enough to say."""
    return "estimating" if seconds is None else format_duration(seconds)


class LogRhythm:
    """Which snapshots get a log line: every `every`th iteration and the last; tile reports (same iteration)
    at the first one, then at most every TILE_LOG_SECONDS."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._tile_logged: float | None = None

    def due(self, progress: Progress) -> bool:
        """True when this snapshot deserves a log line."""
        if progress.tiles:
            now = time.monotonic()
            if self._tile_logged is not None and now - self._tile_logged < TILE_LOG_SECONDS:
                return False
            self._tile_logged = now
            return True
        return progress.iteration % self.every == 0 or progress.iteration == progress.total_iterations


class ProgressReporter:
    """Callable progress sink; `stream` set and a terminal -> a bar fitted to its width, else log lines."""

    def __init__(self, label: str, log_every: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.log_every = log_every
        self.stream = stream if stream is not None and stream.isatty() else None
        self._bar: tqdm | None = None
        self._rhythm = LogRhythm(log_every)

    def __call__(self, progress: Progress) -> None:
        if self.stream is not None:
            self._show(progress)
        elif self._rhythm.due(progress):
            log.info("%s: %s", self.label, describe(progress))

    def _show(self, progress: Progress) -> None:
        if self._bar is None:
            # dynamic_ncols: re-read the terminal width at every refresh, so a resized window still fits;
            # tqdm trims whatever does not fit. Its own ETA is replaced by the engine's (compile-aware).
            self._bar = tqdm(total=progress.total_iterations, file=self.stream, desc=self._name(),
                             dynamic_ncols=True, leave=True, unit="it", mininterval=0.2,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}")
        # A long file name would push the bar itself off the line: the name gets a quarter of the width.
        self._bar.set_description_str(self._name(), refresh=False)
        tile = f" tile {progress.tile}/{progress.tiles}" if progress.tiles else ""
        self._bar.set_postfix_str(
            f"eta {format_eta(progress.eta)} scale {progress.scale}/{progress.scales}{tile} loss {progress.loss:.3g}",
            refresh=bool(progress.tiles))  # the count does not move between tiles: redraw for the tile itself
        self._bar.update(progress.iteration - self._bar.n)
        if progress.iteration >= progress.total_iterations and not progress.tiles:
            self.close()

    def _name(self) -> str:
        return shorten(self.label, max(_terminal_width(self.stream) // 4, 8))

    def close(self) -> None:
        """End the bar (its line stays on the terminal)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, its middle replaced by '…' (both ends of a name say most)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 80
