"""The engine's typed records of one run: the style images in, progress and losses along the way, the result out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from daemon.engine.adapt import Adaptation

if TYPE_CHECKING:  # only annotations use numpy: `style-daemon --help` starts without importing it
    import numpy as np

    from daemon.engine.plan import RunPlan


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
    plan: RunPlan | None = None  # what the engine planned before it began (plan.py); None: no plan made
