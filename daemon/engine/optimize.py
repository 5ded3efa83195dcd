"""Optimisers over the image: scipy's L-BFGS-B (default) and Adam, both keeping pixels in 0..255."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from daemon.engine.gradient import ValueAndGrad

# Called after every iteration with (iteration, total, (content, style, tv), current image getter);
# returns False to stop.
StepCallback = Callable[[int, float, tuple[float, float, float], Callable[[], np.ndarray]], bool]

# How far (in pixel levels, of 0..255) the first step of a fresh L-BFGS history moves the pixel with
# the steepest gradient. The loss is a mean over pixels, so its gradient is tiny: taken as is (what
# L-BFGS-B does before it has a curvature pair) the first step moved pixels by far under a level and
# lowered the loss by less than float32 resolves, and the line search failed with "no lower loss
# found" (seen at the 500 and 1000 px scales of a 4000 px job). Later steps are scale-free.
FIRST_STEP_LEVELS = 1.0


@dataclass(frozen=True)
class OptimizeOutcome:
    """The optimised image and the counts that describe the run."""

    image: np.ndarray
    iterations: int
    evaluations: int
    stopped: bool
    seconds: float


def lbfgs(value_and_grad: ValueAndGrad, x0: np.ndarray, iterations: int, on_step: StepCallback) -> OptimizeOutcome:
    """Minimise with L-BFGS-B, box-bounded to valid pixel values."""
    from scipy.optimize import Bounds, minimize

    shape = x0.shape
    state = {"evaluations": 0, "iteration": 0, "stopped": False, "last": (0.0, (0.0, 0.0, 0.0)), "scale": 0.0}

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad, parts = value_and_grad(flat.reshape(shape).astype(np.float32))
        state["evaluations"] += 1
        state["last"] = (total, parts)
        if not state["scale"]:  # fixed at scipy's first call (x0), so the objective stays one function
            state["scale"] = first_step_scale(grad)
        return total * state["scale"], grad.reshape(-1).astype(np.float64) * state["scale"]

    def callback(intermediate_result) -> None:
        state["iteration"] += 1
        total, parts = state["last"]
        current = lambda: intermediate_result.x.reshape(shape).astype(np.float32)  # noqa: E731
        if not on_step(state["iteration"], total, parts, current):
            state["stopped"] = True
            raise StopIteration

    start = time.perf_counter()
    result = minimize(
        fun,
        x0.reshape(-1).astype(np.float64),
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(0.0, 255.0),
        callback=callback,
        # ftol/gtol at zero: stop on the iteration budget, not on scipy's flat-loss heuristics.
        options={"maxiter": iterations, "maxfun": iterations * 2, "maxcor": 20, "ftol": 0.0, "gtol": 0.0},
    )
    return OptimizeOutcome(
        image=result.x.reshape(shape).astype(np.float32),
        iterations=state["iteration"],
        evaluations=state["evaluations"],
        stopped=state["stopped"],
        seconds=time.perf_counter() - start,
    )


def first_step_scale(grad: np.ndarray) -> float:
    """The factor on the objective that makes a gradient step move the steepest pixel FIRST_STEP_LEVELS."""
    steepest = float(np.max(np.abs(grad)))
    return FIRST_STEP_LEVELS / steepest if steepest > 0 and np.isfinite(steepest) else 1.0


def adam(
    value_and_grad: ValueAndGrad,
    x0: np.ndarray,
    iterations: int,
    on_step: StepCallback,
    learning_rate: float = 2.0,
) -> OptimizeOutcome:
    """Minimise with Adam (pixel units per step), clipping to valid pixel values."""
    x = x0.astype(np.float32).copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    start = time.perf_counter()
    done = 0
    stopped = False
    for step in range(1, iterations + 1):
        total, grad, parts = value_and_grad(x)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        x = np.clip(x - learning_rate * m_hat / (np.sqrt(v_hat) + eps), 0.0, 255.0)
        done = step
        if not on_step(step, total, parts, lambda x=x: x):
            stopped = True
            break
    return OptimizeOutcome(x, done, done, stopped, time.perf_counter() - start)
