"""The loss of the official Keras example "Neural style transfer" (keras.io, examples/generative),
rebuilt on our backbone so that every optimiser in the benchmark minimises exactly the same function.

Example settings: content layer block5_conv2, style layers block1..5_conv1 (equal weights),
content_weight 2.5e-8, style_weight 1e-6, total_variation_weight 1e-6; unnormalised Gram matrices
divided by 4 * 3^2 * (H*W)^2; TV = sum((dx^2 + dy^2)^1.25); the style image resized to the photo's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.engine import gradient
from daemon.engine.losses import preprocess

CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_WEIGHT = 2.5e-8
STYLE_WEIGHT = 1e-6
TV_WEIGHT = 1e-6


@dataclass
class KerasExampleLoss:
    """Builds value-and-gradient functions of the example's loss for one photo/style pair."""

    model: object  # a Keras VGG (no top)

    def __post_init__(self) -> None:
        import keras

        outputs = [self.model.get_layer(n).output for n in (CONTENT_LAYER, *STYLE_LAYERS)]
        self.features = keras.Model(self.model.inputs, outputs)
        self._compiled = gradient.compile_value_and_grad(self._loss, [v.value for v in self.features.trainable_variables])

    def _loss(self, x, targets, weights):
        from keras import ops

        feats = self.features.stateless_call(weights, [], preprocess(x))[0]
        # Dynamic shape: one traced function serves every scale.
        pixels = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], "float32")
        content = ops.sum(ops.square(feats[0] - targets[0]))
        style = 0.0
        for feat, target in zip(feats[1:], targets[1:]):
            flat = ops.reshape(feat, (-1, ops.shape(feat)[-1]))
            gram = ops.matmul(ops.transpose(flat), flat)
            style = style + ops.sum(ops.square(gram - target)) / (4.0 * 9.0 * pixels * pixels)
        a = ops.square(x[:, :-1, :-1, :] - x[:, 1:, :-1, :])
        b = ops.square(x[:, :-1, :-1, :] - x[:, :-1, 1:, :])
        tv = ops.sum(ops.power(a + b, 1.25))
        style = style / len(STYLE_LAYERS)
        total = CONTENT_WEIGHT * content + STYLE_WEIGHT * style + TV_WEIGHT * tv
        return total, (CONTENT_WEIGHT * content, STYLE_WEIGHT * style, TV_WEIGHT * tv)

    def value_and_grad(self, content: np.ndarray, style: np.ndarray) -> gradient.ValueAndGrad:
        """The loss of an image of content's size, against these two images (style resized to match)."""
        from keras import ops

        from daemon.media.images import resize_to

        style = resize_to(style, (content.shape[1], content.shape[0]))
        feats_c = self.features(preprocess(ops.convert_to_tensor(content[None])))
        feats_s = self.features(preprocess(ops.convert_to_tensor(style[None])))
        targets = [ops.convert_to_numpy(feats_c[0])]
        for feat in feats_s[1:]:
            flat = ops.convert_to_numpy(feat).reshape(-1, feat.shape[-1]).astype(np.float64)
            targets.append((flat.T @ flat).astype(np.float32))
        return self._compiled(targets)


def vgg_flops(model, height: int, width: int, deepest: str = "block5_conv2") -> float:
    """Multiply-adds x 2 of the conv layers up to `deepest` for one forward pass at height x width."""
    flops = 0.0
    h, w = height, width
    for layer in model.layers:
        name = layer.name
        if name.endswith("_pool"):
            h, w = h // 2, w // 2
        elif "_conv" in name:
            kernel = layer.get_weights()[0]
            flops += 2.0 * h * w * kernel.shape[0] * kernel.shape[1] * kernel.shape[2] * kernel.shape[3]
        if name == deepest:
            break
    return flops
