"""Which arithmetic the loss runs in: float32, or bfloat16 where the hardware does it fast.

bf16 (Keras' mixed_bfloat16 policy: float32 weights, image, first convolution and losses, bf16 for
the other convolutions) pays on a CPU whose oneDNN has bf16 kernels, and only there. Measured, one
evaluation (value and gradient), TensorFlow 2.21 on 2 cores, `python -m bench.host_precision`
(bench/results/host-precision-*.json):

- AMX (Sapphire Rapids and later): 3.5x (0.39 s against 1.36 s at 512 px, vgg16-hed; judged
  quality in bench/results/quality-tensorflow-cpu-512.json).
- AVX-512 with avx512_bf16 but no AMX (AMD Zen 4 and later, Intel Cooper Lake): 1.56x idle on a
  2-core AMD EPYC (issue #27: 1.69 s against 1.07-1.09 s, VGG19 at 512x345); 1.46x and 1.76x on a
  2-core AMD EPYC shared with other work (VGG19 at 512x384, the median of 8 float32/bf16 pairs
  timed in turn; 1.71-2.03x between the fastest of each), bench/results/host-precision-amd-epyc.json.
- AVX-512 without avx512_bf16 (that machine with ONEDNN_MAX_CPU_ISA=AVX512_CORE): oneDNN emulates
  bf16, 0.35x (bf16 is three times slower). AVX2 (ONEDNN_MAX_CPU_ISA=AVX2): oneDNN has no bf16
  convolution; TensorFlow stops with "could not create a primitive descriptor". Both keep float32.

So `auto` picks bf16 for TensorFlow on a CPU with amx_bf16 or avx512_bf16, float32 elsewhere (XLA
on a CPU was not measured; the on-device loop stays float32 until bf16/tf32 are measured on a GPU).

STYLE_DAEMON_PRECISION=float32 (or bf16) makes `auto` resolve to that arithmetic in this process and
every process it starts (the daemon's workers, the CLI): CI runs the engine tests a second time
with float32 forced, the arithmetic that most machines take. A precision set explicitly in the
config or on the command line is honoured whatever the variable says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from daemon.errors import ConfigError

HostPrecision = Literal["float32", "bf16"]
CPUINFO = Path("/proc/cpuinfo")
AUTO_ENV = "STYLE_DAEMON_PRECISION"  # what `auto` resolves to, when set (float32 or bf16)
AUTO_CHOICES = ("float32", "bf16")
# How much faster a bf16 evaluation runs than a float32 one, per kind of CPU, as measured (module
# docstring). The ETA uses it for tiled scales, which stay float32, after bf16 scales below them.
BF16_SPEEDUP_AMX = 3.5
BF16_SPEEDUP_AVX512 = 1.6  # 1.46-1.76x measured (loaded and idle, two machines of the kind)
BF16_SPEEDUP_EMULATED = 0.35  # bf16 asked for on a CPU without bf16 kernels: slower than float32


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
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles, or AVX-512 BF16 instructions)."""
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bf16_speedup(flags: frozenset[str]) -> float:
    """The measured speed of a bf16 evaluation relative to float32 on a CPU with these flags."""
    if "amx_bf16" in flags:
        return BF16_SPEEDUP_AMX
    if "avx512_bf16" in flags:
        return BF16_SPEEDUP_AVX512
    return BF16_SPEEDUP_EMULATED


# This machine's figure, read by the ETA (progress.py) where a job computes in bf16.
BF16_SPEEDUP = bf16_speedup(cpu_flags())


def forced_auto() -> HostPrecision | None:
    """What STYLE_DAEMON_PRECISION says `auto` resolves to; None when unset (or set to auto)."""
    value = os.environ.get(AUTO_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in AUTO_CHOICES:
        raise ConfigError(f"{AUTO_ENV}={value!r}: set it to float32 or bf16 (what precision: auto resolves to), "
                          "or unset it")
    return value  # type: ignore[return-value]


def device_precision(requested: str) -> str:
    """The precision of the on-device loop: auto stays float32 until bf16/tf32 speed is measured on a GPU."""
    if requested != "auto":
        return requested
    return forced_auto() or "float32"


def host_precision(requested: str, backend: str, device: str, flags: frozenset[str]) -> HostPrecision:
    """The precision of a host-loop evaluation for the `requested` setting (auto, float32, tf32, bf16)."""
    if requested == "tf32":
        raise ConfigError("precision tf32 needs the on-device loop: KERAS_BACKEND=jax with lbfgs_impl: optax "
                          "(auto picks it on a GPU), or precision: auto, float32 or bf16")
    if requested in ("float32", "bf16"):
        return requested  # type: ignore[return-value]
    forced = forced_auto()
    if forced is not None:
        return forced
    # auto: bf16 only where measured to pay (TensorFlow's oneDNN has bf16 kernels; XLA on a CPU was not measured).
    return "bf16" if backend == "tensorflow" and device == "cpu" and fast_bf16_cpu(flags) else "float32"
