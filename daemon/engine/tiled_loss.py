"""The exact Gatys loss and gradient of a large image, computed tile by tile in bounded memory.

The content term is a sum over positions and the style term a function of Gram matrices, which are
sums over positions (Galerne, Raad, Lezama and Morel, "Scaling Painting Style Transfer", 2022). Pass 1
runs every tile forward and adds up each style layer's Gram matrix and the content error; pass 2
back-propagates, tile by tile, a surrogate whose gradient is the true gradient's share from that tile:
the derivative of the loss with respect to each Gram matrix, held fixed, dotted with the tile's Gram
sum, plus the tile's content error. Each tile reads a halo of context as wide as the receptive field
of the deepest layer, and starts on the pooling grid, so the features of its core are exactly those of
the whole image; the halo's pixels receive their share of the gradient too, so tile gradients are added.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from daemon.engine import gradient
from daemon.engine.losses import LossSpec, preprocess
from daemon.engine.tile_boxes import Layout, Levels, Tile, TiledImage

# Called after each tile of a pass: (tiles done in this evaluation, tiles in this evaluation).
TileCallback = Callable[[int, int], None]


class TiledPasses:
    """The two compiled tile passes of one feature model (reused by every job and scale)."""

    def __init__(self, feature_model, spec: LossSpec, levels: Levels) -> None:
        self.spec = spec
        self.levels = levels
        weights = [v.value for v in feature_model.trainable_variables]
        style = spec.style_indices
        content = spec.content_index

        def forward(x, boxes, weights):
            features = feature_model.stateless_call(weights, [], preprocess(x))[0]
            sums = [_gram_sum(_masked(features[i], boxes[i])) for i in style]
            return (*sums, features[content])

        def surrogate(x, boxes, grads, content_target, content_coef, weights):
            from keras import ops

            features = feature_model.stateless_call(weights, [], preprocess(x))[0]
            value = content_coef * ops.sum(ops.square(_masked(features[content] - content_target, boxes[content])))
            for i, grad in zip(style, grads):
                value = value + ops.sum(grad * _gram_sum(_masked(features[i], boxes[i])))
            return value

        self._forward, self._gradient = gradient.compile_tile_passes(forward, surrogate, weights)

    def forward(self, x: np.ndarray, boxes: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(Gram sums over the core for each style layer, the tile's content-layer features)."""
        *sums, content = self._forward(x, boxes)
        return sums, content

    def gradient(self, x: np.ndarray, boxes: np.ndarray, grads: Sequence[np.ndarray],
                 content_target: np.ndarray, content_coef: float) -> np.ndarray:
        """Gradient of the tile's surrogate with respect to the tile's pixels."""
        return self._gradient(x, boxes, list(grads), content_target, np.float32(content_coef))


def _masked(features, box):
    """Features with everything outside the core box [top, bottom, left, right) set to zero."""
    from keras import ops

    rows = ops.arange(ops.shape(features)[1])
    cols = ops.arange(ops.shape(features)[2])
    keep_rows = ops.logical_and(rows >= box[0], rows < box[1])
    keep_cols = ops.logical_and(cols >= box[2], cols < box[3])
    mask = ops.cast(ops.logical_and(keep_rows[:, None], keep_cols[None, :]), features.dtype)
    return features * mask[None, :, :, None]


def _gram_sum(features):
    """Unnormalised Gram matrix: the sum over positions of the outer products of the channels."""
    from keras import ops

    flat = ops.reshape(features, (-1, ops.shape(features)[-1]))
    return ops.matmul(ops.transpose(flat), flat)


def content_features_and_grams(passes: TiledPasses, image: np.ndarray, tiled: TiledImage,
                               on_tile: TileCallback | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The whole image's content-layer features and its style Gram matrices (averaged), one tile at a time."""
    level = passes.levels.of_feature[passes.spec.content_index]
    height, width = image.shape[0] >> level, image.shape[1] >> level
    content: list[np.ndarray] = []

    def keep(tile: Tile, features: np.ndarray) -> None:
        if not content:
            content.append(np.zeros((height, width, features.shape[-1]), np.float32))
        _place_core(content[0], features, tile, level, tiled.layout)

    sums = forward_pass(passes, image, tiled, keep, on_tile, len(tiled.layout.tiles))
    style_positions = [tiled.positions[i] for i in passes.spec.style_indices]
    return content[0], [(s / n).astype(np.float32) for s, n in zip(sums, style_positions)]


def forward_pass(passes: TiledPasses, image: np.ndarray, tiled: TiledImage,
                 visit: Callable[[Tile, np.ndarray], None], on_tile: TileCallback | None,
                 count: int) -> list[np.ndarray]:
    """Pass 1: every tile forward; visit(tile, its content-layer features); returns each style
    layer's Gram sum over the whole image (float64). on_tile(k, count) after the k-th tile."""
    sums: list[np.ndarray] | None = None
    for n, (tile, boxes) in enumerate(zip(tiled.layout.tiles, tiled.boxes)):
        tile_sums, features = passes.forward(tiled.crop(image, tile), boxes)
        visit(tile, np.asarray(features)[0])
        sums = [np.asarray(s, np.float64) for s in tile_sums] if sums is None else \
            [a + np.asarray(b, np.float64) for a, b in zip(sums, tile_sums)]
        if on_tile:
            on_tile(n + 1, count)
    return sums


def _place_core(out: np.ndarray, features: np.ndarray, tile: Tile, level: int, tiles: Layout) -> None:
    """Copy the core of one tile's features into the whole image's feature map `out`."""
    t, b, l, r = _core_at(tile, level, tiles, out.shape[0], out.shape[1])
    r0, c0 = tile.region[0] >> level, tile.region[2] >> level
    out[t:b, l:r] = features[t - r0: b - r0, l - c0: r - c0]


def _core_at(tile: Tile, level: int, tiles: Layout, height: int, width: int) -> tuple[int, int, int, int]:
    """The tile's core in whole-image feature coordinates at `level` (height x width features there)."""
    top, bottom, left, right = tile.core
    b = height if bottom >= tiles.height else bottom >> level
    r = width if right >= tiles.width else right >> level
    return top >> level, b, left >> level, r


class TiledLoss:
    """value_and_grad of the Gatys loss of one image size against fixed targets, tile by tile."""

    def __init__(self, passes: TiledPasses, tiled: TiledImage, content_target: np.ndarray,
                 style_targets: Sequence[np.ndarray], on_tile: TileCallback | None = None) -> None:
        self.passes = passes
        self.tiled = tiled
        self.spec = passes.spec
        self.content_target = content_target
        self.style_targets = [np.asarray(t, np.float64) for t in style_targets]
        self.on_tile = on_tile
        self.content_norm = _squared_norm(content_target) + 1e-8
        self.style_norms = [float(np.sum(t * t)) + 1e-8 for t in self.style_targets]
        self.evaluations = 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray, tuple[float, float, float]]:
        """(total, gradient, (content, style, tv)) of image x, (1, H, W, 3) float32 0..255."""
        image = x[0]
        tiles = self.tiled.layout.tiles
        count = 2 * len(tiles)
        spec = self.spec
        content_level = self.passes.levels.of_feature[spec.content_index]
        errors: list[float] = []
        sums = forward_pass(self.passes, image, self.tiled,
                            lambda tile, features: errors.append(self._content_error(features, tile, content_level)),
                            self.on_tile, count)
        content_sq = sum(errors)
        positions = [self.tiled.positions[i] for i in spec.style_indices]
        grams = [s / p for s, p in zip(sums, positions)]
        style = 0.0
        grads = []
        for weight, gram, target, norm, p in zip(spec.style_layer_weights, grams, self.style_targets,
                                                 self.style_norms, positions):
            diff = gram - target
            style += weight * float(np.sum(diff * diff)) / norm
            # d(style_weight * weight * |G - T|^2 / norm) / dG, and G = sum / positions.
            grads.append((spec.style_weight * weight * 2.0 / norm / p * diff).astype(np.float32))
        content = content_sq / self.content_norm
        tv, tv_grad = total_variation(image)
        gradient = spec.tv_weight * tv_grad
        content_coef = spec.content_weight / self.content_norm
        for n, (tile, boxes) in enumerate(zip(tiles, self.tiled.boxes)):
            target = self._content_crop(tile, content_level)
            tile_grad = self.passes.gradient(self.tiled.crop(image, tile), boxes, grads, target, content_coef)
            r0, r1, c0, c1 = tile.region
            gradient[r0:r1, c0:c1] += np.asarray(tile_grad)[0]
            self._report(len(tiles) + n + 1, count)
        self.evaluations += 1
        total = spec.content_weight * content + spec.style_weight * style + spec.tv_weight * tv
        return float(total), gradient[None], (float(content), float(style), float(tv))

    def _report(self, done: int, count: int) -> None:
        if self.on_tile:
            self.on_tile(done, count)

    def _content_crop(self, tile: Tile, level: int) -> np.ndarray:
        r0, r1, c0, c1 = tile.region
        h = (r1 - r0) >> level
        w = (c1 - c0) >> level
        return self.content_target[None, (r0 >> level):(r0 >> level) + h, (c0 >> level):(c0 >> level) + w]

    def _content_error(self, features: np.ndarray, tile: Tile, level: int) -> float:
        height, width = self.content_target.shape[:2]
        t, b, l, r = _core_at(tile, level, self.tiled.layout, height, width)
        r0, c0 = tile.region[0] >> level, tile.region[2] >> level
        mine = features[t - r0: b - r0, l - c0: r - c0]
        diff = mine.astype(np.float64) - self.content_target[t:b, l:r]
        return float(np.sum(diff * diff))


def _squared_norm(array: np.ndarray, rows: int = 64) -> float:
    """sum(array**2) in float64, a few rows at a time (a whole float64 copy would be image-sized)."""
    return float(sum(np.sum(np.square(array[i:i + rows], dtype=np.float64)) for i in range(0, len(array), rows)))


def total_variation(image: np.ndarray) -> tuple[float, np.ndarray]:
    """losses.total_variation of an (H, W, 3) image and its gradient, in numpy (cheap, exact)."""
    scale = 255.0 * 255.0
    dy = image[1:] - image[:-1]
    dx = image[:, 1:] - image[:, :-1]
    value = float(np.sum(np.square(dy), dtype=np.float64) / dy.size
                  + np.sum(np.square(dx), dtype=np.float64) / dx.size) / scale
    grad = np.zeros(image.shape, np.float32)
    gy = dy * np.float32(2.0 / (dy.size * scale))
    gx = dx * np.float32(2.0 / (dx.size * scale))
    grad[1:] += gy
    grad[:-1] -= gy
    grad[:, 1:] += gx
    grad[:, :-1] -= gx
    return value, grad
