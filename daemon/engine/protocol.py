"""What the job pipeline and the worker need of an engine: the `Engine` protocol, met by the Keras engine
(transfer.StyleTransfer) and by the dry-run engine (dry_run.DryRunEngine)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # numpy stays out of modules that only name the protocol
    import numpy as np

    from daemon.engine.params import Progress, StyleImage, TransferParams, TransferResult
    from daemon.engine.weights import WeightsSource

# What the dry-run engine answers to backend(): the sidecar's keras_backend then says that no model ran.
DRY_RUN_BACKEND = "dry-run"


@runtime_checkable
class Engine(Protocol):
    """A loaded engine: built once per worker, then asked to stylise one photo per job."""

    source: WeightsSource  # the backbone and its weights file, recorded in every sidecar

    def backend(self) -> str:
        """The Keras backend computing the loss ("tensorflow", "jax"), or DRY_RUN_BACKEND."""
        ...

    def device(self) -> str:
        """The device it computes on, e.g. "cpu" or "gpu:0"."""
        ...

    def stylize(
        self,
        content: np.ndarray,
        styles: Sequence[StyleImage],
        params: TransferParams,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_snapshot: Callable[[int, np.ndarray], None] | None = None,
    ) -> TransferResult:
        """Stylise `content` (HxWx3 float32 0..255) with the blended `styles`; raises StopRequested when
        should_stop() turns true, BadInputError for an unusable photo."""
        ...
