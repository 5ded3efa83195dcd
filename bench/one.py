"""One optimiser run of the benchmark, in its own process so that its peak RSS is its own.

    python -m bench.one {keras-sgd|lbfgs-plain|ours} --content C --style S --size N --iterations N ...

Prints one JSON object: the (seconds, loss, scale) trace, seconds per evaluation, compile time,
peak RSS and the image size.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from daemon.engine.optimize import lbfgs
from daemon.engine.params import TransferParams
from daemon.media.images import load_image, resize_long_side, resize_to


def _backbone(args):
    from daemon.engine.weights import build_model, hed_weights, user_vgg19

    source = user_vgg19(args.weights) if args.backbone == "vgg19" else hed_weights()
    return build_model(source)


class Trace:
    """Loss against wall time, with the time spent in evaluations."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.points: list[tuple[float, float, int]] = []
        self.eval_seconds: list[float] = []

    def wrap(self, value_and_grad, scale: int):
        def timed(x):
            begin = time.perf_counter()
            result = value_and_grad(x)
            self.eval_seconds.append(time.perf_counter() - begin)
            self.points.append((time.perf_counter() - self.start, result[0], scale))
            return result

        return timed


def run_keras_sgd(loss, content, style, iterations, trace):
    step = trace.wrap(loss.value_and_grad(content, style), 0)
    x = content.copy()
    for i in range(iterations):
        _, grad, _ = step(x[None])
        # keras.optimizers.SGD(ExponentialDecay(100.0, decay_steps=100, decay_rate=0.96)), no clipping
        x = x - 100.0 * 0.96 ** (i / 100.0) * grad[0]
    return x


def run_lbfgs_plain(loss, content, style, iterations, trace):
    step = trace.wrap(loss.value_and_grad(content, style), 0)
    return lbfgs(step, content[None], iterations, lambda *_: True).image[0]


def run_ours(loss, content, style, iterations, trace):
    from daemon.engine.schedule import scale_sizes

    params = TransferParams(max_size=max(content.shape[:2]))
    sizes = scale_sizes(content.shape[1], content.shape[0], params)
    image = None
    for index, size in enumerate(sizes):
        final = index == len(sizes) - 1
        content_s = resize_to(content, size)
        image = content_s.copy() if image is None else resize_to(image, size)
        step = trace.wrap(loss.value_and_grad(content_s, style), 0 if final else index - len(sizes))
        budget = iterations if final else params.iterations
        image = lbfgs(step, image[None], budget, lambda *_: True).image[0]
    return image


def warm_up(loss, content, style, method) -> float:
    """Compile every shape the method will use; returns the seconds it took."""
    from daemon.engine.schedule import scale_sizes

    begin = time.perf_counter()
    shapes = [(content.shape[1], content.shape[0])]
    if method == "ours":
        shapes = scale_sizes(content.shape[1], content.shape[0], TransferParams(max_size=max(content.shape[:2])))
    for size in shapes:
        c = resize_to(content, size)
        loss.value_and_grad(c, style)(c[None])
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=["keras-sgd", "lbfgs-plain", "ours"])
    parser.add_argument("--content", type=Path, required=True)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--backbone", default="vgg16-hed")
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args()

    from bench.keras_loss import KerasExampleLoss

    content = resize_long_side(load_image(args.content).rgb, args.size)
    style = load_image(args.style).rgb
    loss = KerasExampleLoss(_backbone(args))
    compile_seconds = warm_up(loss, content, style, args.method)
    trace = Trace()
    runner = {"keras-sgd": run_keras_sgd, "lbfgs-plain": run_lbfgs_plain, "ours": run_ours}[args.method]
    result = runner(loss, content, style, args.iterations, trace)
    final_evals = [t for t, (_, _, scale) in zip(trace.eval_seconds, trace.points) if scale == 0]
    print(json.dumps({
        "method": args.method,
        "size": [int(content.shape[1]), int(content.shape[0])],
        "compile_seconds": compile_seconds,
        "wall_seconds": time.perf_counter() - trace.start,
        "seconds_per_eval": float(np.median(final_evals)),
        "evaluations": len(trace.points),
        "trace": [[round(t, 4), float(v), s] for t, v, s in trace.points],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "result_mean": float(np.mean(result)),
    }))


if __name__ == "__main__":
    main()
