"""One scale on the device (JAX): the image padded to its bucket, the loss masked to the real
pixels, and the compiled L-BFGS loop, built once per loss and precision and reused by every job."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from daemon.engine import buckets
from daemon.engine.losses import LossSpec
from daemon.engine.optimize import OptimizeOutcome, StepCallback
from daemon.engine.params import TransferParams
from daemon.engine.precision import device_precision


class DeviceScales:
    """The on-device loops of one backbone, keyed by the loss and the precision."""

    def __init__(self, model) -> None:
        self.model = model
        self._loops: dict[tuple, tuple] = {}

    def loop(self, params: TransferParams, spec: LossSpec) -> tuple:
        """(DeviceLBFGS, Plan, device weights) for this loss and precision, built once."""
        arithmetic = device_precision(params.precision)
        key = (params.content_layer, tuple(params.style_layers.items()), spec, arithmetic)
        if key not in self._loops:
            import jax.numpy as jnp

            from daemon.engine import masked_vgg
            from daemon.engine.optax_lbfgs import DeviceLBFGS

            plan, weights = masked_vgg.make_plan(self.model, feature_layers(params), spec, arithmetic)
            device_weights = [(jnp.asarray(k), jnp.asarray(b)) for k, b in weights]
            loop = DeviceLBFGS(lambda x, t, w, hw: masked_vgg.loss(plan, x, t, w, hw))
            self._loops[key] = (loop, plan, device_weights)
        return self._loops[key]

    def __len__(self) -> int:
        return len(self._loops)

    def run(self, params: TransferParams, spec: LossSpec, targets, image: np.ndarray,
            on_step: StepCallback, offset: int) -> OptimizeOutcome:
        """Optimise `image` (H, W, 3) at its size; `offset` iterations were done at earlier scales."""
        loop, plan, weights = self.loop(params, spec)
        height, width = image.shape[:2]
        bucket = buckets.bucket_size((width, height))
        padded = [pad_feature(targets[0], bucket, plan.level_of(spec.content_index)), *targets[1:]]

        def next_stop(done: int) -> int:
            # End a compiled call wherever the host must see the image: logged and saved iterations.
            gaps = [params.log_every - done % params.log_every]
            if params.save_every:
                gaps.append(params.save_every - (offset + done) % params.save_every)
            return min(gaps)

        def cropped_step(iteration, total, parts, current) -> bool:
            return on_step(iteration, total, parts, lambda: current()[:, :height, :width])

        outcome = loop.run(buckets.pad_batch(image[None], bucket), padded, weights, (height, width),
                           params.iterations, cropped_step, next_stop)
        return replace(outcome, image=np.asarray(outcome.image)[:, :height, :width])


def feature_layers(params: TransferParams) -> list[str]:
    """The feature model's outputs: the content layer first, then the other style layers."""
    return [params.content_layer, *[n for n in params.style_layers if n != params.content_layer]]


def pad_feature(feature: np.ndarray, bucket: tuple[int, int], level: int) -> np.ndarray:
    """A (1, h, w, C) feature map zero-padded to its pyramid level of the bucket."""
    width, height = (buckets.level_shape(side, level) for side in bucket)
    return np.pad(feature, ((0, 0), (0, height - feature.shape[1]), (0, width - feature.shape[2]), (0, 0)))
