"""Typed inputs and outputs of the engine: parameters, style images, progress and results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from daemon.engine.adapt import Adaptation

if TYPE_CHECKING:  # only annotations use numpy: `style-daemon --help` starts without importing it
    import numpy as np

Backbone = Literal["auto", "vgg19", "vgg16-hed"]
Optimizer = Literal["lbfgs", "adam"]
Init = Literal["content", "noise", "style"]
ColorMode = Literal["none", "luminance", "histogram"]
TooLarge = Literal["refuse", "downsize"]
LbfgsImpl = Literal["auto", "optax", "numpy", "scipy"]
Tiling = Literal["auto", "always", "never"]
Precision = Literal["auto", "float32", "tf32", "bf16"]
Budget = Literal["even", "coarse"]

# VGG pools four times before block5; a smaller short side leaves nothing to pool.
MIN_SIDE = 32

# Conv layer names shared by Keras' VGG16 and VGG19 (block1..5_conv1 exist in both).
DEFAULT_CONTENT_LAYER = "block4_conv2"
DEFAULT_STYLE_LAYERS = {
    "block1_conv1": 1.0,
    "block2_conv1": 1.0,
    "block3_conv1": 1.0,
    "block4_conv1": 1.0,
    "block5_conv1": 1.0,
}

# Strength 0..1 -> style weight on a log scale: 3 at 0, 30 (the old default) at 0.5, 300 at 1. The
# old 30 drowned the subject of several ordinary pairs too (the grid in docs/), so balanced is 11.9;
# adapt_strength damps it further for the pairs whose photo starts far from the painting.
STRENGTH_PRESETS = {"subtle": 0.15, "balanced": 0.3, "strong": 0.5}
DEFAULT_STRENGTH = STRENGTH_PRESETS["balanced"]
_STYLE_WEIGHT_AT_0, _STYLE_WEIGHT_RANGE = 3.0, 100.0


def style_weight_for(strength: float) -> float:
    """The style weight (content weight 1) for a strength in 0..1: each +0.1 is about 1.6x more style."""
    if not 0.0 <= strength <= 1.0:
        from daemon.errors import ConfigError

        raise ConfigError(f"invalid engine parameter: strength must be between 0 and 1, got {strength}")
    return round(_STYLE_WEIGHT_AT_0 * _STYLE_WEIGHT_RANGE**strength, 4)


def strength_value(value: float | str) -> float:
    """A strength given as a number 0..1 or a preset name (subtle, balanced, strong)."""
    if isinstance(value, str) and value in STRENGTH_PRESETS:
        return STRENGTH_PRESETS[value]
    try:
        return float(value)
    except (TypeError, ValueError):
        from daemon.errors import ConfigError

        names = ", ".join(STRENGTH_PRESETS)
        raise ConfigError(f"invalid engine parameter: strength must be a number 0..1 or one of {names}, "
                          f"got {value!r}") from None


@dataclass(frozen=True)
class TransferParams:
    """Every knob of one style transfer; defaults give a clearly stylised, recognisable result."""

    max_size: int = 512
    iterations: int = 400  # cap of the coarsest scale (see budget): 400, 200, 100 at 128, 256, 512 px
    scales: int = 3
    min_scale_size: int = 128
    content_weight: float = 1.0
    style_weight: float = style_weight_for(DEFAULT_STRENGTH)  # default: strength "balanced"
    tv_weight: float = 5.0
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    optimizer: Optimizer = "lbfgs"
    # auto: optax on the device under JAX on an accelerator, else the float32 L-BFGS in numpy on the host
    # (lbfgs32.py: a tenth of the overhead of scipy's L-BFGS-B, which at 512 px took 0.28 s an iteration).
    lbfgs_impl: LbfgsImpl = "auto"
    # Arithmetic of the loss. auto: bf16 on a CPU with AMX under TensorFlow (3.5x faster there,
    # precision.py), float32 elsewhere (the on-device loop: until bf16/tf32 speed is measured on a GPU).
    precision: Precision = "auto"
    learning_rate: float = 2.0
    init: Init = "content"
    seed: int = 0
    style_scale: float = 1.0
    preserve_colors: ColorMode = "none"
    on_too_large: TooLarge = "refuse"
    log_every: int = 50
    save_every: int = 0
    # Bytes one evaluation may use; 0: what is free now (RAM, or accelerator memory). Above it the
    # loss and gradient are computed tile by tile (exact), so the budget bounds memory, not size.
    memory_budget: int = 0
    # auto: tile only when the untiled estimate exceeds the budget; always/never force it.
    tiling: Tiling = "auto"
    tile_size: int = 0  # px of a tile's core (multiple of 16); 0: the largest that fits the budget
    # A scale stops once the loss fell by less than stop_tolerance (relative) over stop_window
    # iterations; 0 turns the rule off (every scale runs to its cap).
    stop_tolerance: float = 0.02
    stop_window: int = 10
    # even: every scale capped at `iterations`; coarse: the coarsest at `iterations`, each finer half.
    budget: Budget = "coarse"
    # Damp the style weight for a photo that starts far from the painting's style statistics (adapt.py).
    adapt_strength: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.max_size >= MIN_SIDE, f"max_size must be at least {MIN_SIDE}"),
            (self.min_scale_size >= MIN_SIDE, f"min_scale_size must be at least {MIN_SIDE}"),
            (self.iterations >= 1, "iterations must be at least 1"),
            (self.scales >= 1, "scales must be at least 1"),
            (self.content_weight >= 0 and self.style_weight >= 0 and self.tv_weight >= 0,
             "loss weights must not be negative"),
            (bool(self.style_layers), "style_layers must name at least one layer"),
            (all(w >= 0 for w in self.style_layers.values()), "style layer weights must not be negative"),
            (self.style_scale > 0, "style_scale must be positive"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.log_every >= 1, "log_every must be at least 1"),
            (self.save_every >= 0, "save_every must be 0 (off) or positive"),
            (self.lbfgs_impl in ("auto", "optax", "numpy", "scipy"), "lbfgs_impl must be auto, optax, numpy or scipy"),
            (self.precision in ("auto", "float32", "tf32", "bf16"), "precision must be auto, float32, tf32 or bf16"),
            (self.memory_budget >= 0, "memory_budget must be 0 (what is free) or positive"),
            (self.tiling in ("auto", "always", "never"), "tiling must be auto, always or never"),
            (self.tile_size == 0 or (self.tile_size >= 32 and self.tile_size % 16 == 0),
             "tile_size must be 0 (auto) or a multiple of 16 of at least 32"),
            (0 <= self.stop_tolerance < 1, "stop_tolerance must be 0 (off) or between 0 and 1"),
            (self.stop_window >= 1, "stop_window must be at least 1"),
            (self.budget in ("even", "coarse"), "budget must be even or coarse"),
        ]
        for ok, message in checks:
            if not ok:
                from daemon.errors import ConfigError

                raise ConfigError(f"invalid engine parameter: {message}")


@dataclass(frozen=True)
class StyleImage:
    """One style image (float32 RGB 0..255) and its blend weight in the style set."""

    rgb: np.ndarray
    weight: float = 1.0
    name: str = ""


@dataclass(frozen=True)
class Progress:
    """A snapshot handed to the progress callback after every iteration."""

    iteration: int
    total_iterations: int
    scale: int
    scales: int
    size: tuple[int, int]
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    elapsed: float
    eta: float | None  # seconds left; None while still estimating (the first iterations)
    # A tiled evaluation reports after each tile too (iteration unchanged), so a long print-size
    # iteration still shows progress to the watchdog; 0/0 when untiled or between evaluations.
    tile: int = 0
    tiles: int = 0


@dataclass(frozen=True)
class LossRecord:
    """Losses at one logged iteration (kept in the sidecar as the loss history)."""

    iteration: int
    scale: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float


@dataclass(frozen=True)
class ScaleReport:
    """What one scale of the coarse-to-fine run did: how long, why it stopped, whether it tiled."""

    size: tuple[int, int]  # (width, height)
    iterations: int
    evaluations: int
    seconds: float
    stop_reason: str = "cap"  # cap | converged | optimizer (see engine/stopping.py)
    stop_detail: str = ""  # one plain sentence, e.g. "loss fell 0.3% over the last 10 iterations"
    tiles: int = 0  # tiles per evaluation; 0: untiled
    tile_size: int = 0  # core px of a tile
    halo: int = 0  # px of context around each tile core
    optimizer: str = ""  # e.g. "lbfgs-scipy", "lbfgs-float32", "adam"
    precision: str = ""  # the loss's arithmetic at this scale: float32, tf32 or bf16


@dataclass(frozen=True)
class TransferResult:
    """The stylised image (float32 RGB 0..255) and what it took to make it."""

    rgb: np.ndarray
    iterations: int
    evaluations: int
    seconds: float
    size: tuple[int, int]
    losses: LossRecord
    history: list[LossRecord]
    downsized_from: tuple[int, int] | None = None
    scale_sizes: tuple[tuple[int, int], ...] = ()  # (width, height) of each scale that actually ran, coarse to fine
    scale_reports: tuple[ScaleReport, ...] = ()  # one per scale that ran, coarse to fine
    adaptation: Adaptation | None = None  # the pair-adaptive style weight (None: adapt_strength off)
