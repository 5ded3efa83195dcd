"""Where the tiles of a tiled evaluation lie: each tile's core and the region it reads, and the core's
box in the tile's own feature maps at every pooling level (tiled_loss.py computes the loss over them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from daemon.engine import network_facts
from daemon.engine.device_scale import feature_layers
from daemon.engine.params import TransferParams


@dataclass(frozen=True)
class Tile:
    """One tile: its core (the part whose features it owns) and the region it reads, in image pixels."""

    core: tuple[int, int, int, int]  # top, bottom, left, right (half-open)
    region: tuple[int, int, int, int]


@dataclass(frozen=True)
class Layout:
    """How an image is cut: core size and halo in pixels, the pooling grid and the tiles."""

    height: int
    width: int
    core: int
    halo: int
    tiles: tuple[Tile, ...]


def layout(height: int, width: int, core: int, halo: int, grid: int) -> Layout:
    """Tiles whose cores partition the image; cores and regions start on the `grid` (2**pools)."""
    if core % grid or halo % grid:
        raise ValueError(f"core ({core}) and halo ({halo}) must be multiples of the pooling grid {grid}")
    tiles = []
    for top in range(0, height, core):
        for left in range(0, width, core):
            bottom, right = min(top + core, height), min(left + core, width)
            region = (max(top - halo, 0), min(bottom + halo, height), max(left - halo, 0), min(right + halo, width))
            tiles.append(Tile((top, bottom, left, right), region))
    return Layout(height, width, core, halo, tuple(tiles))


@dataclass(frozen=True)
class Levels:
    """For each feature of the feature model (its output order), how many pools come before it."""

    of_feature: tuple[int, ...]

    @classmethod
    def of(cls, model, feature_layers: Sequence[str]) -> "Levels":
        pools, levels = 0, {}
        for layer in model.layers:
            if type(layer).__name__ == "MaxPooling2D":
                pools += 1
            levels[layer.name] = pools
        return cls(tuple(levels[name] for name in feature_layers))


class TiledImage:
    """Feature bookkeeping of one image size: tile boxes per feature level and whole-image counts."""

    def __init__(self, height: int, width: int, tiles: Layout, levels: Levels) -> None:
        self.layout = tiles
        self.levels = levels
        self.positions = [(height >> level) * (width >> level) for level in levels.of_feature]
        self.boxes = [self._boxes(tile) for tile in tiles.tiles]

    def _boxes(self, tile: Tile) -> np.ndarray:
        """(features, 4) int32: the core of `tile` in the tile's own feature coordinates at each level."""
        top, bottom, left, right = tile.core
        r0, r1, c0, c1 = tile.region
        rows = []
        for level in self.levels.of_feature:
            # A core that ends at the image edge owns every remaining feature row (the 'valid' pool
            # drops an odd last row in the tile exactly as in the whole image).
            end_r = (bottom - r0) >> level if bottom < self.layout.height else 1 << 30
            end_c = (right - c0) >> level if right < self.layout.width else 1 << 30
            rows.append(((top - r0) >> level, end_r, (left - c0) >> level, end_c))
        return np.array(rows, dtype=np.int32)

    def crop(self, image: np.ndarray, tile: Tile) -> np.ndarray:
        """The tile's region of an (H, W, C) image as a (1, h, w, C) float32 batch."""
        r0, r1, c0, c1 = tile.region
        return np.ascontiguousarray(image[None, r0:r1, c0:c1], dtype=np.float32)


def tiled_image(model, params: TransferParams, size: tuple[int, int], core: int, halo: int) -> TiledImage:
    """The tiles of a (width, height) image with `core` px cores and `halo` px halos, for the layers
    `params` reads of `model`."""
    width, height = size
    grid = network_facts.pooling_grid(model, network_facts.deepest_layer(model, params))
    layers = feature_layers(params)
    return TiledImage(height, width, layout(height, width, core, halo, grid), Levels.of(model, layers))
