"""A stand-in for the engine, for tests only: daemon-logic tests set STYLE_DAEMON_FAKE_ENGINE to run the
service in seconds instead of minutes. It is not product code and no user-facing path imports it.

STYLE_DAEMON_FAKE_ENGINE=SECONDS makes each iteration take that long; STYLE_DAEMON_FAKE_HANG_AFTER=N
makes the optimisation hang (ignoring stop requests) after N iterations, to test the watchdog;
STYLE_DAEMON_FAKE_DISK_FULL=N makes the first N jobs of this process fail with ENOSPC (a transient error).
Fault injection, for failures a test cannot cause for real (tests run as root):
STYLE_DAEMON_FAKE_FAULT=ENOSPC|EDQUOT|EACCES|EIO|EAGAIN|...|OOM makes jobs fail with that errno (or with an
accelerator out-of-memory error), for the first STYLE_DAEMON_FAKE_FAULT_TIMES jobs of this process (default
every job), and only while the file STYLE_DAEMON_FAKE_FAULT_WHILE exists, if that is set (the "cause" a test
then fixes by deleting it); STYLE_DAEMON_FAKE_CRASH=1 makes the worker kill itself (SIGKILL) in every job.
Tiling (issue 14): STYLE_DAEMON_FAKE_TILES=N evaluates every iteration in N tiles (unless tiling is never), each
taking SECONDS/N and reported as Progress(tile=k, tiles=N) with the iteration unchanged, as the real engine
does; tiling: always without it uses 4 tiles. A tiled run hangs after the first tile of iteration N+1 with
STYLE_DAEMON_FAKE_HANG_AFTER=N. The result's scale_reports say how it tiled.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from daemon.engine.params import LossRecord, Progress, ScaleReport, StyleImage, TransferParams, TransferResult
from daemon.engine.weights import WeightsSource, hed_weights
from daemon.errors import BadInputError, StopRequested
from daemon.engine.transfer import _scale_sizes
from daemon.media.images import resize_long_side, resize_to


class FakeTransfer:
    """Blends the photo towards the style's mean colour, reporting progress like the real engine."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.hang_after = int(os.environ.get("STYLE_DAEMON_FAKE_HANG_AFTER", "0") or 0)
        self.source: WeightsSource = hed_weights()
        self.disk_full = int(os.environ.get("STYLE_DAEMON_FAKE_DISK_FULL", "0") or 0)
        self.faults_left = int(os.environ.get("STYLE_DAEMON_FAKE_FAULT_TIMES", "0") or 0) or None

    def _injected_fault(self) -> None:
        fault = os.environ.get("STYLE_DAEMON_FAKE_FAULT")
        switch = os.environ.get("STYLE_DAEMON_FAKE_FAULT_WHILE")
        if not fault or (switch and not Path(switch).exists()) or self.faults_left == 0:
            return
        if self.faults_left is not None:
            self.faults_left -= 1
        if fault == "OOM":
            raise RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[1,64,512,512]")
        code = getattr(errno, fault)
        raise OSError(code, os.strerror(code))

    def backend(self) -> str:
        """No Keras here."""
        return "fake"

    def device(self) -> str:
        """It runs on the CPU."""
        return "cpu"

    def stylize(
        self,
        content: np.ndarray,
        styles: Sequence[StyleImage],
        params: TransferParams,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_snapshot: Callable[[int, np.ndarray], None] | None = None,
    ) -> TransferResult:
        """Pretend to optimise for params.iterations steps."""
        if self.disk_full > 0:
            self.disk_full -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        if os.environ.get("STYLE_DAEMON_FAKE_CRASH"):
            os.kill(os.getpid(), signal.SIGKILL)
        self._injected_fault()
        start = time.perf_counter()
        sizes = _planned_sizes(content, params)
        image = resize_to(content, sizes[-1])
        tint = np.mean([s.rgb.reshape(-1, 3).mean(axis=0) for s in styles], axis=0)
        history = []
        tiles = _tiles(params)
        size = (image.shape[1], image.shape[0])
        for step in range(1, params.iterations + 1):
            if self.hang_after and step > self.hang_after and not tiles:
                _hang()
            if tiles:
                self._tiled_iteration(step, tiles, params, size, start, on_progress)
            else:
                time.sleep(self.delay)
            loss = 1.0 / step
            if step % params.log_every == 0 or step == params.iterations:
                history.append(LossRecord(step, 1, loss, loss / 2, loss / 2, 0.0))
            if on_snapshot is not None and params.save_every and step % params.save_every == 0:
                on_snapshot(step, (0.5 * image + 0.5 * tint).astype(np.float32))
            if on_progress is not None:
                elapsed = time.perf_counter() - start
                on_progress(Progress(step, params.iterations, 1, 1, (image.shape[1], image.shape[0]), loss,
                                     loss / 2, loss / 2, 0.0, elapsed, elapsed / step * (params.iterations - step)))
            if should_stop is not None and should_stop():
                raise StopRequested("stopped at a shutdown request; the job will be re-queued")
        result = (0.5 * image + 0.5 * tint).astype(np.float32)
        seconds = time.perf_counter() - start
        return TransferResult(result, params.iterations, params.iterations, seconds, size, history[-1], history,
                              scale_sizes=tuple(sizes), scale_reports=_scale_reports(sizes, tiles, params, seconds))

    def _tiled_iteration(self, step: int, tiles: int, params: TransferParams, size: tuple[int, int],
                         start: float, on_progress: Callable[[Progress], None] | None) -> None:
        """One iteration computed tile by tile: a report after each tile, the iteration count unchanged."""
        done = step - 1
        for tile in range(1, tiles + 1):
            if self.hang_after and step > self.hang_after and tile > 1:
                _hang()
            time.sleep(self.delay / tiles)
            if on_progress is not None:
                elapsed = time.perf_counter() - start
                loss = 1.0 / max(done, 1)
                eta = elapsed / (done + tile / tiles) * (params.iterations - done - tile / tiles)
                on_progress(Progress(done, params.iterations, 1, 1, size, loss, loss / 2, loss / 2, 0.0, elapsed,
                                     eta, tile=tile, tiles=tiles))


def _tiles(params: TransferParams) -> int:
    """Tiles per evaluation: STYLE_DAEMON_FAKE_TILES, else 4 when tiling is forced; none when it is never."""
    if params.tiling == "never":
        return 0
    asked = int(os.environ.get("STYLE_DAEMON_FAKE_TILES", "0") or 0)
    return asked or (4 if params.tiling == "always" else 0)


def _scale_reports(sizes, tiles: int, params: TransferParams, seconds: float) -> tuple[ScaleReport, ...]:
    """The fake's iterations shared out over the planned scales, each ending at its share (the cap);
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
            stop_reason="cap", stop_detail=f"ran the full {n} iterations (stand-in engine)", tiles=tiles,
            tile_size=core, halo=32 if tiles else 0, optimizer=f"fake-{params.optimizer}"))
    return tuple(reports)


def _hang() -> None:
    """Stop making progress for good, ignoring stop requests (a hung optimisation)."""
    while True:
        time.sleep(3600)


def _planned_sizes(content: np.ndarray, params: TransferParams) -> list[tuple[int, int]]:
    """The real engine's scale plan (a small photo is not upscaled and runs fewer scales).

    Unlike the real engine it accepts results under MIN_SIDE: daemon tests use tiny photos for speed."""
    long_side = min(params.max_size, max(content.shape[:2]))
    try:
        return _scale_sizes(content.shape, long_side, params)
    except BadInputError:
        return [tuple(resize_long_side(content, long_side).shape[1::-1])]
