"""The Gatys loss in plain JAX on a padded image, every VGG layer masked to the real pixels.

Zeroing the padding after every convolution and pool makes the padded network see exactly what
the unpadded one sees ('same' convolutions read zeros past the edge; a 'valid' pool drops an odd
last row), so the masked loss equals the unpadded loss and its gradient on the real pixels is the
same. Precision: float32 (exact), tf32 (XLA's default on the device), bf16 (convolutions in
bfloat16 with float32 accumulation; Gram matrices and losses in float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from daemon.engine.losses import CAFFE_MEAN_BGR, LossSpec

Precision = Literal["float32", "tf32", "bf16"]


@dataclass(frozen=True)
class Plan:
    """The layers to run ('conv' or 'pool', in order), which outputs are features, and the loss."""

    ops: tuple[str, ...]
    outputs: tuple[int, ...]  # op index of feature k, in the feature model's order
    spec: LossSpec
    precision: Precision

    def level_of(self, feature: int) -> int:
        """How many pools come before feature `feature`."""
        return self.ops[: self.outputs[feature]].count("pool")


def make_plan(model, feature_layers: Sequence[str], spec: LossSpec, precision: Precision) -> tuple[Plan, list]:
    """The plan for a Keras VGG model and its conv weights as [(kernel, bias), ...] numpy pairs."""
    ops, weights, index = [], [], {}
    deepest = max(i for i, layer in enumerate(model.layers) if layer.name in feature_layers)
    for layer in model.layers[: deepest + 1]:
        kind = type(layer).__name__
        if kind == "Conv2D":
            ops.append("conv")
            weights.append((np.asarray(layer.kernel.value), np.asarray(layer.bias.value)))
        elif kind == "MaxPooling2D":
            ops.append("pool")
        else:
            continue
        index[layer.name] = len(ops) - 1
    outputs = tuple(index[name] for name in feature_layers)
    return Plan(tuple(ops), outputs, spec, precision), weights


def loss(plan: Plan, x, targets, weights, real_hw):
    """(total, (content, style, tv)) of image x (1, H, W, 3, padded) whose real size is real_hw."""
    import jax.numpy as jnp

    height, width = real_hw[0], real_hw[1]
    features = _features(plan, x, weights, height, width)
    spec = plan.spec
    content = _relative_error(features[spec.content_index].astype(jnp.float32), targets[0])
    style = jnp.float32(0.0)
    for index, weight, target in zip(spec.style_indices, spec.style_layer_weights, targets[1:]):
        level = plan.level_of(index)
        positions = ((height >> level) * (width >> level)).astype(jnp.float32)
        style = style + weight * _relative_error(_gram(features[index], plan.precision) / positions, target)
    tv = _total_variation(x, height, width)
    total = spec.content_weight * content + spec.style_weight * style + spec.tv_weight * tv
    return total, (content, style, tv)


def _features(plan: Plan, x, weights, height, width) -> list:
    import jax
    import jax.numpy as jnp
    from jax import lax

    dtype = jnp.bfloat16 if plan.precision == "bf16" else jnp.float32
    precision = lax.Precision.HIGHEST if plan.precision == "float32" else lax.Precision.DEFAULT
    mean = jnp.asarray(np.array(CAFFE_MEAN_BGR, dtype=np.float32))
    level = 0
    # The image itself stays float32: bf16 would round pixels to about 1 of 255 and swallow the
    # optimiser's small steps (measured: a much worse loss); its 3-channel convolution costs little.
    act = (jnp.flip(x, axis=-1) - mean) * _mask(x, height, width, 0)
    found: dict[int, object] = {}
    conv = 0
    for position, op in enumerate(plan.ops):
        if op == "conv":
            kernel, bias = weights[conv]
            first = conv == 0
            conv += 1
            out = lax.conv_general_dilated(
                act, kernel if first else kernel.astype(dtype), (1, 1), "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=lax.Precision.HIGHEST if first else precision, preferred_element_type=jnp.float32,
            )
            act = (jax.nn.relu(out + bias) * _mask(out, height, width, level)).astype(dtype)
        else:
            level += 1
            act = _max_pool(act)
            act = act * _mask(act, height, width, level).astype(dtype)
        found[position] = act
    return [found[p] for p in plan.outputs]


def _max_pool(act):
    """2x2 max-pool, stride 2, 'valid' (an odd last row or column is dropped), as Keras' VGG."""
    _, height, width, channels = act.shape
    even = act[:, : height // 2 * 2, : width // 2 * 2]
    return even.reshape(1, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))


def _mask(act, height, width, level):
    """(1, H, W, 1) float32: 1 on the real pixels of this pyramid level, 0 on the padding."""
    import jax.numpy as jnp

    rows = jnp.arange(act.shape[1])[:, None] < (height >> level)
    cols = jnp.arange(act.shape[2])[None, :] < (width >> level)
    return (rows & cols).astype(jnp.float32)[None, :, :, None]


def _gram(features, precision: Precision):
    """Unnormalised Gram matrix, accumulated in float32 whatever the feature dtype."""
    import jax.numpy as jnp
    from jax import lax

    flat = features.reshape(-1, features.shape[-1])
    exact = lax.Precision.HIGHEST if precision == "float32" else lax.Precision.DEFAULT
    return jnp.matmul(flat.T, flat, precision=exact, preferred_element_type=jnp.float32)


def _relative_error(value, target):
    import jax.numpy as jnp

    return jnp.sum(jnp.square(value - target)) / (jnp.sum(jnp.square(target)) + 1e-8)


def _total_variation(x, height, width):
    """losses.total_variation restricted to the real pixels."""
    import jax.numpy as jnp

    rows = jnp.arange(x.shape[1])
    cols = jnp.arange(x.shape[2])
    dy = jnp.square(x[:, 1:] - x[:, :-1])
    dx = jnp.square(x[:, :, 1:] - x[:, :, :-1])
    mask_y = ((rows[1:, None] < height) & (cols[None, :] < width))[None, :, :, None]
    mask_x = ((rows[:, None] < height) & (cols[None, 1:] < width))[None, :, :, None]
    count_y = ((height - 1) * width * 3).astype(jnp.float32)
    count_x = (height * (width - 1) * 3).astype(jnp.float32)
    return (jnp.sum(dy * mask_y) / count_y + jnp.sum(dx * mask_x) / count_x) / (255.0 * 255.0)
