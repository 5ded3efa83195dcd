"""When a scale stops: its iteration cap (per-scale budget) and the convergence rule fed the loss.

No Keras here: unit-testable on synthetic loss sequences.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

Budget = str  # "even" | "coarse" (params.Budget)


def scale_caps(iterations: int, scales: int, budget: Budget) -> list[int]:
    """Iteration cap of each scale, coarse to fine.

    even: every scale gets `iterations`. coarse: the coarsest gets `iterations` and each finer scale
    half of the one before (an iteration there costs about 4x as much: twice the side), never under 1.
    """
    if budget == "even":
        return [iterations] * scales
    return [max(1, math.ceil(iterations / 2**index)) for index in range(scales)]


@dataclass(frozen=True)
class StopDecision:
    """Why a scale ended: reason (cap | converged | optimizer) and one plain sentence."""

    reason: str
    detail: str


class StopRule:
    """Fed the loss after each iteration; says stop once it fell by less than `tolerance` (relative)
    over the last `window` iterations. tolerance 0 turns the rule off: only the cap ends the scale."""

    def __init__(self, tolerance: float, window: int, cap: int) -> None:
        self.tolerance = tolerance
        self.window = max(1, window)
        self.cap = cap
        self.iterations = 0
        self.converged = False
        self._recent: deque[float] = deque(maxlen=self.window + 1)

    def feed(self, loss: float) -> bool:
        """Record one iteration's loss; True when the scale has converged and should stop now."""
        self.iterations += 1
        self._recent.append(loss)
        if self.tolerance > 0 and self.iterations < self.cap and self._full():
            self.converged = self.decrease() < self.tolerance
        return self.converged

    def decrease(self) -> float | None:
        """Relative fall of the loss over the window (0.01 = 1%), or None before the window is full."""
        if not self._full():
            return None
        before, now = self._recent[0], self._recent[-1]
        return (before - now) / abs(before) if before else 0.0

    def decision(self, iterations: int) -> StopDecision:
        """Why the scale ended after `iterations` (what the optimiser reports it did)."""
        change = self.decrease()
        fell = "" if change is None else f"; the loss fell {change:.2%} over the last {self.window} iterations"
        if self.converged:
            return StopDecision("converged", f"stopped after {iterations} of {self.cap} iterations: the loss "
                                f"fell {change:.2%} over the last {self.window}, under {self.tolerance:.2%}")
        if iterations >= self.cap:
            rule = " (stopping rule off)" if self.tolerance <= 0 else ""
            return StopDecision("cap", f"ran the full {self.cap} iterations{rule}{fell}")
        return StopDecision("optimizer", f"the optimiser ended by itself after {iterations} of {self.cap} "
                            f"iterations (no lower loss found){fell}")

    def _full(self) -> bool:
        return len(self._recent) == self.window + 1
