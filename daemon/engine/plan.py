"""The plan of one run, made once before any optimisation: for every scale its size, iteration cap,
loop (host, device or tiled), optimiser, arithmetic, tiling and memory budget.

It is logged (one line a scale), returned with the result and written to the sidecar; the run then
executes it scale by scale (transfer.py)."""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass

from daemon.engine import gradient, memory, network_facts, precision, schedule, tile_plan
from daemon.engine.params import TransferParams
from daemon.errors import ConfigError, ResourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalePlan:
    """How one scale of the pyramid runs."""

    size: tuple[int, int]  # (width, height)
    cap: int  # most iterations (the stopping rule may end the scale earlier)
    loop: str  # host (an optimiser in Python), device (the on-device L-BFGS, JAX) or tiled
    optimizer: str  # lbfgs-scipy | lbfgs-float32 | lbfgs-optax | adam
    precision: str  # the convolutions' arithmetic: float32, tf32 or bf16
    tiles: int  # tiles per evaluation; 0 untiled
    core: int  # px of a tile's core (0 untiled)
    halo: int  # px of context around each core (0 untiled)
    need: int  # estimated peak bytes beyond the loaded model
    budget: int  # bytes it may use

    def line(self) -> str:
        """One plain sentence: what this scale will do."""
        how = f"{self.tiles} tiles of {self.core} px + {self.halo} px halo" if self.tiles else "untiled"
        return (f"{self.size[0]}x{self.size[1]}, up to {self.cap} iterations, {self.loop} loop, {self.optimizer}, "
                f"{self.precision}, {how}, needs {self.need / 1e9:.2f} GB of {self.budget / 1e9:.2f} GB")


@dataclass(frozen=True)
class RunPlan:
    """The plan of one stylize() run: the machine it runs on and its scales, coarse to fine."""

    backend: str  # the Keras backend
    device: str
    long_side: int  # of the result
    downsized_from: tuple[int, int] | None  # the photo's (width, height) when memory made it smaller
    budget: int  # bytes a scale may use beyond the loaded model
    scales: tuple[ScalePlan, ...]

    @property
    def sizes(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of each scale, coarse to fine."""
        return tuple(scale.size for scale in self.scales)


def make_plan(model, height: int, width: int, params: TransferParams, long_side: int | None = None) -> RunPlan:
    """The plan for a `width` x `height` photo on `model`: the network and the budget are read once
    here. With `long_side` None the result is as large as params and the budget allow (or
    ResourceError); a retry after running out of memory passes a smaller one."""
    net, budget = network_facts.network(model, params), memory_budget(params)
    if long_side is None:
        long_side = fitting_long_side(width, height, params, net, budget)
    sizes = schedule.scale_sizes(width, height, params, long_side)
    caps = schedule.scale_iteration_caps(sizes, params)
    device = uses_device_loop(params)
    arithmetic = untiled_precision(params, device)
    scales = tuple(_scale(size, cap, params, net, budget, device, arithmetic) for size, cap in zip(sizes, caps))
    downsized = (width, height) if long_side < min(params.max_size, max(width, height)) else None
    plan = RunPlan(gradient.backend_name(), gradient.device_name(), long_side, downsized, budget, scales)
    for index, scale in enumerate(scales):
        log.info("plan scale %d/%d: %s (%s on %s)", index + 1, len(scales), scale.line(), plan.backend, plan.device)
    return plan


def _scale(size: tuple[int, int], cap: int, params: TransferParams, net: tile_plan.Network, budget: int,
           device: bool, arithmetic: str) -> ScalePlan:
    width, height = size
    tiling = tile_plan.plan_scale(width, height, params, net, budget)
    if tiling.tiled:
        # Tiled scales compute in float32: their memory plan and exactness assume it.
        tiles = math.ceil(width / tiling.core) * math.ceil(height / tiling.core)
        return ScalePlan(size, cap, "tiled", tiling.optimizer, "float32", tiles, tiling.core, tiling.halo,
                         tiling.need, budget)
    return ScalePlan(size, cap, "device" if device else "host", untiled_optimizer(params, device), arithmetic,
                     0, 0, 0, tiling.need, budget)


def fitting_long_side(width: int, height: int, params: TransferParams, net: tile_plan.Network, budget: int) -> int:
    """The result's long side: the photo's, at most max_size, or smaller with on_too_large: downsize
    when even tiling cannot fit the budget (else ResourceError, saying what would fit)."""
    long_side = min(params.max_size, max(height, width))
    scale = long_side / max(height, width)
    w, h = round(width * scale), round(height * scale)
    need = tile_plan.minimum_bytes(w, h, params, net)
    if need <= budget:
        return long_side
    fitting = tile_plan.largest_fitting_long_side(w, h, budget, params, net)
    if params.on_too_large == "downsize":
        log.warning("%dx%d needs at least %.1f GB but the memory budget is %.1f GB; downsizing to %d px",
                    w, h, need / 1e9, budget / 1e9, fitting)
        return fitting
    try:
        tile_plan.plan_scale(w, h, params, net, budget)
    except ResourceError as exc:
        raise ResourceError(f"{exc}; {fitting} px would fit") from None
    raise ResourceError(
        f"a {w}x{h} result needs about {need / 1e9:.1f} GB but the memory budget is {budget / 1e9:.1f} GB; "
        f"set max_size to {fitting} or less, tiling: auto, or on_too_large: downsize"
    )


def memory_budget(params: TransferParams) -> int:
    """Bytes one scale may use beyond the loaded model: memory_budget if set, else most of what is
    free now (accelerator or RAM; a tenth is left for the allocator's slack and the rest of the process)."""
    if params.memory_budget:
        return params.memory_budget
    device = gradient.device_memory_free()
    return int(0.9 * (device if device is not None else memory.available_bytes()))


_warned_no_optax = False


def uses_device_loop(params: TransferParams) -> bool:
    """Whether untiled scales run the on-device L-BFGS loop (JAX) rather than a host loop."""
    global _warned_no_optax
    jax = gradient.backend_name() == "jax"
    # auto: the device loop on an accelerator only. On a CPU, XLA runs the loop's body (inside
    # while loops) about 3x slower per evaluation than a top-level call (1.4 s against 0.4 s at
    # 256 px, measured), so the host loop is faster there.
    accelerator = jax and not gradient.device_name().startswith("cpu")
    device = params.optimizer == "lbfgs" and (
        params.lbfgs_impl == "optax" or (params.lbfgs_impl == "auto" and accelerator))
    if device and not jax:
        raise ConfigError("lbfgs_impl optax needs the JAX backend; set KERAS_BACKEND=jax "
                          "or lbfgs_impl: auto")
    if device and importlib.util.find_spec("optax") is None:
        if params.lbfgs_impl == "optax":
            raise ConfigError("lbfgs_impl optax needs the optax package; pip install "
                              "'style-daemon[gpu]' (or optax), or set lbfgs_impl: scipy")
        if not _warned_no_optax:  # once a process: every job would say the same
            log.warning("optax is not installed: L-BFGS runs on the host (scipy); "
                        "pip install 'style-daemon[gpu]' for the on-device loop")
            _warned_no_optax = True
        device = False
    return device


def untiled_precision(params: TransferParams, device: bool) -> str:
    """The arithmetic of the untiled scales (auto resolved for this machine)."""
    if device:
        return precision.device_precision(params.precision)
    return precision.host_precision(params.precision, gradient.backend_name(), gradient.device_name(),
                                    precision.cpu_flags())


def untiled_optimizer(params: TransferParams, device: bool) -> str:
    """The untiled loop's optimiser (the host loop runs the one named here)."""
    if params.optimizer != "lbfgs":
        return params.optimizer
    if device:
        return "lbfgs-optax"
    return "lbfgs-scipy" if params.lbfgs_impl == "scipy" else "lbfgs-float32"

