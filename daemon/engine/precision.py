"""Which arithmetic the loss runs in: float32, or bfloat16 where the hardware does it fast.

bf16 (Keras' mixed_bfloat16 policy: float32 weights, image, first convolution and losses, bf16 for
the other convolutions) runs the VGG evaluation 3.5x faster on a CPU with AMX (Sapphire Rapids and
later: 0.39 s against 1.36 s at 512 px, vgg16-hed, TensorFlow 2.21, 2 cores; judged quality in
bench/results/quality-tensorflow-cpu-512.json). Without AMX a CPU emulates bf16 and would be slower,
so `auto` picks it only where it was measured to pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from daemon.errors import ConfigError

HostPrecision = Literal["float32", "bf16"]
CPUINFO = Path("/proc/cpuinfo")
# How much faster a bf16 evaluation ran than a float32 one where auto picks bf16 (the ETA uses it for
# tiled scales, which stay float32, after bf16 scales below them).
BF16_SPEEDUP = 3.5


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def fast_bf16_cpu(flags: frozenset[str]) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles)."""
    return "amx_bf16" in flags


def device_precision(requested: str) -> str:
    """The precision of the on-device loop: auto stays float32 until bf16/tf32 speed is measured on a GPU."""
    return "float32" if requested == "auto" else requested


def host_precision(requested: str, backend: str, device: str, flags: frozenset[str]) -> HostPrecision:
    """The precision of a host-loop evaluation for the `requested` setting (auto, float32, tf32, bf16)."""
    if requested == "tf32":
        raise ConfigError("precision tf32 needs the on-device loop: KERAS_BACKEND=jax with lbfgs_impl: optax "
                          "(auto picks it on a GPU), or precision: auto, float32 or bf16")
    if requested in ("float32", "bf16"):
        return requested  # type: ignore[return-value]
    # auto: bf16 only where measured to pay (TensorFlow's oneDNN uses AMX; XLA on a CPU was not measured).
    return "bf16" if backend == "tensorflow" and device == "cpu" and fast_bf16_cpu(flags) else "float32"
