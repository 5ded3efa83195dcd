"""A box-bounded L-BFGS over the image that keeps all its state in float32 (x, gradient, m pairs).

A drop-in for optimize.lbfgs where scipy's float64 history would not fit: the direction is the
two-loop recursion on the variables not held at a bound, and the step a strong Wolfe line search
along the projected path clip(x + t d, 0, 255). Every pass over an image-sized array runs in chunks,
so no image-sized temporary (and no float64 one) is made; peak extra memory is state_bytes().
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from daemon.engine.chunked_math import CHUNK, HIGH, LOW, axpy, chunks, dot, path_slope, steepest
from daemon.engine.gradient import ValueAndGrad
from daemon.engine.optimize import FIRST_STEP_LEVELS, OptimizeOutcome, StepCallback
from daemon.engine.wolfe_search import Point, WolfeSearch

log = logging.getLogger(__name__)

DEFAULT_CORRECTIONS = 5
_CURVATURE_EPS = float(np.finfo(np.float32).eps)
_CHANNELS = 3
_ARRAYS_BESIDE_HISTORY = 5  # x, gradient, direction, trial point, the trial point's gradient


def state_bytes(pixels: int, corrections: int = DEFAULT_CORRECTIONS) -> int:
    """Peak bytes lbfgs32 holds for an RGB image of `pixels` pixels (the engine's evaluation aside)."""
    values = pixels * _CHANNELS
    arrays = 2 * corrections + _ARRAYS_BESIDE_HISTORY
    # + one byte a value for the active-set mask, + a few chunk-sized temporaries
    return arrays * values * 4 + values + 8 * CHUNK * 4


def lbfgs32(
    value_and_grad: ValueAndGrad,
    x0: np.ndarray,
    iterations: int,
    on_step: StepCallback,
    corrections: int = DEFAULT_CORRECTIONS,
) -> OptimizeOutcome:
    """Minimise over 0..255 in float32 with `corrections` pairs; at most 2 evaluations per iteration."""
    start = time.perf_counter()
    run = _Run(value_and_grad, x0, corrections, max_evaluations=2 * iterations)
    stopped = run.optimise(iterations, on_step)
    return OptimizeOutcome(
        image=run.x.reshape(x0.shape), iterations=run.iterations, evaluations=run.evaluations,
        stopped=stopped, seconds=time.perf_counter() - start,
    )


class _History:
    """The last m correction pairs (s, y) in a ring, float32."""

    def __init__(self, m: int, n: int) -> None:
        self.s = np.empty((m, n), dtype=np.float32)
        self.y = np.empty((m, n), dtype=np.float32)
        self.m = m
        self.order: list[int] = []  # slots, oldest first

    def clear(self) -> None:
        self.order.clear()

    def push(self, x_new, x, g_new, g) -> bool:
        """Store s = x_new - x, y = g_new - g unless the curvature s.y is not positive enough."""
        sy = yy = 0.0
        for c in chunks(x.size):
            s, y = x_new[c] - x[c], g_new[c] - g[c]
            sy += float(np.dot(s, y))
            yy += float(np.dot(y, y))
        if not (sy > _CURVATURE_EPS * yy) or not math.isfinite(sy):
            return False
        m = self.m
        slot = self.order.pop(0) if len(self.order) == m else len(self.order)
        np.subtract(x_new, x, out=self.s[slot])
        np.subtract(g_new, g, out=self.y[slot])
        self.order.append(slot)
        return True

    def apply(self, q: np.ndarray, held: np.ndarray, scratch: np.ndarray) -> None:
        """q <- H q in place (the two-loop recursion) on the free variables: pixels `held` at a bound
        are left out of every product, so H is the L-BFGS matrix of the reduced problem."""
        rho = {}
        for slot in self.order:
            sy = dot(self.s[slot], self.y[slot], held)
            if sy > _CURVATURE_EPS * dot(self.y[slot], self.y[slot], held):
                rho[slot] = 1.0 / sy
        alphas = {}
        for slot in reversed(self.order):
            if slot in rho:
                alphas[slot] = rho[slot] * dot(self.s[slot], q, held)
                axpy(-alphas[slot], self.y[slot], q, held, scratch)
        newest = [slot for slot in self.order if slot in rho][-1:]
        if newest:
            y = self.y[newest[0]]
            q *= np.float32(1.0 / (rho[newest[0]] * dot(y, y, held)))
        for slot in self.order:
            if slot in rho:
                beta = rho[slot] * dot(self.y[slot], q, held)
                axpy(alphas[slot] - beta, self.s[slot], q, held, scratch)


class _Run:
    """The state of one optimisation: flat float32 arrays and the counts."""

    def __init__(self, value_and_grad: ValueAndGrad, x0: np.ndarray, m: int, max_evaluations: int) -> None:
        self.value_and_grad = value_and_grad
        self.shape = x0.shape
        self.x = np.array(x0, dtype=np.float32).reshape(-1)  # a copy: the caller's image is not touched
        np.clip(self.x, LOW, HIGH, out=self.x)
        self.trial = np.empty_like(self.x)
        self.d = np.empty_like(self.x)
        self.held = np.zeros(self.x.size, dtype=bool)  # 1 byte a value: a quarter of a float32 array
        self.scratch = np.empty(min(CHUNK, self.x.size), dtype=np.float32)
        self.history = _History(m, self.x.size)
        self.max_evaluations = max(max_evaluations, 1)
        self.evaluations = self.iterations = 0
        self.g: np.ndarray | None = None
        self.pair_rejected = False

    def optimise(self, iterations: int, on_step: StepCallback) -> bool:
        """Iterate; True when on_step asked to stop."""
        here = self._evaluate_at(self.x)
        self.f, self.g, self.parts = here.f, here.grad, here.parts
        del here  # or the first gradient outlives its replacement
        while self.iterations < iterations and self.evaluations < self.max_evaluations:
            if not self._iterate():
                break
            self.iterations += 1
            current = lambda: self.x.reshape(self.shape).copy()  # noqa: E731
            if not on_step(self.iterations, self.f, self.parts, current):
                return True
        return False

    def _iterate(self) -> bool:
        """One accepted step; False when no step lowers the loss (converged or stalled)."""
        fresh = not self.history.order
        slope = self._direction()
        if slope == 0.0:
            return False  # projected gradient is zero: a stationary point of the box problem
        # From an empty history the direction is -g, tiny (the loss is a mean over pixels): the first
        # step is sized in pixel levels instead (optimize.FIRST_STEP_LEVELS says why).
        first = 1.0 if not fresh else FIRST_STEP_LEVELS / steepest(self.d)
        # A step from an empty history only needs to lower the loss: the pair it yields scales every
        # later step (L-BFGS-B too accepts its first step at once), where extrapolating to meet the
        # curvature condition cost about 6 evaluations on the engine's loss. If that pair had no
        # positive curvature (a non-convex region), the next search insists on it, or -g repeats.
        point = WolfeSearch(self, slope, curvature=not fresh or self.pair_rejected).run(first)
        if point is None and not fresh:
            log.debug("line search failed; restarting from steepest descent")
            self.history.clear()
            return self._iterate()
        if point is None:
            return False
        self.pair_rejected = not self.history.push(self.trial, self.x, point.grad, self.g)
        self.x, self.trial = self.trial, self.x
        self.f, self.g, self.parts = point.f, point.grad, point.parts
        return True

    def _direction(self) -> float:
        """d <- -H g on the free variables, feasible at x; returns the slope g.d (< 0, or 0 if none)."""
        self._mark_held()
        np.negative(self.g, out=self.d)
        self.d[self.held] = 0.0
        self.history.apply(self.d, self.held, self.scratch)
        self._hold_bound()
        slope = dot(self.g, self.d)
        if not (slope < 0.0) and self.history.order:
            self.history.clear()  # H lost positive definiteness in float32: fall back to -g
            return self._direction()
        return min(slope, 0.0) if math.isfinite(slope) else 0.0

    def _mark_held(self) -> None:
        """held <- pixels at a bound whose gradient pushes them out of the box (the active set)."""
        for c in chunks(self.x.size):
            x, g = self.x[c], self.g[c]
            np.logical_or((x <= LOW) & (g > 0), (x >= HIGH) & (g < 0), out=self.held[c])

    def _hold_bound(self) -> None:
        """Zero the direction where it would push a pixel already at a bound out of the box."""
        for c in chunks(self.x.size):
            x, d = self.x[c], self.d[c]
            d[(x <= LOW) & (d < 0)] = 0.0
            d[(x >= HIGH) & (d > 0)] = 0.0

    def evaluate(self, t: float) -> Point:
        """The loss and its slope along the path at step t (trial <- clip(x + t d))."""
        for c in chunks(self.x.size):
            out = self.trial[c]
            np.multiply(self.d[c], np.float32(t), out=out)
            out += self.x[c]
            np.clip(out, LOW, HIGH, out=out)
        point = self._evaluate_at(self.trial)
        point.t = t
        point.slope = path_slope(point.grad, self.d, self.trial)
        return point

    def _evaluate_at(self, x: np.ndarray) -> Point:
        total, grad, parts = self.value_and_grad(x.reshape(self.shape))
        self.evaluations += 1
        flat = np.asarray(grad, dtype=np.float32).reshape(-1)
        return Point(0.0, float(total), 0.0, flat, tuple(float(p) for p in parts))
