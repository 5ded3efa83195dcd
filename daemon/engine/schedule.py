"""The scale schedule: the size of every scale of the coarse-to-fine pyramid and the iteration cap of each."""

from __future__ import annotations

import math

from daemon.engine.params import MIN_SIDE, TransferParams
from daemon.engine.stopping import scale_caps
from daemon.errors import BadInputError

# Above this long side the pyramid gains a scale per doubling, and caps fall with the size.
PRINT_SIDE = 1024
PRINT_MIN_ITERATIONS = 5


def scale_sizes(width: int, height: int, params: TransferParams,
                long_side: int | None = None) -> list[tuple[int, int]]:
    """(width, height) for each scale of a `width` x `height` photo, coarse to fine, ending at `long_side`
    (by default the photo's long side, at most params.max_size: a small photo is not upscaled).

    Above PRINT_SIDE one scale is added per doubling, so the coarse work happens where it is cheap
    and no scale is more than twice the one before. Raises BadInputError when the result is too narrow."""
    if long_side is None:
        long_side = min(params.max_size, max(width, height))
    sizes = []
    extra = max(0, math.ceil(math.log2(long_side / PRINT_SIDE))) if long_side > PRINT_SIDE else 0
    for k in reversed(range(params.scales + extra)):
        side = round(long_side / 2**k)
        scale = side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if k > 0 and (side < params.min_scale_size or min(size) < MIN_SIDE):
            continue
        sizes.append(size)
    if min(sizes[-1]) < MIN_SIDE:
        raise BadInputError(
            f"a {sizes[-1][0]}x{sizes[-1][1]} result is too small or too narrow; the short side "
            f"must be at least {MIN_SIDE} px - raise max_size or crop the image"
        )
    return sizes


def scale_iteration_caps(sizes: list[tuple[int, int]], params: TransferParams) -> list[int]:
    """The iteration cap of each scale: the stopping budget's split (stopping.scale_caps), with the caps
    of print-size scales lowered by print_caps."""
    return print_caps(scale_caps(params.iterations, len(sizes), params.budget), sizes, params.iterations)


def print_caps(caps: list[int], sizes: list[tuple[int, int]], iterations: int) -> list[int]:
    """Caps of scales above PRINT_SIDE fall with their pixel count, cap x (PRINT_SIDE / side)^2, to at
    least PRINT_MIN_ITERATIONS (never above `iterations`): such a scale starts from the one below,
    upsampled, and only sharpens, and an iteration costs about its pixel count."""
    out = []
    floor = min(PRINT_MIN_ITERATIONS, iterations)
    for cap, (w, h) in zip(caps, sizes):
        side = max(w, h)
        if side > PRINT_SIDE:
            cap = min(max(floor, round(cap * (PRINT_SIDE / side) ** 2)), max(cap, floor))
        out.append(cap)
    return out
