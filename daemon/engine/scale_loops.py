"""The three loops a scale can run, as its plan says: the host loop (an optimiser in Python over the
compiled whole-image loss), the device loop (L-BFGS compiled with the loss, JAX) and the tiled loop
(the loss computed tile by tile). Each makes its targets, then optimises."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from daemon.engine import style_targets, tiled_loss, tile_plan
from daemon.engine.device_scale import DeviceScales
from daemon.engine.feature_cache import FeatureCache
from daemon.engine.optimize import OptimizeOutcome, adam, lbfgs
from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.plan import ScalePlan
from daemon.engine.progress import ScaleProgress
from daemon.engine.tile_boxes import tiled_image

# Correction pairs of the host's float32 L-BFGS: at 512 px (bf16, 25 iterations) 10 reached a lower
# loss per second than 5 or 20, and scipy's 20 cost 0.28 s an iteration of bookkeeping beside 0.4 s
# of evaluation.
HOST_CORRECTIONS = 10


@dataclass(frozen=True)
class ScaleInputs:
    """What one scale optimises: the photo at the scale's size, the style images, the starting image."""

    content: np.ndarray
    styles: Sequence[StyleImage]
    image: np.ndarray
    params: TransferParams


def run_scale(cache: FeatureCache, devices: DeviceScales, scale: ScalePlan, inputs: ScaleInputs,
              progress: ScaleProgress) -> tuple[OptimizeOutcome, int]:
    """Run one scale by its plan: (the outcome, tiles per evaluation)."""
    params = inputs.params
    if scale.loop == "tiled":
        return _tiled(cache, scale, inputs, progress)
    # The host loop's feature model carries the arithmetic; the device loop's plan carries its own.
    feature_model, spec = cache.model_for(params, scale.precision if scale.loop == "host" else "float32")
    targets = style_targets.whole_targets(cache, feature_model, spec, inputs.content, inputs.styles, scale.size,
                                          params)
    if scale.loop == "device":
        device_params = replace(params, iterations=scale.cap, precision=scale.precision)
        return devices.run(device_params, spec, targets, inputs.image, progress.on_step, progress.clock.done), 0
    step = cache.value_and_grad(feature_model, spec, targets)
    run = optimizer_named(scale.optimizer, params, HOST_CORRECTIONS)
    return run(step, inputs.image[None], scale.cap, progress.on_step), 0


def _tiled(cache: FeatureCache, scale: ScalePlan, inputs: ScaleInputs,
           progress: ScaleProgress) -> tuple[OptimizeOutcome, int]:
    """The loss and gradient computed tile by tile, in float32 (the memory plan and exactness assume it)."""
    params = inputs.params
    feature_model, spec = cache.model_for(params, "float32")
    passes = cache.tiled_passes(feature_model, spec, params)
    tiles = tiled_image(cache.model, params, scale.size, scale.core, scale.halo)
    content_target, _ = tiled_loss.content_features_and_grams(passes, inputs.content, tiles, progress.on_tile)
    style_grams = style_targets.tiled_style_grams(passes, cache.model, inputs.styles, scale.size, scale.core,
                                                  scale.halo, params, progress.on_tile)
    loss = tiled_loss.TiledLoss(passes, tiles, content_target, style_grams, progress.on_tile)
    run = optimizer_named(scale.optimizer, params, tile_plan.FLOAT32_CORRECTIONS)
    return run(loss, inputs.image[None], scale.cap, progress.on_step), len(tiles.layout.tiles)


def optimizer_named(name: str, params: TransferParams, corrections: int):
    """The host optimiser called `name` (adam, lbfgs-float32 with `corrections` pairs, lbfgs-scipy), as
    run(value_and_grad, x0, iterations, on_step)."""
    if name == "adam":
        return lambda step, x0, iterations, on_step: adam(step, x0, iterations, on_step, params.learning_rate)
    if name == "lbfgs-float32":
        from daemon.engine.lbfgs32 import lbfgs32

        return lambda step, x0, iterations, on_step: lbfgs32(step, x0, iterations, on_step, corrections=corrections)
    return lbfgs
