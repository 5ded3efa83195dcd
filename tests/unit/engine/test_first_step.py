"""Both L-BFGS optimisers make progress on a loss shaped like the engine's: a mean over many pixels,
summed in float32 on top of a larger term, so that the raw gradient is far under one pixel level."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.engine.lbfgs32 import lbfgs32
from daemon.engine.optimize import lbfgs

SHAPE = (1, 300, 400, 3)
OFFSET = np.float32(5.0)  # the terms the step cannot lower (as the style term of an upsampled start)
WEIGHT = 1e-4


class MeanLoss:
    """OFFSET + WEIGHT * mean((x - c)^2) / 2, its total rounded to float32 as the engine's is."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.c = rng.uniform(50, 200, SHAPE).astype(np.float32)
        self.x0 = (self.c + rng.uniform(-20, 20, SHAPE)).astype(np.float32)

    def excess(self, x: np.ndarray) -> float:
        """The part an optimiser can lower, in float64 (what the test judges by)."""
        r = x.astype(np.float64) - self.c
        return WEIGHT * float(np.mean(r * r)) / 2

    def __call__(self, x: np.ndarray):
        total = float(OFFSET + np.float32(self.excess(x)))
        grad = (WEIGHT / self.c.size) * (x - self.c)
        return total, grad.astype(np.float32), (total, 0.0, 0.0)


def _go_on(*_args) -> bool:
    return True


@pytest.mark.parametrize("optimiser", [lbfgs, lbfgs32], ids=["scipy", "float32"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_tiny_gradient_still_gets_a_step_that_lowers_the_loss(optimiser, seed):
    """Taken as is, the first step (the gradient) lowers the total by less than float32 resolves and
    the line search gives up after one iteration; sized in pixel levels, the runs go on."""
    loss = MeanLoss(seed)
    assert np.abs(loss(loss.x0)[1]).max() < 1e-6  # the premise: the raw step moves no pixel by a level
    outcome = optimiser(loss, loss.x0, 20, _go_on)
    assert outcome.iterations >= 2
    assert loss.excess(outcome.image) < 0.05 * loss.excess(loss.x0)
