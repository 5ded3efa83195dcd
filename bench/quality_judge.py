"""The independent judge: style and content distances of a picture, measured by another network.

Style distance: relative Gram-matrix error over block1..5_conv1 against the style image; content
distance: relative feature error at block4_conv2 against the photo - the engine's loss terms, as
StyleTransfer.evaluate and bench/compare_backbones.py measure them, with fixed layers so that a
change of the engine's defaults does not move the judge. Forward passes only; targets once per pair.
"""

from __future__ import annotations

import numpy as np

from daemon.engine.losses import gram_numpy
from daemon.engine.params import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, StyleImage, TransferParams

JUDGE_PARAMS = TransferParams(content_layer=DEFAULT_CONTENT_LAYER, style_layers=dict(DEFAULT_STYLE_LAYERS),
                              style_scale=1.0, content_weight=1.0, style_weight=1.0, tv_weight=0.0)


def _relative_error(value: np.ndarray, target: np.ndarray) -> float:
    # Same formula as daemon.engine.losses.relative_error, in float64.
    value, target = value.astype(np.float64), target.astype(np.float64)
    return float(np.sum(np.square(value - target)) / (np.sum(np.square(target)) + 1e-8))


class Judge:
    """Judges pictures of one photo/style pair, all at the photo's size, with `engine`'s network."""

    def __init__(self, engine, content: np.ndarray, style: StyleImage) -> None:
        self.engine = engine
        from daemon.engine.style_targets import whole_targets

        self.feature_model, self.spec = engine.features.model_for(JUDGE_PARAMS)
        size = (content.shape[1], content.shape[0])
        self.targets = whole_targets(engine.features, self.feature_model, self.spec, content, [style], size,
                                     JUDGE_PARAMS)

    def __call__(self, image: np.ndarray) -> tuple[float, float]:
        """(style distance, content distance) of `image` (HxWx3, 0..255); lower is closer."""
        features = self.engine.features.features(self.feature_model, image.astype(np.float32))
        content = _relative_error(features[self.spec.content_index], self.targets[0])
        style = sum(weight * _relative_error(gram_numpy(features[index]), target)
                    for index, weight, target in zip(self.spec.style_indices, self.spec.style_layer_weights,
                                                     self.targets[1:]))
        return float(style), content
