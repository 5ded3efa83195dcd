"""Passes over image-sized float32 arrays in chunks, so that no image-sized (or float64) temporary is made."""

from __future__ import annotations

import numpy as np

LOW, HIGH = 0.0, 255.0  # the box the pixels stay in
CHUNK = 1 << 16  # elements per step of a pass over an array: temporaries of 256 KiB


def path_slope(grad: np.ndarray, d: np.ndarray, trial: np.ndarray) -> float:
    """Right derivative of the loss along clip(x + t d): pixels clipped at a bound no longer move."""
    total = 0.0
    for c in chunks(d.size):
        inside = (trial[c] > LOW) & (trial[c] < HIGH)
        total += float(np.dot(grad[c][inside], d[c][inside]))
    return total


def steepest(d: np.ndarray) -> float:
    """max |d|, chunked (no image-sized temporary); d is not all zero here (the slope was negative)."""
    return max(float(np.max(np.abs(d[c]))) for c in chunks(d.size))


def dot(a: np.ndarray, b: np.ndarray, held: np.ndarray | None = None) -> float:
    """a.b over the pixels not `held`, summed in float64 across chunks (a float32 sum drifts)."""
    total = 0.0
    for c in chunks(a.size):
        if held is None or not held[c].any():  # most chunks of a photo hold no pixel at a bound
            total += float(np.dot(a[c], b[c]))
        else:
            free = ~held[c]
            total += float(np.dot(a[c][free], b[c][free]))
    return total


def axpy(alpha: float, x: np.ndarray, y: np.ndarray, held: np.ndarray, scratch: np.ndarray) -> None:
    """y += alpha * x in place on the pixels not `held` (kept 0 there), with no image-sized temporary."""
    a = np.float32(alpha)
    for c in chunks(x.size):
        tmp = scratch[: c.stop - c.start]
        np.multiply(x[c], a, out=tmp)
        if held[c].any():
            tmp[held[c]] = 0.0
        y[c] += tmp


def chunks(n: int):
    """Slices of at most CHUNK elements covering range(n)."""
    return (slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK))
