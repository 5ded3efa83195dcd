"""The backbone's feature models, compiled losses and tile passes, built once and reused by every job.

A feature model outputs the layers one loss reads; it is keyed by the loss and the arithmetic (a bf16
model runs on a clone of the backbone under Keras' mixed_bfloat16 policy, built once)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from daemon.engine import gradient, tiled_loss
from daemon.engine.device_scale import feature_layers
from daemon.engine.losses import LossSpec, loss_terms, preprocess, weighted_total
from daemon.engine.params import TransferParams
from daemon.engine.tile_boxes import Levels
from daemon.errors import ConfigError


class FeatureCache:
    """Feature models, compiled value-and-gradient functions and tile passes of one loaded backbone."""

    def __init__(self, model, backbone: str) -> None:
        self.model = model
        self.backbone = backbone
        self._models: dict[tuple, tuple] = {}
        self._compiled: dict[tuple, Callable] = {}
        self._bf16_model = None

    def model_for(self, params: TransferParams, arithmetic: str = "float32") -> tuple:
        """(feature model, LossSpec) of the loss `params` describes, computing in `arithmetic`."""
        key = (params.content_layer, tuple(params.style_layers.items()), params.content_weight,
               params.style_weight, params.tv_weight, arithmetic)
        if key not in self._models:
            base = self._bf16() if arithmetic == "bf16" else self.model
            self._models[key] = self._build(params, base)
        return self._models[key]

    def features(self, feature_model, rgb: np.ndarray) -> list[np.ndarray]:
        """The feature model's outputs for one (H, W, 3) image, as float32 arrays (1, h, w, C)."""
        from keras import ops

        outputs = feature_model(preprocess(ops.convert_to_tensor(rgb[None].astype(np.float32))))
        return [np.asarray(ops.convert_to_numpy(ops.cast(o, "float32"))) for o in outputs]

    def value_and_grad(self, feature_model, spec: LossSpec, targets) -> gradient.ValueAndGrad:
        """The loss and its gradient against `targets`: x (1, H, W, 3) -> (total, gradient, parts)."""
        # One compiled function per feature model and loss spec, reused by every job and scale.
        key = (id(feature_model), spec)
        compiled = self._compiled.get(key)
        if compiled is None:
            def loss_fn(x, targets, weights):
                from keras import ops

                # float32 losses whatever the arithmetic of the convolutions (bf16 Grams lose the style's detail)
                features = [ops.cast(f, "float32")
                            for f in feature_model.stateless_call(weights, [], preprocess(x))[0]]
                content, style, tv = loss_terms(features, x, targets[0], targets[1:], spec)
                return weighted_total(content, style, tv, spec), (content, style, tv)

            weights = [v.value for v in feature_model.trainable_variables]
            compiled = gradient.compile_value_and_grad(loss_fn, weights)
            self._compiled[key] = compiled
        return compiled(targets)

    def tiled_passes(self, feature_model, spec: LossSpec, params: TransferParams) -> tiled_loss.TiledPasses:
        """The two compiled tile passes of this feature model and loss."""
        key = ("tiled", id(feature_model), spec)
        if key not in self._compiled:
            levels = Levels.of(self.model, feature_layers(params))
            self._compiled[key] = tiled_loss.TiledPasses(feature_model, spec, levels)
        return self._compiled[key]

    def _bf16(self):
        """The backbone under Keras' mixed_bfloat16 policy (float32 weights, bf16 arithmetic), built once."""
        if self._bf16_model is None:
            import keras

            first = next(layer.name for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D))

            def mixed(layer):
                config = layer.get_config()
                # The image enters the first convolution in float32: rounded to bf16 (a level's spacing
                # near 255) it would swallow the optimiser's small steps; that layer is cheap (3 channels).
                if "dtype" in config and layer.name != first and not isinstance(layer, keras.layers.InputLayer):
                    config["dtype"] = "mixed_bfloat16"
                return layer.__class__.from_config(config)

            clone = keras.models.clone_model(self.model, clone_function=mixed)
            clone.set_weights(self.model.get_weights())
            self._bf16_model = clone
        return self._bf16_model

    def _build(self, params: TransferParams, base) -> tuple:
        import keras

        layers = feature_layers(params)
        valid = [layer.name for layer in self.model.layers if "conv" in layer.name]
        unknown = [n for n in layers if n not in valid]
        if unknown:
            raise ConfigError(
                f"unknown layer(s) {', '.join(unknown)} for {self.backbone}; "
                f"choose from {', '.join(valid)}"
            )
        feature_model = keras.Model(base.inputs, [base.get_layer(n).output for n in layers])
        total_weight = sum(params.style_layers.values()) or 1.0
        spec = LossSpec(
            content_index=0,
            style_indices=tuple(layers.index(n) for n in params.style_layers),
            style_layer_weights=tuple(w / total_weight for w in params.style_layers.values()),
            content_weight=params.content_weight,
            style_weight=params.style_weight,
            tv_weight=params.tv_weight,
        )
        return feature_model, spec
