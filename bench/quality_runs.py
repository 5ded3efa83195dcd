"""The four methods of the quality benchmark, each recording timed snapshots of its image.

ours-new / ours-old: the engine (StyleTransfer.stylize) with the given parameters, snapshots at the
final size only (what a user gets is full size). lbfgs-plain: the Keras example's loss minimised by
L-BFGS-B at full size from the photo (bench/one.py's classic setup). keras-sgd: the Keras example's
loss and SGD schedule (bench/one.py's run_keras_sgd). The baselines run until the time cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from daemon.engine.optimize import lbfgs
from daemon.engine.params import StyleImage, TransferParams

# A baseline runs until the cap; this only has to be out of reach.
UNBOUNDED = 10**9


@dataclass
class MethodRun:
    """One method's run on one pair: snapshot times (ascending, seconds) and images (uint8)."""

    method: str
    times: list[float]
    images: list[np.ndarray]
    total_seconds: float


class Recorder:
    """Keeps snapshots with their run time; the time spent keeping them is taken off the clock."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.overhead = 0.0
        self.times: list[float] = []
        self.images: list[np.ndarray] = []

    def elapsed(self) -> float:
        """Seconds of the run so far, without the time spent recording."""
        return time.perf_counter() - self.start - self.overhead

    def record(self, image: np.ndarray, at: float | None = None) -> None:
        """Keep `image` (HxWx3, 0..255) as the 8-bit picture a user would get now (or at `at` s)."""
        enter = time.perf_counter()
        self.times.append(enter - self.start - self.overhead if at is None else at)
        self.images.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        self.overhead += time.perf_counter() - enter

    def run(self, method: str, total_seconds: float) -> MethodRun:
        return MethodRun(method, self.times, self.images, total_seconds)


class _CapReached(Exception):
    """Raised inside a baseline's loop when its time is up."""


class _CappedTrace:
    """Stands in for bench/one.py's Trace: records the image at every evaluation, stops at the cap."""

    def __init__(self, recorder: Recorder, cap: float) -> None:
        self.recorder = recorder
        self.cap = cap

    def wrap(self, value_and_grad, scale: int):
        def step(x):
            self.recorder.record(x[0])
            if self.recorder.elapsed() >= self.cap:
                raise _CapReached
            return value_and_grad(x)

        return step


def run_ours(method: str, engine, content: np.ndarray, style: StyleImage, params: TransferParams,
             every: int = 1) -> MethodRun:
    """The engine's stylize with `params`, a snapshot every `every` iterations; content is already
    at the output size. (The on-device loop ends a compiled chunk at each snapshot: on a GPU a
    larger `every` keeps that cost out of the time.)"""
    final_shape = content.shape
    params = replace(params, max_size=max(content.shape[:2]), save_every=every)
    recorder = Recorder()

    def on_snapshot(_iteration: int, image: np.ndarray) -> None:
        if image.shape == final_shape:  # coarser scales are not a result a user could get
            recorder.record(image)

    result = engine.stylize(content, [style], params, on_snapshot=on_snapshot)
    total = recorder.elapsed()
    recorder.record(result.rgb, at=total)  # the delivered picture, at the time stylize returned
    return recorder.run(method, total)


def run_lbfgs_plain(loss, content: np.ndarray, style: StyleImage, cap: float) -> MethodRun:
    """L-BFGS-B on the Keras example's loss at full size from the photo, until `cap` seconds."""
    step = loss.value_and_grad(content, style.rgb)
    recorder = Recorder()

    def on_step(_iteration, _total, _parts, current) -> bool:
        recorder.record(current()[0])
        return recorder.elapsed() < cap

    lbfgs(step, content[None], UNBOUNDED, on_step)
    return recorder.run("lbfgs-plain", recorder.elapsed())


def run_keras_sgd(loss, content: np.ndarray, style: StyleImage, cap: float) -> MethodRun:
    """The Keras example's SGD schedule (bench/one.py) on its loss, until `cap` seconds."""
    from bench.one import run_keras_sgd as sgd

    recorder = Recorder()
    try:
        sgd(loss, content, style.rgb, UNBOUNDED, _CappedTrace(recorder, cap))
    except _CapReached:
        pass
    return recorder.run("keras-sgd", recorder.elapsed())


def warm_up(engine, loss, content: np.ndarray, style: StyleImage, params_list: list[TransferParams]) -> float:
    """Compile every function and shape the timed runs will use; returns the seconds it took."""
    from daemon.engine.plan import uses_device_loop
    from daemon.engine.schedule import scale_sizes
    from daemon.media.images import resize_to

    begin = time.perf_counter()
    unique = [p for i, p in enumerate(params_list) if p not in params_list[:i]]
    for params in unique:
        params = replace(params, max_size=max(content.shape[:2]))
        if uses_device_loop(params):
            # The on-device loop compiles inside stylize: one untimed run compiles it.
            engine.stylize(content, [style], params)
            continue
        for size in scale_sizes(content.shape[1], content.shape[0], params, max(content.shape[:2])):
            scaled = resize_to(content, size)
            engine.evaluate(scaled, scaled, [style], params)
    loss.value_and_grad(content, style.rgb)(content[None])
    return time.perf_counter() - begin
