"""What the engine computes on, for `style-daemon doctor`: backend, device, memory, caches."""

from __future__ import annotations

import logging

from daemon.engine import gradient, memory


def describe() -> dict[str, str]:
    """Backend, device, device memory (or host memory on a CPU) and the JAX compilation cache."""
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # 'no TPU' is not news
    name = gradient.backend_name()
    info = {"backend": name, "device": gradient.device_name()}
    total = gradient.device_memory_total()
    free = gradient.device_memory_free()
    if total is not None:
        info["device memory"] = f"{total / 2**30:.1f} GiB total, {(free or 0) / 2**30:.1f} GiB free"
    else:
        info["device memory"] = f"none (CPU); {memory.available_bytes() / 2**30:.1f} GiB host memory available"
    if name == "jax":
        import jax

        info["devices"] = ", ".join(str(d) for d in jax.devices())
        info["compilation cache"] = str(gradient.compilation_cache_dir())
        on_gpu = not info["device"].startswith("cpu")
        info["optimiser loop"] = ("on the device (optax L-BFGS)" if on_gpu else
                                  "on the host (scipy L-BFGS-B; faster than the device loop on a CPU)")
    else:
        info["optimiser loop"] = "on the host (scipy L-BFGS-B); set KERAS_BACKEND=jax for the device loop"
    return info
