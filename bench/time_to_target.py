"""Time to a judged quality: which snapshot of a run first meets a (style, content) target.

Pure logic (no engine, no numpy), so that it can be tested on synthetic snapshot series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Target:
    """The quality to reach: judged distances no more than `margin` (a fraction) above these."""

    style: float
    content: float
    margin: float

    def met_by(self, judged: "Judged") -> bool:
        """Both distances within the margin (lower is closer, so anything lower meets it too)."""
        return (judged.style <= self.style * (1 + self.margin)
                and judged.content <= self.content * (1 + self.margin))


@dataclass(frozen=True)
class Judged:
    """One snapshot's judged distances, at its run time in seconds."""

    seconds: float
    style: float
    content: float


def grid_indices(times: Sequence[float], step: float) -> list[int]:
    """Indices of the first snapshot at or after each multiple of `step` seconds, and of the last one.

    step <= 0 gives every index. `times` must be ascending."""
    if not times:
        return []
    if step <= 0:
        return list(range(len(times)))
    chosen: list[int] = []
    mark = 0.0
    for index, seconds in enumerate(times):
        if seconds >= mark:
            chosen.append(index)
            mark = (int(seconds / step) + 1) * step
    if chosen[-1] != len(times) - 1:
        chosen.append(len(times) - 1)
    return chosen


def first_reaching(times: Sequence[float], judge: Callable[[int], Judged], target: Target,
                   step: float) -> Judged | None:
    """The earliest snapshot meeting `target`, or None: the grid of `step` seconds is judged first,
    then every snapshot between the last grid point that missed and the first that met.

    A hit that is not on the grid and lies before an earlier grid miss is not searched (step 0
    judges every snapshot); judged distances fall almost monotonically along a run."""
    previous = -1
    for index in grid_indices(times, step):
        judged = judge(index)
        if target.met_by(judged):
            for earlier in range(previous + 1, index):
                candidate = judge(earlier)
                if target.met_by(candidate):
                    return candidate
            return judged
        previous = index
    return None


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing (a method that never got there)."""
    if value is None or not reference:
        return None
    return value / reference
