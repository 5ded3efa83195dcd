"""The strong Wolfe line search of the float32 L-BFGS (lbfgs32.py), along the projected path clip(x + t d)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_C1, _C2 = 1e-4, 0.9  # sufficient decrease and curvature constants (those of L-BFGS-B)
_MAX_LINE_EVALUATIONS = 20  # scipy's maxls


@dataclass
class Point:
    """One evaluation along the search line: step, loss, slope along the path, gradient, loss parts."""

    t: float
    f: float
    slope: float
    grad: np.ndarray | None
    parts: tuple[float, float, float]


class WolfeSearch:
    """Strong Wolfe line search (Nocedal & Wright, algorithms 3.5 and 3.6) along the projected path."""

    def __init__(self, run, slope: float, curvature: bool = True) -> None:
        # `run` is the optimisation (lbfgs32's): its loss f, evaluation counts and evaluate(t).
        self.run_ = run
        self.c2 = _C2 if curvature else math.inf
        self.f0, self.slope0 = run.f, slope
        self.last: Point | None = None
        self.budget = min(_MAX_LINE_EVALUATIONS, run.max_evaluations - run.evaluations)

    def run(self, t: float) -> Point | None:
        """The accepted point (trial holds it), or None when no step lowers the loss enough."""
        previous = Point(0.0, self.f0, self.slope0, None, (0.0, 0.0, 0.0))
        while self.budget > 0:
            point = self._evaluate(t)
            if not self._sufficient(point) or (previous.t > 0 and point.f >= previous.f):
                return self._zoom(previous, point)
            if abs(point.slope) <= -self.c2 * self.slope0:
                return point
            if point.slope >= 0:
                return self._zoom(point, previous)
            previous = Point(point.t, point.f, point.slope, None, point.parts)
            t *= 4.0  # extrapolate: the step is still short of the curvature condition
        return self.last if self.last is not None and self._sufficient(self.last) else None

    def _zoom(self, lo: Point, hi: Point) -> Point | None:
        while self.budget > 0 and abs(hi.t - lo.t) > 1e-12 * max(hi.t, lo.t, 1e-30):
            point = self._evaluate(_interpolate(lo, hi))
            if not self._sufficient(point) or point.f >= lo.f:
                hi = Point(point.t, point.f, point.slope, None, point.parts)
                continue
            if abs(point.slope) <= -self.c2 * self.slope0:
                return point
            if point.slope * (hi.t - lo.t) >= 0:
                hi = lo
            lo = Point(point.t, point.f, point.slope, None, point.parts)
        return self._settle(lo)

    def _settle(self, lo: Point) -> Point | None:
        """Out of evaluations: the best point with sufficient decrease, if any (re-evaluated if needed)."""
        if lo.t <= 0:
            return None
        if self.last is not None and self.last.t == lo.t:
            return self.last
        if self.run_.evaluations >= self.run_.max_evaluations:
            return None
        return self._evaluate(lo.t)

    def _evaluate(self, t: float) -> Point:
        if self.last is not None:
            self.last.grad = None  # release the previous trial's gradient before the next one is made
        self.budget -= 1
        self.last = self.run_.evaluate(t)
        return self.last

    def _sufficient(self, point: Point) -> bool:
        # Written so that a NaN loss counts as insufficient.
        return point.f <= self.f0 + _C1 * point.t * self.slope0


def _interpolate(lo: Point, hi: Point) -> float:
    """The cubic's minimiser between lo and hi, kept inside the middle 80% of the interval."""
    width = hi.t - lo.t
    d1 = lo.slope + hi.slope - 3 * (lo.f - hi.f) / (lo.t - hi.t)
    radicand = d1 * d1 - lo.slope * hi.slope
    a, b = sorted((lo.t, hi.t))
    margin = 0.1 * (b - a)
    if radicand < 0 or not math.isfinite(radicand):
        return (a + b) / 2
    d2 = math.copysign(math.sqrt(radicand), width)
    denominator = hi.slope - lo.slope + 2 * d2
    if denominator == 0 or not math.isfinite(denominator):
        return (a + b) / 2
    t = hi.t - width * (hi.slope + d2 - d1) / denominator
    return min(max(t, a + margin), b - margin) if math.isfinite(t) else (a + b) / 2
