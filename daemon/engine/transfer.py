"""The style transfer itself: coarse-to-fine optimisation of the image against VGG features.

A run is planned once (plan.py: every scale's size, cap, loop, optimiser, arithmetic, tiling and
budget), then executed scale by scale: initialise the image, make the targets and optimise
(scale_loops.py), report."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from daemon.engine import adapt, gradient, style_targets
from daemon.engine.color import keep_content_colors, match_color_histogram
from daemon.engine.device_scale import DeviceScales
from daemon.engine.eta import CostModel
from daemon.engine.feature_cache import FeatureCache
from daemon.engine.optimize import OptimizeOutcome
from daemon.engine.params import LossRecord, ScaleReport, StyleImage, TransferParams, TransferResult
from daemon.engine.plan import RunPlan, ScalePlan, make_plan
from daemon.engine.progress import Clock, Hooks, ProgressCallback, ScaleProgress, SnapshotCallback, StopCheck
from daemon.engine.scale_loops import ScaleInputs, run_scale
from daemon.engine.stopping import StopRule
from daemon.engine.weights import WeightsSource, build_model
from daemon.errors import ConfigError, StopRequested, is_out_of_memory
from daemon.media.images import resize_long_side, resize_to

log = logging.getLogger(__name__)

__all__ = ["StyleTransfer", "ProgressCallback", "SnapshotCallback", "StopCheck"]


class StyleTransfer:
    """A loaded backbone that stylises images; build once, call stylize() for every job."""

    def __init__(self, source: WeightsSource) -> None:
        if gradient.backend_name() == "jax":
            gradient.enable_compilation_cache()  # before anything compiles, or JAX ignores it
        self.source = source
        self.model = build_model(source)
        self.features = FeatureCache(self.model, source.backbone)  # feature models and compiled losses
        self.devices = DeviceScales(self.model)  # the on-device loops (JAX)
        self._cost_model = CostModel()  # how step time grows with size here, learned job after job (ETA)

    def backend(self) -> str:
        """The Keras backend computing the loss."""
        return gradient.backend_name()

    def device(self) -> str:
        """The device it computes on."""
        return gradient.device_name()

    def plan(self, content: np.ndarray, params: TransferParams, long_side: int | None = None) -> RunPlan:
        """The plan stylize() would execute for `content` (raises ResourceError if it cannot fit)."""
        return make_plan(self.model, content.shape[0], content.shape[1], params, long_side)

    def stylize(self, content: np.ndarray, styles: Sequence[StyleImage], params: TransferParams,
                on_progress: ProgressCallback | None = None, should_stop: StopCheck | None = None,
                on_snapshot: SnapshotCallback | None = None) -> TransferResult:
        """Stylise `content` (HxWx3 float 0..255) with the blended `styles`; raises StopRequested.

        on_snapshot(iteration, image) receives the image every params.save_every iterations."""
        if not styles:
            raise ConfigError("a style set needs at least one style image")
        plan = self.plan(content, params)
        hooks = Hooks(on_progress, should_stop, on_snapshot)
        styles = _prepare_styles(styles, content, params)  # once: the probe, the run and a retry share them
        adaptation = self._adaptation(content, styles, params) if params.adapt_strength else None
        if adaptation is not None:
            params = replace(params, style_weight=adaptation.style_weight)
        try:
            result = self._run(plan, content, styles, params, hooks)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            smaller = int(plan.long_side * 0.7)
            log.warning("out of memory at %d px; retrying once at %d px", plan.long_side, smaller)
            result = self._run(self.plan(content, params, smaller), content, styles, params, hooks)
        return replace(result, adaptation=adaptation)

    def _run(self, plan: RunPlan, content: np.ndarray, styles: Sequence[StyleImage], params: TransferParams,
             hooks: Hooks) -> TransferResult:
        """Execute `plan` scale by scale: initialise, make the targets and optimise, report."""
        gradient.seed_everything(params.seed)
        clock = Clock(plan, self._cost_model)
        history: list[LossRecord] = []
        reports: list[ScaleReport] = []
        image = None
        for index, scale in enumerate(plan.scales):
            began = time.perf_counter()
            content_s = resize_to(content, scale.size)
            image = _initial(image, content_s, styles, params, scale.size)
            rule = StopRule(params.stop_tolerance, params.stop_window, scale.cap)
            progress = ScaleProgress(index, plan, params, clock, hooks, history, rule)
            outcome, tiles = run_scale(self.features, self.devices, scale, ScaleInputs(content_s, styles, image, params),
                                       progress)
            image = outcome.image[0]
            if outcome.stopped and not rule.converged:
                raise StopRequested("stopped at a shutdown request; the job will be re-queued")
            reports.append(_report(scale, outcome, tiles, rule, time.perf_counter() - began))
            log.debug("scale %d/%d %dx%d: %s", index + 1, len(plan.scales), *scale.size, reports[-1].stop_detail)
        if params.preserve_colors == "luminance":
            image = keep_content_colors(image, resize_to(content, plan.scales[-1].size))
        return _result(plan, image, history, reports, clock.elapsed())

    def _adaptation(self, content: np.ndarray, styles: Sequence[StyleImage],
                    params: TransferParams) -> adapt.Adaptation:
        """The pair-adaptive style weight: the photo's own style error against the (prepared) styles,
        measured at a small fixed size."""
        # A fixed size whatever the job's: the error grows as images shrink (astronaut/Shipwreck, VGG19:
        # 3.3 at 256 px, 5 at 128), and the pair, not the job size, should decide the weight.
        photo = resize_long_side(content, min(adapt.REFERENCE_SIDE, max(content.shape[:2])))
        # Unit weights: one compiled probe whatever the job's weights (only the unweighted style term is read).
        probe = replace(params, content_weight=1.0, style_weight=1.0, tv_weight=1.0)
        _, style, _ = self.evaluate(photo, photo, styles, probe)
        adaptation = adapt.adapt(params.style_weight, style)  # the style term is a mean over its layers
        if adaptation.factor < 1:
            log.info("style weight %.3g -> %.3g for this pair: the photo starts far from the painting's style "
                     "(relative error %.2f, damped above %.2f)", params.style_weight, adaptation.style_weight,
                     adaptation.start_style_error, adapt.REFERENCE_ERROR)
        return adaptation

    def evaluate(self, image: np.ndarray, content: np.ndarray, styles: Sequence[StyleImage],
                 params: TransferParams) -> tuple[float, float, float]:
        """(content, style, tv) loss terms of `image` against `content` and `styles`, at image's size."""
        feature_model, spec = self.features.model_for(params)
        size = (image.shape[1], image.shape[0])
        targets = style_targets.whole_targets(self.features, feature_model, spec, resize_to(content, size),
                                              list(styles), size, params)
        _, _, parts = self.features.value_and_grad(feature_model, spec, targets)(image[None].astype(np.float32))
        return parts


def _report(scale: ScalePlan, outcome: OptimizeOutcome, tiles: int, rule: StopRule, seconds: float) -> ScaleReport:
    """What one scale did (the sidecar's result.scales entry)."""
    decision = rule.decision(outcome.iterations)
    return ScaleReport(size=scale.size, iterations=outcome.iterations, evaluations=outcome.evaluations,
                       seconds=seconds, stop_reason=decision.reason, stop_detail=decision.detail, tiles=tiles,
                       tile_size=scale.core, halo=scale.halo, optimizer=scale.optimizer, precision=scale.precision)


def _result(plan: RunPlan, image: np.ndarray, history: list[LossRecord], reports: list[ScaleReport],
            seconds: float) -> TransferResult:
    final = history[-1] if history else LossRecord(0, len(plan.scales), 0.0, 0.0, 0.0, 0.0)
    return TransferResult(
        rgb=image, iterations=sum(r.iterations for r in reports), evaluations=sum(r.evaluations for r in reports),
        seconds=seconds, size=plan.scales[-1].size, losses=final, history=history,
        downsized_from=plan.downsized_from, scale_sizes=plan.sizes, scale_reports=tuple(reports), plan=plan,
    )


def _prepare_styles(styles: Sequence[StyleImage], content: np.ndarray, params: TransferParams) -> list[StyleImage]:
    """The style images as the run uses them: colour-matched to the photo with preserve_colors: histogram."""
    if params.preserve_colors != "histogram":
        return list(styles)
    return [replace(s, rgb=match_color_histogram(s.rgb, content)) for s in styles]


def _initial(previous: np.ndarray | None, content_s: np.ndarray, styles: Sequence[StyleImage],
             params: TransferParams, size: tuple[int, int]) -> np.ndarray:
    """The image a scale starts from: the scale below upsampled, else params.init at this size."""
    if previous is not None:
        return resize_to(previous, size)
    if params.init == "content":
        return content_s.copy()
    if params.init == "style":
        return resize_to(styles[0].rgb, size)
    rng = np.random.default_rng(params.seed)
    return rng.uniform(0, 255, size=content_s.shape).astype(np.float32)
