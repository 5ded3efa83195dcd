"""What a scale optimises towards: the content features of the photo and the style blend, the
weighted mean of the style images' Gram matrices (written once here for the whole-image and the
tiled evaluation)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from daemon.engine import tiled_loss
from daemon.engine.feature_cache import FeatureCache
from daemon.engine.losses import LossSpec, gram_numpy
from daemon.engine.params import MIN_SIDE, StyleImage, TransferParams
from daemon.engine.tile_boxes import tiled_image
from daemon.media.images import resize_long_side

# One style image at its size (H, W, 3) -> its Gram matrix at each style layer.
GramsOf = Callable[[np.ndarray], list[np.ndarray]]


def style_blend(styles: Sequence[StyleImage], grams_of: GramsOf, long_side: int) -> list[np.ndarray]:
    """The blended style targets: each style image at `long_side` (never narrower than MIN_SIDE), its
    Grams weighted by its share of the weights and summed, in float64, per layer (float32 out)."""
    shares = np.array([s.weight for s in styles], dtype=np.float64)
    shares = shares / shares.sum()
    total: list[np.ndarray] | None = None
    for style, share in zip(styles, shares):
        rgb = resize_long_side(style.rgb, style_side(style.rgb, long_side))
        grams = [np.asarray(g, np.float64) * share for g in grams_of(rgb)]
        total = grams if total is None else [a + b for a, b in zip(total, grams)]
    return [g.astype(np.float32) for g in total]


def style_side(style: np.ndarray, long_side: int) -> int:
    """The style image's long side: as asked, but never with a short side under MIN_SIDE."""
    height, width = style.shape[:2]
    need = math.ceil(MIN_SIDE * max(height, width) / min(height, width))
    return max(long_side, need)


def whole_targets(cache: FeatureCache, feature_model, spec: LossSpec, content_s: np.ndarray,
                  styles: Sequence[StyleImage], size: tuple[int, int], params: TransferParams) -> list[np.ndarray]:
    """[content features, style Gram per style layer] for a whole-image evaluation at `size`."""
    content = cache.features(feature_model, content_s)[spec.content_index]

    def grams_of(rgb: np.ndarray) -> list[np.ndarray]:
        features = cache.features(feature_model, rgb)
        return [gram_numpy(features[i]) for i in spec.style_indices]

    return [content, *style_blend(styles, grams_of, round(max(size) * params.style_scale))]


def tiled_style_grams(passes: tiled_loss.TiledPasses, model, styles: Sequence[StyleImage],
                      size: tuple[int, int], core: int, halo: int, params: TransferParams,
                      on_tile: tiled_loss.TileCallback | None = None) -> list[np.ndarray]:
    """The style blend with each style image run tile by tile (`core`, `halo`) at its own size."""
    def grams_of(rgb: np.ndarray) -> list[np.ndarray]:
        tiles = tiled_image(model, params, (rgb.shape[1], rgb.shape[0]), core, halo)
        return tiled_loss.content_features_and_grams(passes, rgb, tiles, on_tile)[1]

    return style_blend(styles, grams_of, round(max(size) * params.style_scale))
