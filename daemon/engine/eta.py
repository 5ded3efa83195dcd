"""Time left in a multi-scale run, from measured per-iteration times (no Keras here: unit-testable).

The first iterations of each scale include tracing/compiling and target set-up: they are kept out of
the per-iteration rate and counted once per scale as that scale's start-up cost. Scales not yet run
are predicted from the measured ones by pixel count (a ratio from one scale, a line through several);
the ratio's exponent is learned from the scales of earlier jobs (CostModel, kept by the engine).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

WARMUP_ITERATIONS = 2  # the first iteration compiles; the second often still pays for it (caches, allocation)
MIN_SAMPLES = 3  # steady iterations of a scale before its rate is trusted
FIT_SAMPLES = 10  # steady iterations of a scale before it predicts other scales (one noisy step skews a fit)


@dataclass
class _Scale:
    """What has been measured of one scale."""

    pixels: int
    warmup: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.warmup) + len(self.steady)

    def rate(self) -> float | None:
        """Seconds per steady iteration, once enough of them were seen."""
        if len(self.steady) < MIN_SAMPLES:
            return None
        return sum(self.steady) / len(self.steady)

    def startup(self) -> float | None:
        """What the warm-up iterations cost beyond steady ones (compile, targets)."""
        rate = self.rate()
        return None if rate is None else max(sum(self.warmup) - rate * len(self.warmup), 0.0)


@dataclass
class CostModel:
    """Per-iteration time grows as pixels ** exponent; 1 until finished scales have shown otherwise.

    Small images on a CPU, or any size on a fast GPU, carry a fixed cost per step: the exponent is lower.
    """

    exponent: float = 1.0
    learned: int = 0

    def learn(self, smaller: _Scale, larger: _Scale) -> None:
        """Fold in what two finished scales of one job measured (a running mean over jobs)."""
        low, high = smaller.rate(), larger.rate()
        if low is None or high is None or larger.pixels <= smaller.pixels or low <= 0 or high <= 0:
            return
        seen = min(max(math.log(high / low) / math.log(larger.pixels / smaller.pixels), 0.3), 1.3)
        self.learned += 1
        self.exponent += (seen - self.exponent) / min(self.learned, 10)  # recent jobs count, old ones fade


class EtaEstimator:
    """Call tick(scale_index) after each iteration; eta() is the seconds left, or None while estimating."""

    def __init__(self, pixels: list[int], iterations: int | list[int], now: Callable[[], float] = time.perf_counter,
                 warmup: int = WARMUP_ITERATIONS, model: CostModel | None = None) -> None:
        self.model = model if model is not None else CostModel()
        # One cap for every scale, or one per scale; a scale that stops early simply hands over to the next.
        self.caps = list(iterations) if isinstance(iterations, list) else [iterations] * len(pixels)
        self.iterations = min(self.caps)
        self.warmup = min(warmup, max(self.iterations - MIN_SAMPLES, 0))  # short runs: fewer left out
        self.now = now
        self.scales = [_Scale(p) for p in pixels]
        self.current = 0
        self.running = 0  # the scale under way: ahead of `current` while a new scale has not ticked yet
        self.last = now()

    def begin(self, index: int) -> None:
        """Scale `index` starts (its first iteration may take minutes at print sizes)."""
        self.running = index

    def tick(self, index: int) -> None:
        """One iteration of scale `index` finished now."""
        now = self.now()
        took, self.last = now - self.last, now
        if index > self.current > 0:  # the previous scale ended (maybe before its cap): learn from it
            self.model.learn(self.scales[self.current - 1], self.scales[self.current])
        self.current = self.running = index
        scale = self.scales[index]
        (scale.warmup if len(scale.warmup) < self.warmup else scale.steady).append(took)
        if scale.done == self.caps[index] and index == len(self.scales) - 1 and index > 0:
            self.model.learn(self.scales[index - 1], scale)

    def eta(self) -> float | None:
        """Seconds left, or None until the rates measured so far say something meaningful."""
        model = self._model()
        return None if model is None else self._left(*model)

    def eta_now(self) -> float | None:
        """eta() less what the iteration under way has already taken (up to its expected cost).

        A tiled print-size iteration takes minutes and reports after each tile: without this the time
        left would stand still between iterations."""
        model = self._model()
        if model is None:
            return None
        predict, startup = model
        scale = self.scales[self.running]
        expected = self._rate(scale, predict)
        if len(scale.warmup) < self.warmup:
            expected += startup / max(self.warmup, 1)
        return max(self._left(predict, startup) - min(self.now() - self.last, expected), 0.0)

    def _left(self, predict: Callable[[int], float], startup: float) -> float:
        """Seconds left as of the last finished iteration."""
        left = 0.0
        for index in range(self.running, len(self.scales)):
            scale = self.scales[index]
            remaining = max(self.caps[index] - scale.done, 0)
            left += self._rate(scale, predict) * remaining + self._startup_left(scale, startup)
        return max(left, 0.0)

    def _model(self) -> tuple[Callable[[int], float], float] | None:
        """Seconds per iteration by pixel count, and the start-up cost of a scale; None while estimating."""
        measured = [s for s in self.scales if s.rate() is not None]
        if not measured:
            return None
        enough = min(FIT_SAMPLES, self.iterations - self.warmup)
        solid = [s for s in measured if len(s.steady) >= enough]
        startup = sum(s.startup() for s in measured) / len(measured)
        return _rate_model(solid or measured[:1], self.model.exponent), startup

    def _rate(self, scale: _Scale, predict: Callable[[int], float]) -> float:
        rate = scale.rate()
        return rate if rate is not None else predict(scale.pixels)

    def _startup_left(self, scale: _Scale, startup: float) -> float:
        """The compile/set-up cost still ahead of a scale: its warm-up iterations not yet run."""
        return startup * (self.warmup - len(scale.warmup)) / max(self.warmup, 1)


def _rate_model(measured: list[_Scale], exponent: float) -> Callable[[int], float]:
    """Seconds per iteration as a function of pixel count, fitted to the measured scales."""
    points = sorted({s.pixels: s.rate() for s in measured}.items())
    if len(points) == 1:
        (p0, r0), = points
        return lambda pixels: r0 * (pixels / p0) ** exponent  # the cost of a step grows with its pixel count
    (p0, r0), (p1, r1) = points[-2], points[-1]  # the two largest: closest to what is still to come
    slope = max((r1 - r0) / (p1 - p0), 0.0)
    base = max(r1 - slope * p1, 0.0)
    return lambda pixels: base + slope * pixels
