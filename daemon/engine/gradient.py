"""The only backend-specific code: value and gradient of the loss with respect to the image.

TensorFlow (the default) uses a tf.function around a GradientTape; JAX uses jit(value_and_grad).
Model weights and loss targets are passed as arguments, not closed over, so one compiled
function serves every job of the same image size.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

# (image, targets, weights) -> (total, (content, style, tv))
LossFn = Callable[..., tuple]
# image -> (total, gradient, (content, style, tv)) with numpy results
ValueAndGrad = Callable[[np.ndarray], tuple[float, np.ndarray, tuple[float, float, float]]]
# targets -> ValueAndGrad; one compilation serves every job, each binding its own targets once
CompiledStep = Callable[[Sequence[np.ndarray]], ValueAndGrad]


def backend_name() -> str:
    """The Keras backend in use (tensorflow, jax, torch)."""
    from daemon.engine.keras_import import load_keras

    return load_keras().backend.backend()


def device_name() -> str:
    """A short description of the device the backend computes on."""
    name = backend_name()
    if name == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{getattr(device, 'device_kind', device)}"
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return f"gpu:{gpus[0].name}" if gpus else "cpu"
    return name


def seed_everything(seed: int) -> None:
    """Make the backend deterministic where it can be (identical output for identical input on CPU)."""
    import keras

    # TF's enable_op_determinism() is not used: it forbids XLA's MaxPool gradient. CPU kernels
    # are deterministic for a fixed input and thread count, which the tests check.
    keras.utils.set_random_seed(seed)


def compile_value_and_grad(loss_fn: LossFn, weights: Sequence) -> CompiledStep:
    """Wrap loss_fn into a numpy-in, numpy-out value-and-gradient function for the optimiser."""
    name = backend_name()
    if name == "tensorflow":
        return _tensorflow(loss_fn, weights)
    if name == "jax":
        return _jax(loss_fn, weights)
    raise NotImplementedError(f"Keras backend {name!r} is not supported; use tensorflow or jax")


def _use_xla() -> bool:
    """XLA on accelerators, where fusing the elementwise work pays; off on CPUs, where it measured
    slower (TensorFlow 2.21, 2 cores: 66 vs 26 ms per evaluation at 48 px, 378 vs 348 ms at 256 px).
    STYLE_DAEMON_XLA=1 or 0 forces it."""
    forced = os.environ.get("STYLE_DAEMON_XLA")
    if forced in ("0", "1"):
        return forced == "1"
    return device_name() != "cpu"


def _tensorflow(loss_fn: LossFn, weights: Sequence) -> CompiledStep:
    import tensorflow as tf

    @tf.function(jit_compile=_use_xla(), reduce_retracing=True)
    def step(x, targets, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total, parts = loss_fn(x, targets, weights)
        return total, tape.gradient(total, x), parts

    def bind(targets: Sequence[np.ndarray]) -> ValueAndGrad:
        tf_targets = [tf.constant(t) for t in targets]

        def value_and_grad(x: np.ndarray):
            total, grad, parts = step(tf.constant(x, dtype=tf.float32), tf_targets, weights)
            return float(total), grad.numpy(), tuple(float(p) for p in parts)

        return value_and_grad

    return bind


def _jax(loss_fn: LossFn, weights: Sequence) -> CompiledStep:
    import jax
    import jax.numpy as jnp

    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    jax_weights = [jnp.asarray(w) for w in weights]

    def bind(targets: Sequence[np.ndarray]) -> ValueAndGrad:
        jax_targets = [jnp.asarray(t) for t in targets]

        def value_and_grad(x: np.ndarray):
            (total, parts), grad = step(jnp.asarray(x, dtype=jnp.float32), jax_targets, jax_weights)
            return float(total), np.asarray(grad), tuple(float(p) for p in parts)

        return value_and_grad

    return bind


def compile_tile_passes(forward: Callable, surrogate: Callable, weights: Sequence) -> tuple[Callable, Callable]:
    """Compile the two passes of a tiled evaluation into numpy-in, numpy-out functions.

    forward(x, boxes, weights) -> tuple of arrays; surrogate(x, boxes, grads, target, coef, weights) ->
    scalar, of which the second function returns the gradient with respect to x."""
    name = backend_name()
    if name == "tensorflow":
        return _tensorflow_tiles(forward, surrogate, weights)
    if name == "jax":
        return _jax_tiles(forward, surrogate, weights)
    raise NotImplementedError(f"Keras backend {name!r} is not supported; use tensorflow or jax")


def _tensorflow_tiles(forward: Callable, surrogate: Callable, weights: Sequence) -> tuple[Callable, Callable]:
    import tensorflow as tf

    # Tiles differ in shape at the image's edges: reduce_retracing traces one shape-generic graph.
    @tf.function(jit_compile=_use_xla(), reduce_retracing=True)
    def tf_forward(x, boxes, weights):
        return forward(x, boxes, weights)

    @tf.function(jit_compile=_use_xla(), reduce_retracing=True)
    def tf_gradient(x, boxes, grads, target, coef, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = surrogate(x, boxes, grads, target, coef, weights)
        return tape.gradient(value, x)

    def run_forward(x, boxes):
        return [o.numpy() for o in tf_forward(tf.constant(x), tf.constant(boxes), weights)]

    def run_gradient(x, boxes, grads, target, coef):
        return tf_gradient(tf.constant(x), tf.constant(boxes), [tf.constant(g) for g in grads],
                           tf.constant(target), tf.constant(coef), weights).numpy()

    return run_forward, run_gradient


def _jax_tiles(forward: Callable, surrogate: Callable, weights: Sequence) -> tuple[Callable, Callable]:
    import jax
    import jax.numpy as jnp

    jax_weights = [jnp.asarray(w) for w in weights]
    jit_forward = jax.jit(forward)
    jit_gradient = jax.jit(jax.grad(surrogate))

    def run_forward(x, boxes):
        return [np.asarray(o) for o in jit_forward(jnp.asarray(x), jnp.asarray(boxes), jax_weights)]

    def run_gradient(x, boxes, grads, target, coef):
        return np.asarray(jit_gradient(jnp.asarray(x), jnp.asarray(boxes), [jnp.asarray(g) for g in grads],
                                       jnp.asarray(target), jnp.asarray(coef), jax_weights))

    return run_forward, run_gradient


# Compilations shorter than this are not worth a cache file (Keras' eager ops compile many tiny ones).
_CACHE_MIN_COMPILE_SECONDS = 0.5


def compilation_cache_dir() -> Path:
    """JAX's persistent compilation cache: beside the weights in the Keras cache folder (under the
    service, that is the unit's CacheDirectory), so a restarted service does not compile again."""
    from daemon.engine.weights import keras_home

    return keras_home() / "jax-compilation-cache"


def enable_compilation_cache() -> Path:
    """Point JAX's persistent compilation cache at compilation_cache_dir() (idempotent)."""
    import jax

    path = compilation_cache_dir()
    if jax.config.jax_compilation_cache_dir != str(path):
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _CACHE_MIN_COMPILE_SECONDS)
        log.debug("JAX compilation cache in %s", path)
    return path


def device_memory_total() -> int | None:
    """Total accelerator memory in bytes, or None when computing on the CPU or unknown."""
    if backend_name() != "jax":
        return None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return int(stats["bytes_limit"]) if "bytes_limit" in stats else None


def device_memory_free() -> int | None:
    """Free accelerator memory in bytes, or None when computing on the CPU."""
    if backend_name() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
