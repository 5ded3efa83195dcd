"""The one schema of the engine parameters; the records a run produces are in run_records.py.

Every parameter is defined once, in TransferParams (and the three run choices that are not transfer
parameters in EngineChoices): its type, default, allowed values and a one-line description. The config's
`engine` section and a style set's `params`, the stylize options, check-config's output, the configuration
reference (docs/configuration.md) and config.yaml are derived from these fields or checked against them by a
test, so adding a parameter is one edit here. No numpy at module level: `style-daemon --help` reads this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass as schema

from daemon.engine.param_types import (STRENGTH_PRESETS, ByteSize, LayerWeights, Option, Strength, TileSize,
                                       layer_weights_text, parse_layer_weights, parse_strength)
# The run's records live in run_records.py; imported from here by much of the code, so re-exported.
from daemon.engine.run_records import LossRecord, Progress, ScaleReport, StyleImage, TransferResult
from daemon.errors import ConfigError

__all__ = ["DEFAULT_CONTENT_LAYER", "DEFAULT_STRENGTH", "DEFAULT_STYLE_LAYERS", "MIN_SIDE", "STRENGTH_PRESETS",
           "EngineChoices", "LossRecord", "ParamError", "Progress", "ScaleReport", "StyleImage", "TransferParams",
           "TransferResult", "chosen_style_weight", "engine_fields", "flag_of", "option_of", "shown_default",
           "strength_value", "style_weight_for", "transfer_fields"]

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
DEFAULT_STRENGTH = STRENGTH_PRESETS["balanced"]
_STYLE_WEIGHT_AT_0, _STYLE_WEIGHT_RANGE = 3.0, 100.0


def style_weight_for(strength: float) -> float:
    """The style weight (content weight 1) for a strength in 0..1: each +0.1 is about 1.6x more style."""
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"invalid engine parameter: strength must be between 0 and 1, got {strength}")
    return round(_STYLE_WEIGHT_AT_0 * _STYLE_WEIGHT_RANGE**strength, 4)


def strength_value(value: float | str) -> float:
    """A strength given as a number 0..1 or a preset name (subtle, balanced, strong)."""
    if isinstance(value, str) and value in STRENGTH_PRESETS:
        return STRENGTH_PRESETS[value]
    try:
        return float(value)
    except (TypeError, ValueError):
        names = ", ".join(STRENGTH_PRESETS)
        raise ConfigError(f"invalid engine parameter: strength must be a number 0..1 or one of {names}, "
                          f"got {value!r}") from None


def chosen_style_weight(levels: list[tuple[float | str | None, float | None]]) -> float | None:
    """The style weight the most specific of (strength, style_weight) levels asks for, general to specific;
    within one level a raw style_weight wins over strength. None when no level sets either."""
    chosen = None
    for strength, style_weight in levels:
        if style_weight is not None:
            chosen = style_weight
        elif strength is not None:
            chosen = style_weight_for(strength_value(strength))
    return chosen


class ParamError(ConfigError):
    """An engine parameter the schema refuses: `field` and `problem` let each front end name it its own way."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid engine parameter: {field} {problem}")
        self.field, self.problem = field, problem


def _refusal(error: dict) -> tuple[str, str]:
    """(field, problem) of pydantic's first error, worded to follow the parameter's name."""
    field = str(error["loc"][0]) if error["loc"] else "(parameters)"
    message = error["msg"].removeprefix("Value error, ")
    subject, _, rest = message.partition(" ")  # "Input should be ...", "String should have ..."
    problem = rest if rest.startswith("should ") else message
    inner = ".".join(str(part) for part in error["loc"][1:])
    return field, problem + (f" (at {inner})" if inner else "")


def _one_line(cls: type, values: Any, handler: Any) -> Any:
    """Validation errors become one ParamError (a ConfigError): the first problem, named by its field."""
    try:
        return handler(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "unexpected_keyword_argument":
            raise TypeError(f"{cls.__name__} has no parameter {error['loc'][0]!r}") from None
        raise ParamError(*_refusal(error)) from None


_SCHEMA = ConfigDict(extra="forbid")


@schema(frozen=True, config=_SCHEMA)
class TransferParams:
    """Every knob of one style transfer; defaults give a clearly stylised, recognisable result.

    A pydantic dataclass: construction and dataclasses.replace() validate, and a refused value raises
    ParamError (a ConfigError) naming the field."""

    max_size: Annotated[int, Field(ge=MIN_SIDE, description=(
        "long side of the result in pixels; a smaller photo is not upscaled")), Option("--size", "N")] = 512
    iterations: Annotated[int, Field(ge=1, description=(
        "most optimiser iterations per scale: the cap of the coarsest one (see budget and stop_tolerance)")),
        Option(metavar="N")] = 400
    scales: Annotated[int, Field(ge=1, le=6, description=(
        "coarse-to-fine scales (fewer run when the photo is small)")), Option(metavar="N")] = 3
    min_scale_size: Annotated[int, Field(ge=MIN_SIDE, description=(
        "smallest long side of a coarser scale in pixels; smaller scales are left out")), Option(metavar="N")] = 128
    content_weight: Annotated[float, Field(ge=0, description=(
        "weight of the content loss: higher keeps more of the photo")), Option(metavar="W")] = 1.0
    style_weight: Annotated[float, Field(ge=0, description=(
        "raw weight of the style loss, instead of strength: higher gives more paint; unset, it comes from "
        "strength (adapt_strength still applies)")), Option(metavar="W")] = style_weight_for(DEFAULT_STRENGTH)
    tv_weight: Annotated[float, Field(ge=0, description=(
        "weight of the total-variation loss: higher smooths pixel noise")), Option(metavar="W")] = 5.0
    content_layer: Annotated[str, Field(min_length=1, description=(
        "the backbone layer whose features the result keeps from the photo")),
        Option(metavar="LAYER")] = DEFAULT_CONTENT_LAYER
    style_layers: Annotated[LayerWeights, Field(description=(
        "backbone layers whose feature correlations make the style, with their relative weights")),
        Option(metavar="LAYER=W,...", parse=parse_layer_weights)] = Field(
        default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    optimizer: Annotated[Optimizer, Field(description=(
        "L-BFGS needs far fewer iterations; adam is there for comparison"))] = "lbfgs"
    # auto: optax on the device under JAX on an accelerator, else the float32 L-BFGS in numpy on the host
    # (lbfgs32.py: a tenth of the overhead of scipy's L-BFGS-B, which at 512 px took 0.28 s an iteration).
    lbfgs_impl: Annotated[LbfgsImpl, Field(description=(
        "L-BFGS on the device (optax, JAX only) or on the host (numpy: float32, scipy: L-BFGS-B); "
        "auto: optax under JAX on a GPU, else numpy"))] = "auto"
    # bf16 where oneDNN has bf16 kernels: 3.5x faster with AMX, 1.5-1.8x with AVX-512 BF16 (precision.py);
    # float32 elsewhere (emulated bf16 is slower) and on the on-device loop (GPU speed not yet measured).
    precision: Annotated[Precision, Field(description=(
        "arithmetic of the loss: auto is bf16 on a CPU with AMX or AVX-512 BF16 under TensorFlow, else "
        "float32; "
        "tf32 is for the on-device loop only"))] = "auto"
    learning_rate: Annotated[float, Field(gt=0, description="step size of the adam optimiser"),
                             Option(metavar="R")] = 2.0
    init: Annotated[Init, Field(description=(
        "start from the photo, from seeded noise or from the style image"))] = "content"
    seed: Annotated[int, Field(description=(
        "random seed: identical input and seed give identical output on a CPU")), Option(metavar="N")] = 0
    style_scale: Annotated[float, Field(gt=0, description=(
        "style image size relative to the result: smaller gives finer brush strokes")), Option(metavar="S")] = 1.0
    preserve_colors: Annotated[ColorMode, Field(description=(
        "keep the photo's colours: luminance transfer or histogram matching")),
        Option(const="luminance")] = "none"
    on_too_large: Annotated[TooLarge, Field(description=(
        "an image that would not fit in memory is refused, or downsized until it fits"))] = "refuse"
    log_every: Annotated[int, Field(ge=1, description=(
        "a progress line and a loss-history entry every N iterations")), Option(metavar="N")] = 50
    save_every: Annotated[int, Field(ge=0, description=(
        "also write the image every N iterations, as OUT.iterNNNN.EXT beside the result; 0 is off")), Option(metavar="N")] = 0
    # Above it the loss and gradient are computed tile by tile (exact): the budget bounds memory, not size.
    memory_budget: Annotated[ByteSize, Field(description=(
        "memory a job may use beyond the loaded model, e.g. 8GB or 512MiB (K, M, G, T alone are 1024-based); "
        "above it the loss is computed tile by tile (exact); 0: 90% of what is free when a job starts")),
        Option(metavar="SIZE")] = 0
    tiling: Annotated[Tiling, Field(description=(
        "auto tiles only when an image would not fit in the memory budget; always and never force it"))] = "auto"
    tile_size: Annotated[TileSize, Field(description=(
        "pixels of a tile's core, a multiple of 16 of at least 32; 0: the largest that fits the budget")),
        Option(metavar="N")] = 0
    stop_tolerance: Annotated[float, Field(ge=0, lt=1, description=(
        "a scale stops once the loss fell by less than this fraction over stop_window iterations; "
        "0 runs every scale to its cap")), Option(metavar="F")] = 0.02
    stop_window: Annotated[int, Field(ge=1, description=(
        "iterations over which stop_tolerance is measured")), Option(metavar="N")] = 10
    budget: Annotated[Budget, Field(description=(
        "iteration caps per scale: even gives every scale `iterations`; coarse gives the coarsest "
        "`iterations` and each finer scale half the one before"))] = "coarse"
    # adapt.py: the photo's own style error against the painting's, measured once per pair.
    adapt_strength: Annotated[bool, Field(description=(
        "damp the style weight for a photo whose own style statistics are far from the painting's "
        "(there it drowned the subject); the sidecar says by how much"))] = True

    _one_line = model_validator(mode="wrap")(classmethod(_one_line))


@schema(frozen=True, config=_SCHEMA)
class EngineChoices:
    """The engine settings that are not transfer parameters: the feature network, its weights, the strength."""

    backbone: Annotated[Backbone, Field(description=(
        "feature network: auto is VGG19 if its weights are at hand or can be fetched, else vgg16-hed"))] = "auto"
    weights: Annotated[Path | None, Field(description=(
        "a Keras VGG19 notop weights file, for offline servers; unset: the Keras cache"),
        examples=["/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"]), Option(metavar="FILE")] = None
    strength: Annotated[Strength, Field(description=(
        "how much style: a number from 0 (a hint) to 1 (style everywhere) or subtle, balanced, strong "
        "(0.15, 0.3, 0.5); sets style_weight = 3 * 100**strength")),
        Option(metavar="S", parse=parse_strength)] = "balanced"

    _one_line = model_validator(mode="wrap")(classmethod(_one_line))


def transfer_fields() -> dict[str, Any]:
    """{name: pydantic FieldInfo} of every transfer parameter, in the order of TransferParams."""
    return dict(TransferParams.__pydantic_fields__)


def engine_fields() -> dict[str, Any]:
    """{name: FieldInfo} of the whole `engine` section: the run choices, then every transfer parameter."""
    return {**EngineChoices.__pydantic_fields__, **TransferParams.__pydantic_fields__}


def option_of(info: Any) -> Option:
    """The stylize-option spelling riding in a field's metadata (an empty Option if it has none)."""
    return next((m for m in info.metadata if isinstance(m, Option)), Option())


def flag_of(name: str) -> str:
    """The stylize option of an engine parameter: its own flag, else --name-with-dashes."""
    return option_of(engine_fields()[name]).flag or "--" + name.replace("_", "-")


def shown_default(name: str, info: Any) -> object:
    """A parameter's default as a person writes it (style layers as text; style_weight: from strength)."""
    if name == "style_weight":
        return None
    value = info.get_default(call_default_factory=True)
    return layer_weights_text(value) if name == "style_layers" else value
