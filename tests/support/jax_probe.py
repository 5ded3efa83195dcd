"""Runs under KERAS_BACKEND=jax in a subprocess of tests/test_gpu_path.py and prints one JSON line
of measurements; the tests assert on them (Keras picks its backend once per process)."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from daemon.engine.params import StyleImage, TransferParams
from daemon.media.images import load_image, resize_long_side, resize_to
from tests.support import CONTENT, STYLE

SIZE = 64
ITERATIONS = 20
# Shallow layers for the checks that only need some loss: fewer layers, faster compiles.
LIGHT = dict(content_layer="block2_conv2", style_layers={"block1_conv1": 1.0, "block2_conv1": 1.0},
             lbfgs_impl="optax")  # auto picks the host loop on a CPU


def main(mode: str) -> None:
    if mode == "no-optax":
        sys.modules["optax"] = None  # as if it were not installed
    import jax

    hits: list[str] = []
    jax.monitoring.register_event_listener(
        lambda event, **_: hits.append(event) if event.startswith("/jax/compilation_cache/") else None)
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights

    engine = StyleTransfer(hed_weights())
    photo = resize_long_side(load_image(CONTENT / "tubingen.jpg").rgb, SIZE)
    style = StyleImage(resize_long_side(load_image(STYLE / "starry_night.jpg").rgb, 96))
    report: dict = {"backend": engine.backend(), "device": engine.device()}
    if mode == "no-optax":
        report.update(_without_optax(engine, photo, style))
        print(json.dumps(report))
        return
    start = time.perf_counter()
    engine.stylize(photo, [style], TransferParams(max_size=SIZE, iterations=2, scales=1, **LIGHT))
    report["first_job_seconds"] = time.perf_counter() - start
    # Counted, not timed: a cache that works turns the first job's compilations into hits on any machine.
    report["first_job_cache_hits"] = hits.count("/jax/compilation_cache/cache_hits")
    report["first_job_cache_misses"] = hits.count("/jax/compilation_cache/cache_misses")
    if mode == "full":
        report.update(_equal_iterations(engine, photo, style))
        report.update(_masking(engine, photo, style))
        report.update(_buckets(engine, style))
        report.update(_precisions(engine, photo, style))
        report.update(_hooks(engine, photo, style))
    report["cache_hits"] = hits.count("/jax/compilation_cache/cache_hits")
    report["cache_misses"] = hits.count("/jax/compilation_cache/cache_misses")
    print(json.dumps(report))


def _without_optax(engine, photo, style) -> dict:
    """auto falls back to the host loop; asking for optax is a one-line error."""
    from daemon.errors import ConfigError

    light = {k: v for k, v in LIGHT.items() if k != "lbfgs_impl"}
    result = engine.stylize(photo, [style], TransferParams(max_size=SIZE, iterations=2, scales=1, **light))
    try:
        engine.stylize(photo, [style], TransferParams(max_size=SIZE, iterations=2, scales=1, lbfgs_impl="optax"))
        error = ""
    except ConfigError as exc:
        error = str(exc)
    return {"fallback_iterations": result.iterations, "device_loops": len(engine.devices),
            "optax_error": error}


def _total(engine, image, photo, style, params) -> float:
    c, s, tv = engine.evaluate(image, photo, [style], params)
    return params.content_weight * c + params.style_weight * s + params.tv_weight * tv


def _equal_iterations(engine, photo, style) -> dict:
    """Same problem, same iterations: optax on the device against scipy's L-BFGS-B on the host."""
    out = {"initial_total": _total(engine, photo, photo, style, TransferParams(max_size=SIZE))}
    for impl in ("optax", "scipy"):
        params = TransferParams(max_size=SIZE, iterations=ITERATIONS, scales=1, lbfgs_impl=impl)
        result = engine.stylize(photo, [style], params)
        out[f"{impl}_total"] = _total(engine, result.rgb, photo, style, params)
        out[f"{impl}_iterations"] = result.iterations
        out[f"{impl}_range"] = [float(result.rgb.min()), float(result.rgb.max())]
        out[f"{impl}_at_bounds"] = int(((result.rgb == 0) | (result.rgb == 255)).sum())
    return out


def _masking(engine, photo, style) -> dict:
    """The masked loss of an odd-sized image padded into its bucket against the unpadded loss."""
    import jax
    import jax.numpy as jnp

    from daemon.engine import buckets, masked_vgg
    from daemon.engine.device_scale import pad_feature

    image = resize_to(photo, (61, 45))
    rng = np.random.default_rng(0)
    x = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.float32)
    params = TransferParams(max_size=SIZE, scales=1)
    from daemon.engine.style_targets import whole_targets

    feature_model, spec = engine.features.model_for(params)
    targets = whole_targets(engine.features, feature_model, spec, image, [style], (61, 45), params)
    total, grad, parts = engine.features.value_and_grad(feature_model, spec, targets)(x[None])
    loop, plan, weights = engine.devices.loop(params, spec)
    bucket = buckets.bucket_size((61, 45))
    padded_targets = [pad_feature(targets[0], bucket, plan.level_of(0)), *targets[1:]]
    padded = buckets.pad_batch(x[None], bucket)
    padded[:, 45:, :, :] = 255.0  # whatever the padding holds must not matter
    padded[:, :, 61:, :] = 77.0
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda z: masked_vgg.loss(plan, z, padded_targets, weights, jnp.asarray([45, 61]))[0]))
    masked_total, masked_grad = value_and_grad(jnp.asarray(padded))
    masked_grad = np.asarray(masked_grad)
    _, masked_parts = masked_vgg.loss(plan, jnp.asarray(padded), padded_targets, weights, jnp.asarray([45, 61]))
    real = masked_grad[:, :45, :61]
    return {
        "bucket": list(bucket), "unpadded_total": total, "masked_total": float(masked_total),
        "unpadded_parts": list(parts), "masked_parts": [float(p) for p in masked_parts],
        "grad_max_abs_diff": float(np.abs(real - grad).max()), "grad_max_abs": float(np.abs(grad).max()),
        # The padding's own gradient, read directly (a difference of two float sums is rounding noise).
        "grad_on_padding": float(max(np.abs(masked_grad[:, 45:]).max(), np.abs(masked_grad[:, :, 61:]).max())),
    }


def _buckets(engine, style) -> dict:
    """Traces of the compiled loop while photos of different aspect ratios go through."""
    # A loss of its own (tv_weight differs), so that its loop starts with no trace at all.
    params = TransferParams(max_size=SIZE, iterations=2, scales=1, tv_weight=4.0, **LIGHT)
    loop = engine.devices.loop(params, engine.features.model_for(params)[1])[0]
    photo = load_image(CONTENT / "chelsea.png").rgb
    traces = {"start": loop.traces}
    for name, (width, height) in {"64x48": (64, 48), "64x42": (64, 42), "64x64": (64, 64)}.items():
        result = engine.stylize(resize_to(photo, (width, height)), [style], params)
        traces[name] = loop.traces
        traces[f"{name}_shape"] = list(result.rgb.shape)
    return {"traces": traces}


def _hooks(engine, photo, style) -> dict:
    """Progress after every iteration, saves and stop requests between compiled calls."""
    from daemon.errors import StopRequested

    params = TransferParams(max_size=SIZE, iterations=7, scales=1, save_every=3, log_every=5, **LIGHT)
    loop = engine.devices.loop(params, engine.features.model_for(params)[1])[0]
    traces = loop.traces
    progress, saves, checks = [], [], []
    photo = resize_to(photo, (64, 45))  # padded to its bucket, 64x48: saves must be cropped back
    result = engine.stylize(photo, [style], params, on_progress=lambda p: progress.append(p.iteration),
                            on_snapshot=lambda i, image: saves.append([i, list(image.shape)]))
    try:
        engine.stylize(photo, [style], params, should_stop=lambda: checks.append(1) or len(checks) >= 4)
        stopped = False
    except StopRequested:
        stopped = True
    return {"hooks": {"progress": progress, "saves": saves, "history": [h.iteration for h in result.history],
                      "stop_checks": len(checks), "stopped": stopped, "new_traces": loop.traces - traces}}


def _precisions(engine, photo, style) -> dict:
    """Each precision runs; bf16 changes the loss a little, not a lot."""
    out = {}
    x = photo
    for precision in ("float32", "tf32", "bf16"):
        params = TransferParams(max_size=SIZE, iterations=3, scales=1, precision=precision, **LIGHT)
        result = engine.stylize(photo, [style], params)
        out[f"{precision}_dtype"] = str(result.rgb.dtype)
        out[f"{precision}_loss"] = result.losses.loss
        out[f"{precision}_range"] = [float(result.rgb.min()), float(result.rgb.max())]
        x = result.rgb
    out["same_image_losses"] = {p: _device_total(engine, x, photo, style, p) for p in ("float32", "bf16")}
    return out


def _device_total(engine, x, photo, style, precision) -> float:
    import jax.numpy as jnp

    from daemon.engine import masked_vgg

    params = TransferParams(max_size=SIZE, scales=1, precision=precision, **LIGHT)
    from daemon.engine.style_targets import whole_targets

    feature_model, spec = engine.features.model_for(params)
    size = (x.shape[1], x.shape[0])
    targets = [jnp.asarray(t) for t in whole_targets(engine.features, feature_model, spec, photo, [style], size, params)]
    _, plan, weights = engine.devices.loop(params, spec)
    total, _ = masked_vgg.loss(plan, jnp.asarray(x[None]), targets, weights, jnp.asarray([x.shape[0], x.shape[1]]))
    return float(total)


if __name__ == "__main__":
    main(sys.argv[1])
