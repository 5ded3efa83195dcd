"""Time to a given quality: the Keras example's SGD, plain L-BFGS and our engine's optimiser, on one loss.

    python -m bench [--size 256] [--iterations 500] [--repeats 3] [--backbone vgg16-hed|vgg19 --weights F]

Each optimiser runs in its own process (bench/one.py) on the Keras example's loss (bench/keras_loss.py),
same backbone, same image, same machine. Prints a table last and writes bench/results/bench-TAG.json
and bench-TAG.png (loss against wall time). With KERAS_BACKEND=jax it runs on a GPU unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
METHODS = ("keras-sgd", "lbfgs-plain", "ours")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="style-daemon benchmark")
    parser.add_argument("--content", type=Path, default=IMAGES / "content" / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=IMAGES / "style" / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=256, help="long side in pixels")
    parser.add_argument("--iterations", type=int, default=500, help="N: iterations of each reference")
    parser.add_argument("--repeats", type=int, default=3, help="runs per optimiser (times are medians)")
    parser.add_argument("--backbone", choices=["vgg16-hed", "vgg19"], default="vgg16-hed")
    parser.add_argument("--weights", type=Path, help="VGG19 weights file (with --backbone vgg19)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--tag", default=None, help="name of the result files (default: backend and size)")
    return parser.parse_args(argv)


def run_one(method: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "bench.one", method, "--content", str(args.content), "--style",
               str(args.style), "--size", str(args.size), "--iterations", str(args.iterations),
               "--backbone", args.backbone]
    if args.weights:
        command += ["--weights", str(args.weights)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench.one {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_to_reach(run: dict, target: float) -> float | None:
    """Seconds until the final-scale loss first drops to `target` (None if it never does)."""
    for seconds, loss, scale in run["trace"]:
        if scale == 0 and loss <= target:
            return seconds
    return None


def final_loss(run: dict) -> float:
    return min(loss for _, loss, scale in run["trace"] if scale == 0)


def loss_after(run: dict, evaluations: int) -> float:
    losses = [loss for _, loss, scale in run["trace"] if scale == 0][:evaluations]
    return min(losses)


def summarise(runs: dict[str, list[dict]], args: argparse.Namespace) -> dict:
    references = {
        "keras-sgd": statistics.median(final_loss(r) for r in runs["keras-sgd"]),
        "lbfgs-plain": statistics.median(final_loss(r) for r in runs["lbfgs-plain"]),
    }
    methods = {}
    for method, method_runs in runs.items():
        reach = {}
        for ref_name, ref_loss in references.items():
            times = [time_to_reach(r, ref_loss) for r in method_runs]
            reached = [t for t in times if t is not None]
            reach[ref_name] = statistics.median(reached) if len(reached) == len(times) else None
        methods[method] = {
            "ms_per_eval": 1000 * statistics.median(r["seconds_per_eval"] for r in method_runs),
            "evaluations": statistics.median(r["evaluations"] for r in method_runs),
            "wall_seconds": statistics.median(r["wall_seconds"] for r in method_runs),
            "compile_seconds": statistics.median(r["compile_seconds"] for r in method_runs),
            "final_loss": statistics.median(final_loss(r) for r in method_runs),
            "seconds_to_reach": reach,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in method_runs),
        }
    ratios = {}
    for ref_name in references:
        ours, ref = methods["ours"]["seconds_to_reach"][ref_name], methods[ref_name]["seconds_to_reach"][ref_name]
        ratios[f"time_to_{ref_name}_loss"] = ours / ref if ours is not None and ref else None
    for ref_name in references:
        ratios[f"ms_per_eval_vs_{ref_name}"] = methods["ours"]["ms_per_eval"] / methods[ref_name]["ms_per_eval"]
    return {"reference_losses": references, "methods": methods, "ratios": ratios}


def machine() -> dict:
    from daemon.engine import gradient

    return {"backend": gradient.backend_name(), "device": gradient.device_name(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine()}


def flop_figures(args: argparse.Namespace, size: list[int], ms_per_eval: float) -> dict:
    """Forward+backward FLOPs of the VGG layers used, achieved FLOP/s, and the dense matmul rate."""
    import numpy as np
    from keras import ops

    from bench.keras_loss import vgg_flops
    from bench.one import _backbone

    model = _backbone(args)
    forward = vgg_flops(model, size[1], size[0])
    # The backward pass computes gradients for the input only (about one forward's worth of work).
    per_eval = 2 * forward
    a = ops.convert_to_tensor(np.random.default_rng(0).standard_normal((2048, 2048)).astype("float32"))
    ops.convert_to_numpy(ops.matmul(a, a))
    begin = time.perf_counter()
    reps = 5
    for _ in range(reps):
        ops.convert_to_numpy(ops.matmul(a, a))
    matmul_rate = reps * 2 * 2048**3 / (time.perf_counter() - begin)
    achieved = per_eval / (ms_per_eval / 1000)
    return {"gflop_per_eval": per_eval / 1e9, "achieved_gflops": achieved / 1e9,
            "dense_matmul_gflops": matmul_rate / 1e9, "fraction_of_matmul_rate": achieved / matmul_rate}


def plot(runs: dict[str, list[dict]], target: Path, title: str) -> None:
    """Loss (log scale) against wall time for the first run of each optimiser, drawn with Pillow."""
    import math

    from PIL import Image, ImageDraw

    colours = {"keras-sgd": (200, 60, 40), "lbfgs-plain": (40, 90, 200), "ours": (20, 150, 60)}
    width, height, pad = 760, 420, 60
    points = {m: [(t, v) for t, v, s in rs[0]["trace"] if s == 0 and v > 0] for m, rs in runs.items()}
    t_max = max(p[-1][0] for p in points.values())
    lows = [v for p in points.values() for _, v in p]
    lo, hi = math.log10(min(lows)), math.log10(max(lows))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([pad, 20, width - 20, height - pad], outline="black")

    def xy(t, v):
        x = pad + (width - 20 - pad) * t / t_max
        y = height - pad - (height - pad - 20) * (math.log10(v) - lo) / max(hi - lo, 1e-9)
        return x, y

    for method, pts in points.items():
        draw.line([xy(t, v) for t, v in pts], fill=colours[method], width=2)
    for i, method in enumerate(points):
        draw.text((width - 200, 30 + 16 * i), method, fill=colours[method])
    draw.text((pad, height - pad + 8), "0 s", fill="black")
    draw.text((width - 80, height - pad + 8), f"{t_max:.0f} s", fill="black")
    draw.text((4, 20), f"{10 ** hi:.3g}", fill="black")
    draw.text((4, height - pad - 10), f"{10 ** lo:.3g}", fill="black")
    draw.text((pad, height - 30), f"loss (log) against wall time - {title}", fill="black")
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target)


def table(summary: dict, flops: dict) -> str:
    refs = summary["reference_losses"]
    lines = [f"{'optimiser':12} {'ms/eval':>8} {'evals':>6} {'final loss':>11} "
             f"{'s to SGD-500':>13} {'s to LBFGS-500':>15} {'peak RSS MB':>12}"]
    for method, m in summary["methods"].items():
        def fmt(value):
            return f"{value:.1f}" if value is not None else "never"
        lines.append(f"{method:12} {m['ms_per_eval']:8.1f} {m['evaluations']:6.0f} {m['final_loss']:11.4g} "
                     f"{fmt(m['seconds_to_reach']['keras-sgd']):>13} {fmt(m['seconds_to_reach']['lbfgs-plain']):>15} "
                     f"{m['peak_rss_mb']:12.0f}")
    lines.append(f"reference losses: Keras SGD after N = {refs['keras-sgd']:.4g}, plain L-BFGS after N = "
                 f"{refs['lbfgs-plain']:.4g}")
    lines.append("ratios ours/reference: " + ", ".join(
        f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in summary["ratios"].items()))
    lines.append(f"FLOPs: {flops['gflop_per_eval']:.1f} GFLOP per evaluation, {flops['achieved_gflops']:.1f} GFLOP/s "
                 f"achieved = {100 * flops['fraction_of_matmul_rate']:.0f}% of the measured dense matmul rate "
                 f"({flops['dense_matmul_gflops']:.1f} GFLOP/s)")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    from daemon.logs import setup_logging

    setup_logging("WARNING")
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for repeat in range(args.repeats):
        for method in METHODS:
            print(f"run {repeat + 1}/{args.repeats}: {method}", file=sys.stderr, flush=True)
            runs[method].append(run_one(method, args))
    summary = summarise(runs, args)
    size = runs["ours"][0]["size"]
    flops = flop_figures(args, size, summary["methods"]["ours"]["ms_per_eval"])
    info = machine()
    tag = args.tag or f"{info['backend']}-{info['device'].split(':')[0]}-{args.size}"
    document = {"machine": info, "settings": {k: str(v) for k, v in vars(args).items()}, "size": size,
                **summary, "flops": flops,
                "runs": {m: [{k: v for k, v in r.items() if k != "trace"} for r in rs] for m, rs in runs.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench-{tag}.json").write_text(json.dumps(document, indent=2))
    plot(runs, args.out / f"bench-{tag}.png", f"{info['backend']} {info['device']}, {size[0]}x{size[1]}")
    print(table(summary, flops))


if __name__ == "__main__":
    main()
