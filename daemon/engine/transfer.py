"""The style transfer itself: coarse-to-fine optimisation of the image against VGG features."""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from daemon.engine import adapt, gradient, memory, precision, schedule, tiled_loss, tile_plan
from daemon.engine.color import keep_content_colors, match_color_histogram
from daemon.engine.losses import LossSpec, gram_numpy, loss_terms, preprocess, weighted_total
from daemon.engine.device_scale import DeviceScales, feature_layers
from daemon.engine.optimize import adam, lbfgs
from daemon.engine.eta import CostModel, EtaEstimator
from daemon.engine.params import (MIN_SIDE, LossRecord, Progress, ScaleReport, StyleImage, TransferParams,
                                  TransferResult)
from daemon.engine.stopping import StopRule
from daemon.engine.weights import WeightsSource, build_model
from daemon.errors import ConfigError, ResourceError, StopRequested, is_out_of_memory
from daemon.media.images import resize_long_side, resize_to

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
SnapshotCallback = Callable[[int, np.ndarray], None]
StopCheck = Callable[[], bool]


class StyleTransfer:
    """A loaded backbone that stylises images; build once, call stylize() for every job."""

    def __init__(self, source: WeightsSource) -> None:
        if gradient.backend_name() == "jax":
            gradient.enable_compilation_cache()  # before anything compiles, or JAX ignores it
        self.source = source
        self.model = build_model(source)
        self.convs_per_block = _convs_per_block(self.model)
        self._compiled: dict[tuple, Callable] = {}
        self._feature_models: dict[tuple, tuple] = {}
        self._cost_model = CostModel()  # how step time grows with size here, learned job after job (ETA)
        self._device = DeviceScales(self.model)
        self._warned_no_optax = False
        self._bf16_model = None

    def backend(self) -> str:
        """The Keras backend computing the loss."""
        return gradient.backend_name()

    def device(self) -> str:
        """The device it computes on."""
        return gradient.device_name()

    def stylize(
        self,
        content: np.ndarray,
        styles: Sequence[StyleImage],
        params: TransferParams,
        on_progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
        on_snapshot: SnapshotCallback | None = None,
    ) -> TransferResult:
        """Stylise `content` (HxWx3 float 0..255) with the blended `styles`; raises StopRequested.

        on_snapshot(iteration, image) receives the image every params.save_every iterations."""
        if not styles:
            raise ConfigError("a style set needs at least one style image")
        long_side = self._fitting_long_side(content, params)
        hooks = _Hooks(on_progress, should_stop, on_snapshot)
        styles = _prepare_styles(styles, content, params)  # once: the probe, the run and a retry share them
        adaptation = self._adaptation(content, styles, params) if params.adapt_strength else None
        if adaptation is not None:
            params = replace(params, style_weight=adaptation.style_weight)
        try:
            result = self._run(content, styles, params, long_side, hooks)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            smaller = int(long_side * 0.7)
            log.warning("out of memory at %d px; retrying once at %d px", long_side, smaller)
            result = self._run(content, styles, params, smaller, hooks)
        return replace(result, adaptation=adaptation)

    def _adaptation(self, content: np.ndarray, styles: Sequence[StyleImage],
                    params: TransferParams) -> adapt.Adaptation:
        """The pair-adaptive style weight: the photo's own style error against the (prepared) styles,
        measured at a small fixed size."""
        # A fixed size whatever the job's: the error grows as images shrink (astronaut/Shipwreck, VGG19:
        # 3.3 at 256 px, 5 at 128), and the pair, not the job size, should decide the weight.
        side = min(adapt.REFERENCE_SIDE, max(content.shape[:2]))
        photo = resize_long_side(content, side)
        # Unit weights: one compiled probe whatever the job's weights (only the unweighted style term is read).
        probe = replace(params, content_weight=1.0, style_weight=1.0, tv_weight=1.0)
        _, style, _ = self.evaluate(photo, photo, styles, probe)
        adaptation = adapt.adapt(params.style_weight, style)  # the style term is a mean over its layers
        if adaptation.factor < 1:
            log.info("style weight %.3g -> %.3g for this pair: the photo starts far from the painting's style "
                     "(relative error %.2f, damped above %.2f)", params.style_weight, adaptation.style_weight,
                     adaptation.start_style_error, adapt.REFERENCE_ERROR)
        return adaptation

    def evaluate(
        self, image: np.ndarray, content: np.ndarray, styles: Sequence[StyleImage], params: TransferParams
    ) -> tuple[float, float, float]:
        """(content, style, tv) loss terms of `image` against `content` and `styles`, at image's size."""
        feature_model, spec = self._feature_model(params)
        size = (image.shape[1], image.shape[0])
        targets = self._targets(feature_model, spec, resize_to(content, size), list(styles), size, params)
        _, _, parts = self._value_and_grad(feature_model, spec, targets)(image[None].astype(np.float32))
        return parts

    def _fitting_long_side(self, content: np.ndarray, params: TransferParams) -> int:
        height, width = content.shape[:2]
        long_side = min(params.max_size, max(height, width))
        scale = long_side / max(height, width)
        w, h = round(width * scale), round(height * scale)
        net = self._network(params)
        budget = _budget(params)
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

    def _network(self, params: TransferParams) -> tile_plan.Network:
        deepest = self._deepest_layer(params)
        content = self.model.get_layer(params.content_layer)
        level = tiled_loss.pooling_grid(self.model, params.content_layer)
        return tile_plan.Network(self.convs_per_block, self._deepest_block(params),
                              tiled_loss.safe_halo(self.model, deepest), tiled_loss.pooling_grid(self.model, deepest),
                              content_floats=content.filters / level**2)

    def _deepest_layer(self, params: TransferParams) -> str:
        names = [layer.name for layer in self.model.layers]
        return max(feature_layers(params), key=names.index)

    def _deepest_block(self, params: TransferParams) -> int:
        names = [params.content_layer, *params.style_layers]
        return max(int(n.split("_")[0].removeprefix("block")) for n in names if n.startswith("block"))

    def _run(self, content, styles, params, long_side, hooks: "_Hooks") -> TransferResult:
        gradient.seed_everything(params.seed)
        sizes = _scale_sizes(content.shape, long_side, params)
        caps = schedule.scale_iteration_caps(sizes, params)
        net, budget = self._network(params), _budget(params)
        plans = [tile_plan.plan_scale(w, h, params, net, budget) for w, h in sizes]
        on_device = self._on_device(params)
        arithmetic = self._arithmetic(params, on_device)
        # Tiled scales compute in float32: after bf16 scales below them, each pixel costs more.
        slower = precision.BF16_SPEEDUP if arithmetic == "bf16" and not on_device else 1.0
        factors = [_cost_factor(p, w, h) * (slower if p.tiled else 1.0) for p, (w, h) in zip(plans, sizes)]
        clock = _Clock(sizes, caps, self._cost_model, factors)
        history: list[LossRecord] = []
        reports: list[ScaleReport] = []
        image = None
        evaluations = iterations = 0
        start = time.perf_counter()
        for index, (size, cap, plan) in enumerate(zip(sizes, caps, plans)):
            began = time.perf_counter()
            content_s = resize_to(content, size)
            image = _initial(image, content_s, styles, params, size)
            rule = StopRule(params.stop_tolerance, params.stop_window, cap)
            clock.begin_scale(index)
            on_step = self._step_reporter(index, len(sizes), size, params, clock, history, hooks, rule)
            count = 0
            # The host loop's feature model carries the arithmetic; the device loop's plan carries its
            # own, and tiled scales stay float32 (their memory plan and exactness assume it).
            host = arithmetic if not (plan.tiled or on_device) else "float32"
            feature_model, spec = self._feature_model(params, host)
            if plan.tiled:
                tiles = _TileReporter(on_step, index, len(sizes), size, clock, hooks, history[-1] if history else None)
                log.info("%dx%d: tiled evaluation (%d px cores, %d px halo, %s) within %.1f GB",
                         size[0], size[1], plan.core, plan.halo, plan.optimizer, budget / 1e9)
                outcome, count = self._run_tiled(plan, feature_model, spec, content_s, styles, size, params,
                                                 image, tiles, cap)
            elif on_device:
                targets = self._targets(feature_model, spec, content_s, styles, size, params)
                outcome = self._device.run(replace(params, iterations=cap, precision=arithmetic), spec, targets,
                                           image, on_step, clock.done)
            else:
                targets = self._targets(feature_model, spec, content_s, styles, size, params)
                step = self._value_and_grad(feature_model, spec, targets)
                run = _optimizer_named(_optimizer_name(params, on_device=False), params, HOST_CORRECTIONS)
                outcome = run(step, image[None], cap, on_step)
            image = outcome.image[0]
            evaluations += outcome.evaluations
            iterations += outcome.iterations
            if outcome.stopped and not rule.converged:
                raise StopRequested("stopped at a shutdown request; the job will be re-queued")
            decision = rule.decision(outcome.iterations)
            reports.append(ScaleReport(
                size=size, iterations=outcome.iterations, evaluations=outcome.evaluations,
                seconds=time.perf_counter() - began, stop_reason=decision.reason, stop_detail=decision.detail,
                tiles=count, tile_size=plan.core, halo=plan.halo,
                optimizer=plan.optimizer if plan.tiled else _optimizer_name(params, on_device),
                precision=host if not on_device else arithmetic))
            log.debug("scale %d/%d %dx%d: %s", index + 1, len(sizes), *size, decision.detail)
        if params.preserve_colors == "luminance":
            image = keep_content_colors(image, resize_to(content, sizes[-1]))
        final = history[-1] if history else LossRecord(0, len(sizes), 0.0, 0.0, 0.0, 0.0)
        original = (content.shape[1], content.shape[0])
        downsized = original if long_side < min(params.max_size, max(original)) else None
        return TransferResult(
            rgb=image, iterations=iterations, evaluations=evaluations,
            seconds=time.perf_counter() - start, size=sizes[-1], losses=final,
            history=history, downsized_from=downsized, scale_sizes=tuple(sizes), scale_reports=tuple(reports),
        )

    def _run_tiled(self, plan: tile_plan.ScalePlan, feature_model, spec: LossSpec, content_s: np.ndarray, styles,
                   size: tuple[int, int], params: TransferParams, image: np.ndarray, tiles: "_TileReporter",
                   cap: int):
        """One scale with the loss and gradient computed tile by tile: (outcome, tiles per pass)."""
        passes = self._tiled_passes(feature_model, spec, params)
        content_tiles = self._tiled_image(size, plan, params)
        content_target, _ = tiled_loss.content_features_and_grams(passes, content_s, content_tiles, tiles.on_tile)
        style_targets = self._tiled_style_grams(passes, styles, size, plan, params, tiles.on_tile)
        loss = tiled_loss.TiledLoss(passes, content_tiles, content_target, style_targets, tiles.on_tile)
        outcome = _optimizer_named(plan.optimizer, params, tile_plan.FLOAT32_CORRECTIONS)(loss, image[None], cap,
                                                                                       tiles.on_step)
        return outcome, len(content_tiles.layout.tiles)

    def _tiled_passes(self, feature_model, spec: LossSpec, params: TransferParams) -> tiled_loss.TiledPasses:
        key = ("tiled", id(feature_model), spec)
        if key not in self._compiled:
            levels = tiled_loss.Levels.of(self.model, feature_layers(params))
            self._compiled[key] = tiled_loss.TiledPasses(feature_model, spec, levels)
        return self._compiled[key]

    def _tiled_image(self, size: tuple[int, int], plan: tile_plan.ScalePlan, params: TransferParams) -> tiled_loss.TiledImage:
        width, height = size
        grid = tiled_loss.pooling_grid(self.model, self._deepest_layer(params))
        layout = tiled_loss.layout(height, width, plan.core, plan.halo, grid)
        return tiled_loss.TiledImage(height, width, layout, tiled_loss.Levels.of(self.model, feature_layers(params)))

    def _tiled_style_grams(self, passes: tiled_loss.TiledPasses, styles, size, plan, params,
                           on_tile: tiled_loss.TileCallback | None) -> list[np.ndarray]:
        """The blended style Gram targets, each style image run tile by tile at its own size."""
        blend = np.array([s.weight for s in styles], dtype=np.float64)
        blend = blend / blend.sum()
        grams = None
        for style, share in zip(styles, blend):
            style_long = _style_size(style.rgb, round(max(size) * params.style_scale))
            rgb = resize_long_side(style.rgb, style_long)
            layout = self._tiled_image((rgb.shape[1], rgb.shape[0]), plan, params)
            _, layer_grams = tiled_loss.content_features_and_grams(passes, rgb, layout, on_tile)
            layer_grams = [g.astype(np.float64) * share for g in layer_grams]
            grams = layer_grams if grams is None else [a + b for a, b in zip(grams, layer_grams)]
        return [g.astype(np.float32) for g in grams]

    def _on_device(self, params: TransferParams) -> bool:
        """Whether this job runs the on-device L-BFGS loop (JAX) rather than a host loop."""
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
            if not self._warned_no_optax:
                log.warning("optax is not installed: L-BFGS runs on the host (scipy); "
                            "pip install 'style-daemon[gpu]' for the on-device loop")
                self._warned_no_optax = True
            device = False
        return device

    def _arithmetic(self, params: TransferParams, on_device: bool) -> str:
        """The precision this job's untiled scales compute in (auto resolved for this machine)."""
        if on_device:
            return precision.device_precision(params.precision)
        return precision.host_precision(params.precision, gradient.backend_name(), gradient.device_name(),
                                        precision.cpu_flags())

    def _feature_model(self, params: TransferParams, arithmetic: str = "float32"):
        key = (params.content_layer, tuple(params.style_layers.items()), params.content_weight,
               params.style_weight, params.tv_weight, arithmetic)
        if key not in self._feature_models:
            base = self._bf16() if arithmetic == "bf16" else self.model
            self._feature_models[key] = self._build_feature_model(params, base)
        return self._feature_models[key]

    def _bf16(self):
        """The backbone under Keras' mixed_bfloat16 policy (float32 weights, bf16 arithmetic), built once."""
        if self._bf16_model is None:
            import keras

            first = next(layer.name for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D))

            def mixed(layer):
                config = layer.get_config()
                # The image enters the first convolution in float32: rounded to bf16 (a level's spacing
                # near 255) it would swallow the optimiser's small steps; that layer is cheap (3 channels).
                if "dtype" in config and layer.name != first and not isinstance(layer, keras.layers.InputLayer):
                    config["dtype"] = "mixed_bfloat16"
                return layer.__class__.from_config(config)

            clone = keras.models.clone_model(self.model, clone_function=mixed)
            clone.set_weights(self.model.get_weights())
            self._bf16_model = clone
        return self._bf16_model

    def _build_feature_model(self, params: TransferParams, base):
        import keras

        layers = feature_layers(params)
        valid = [layer.name for layer in self.model.layers if "conv" in layer.name]
        unknown = [n for n in layers if n not in valid]
        if unknown:
            raise ConfigError(
                f"unknown layer(s) {', '.join(unknown)} for {self.source.backbone}; "
                f"choose from {', '.join(valid)}"
            )
        outputs = [base.get_layer(n).output for n in layers]
        feature_model = keras.Model(base.inputs, outputs)
        total_weight = sum(params.style_layers.values()) or 1.0
        spec = LossSpec(
            content_index=0,
            style_indices=tuple(layers.index(n) for n in params.style_layers),
            style_layer_weights=tuple(w / total_weight for w in params.style_layers.values()),
            content_weight=params.content_weight,
            style_weight=params.style_weight,
            tv_weight=params.tv_weight,
        )
        return feature_model, spec

    def _targets(self, feature_model, spec: LossSpec, content_s, styles, size, params) -> list[np.ndarray]:
        content_features = self._features(feature_model, content_s)[spec.content_index]
        blend = np.array([s.weight for s in styles], dtype=np.float64)
        blend = blend / blend.sum()
        grams = None
        for style, share in zip(styles, blend):
            style_long = _style_size(style.rgb, round(max(size) * params.style_scale))
            feats = self._features(feature_model, resize_long_side(style.rgb, style_long))
            layer_grams = [gram_numpy(feats[i]).astype(np.float64) * share for i in spec.style_indices]
            grams = layer_grams if grams is None else [a + b for a, b in zip(grams, layer_grams)]
        return [content_features, *[g.astype(np.float32) for g in grams]]

    def _features(self, feature_model, rgb: np.ndarray) -> list[np.ndarray]:
        from keras import ops

        outputs = feature_model(preprocess(ops.convert_to_tensor(rgb[None].astype(np.float32))))
        return [np.asarray(ops.convert_to_numpy(ops.cast(o, "float32"))) for o in outputs]

    def _value_and_grad(self, feature_model, spec: LossSpec, targets) -> gradient.ValueAndGrad:
        # One compiled function per feature model and loss spec, reused by every job and scale.
        key = (id(feature_model), spec)
        compiled = self._compiled.get(key)
        if compiled is None:
            def loss_fn(x, targets, weights):
                from keras import ops

                # float32 losses whatever the arithmetic of the convolutions (bf16 Grams lose the style's detail)
                features = [ops.cast(f, "float32")
                            for f in feature_model.stateless_call(weights, [], preprocess(x))[0]]
                content, style, tv = loss_terms(features, x, targets[0], targets[1:], spec)
                return weighted_total(content, style, tv, spec), (content, style, tv)

            weights = [v.value for v in feature_model.trainable_variables]
            compiled = gradient.compile_value_and_grad(loss_fn, weights)
            self._compiled[key] = compiled
        return compiled(targets)

    def _step_reporter(self, index, scales, size, params, clock, history, hooks: "_Hooks", rule: StopRule):
        def on_step(iteration: int, total: float, parts: tuple[float, float, float], current) -> bool:
            clock.tick(index)
            converged = rule.feed(total)
            if iteration % params.log_every == 0 or iteration == rule.cap or converged:
                history.append(LossRecord(iteration, index + 1, total, *parts))
            if hooks.on_snapshot is not None and params.save_every and clock.done % params.save_every == 0:
                hooks.on_snapshot(clock.done, current()[0])
            if hooks.on_progress is not None:
                hooks.on_progress(Progress(
                    iteration=clock.done, total_iterations=clock.total, scale=index + 1, scales=scales,
                    size=size, loss=total, content_loss=parts[0], style_loss=parts[1],
                    tv_loss=parts[2], elapsed=clock.elapsed(), eta=clock.eta(),
                ))
            if hooks.should_stop and hooks.should_stop():
                rule.converged = False  # a shutdown request wins: the job is re-queued, not finished
                return False
            return not converged

        return on_step


@dataclass(frozen=True)
class _Hooks:
    """The caller's callbacks for one stylize() call."""

    on_progress: ProgressCallback | None
    should_stop: StopCheck | None
    on_snapshot: SnapshotCallback | None


class _Clock:
    """Counts iterations; the time left comes from an EtaEstimator (compile time kept out of the rate).

    `done` is the position in the plan (total: the sum of the caps): the next scale starts counting
    where an earlier one's cap ends, however early that scale stopped."""

    def __init__(self, sizes: list[tuple[int, int]], caps: list[int], model: CostModel,
                 factors: list[float] | None = None) -> None:
        self.caps = caps
        self.total = sum(caps)
        self.done = 0
        self.start = time.perf_counter()
        # A tiled scale computes more than its pixels (halos, a second forward pass): the estimator
        # predicts it from the scales below by the pixels it really computes.
        factors = factors or [1.0] * len(sizes)
        self.estimator = EtaEstimator([round(w * h * f) for (w, h), f in zip(sizes, factors)], caps, model=model)

    def begin_scale(self, index: int) -> None:
        """Skip what earlier scales left unused of their caps."""
        self.done = sum(self.caps[:index])
        self.estimator.begin(index)

    def tick(self, index: int) -> None:
        self.done += 1
        self.estimator.tick(index)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self) -> float | None:
        return self.estimator.eta()

    def eta_now(self) -> float | None:
        """The time left counted down within an iteration (tile reports come between iterations)."""
        return self.estimator.eta_now()


class _TileReporter:
    """Progress between iterations of a tiled scale: one report per tile, so a long iteration still
    shows the service (and its watchdog) that work goes on."""

    def __init__(self, on_step, index: int, scales: int, size: tuple[int, int], clock: "_Clock",
                 hooks: _Hooks, last: LossRecord | None) -> None:
        self._on_step = on_step
        self._index, self._scales, self._size = index, scales, size
        self._clock, self._hooks = clock, hooks
        # Until this scale's first iteration, tiles report the loss the scale below ended with.
        self._last = (last.loss, (last.content_loss, last.style_loss, last.tv_loss)) if last else (0.0, (0.0, 0.0, 0.0))

    def on_step(self, iteration: int, total: float, parts: tuple[float, float, float], current) -> bool:
        self._last = (total, parts)
        return self._on_step(iteration, total, parts, current)

    def on_tile(self, done: int, count: int) -> None:
        # A print-size iteration takes minutes: a stop request is honoured between tiles, or the
        # service manager's stop timeout would kill the worker mid-iteration.
        if self._hooks.should_stop and self._hooks.should_stop():
            raise StopRequested("stopped at a shutdown request; the job will be re-queued")
        if self._hooks.on_progress is None:
            return
        total, parts = self._last
        self._hooks.on_progress(Progress(
            iteration=self._clock.done, total_iterations=self._clock.total, scale=self._index + 1,
            scales=self._scales, size=self._size, loss=total, content_loss=parts[0], style_loss=parts[1],
            tv_loss=parts[2], elapsed=self._clock.elapsed(), eta=self._clock.eta_now(), tile=done, tiles=count,
        ))


def _optimizer_named(name: str, params: TransferParams, corrections: int):
    """The host optimiser called `name` (adam, lbfgs-float32 with `corrections` pairs, lbfgs-scipy), as
    run(value_and_grad, x0, iterations, on_step)."""
    if name == "adam":
        return _adam_with(params.learning_rate)
    if name == "lbfgs-float32":
        return _lbfgs32_with(corrections)
    return lbfgs


def _scale_sizes(shape, long_side: int, params: TransferParams) -> list[tuple[int, int]]:
    """Deprecated alias of schedule.scale_sizes (the stand-in engine imports it until it moves to the tests)."""
    return schedule.scale_sizes(shape[1], shape[0], params, long_side)


_print_caps = schedule.print_caps  # deprecated alias: tests and bench import it


def _cost_factor(plan: tile_plan.ScalePlan, width: int, height: int) -> float:
    """Pixels a tiled evaluation computes per image pixel: the halos, and a second forward pass."""
    if not plan.tiled:
        return 1.0

    def covered(length: int) -> int:
        return sum(min(start + plan.core + plan.halo, length) - max(start - plan.halo, 0)
                   for start in range(0, length, plan.core))

    return covered(width) * covered(height) / (width * height) * 4 / 3


def _style_size(style: np.ndarray, long_side: int) -> int:
    """The style image's long side: as asked, but never with a short side under MIN_SIDE."""
    height, width = style.shape[:2]
    need = math.ceil(MIN_SIDE * max(height, width) / min(height, width))
    return max(long_side, need)


def _prepare_styles(styles: Sequence[StyleImage], content: np.ndarray, params: TransferParams):
    if params.preserve_colors != "histogram":
        return list(styles)
    return [replace(s, rgb=match_color_histogram(s.rgb, content)) for s in styles]


def _initial(previous, content_s: np.ndarray, styles, params: TransferParams, size) -> np.ndarray:
    if previous is not None:
        return resize_to(previous, size)
    if params.init == "content":
        return content_s.copy()
    if params.init == "style":
        return resize_to(styles[0].rgb, size)
    rng = np.random.default_rng(params.seed)
    noise = rng.uniform(0, 255, size=content_s.shape)
    return noise.astype(np.float32)


def _optimizer_name(params: TransferParams, on_device: bool) -> str:
    """The untiled loop's optimiser (the sidecar's name; the host loop runs the one it names)."""
    if params.optimizer != "lbfgs":
        return params.optimizer
    if on_device:
        return "lbfgs-optax"
    return "lbfgs-scipy" if params.lbfgs_impl == "scipy" else "lbfgs-float32"


# Correction pairs of the host's float32 L-BFGS: at 512 px (bf16, 25 iterations) 10 reached a lower
# loss per second than 5 or 20, and scipy's 20 cost 0.28 s an iteration of bookkeeping beside 0.4 s
# of evaluation.
HOST_CORRECTIONS = 10


def _lbfgs32_with(corrections: int):
    """The float32 L-BFGS with `corrections` pairs, as run(value_and_grad, x0, iterations, on_step)."""
    from daemon.engine.lbfgs32 import lbfgs32

    return lambda step, x0, iterations, on_step: lbfgs32(step, x0, iterations, on_step, corrections=corrections)


def _adam_with(learning_rate: float):
    def run(step, x0, iterations, on_step):
        return adam(step, x0, iterations, on_step, learning_rate)

    return run


def _budget(params: TransferParams) -> int:
    """Bytes one scale may use beyond the loaded model: memory_budget if set, else most of what is
    free now (accelerator or RAM; a tenth is left for the allocator's slack and the rest of the process)."""
    if params.memory_budget:
        return params.memory_budget
    device = gradient.device_memory_free()
    return int(0.9 * (device if device is not None else memory.available_bytes()))


def _convs_per_block(model) -> tuple[int, ...]:
    counts = [0] * 5
    for layer in model.layers:
        if layer.name.startswith("block") and "_conv" in layer.name:
            counts[int(layer.name[5]) - 1] += 1
    return tuple(counts)
