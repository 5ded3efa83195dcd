"""What a run tells its caller while it works: a Progress record after every iteration (and after
every tile of a tiled evaluation), snapshots, the loss history, the time left, and stop requests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from daemon.engine.eta import CostModel, EtaEstimator
from daemon.engine.params import LossRecord, Progress, TransferParams
from daemon.engine.plan import RunPlan, ScalePlan
from daemon.engine.precision import BF16_SPEEDUP
from daemon.engine.stopping import StopRule
from daemon.errors import StopRequested

ProgressCallback = Callable[[Progress], None]
SnapshotCallback = Callable[[int, np.ndarray], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Hooks:
    """The caller's callbacks for one stylize() call."""

    on_progress: ProgressCallback | None
    should_stop: StopCheck | None
    on_snapshot: SnapshotCallback | None

    def stop_asked(self) -> bool:
        """Whether the caller asks the run to stop (a service shutdown)."""
        return bool(self.should_stop and self.should_stop())


class Clock:
    """Counts iterations; the time left comes from an EtaEstimator (compile time kept out of the rate).

    `done` is the position in the plan (total: the sum of the caps): the next scale starts counting
    where an earlier one's cap ends, however early that scale stopped."""

    def __init__(self, plan: RunPlan, model: CostModel) -> None:
        self.caps = [scale.cap for scale in plan.scales]
        self.total = sum(self.caps)
        self.done = 0
        self.start = time.perf_counter()
        # A tiled scale computes more than its pixels (halos, a second forward pass), and in float32
        # after bf16 scales below it: the estimator predicts it from the scales below by the work it does.
        slower = BF16_SPEEDUP if any(s.loop == "host" and s.precision == "bf16" for s in plan.scales) else 1.0
        pixels = [round(s.size[0] * s.size[1] * cost_factor(s) * (slower if s.tiles else 1.0)) for s in plan.scales]
        self.estimator = EtaEstimator(pixels, self.caps, model=model)

    def begin_scale(self, index: int) -> None:
        """Skip what earlier scales left unused of their caps."""
        self.done = sum(self.caps[:index])
        self.estimator.begin(index)

    def tick(self, index: int) -> None:
        """One iteration of scale `index` finished."""
        self.done += 1
        self.estimator.tick(index)

    def elapsed(self) -> float:
        """Seconds since the run began."""
        return time.perf_counter() - self.start


def cost_factor(scale: ScalePlan) -> float:
    """Pixels a tiled evaluation computes per image pixel: the halos, and a second forward pass."""
    if not scale.tiles:
        return 1.0
    width, height = scale.size

    def covered(length: int) -> int:
        return sum(min(start + scale.core + scale.halo, length) - max(start - scale.halo, 0)
                   for start in range(0, length, scale.core))

    return covered(width) * covered(height) / (width * height) * 4 / 3


class ScaleProgress:
    """One scale's reporting: on_step after every iteration (loss history, snapshots, the stopping
    rule, stop requests; returns False to stop) and on_tile after every tile of a tiled evaluation,
    so a long iteration still shows the service (and its watchdog) that work goes on."""

    def __init__(self, index: int, plan: RunPlan, params: TransferParams, clock: Clock, hooks: Hooks,
                 history: list[LossRecord], rule: StopRule) -> None:
        self.index, self.scale, self.count = index, plan.scales[index], len(plan.scales)
        self.params, self.clock, self.hooks, self.history, self.rule = params, clock, hooks, history, rule
        last = history[-1] if history else None
        # Until this scale's first iteration, tiles report the loss the scale below ended with.
        self._last = (last.loss, (last.content_loss, last.style_loss, last.tv_loss)) if last else (0.0, (0.0, 0.0, 0.0))
        clock.begin_scale(index)

    def on_step(self, iteration: int, total: float, parts: tuple[float, float, float], current) -> bool:
        """After an iteration: record, report; False to stop (converged, or a stop request)."""
        self._last = (total, parts)
        self.clock.tick(self.index)
        converged = self.rule.feed(total)
        if iteration % self.params.log_every == 0 or iteration == self.rule.cap or converged:
            self.history.append(LossRecord(iteration, self.index + 1, total, *parts))
        save_every = self.params.save_every
        if self.hooks.on_snapshot is not None and save_every and self.clock.done % save_every == 0:
            self.hooks.on_snapshot(self.clock.done, current()[0])
        self._report(self.clock.estimator.eta())
        if self.hooks.stop_asked():
            self.rule.converged = False  # a shutdown request wins: the job is re-queued, not finished
            return False
        return not converged

    def on_tile(self, done: int, count: int) -> None:
        """After a tile: report; raises StopRequested at a stop request."""
        # A print-size iteration takes minutes: a stop request is honoured between tiles, or the
        # service manager's stop timeout would kill the worker mid-iteration.
        if self.hooks.stop_asked():
            raise StopRequested("stopped at a shutdown request; the job will be re-queued")
        # The time left counts down within an iteration (tile reports come between iterations).
        self._report(self.clock.estimator.eta_now(), done, count)

    def _report(self, eta: float | None, tile: int = 0, tiles: int = 0) -> None:
        if self.hooks.on_progress is None:
            return
        total, (content, style, tv) = self._last
        self.hooks.on_progress(Progress(
            iteration=self.clock.done, total_iterations=self.clock.total, scale=self.index + 1,
            scales=self.count, size=self.scale.size, loss=total, content_loss=content, style_loss=style,
            tv_loss=tv, elapsed=self.clock.elapsed(), eta=eta, tile=tile, tiles=tiles,
        ))
