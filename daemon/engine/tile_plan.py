"""Whether a scale is computed whole or in tiles, with which tile size and optimiser (no Keras here).

The budget counts the memory of the work, beyond the framework's runtime and the model's weights
(about 1 GB, loaded once). Memory of one scale = what grows with the image (the image, its gradient,
the content target, the optimiser's state) + what one evaluation needs for the part of the image it
holds at once (the whole image untiled, one tile plus its halo when tiled). Tiling bounds the second term only, so a refusal
now names the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.engine import memory
from daemon.engine.params import TransferParams
from daemon.errors import ResourceError

FLOAT32_CORRECTIONS = 5  # the float32 L-BFGS at scales too big for scipy's float64 history
# Largest core worth trying: beyond it a tile costs as much as the untiled image it replaces.
MAX_CORE = 4096


@dataclass(frozen=True)
class TilingChoice:
    """Whether one scale is tiled, the tile geometry, the optimiser that leaves room for it and the bytes
    it needs (plan.ScalePlan carries it into the run's plan)."""

    tiled: bool
    core: int  # px of a tile's core (0 untiled)
    halo: int
    optimizer: str  # lbfgs-scipy | lbfgs-float32 | adam
    need: int  # estimated peak bytes
    budget: int


@dataclass(frozen=True)
class Network:
    """What the estimate needs to know of the backbone."""

    convs_per_block: tuple[int, ...]
    deepest_block: int
    halo: int  # safe halo of the deepest layer (network_facts.safe_halo)
    grid: int  # pooling grid of the deepest layer
    content_floats: float = 8.0  # floats per image pixel of the content target (block4_conv2: 512 / 64)


def image_bytes(width: int, height: int, content_floats: float = 8.0) -> int:
    """Arrays the size of the image a tiled evaluation keeps: image, gradient, two crops' worth of
    copies (3 floats a pixel each), and the content target (`content_floats` a pixel)."""
    return int(width * height * 4 * (3 * 4 + content_floats))


def optimizer_bytes(optimizer: str, width: int, height: int) -> int:
    """The optimiser's own state. scipy's L-BFGS-B keeps 2m+5 float64 vectors and more workspace:
    measured 2.05 GB peak RSS for 3.1 M values (1024 px, m=20; bench/results/lbfgs32-*.json), 82
    float64 a value."""
    values = width * height * 3
    if optimizer == "lbfgs-scipy":
        return values * 8 * 82
    if optimizer == "lbfgs-float32":
        from daemon.engine.lbfgs32 import state_bytes

        return state_bytes(width * height, FLOAT32_CORRECTIONS)
    return values * 4 * 4  # adam: x, m, v, gradient


def untiled_bytes(width: int, height: int, net: Network) -> int:
    """Peak bytes of the untiled path beyond the runtime (calibrated estimate, scipy's state included)."""
    return memory.work_bytes(width, height, net.convs_per_block, net.deepest_block)


def tile_bytes(core: int, width: int, height: int, net: Network) -> int:
    """Peak bytes of one tile's evaluation (its region is the core plus a halo each side)."""
    side_w = min(core + 2 * net.halo, width)
    side_h = min(core + 2 * net.halo, height)
    return memory.work_bytes(side_w, side_h, net.convs_per_block, net.deepest_block)


def plan_scale(width: int, height: int, params: TransferParams, net: Network, budget: int) -> TilingChoice:
    """The plan for one (width x height) scale; raises ResourceError when even tiling cannot fit."""
    base = "adam" if params.optimizer == "adam" else "lbfgs-scipy"
    need = untiled_bytes(width, height, net)
    if params.tiling == "never" or (params.tiling == "auto" and need <= budget):
        return TilingChoice(False, 0, 0, base, need, budget)
    # Each optimiser leaves a different room for the tile: scipy's float64 history can take most of the
    # budget, and small cores cost many times their pixels in halos (70 tiles of 112 px cores made a
    # 1024 px evaluation 20x slower than untiled). So the optimiser leaving the largest core wins; on a
    # tie, scipy's (the reference). A forced tile_size takes the first optimiser it fits beside.
    plans = [_tiled_plan(width, height, params, net, budget, optimizer) for optimizer in _optimizers(base)]
    if params.tile_size:
        return next((p for p in plans if p.need <= budget), plans[-1])
    fitting = [p for p in plans if p.core]
    if not fitting:
        raise _too_large(width, height, budget, net, _optimizers(base)[-1])
    return max(fitting, key=lambda p: p.core)  # max() keeps the first of equals


def _tiled_plan(width: int, height: int, params: TransferParams, net: Network, budget: int,
                optimizer: str) -> TilingChoice:
    """The tiled plan with `optimizer`: the forced or largest fitting core (0 if none fits)."""
    fixed = image_bytes(width, height, net.content_floats) + optimizer_bytes(optimizer, width, height)
    core = params.tile_size or _largest_core(width, height, budget - fixed, net)
    return TilingChoice(True, core, net.halo, optimizer, fixed + tile_bytes(core, width, height, net), budget)


def _optimizers(base: str) -> tuple[str, ...]:
    return ("adam",) if base == "adam" else ("lbfgs-scipy", "lbfgs-float32")


def _largest_core(width: int, height: int, room: int, net: Network) -> int:
    """The largest core (a multiple of the grid, at least two cells) whose tile fits in `room` bytes."""
    best = 0
    core = 2 * net.grid
    while core <= min(MAX_CORE, max(width, height) + net.grid) and tile_bytes(core, width, height, net) <= room:
        best = core
        core += net.grid
    return best


def _too_large(width: int, height: int, budget: int, net: Network, optimizer: str) -> ResourceError:
    state = image_bytes(width, height, net.content_floats) + optimizer_bytes(optimizer, width, height)
    smallest = tile_bytes(2 * net.grid, width, height, net)
    return ResourceError(
        f"a {width}x{height} result needs about {state / 1e9:.1f} GB for the image and optimiser state "
        f"alone, plus {smallest / 1e9:.1f} GB for the smallest tile, but the memory budget is "
        f"{budget / 1e9:.1f} GB; raise memory_budget, free memory, or set max_size lower "
        f"(or on_too_large: downsize)"
    )


def minimum_bytes(width: int, height: int, params: TransferParams, net: Network) -> int:
    """The least memory a (width x height) scale can run in (untiled if tiling is never, else tiled)."""
    if params.tiling == "never":
        return untiled_bytes(width, height, net)
    optimizer = _optimizers("adam" if params.optimizer == "adam" else "lbfgs-scipy")[-1]
    return image_bytes(width, height, net.content_floats) + optimizer_bytes(optimizer, width, height) + \
        tile_bytes(2 * net.grid, width, height, net)


def largest_fitting_long_side(width: int, height: int, budget: int, params: TransferParams, net: Network) -> int:
    """The largest long side (aspect kept) that can run within `budget` bytes (at least 64)."""
    long_side = max(width, height)
    while long_side > 64:
        scale = long_side / max(width, height)
        if minimum_bytes(round(width * scale), round(height * scale), params, net) <= budget:
            break
        long_side = int(long_side * 0.95)
    return max(long_side, 64)
