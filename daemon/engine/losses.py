"""The Gatys losses as small functions over keras.ops, so every Keras backend can differentiate them.

Each term is a relative error, which keeps the same weights meaningful at 256 px and 1024 px:
Gram matrices are averaged over positions (size-free), and each layer's error is divided by the
energy of its target, so no layer dominates because of its activation scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Caffe preprocessing (what both VGG weight sets were trained with): BGR, ImageNet mean removed.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class LossSpec:
    """Static description of the loss: the layer order of the feature model and the weights."""

    content_index: int
    style_indices: tuple[int, ...]
    style_layer_weights: tuple[float, ...]
    content_weight: float
    style_weight: float
    tv_weight: float


def preprocess(x):
    """RGB 0..255 batch -> caffe-style BGR with the ImageNet mean removed."""
    from keras import ops

    return ops.flip(x, axis=-1) - ops.convert_to_tensor(np.array(CAFFE_MEAN_BGR, dtype="float32"))


def gram(features):
    """(1, H, W, C) features -> (C, C) Gram matrix averaged over the H*W positions."""
    from keras import ops

    channels = ops.shape(features)[-1]
    flat = ops.reshape(features, (-1, channels))
    positions = ops.cast(ops.shape(flat)[0], features.dtype)
    return ops.matmul(ops.transpose(flat), flat) / positions


def gram_numpy(features: np.ndarray) -> np.ndarray:
    """Numpy twin of gram(), used to build targets and to check the Keras version."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    return (flat.T @ flat / flat.shape[0]).astype(np.float32)


def relative_error(value, target):
    """sum((value - target)^2) / sum(target^2): 0 at the target, 1 at zero."""
    from keras import ops

    return ops.sum(ops.square(value - target)) / (ops.sum(ops.square(target)) + 1e-8)


def total_variation(x):
    """Mean squared difference of neighbouring pixels, on the 0..1 scale."""
    from keras import ops

    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    return (ops.mean(ops.square(dy)) + ops.mean(ops.square(dx))) / (255.0 * 255.0)


def loss_terms(features, x, content_target, style_targets, spec: LossSpec):
    """(content, style, tv) for the features of image x against the targets."""
    content = relative_error(features[spec.content_index], content_target)
    style = 0.0
    for index, weight, target in zip(spec.style_indices, spec.style_layer_weights, style_targets):
        style = style + weight * relative_error(gram(features[index]), target)
    return content, style, total_variation(x)


def weighted_total(content, style, tv, spec: LossSpec):
    """The scalar that is minimised."""
    return spec.content_weight * content + spec.style_weight * style + spec.tv_weight * tv
