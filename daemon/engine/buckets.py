"""Shape buckets: each scale is padded up to one of a small set of sizes, so that photos of
different sizes and aspect ratios reuse one compiled loss (the loss is masked to the real pixels)."""

from __future__ import annotations

import numpy as np

# Eight bucket sides per octave (steps of 8 px below 64 px): at most 12.5 % padding per side from
# 64 px up, and 48 sides from 32 to 2048 px.
_STEPS_PER_OCTAVE = 8
_MIN_STEP = 8


def bucket_side(n: int) -> int:
    """The smallest bucket side that holds n pixels."""
    if n < 1:
        raise ValueError(f"a side must be at least 1 px, got {n}")
    step = max(1 << max(n.bit_length() - 1 - 3, 0), _MIN_STEP)
    return -(-n // step) * step


def bucket_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) -> the (width, height) of its bucket."""
    return bucket_side(size[0]), bucket_side(size[1])


def pad_batch(image: np.ndarray, bucket: tuple[int, int]) -> np.ndarray:
    """(1, H, W, C) -> (1, bucket height, bucket width, C), zeros to the bottom and right."""
    _, height, width, _ = image.shape
    return np.pad(image, ((0, 0), (0, bucket[1] - height), (0, bucket[0] - width), (0, 0)))


def level_shape(side: int, level: int) -> int:
    """A side after `level` 2x2 max-pools without padding ('valid', as in VGG)."""
    return side >> level
