"""Does bf16 pay on this CPU? One loss evaluation (value and gradient) timed in float32 and bf16, A/B.

    python -m bench.host_precision [--backbone vgg19 --weights ../shared/weights/vgg19_notop.weights.h5]
                                   [--size 512] [--pairs 10] [--isa native AVX512_CORE_BF16 AVX512_CORE AVX2]

For each oneDNN instruction set named (`native`: what the CPU has; others are set through
ONEDNN_MAX_CPU_ISA, so that one machine runs as a lesser CPU would), a fresh process builds the
engine's float32 and bf16 feature models (the host loop's mixed_bfloat16, precision.py) and times
--pairs evaluations of each, one float32 and one bf16 in turn: on a shared, loaded machine the two of
a pair see about the same load, and the median of the pairs' ratios is the robust figure, not the
seconds (the ratio of the fastest of each is what an idle machine approaches). Writes bench/results/host-precision-CPU.json (CPU: lscpu's model name) and prints
one line per instruction set: median ms per evaluation in float32 and bf16 and the speedup.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
ARITHMETICS = ("float32", "bf16")
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=["vgg19", "vgg16-hed"], default="vgg19")
    parser.add_argument("--weights", type=Path, default=ROOT.parent / "shared" / "weights" / "vgg19_notop.weights.h5")
    parser.add_argument("--size", type=int, default=512, help="long side of the photo in pixels")
    parser.add_argument("--pairs", type=int, default=10, help="timed evaluations of each arithmetic, in turn")
    parser.add_argument("--isa", nargs="+", default=["native", "AVX512_CORE_BF16", "AVX512_CORE", "AVX2"],
                        help="oneDNN instruction sets to run as (native: unrestricted)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def cpu_model() -> str:
    """lscpu's model name (the name of /proc/cpuinfo where lscpu is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "model name":
            return value.strip()
    return "unknown"


def _engine(args: argparse.Namespace):
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights, user_vgg19

    return StyleTransfer(user_vgg19(args.weights) if args.backbone == "vgg19" else hed_weights())


def _steps(args: argparse.Namespace) -> tuple[dict, list[int], object]:
    """Per arithmetic, a builder of the compiled value-and-gradient (tubingen under The Starry Night at
    --size); the photo as the image to evaluate."""
    import numpy as np

    from daemon.engine.params import StyleImage, TransferParams
    from daemon.media.images import load_image, resize_long_side

    engine = _engine(args)
    params = TransferParams(max_size=args.size, scales=1)
    photo = resize_long_side(load_image(IMAGES / "content" / "tubingen.jpg").rgb, args.size)
    style = [StyleImage(load_image(IMAGES / "style" / "starry_night.jpg").rgb)]
    image = photo.astype(np.float32)[None]
    steps = {a: lambda a=a: loss_step(engine, params, a, photo, style) for a in ARITHMETICS}
    return steps, [photo.shape[1], photo.shape[0]], image


def loss_step(engine, params, arithmetic: str, photo, styles):
    """The engine's compiled value-and-gradient of the loss for `photo` under `styles`, in `arithmetic`."""
    from daemon.engine.style_targets import whole_targets

    features = engine.features
    model, spec = features.model_for(params, arithmetic)
    size = (photo.shape[1], photo.shape[0])
    return features.value_and_grad(model, spec, whole_targets(features, model, spec, photo, styles, size, params))


def _compiled(steps: dict, image) -> tuple[dict, dict, dict]:
    """Build and run each arithmetic once (targets, tracing, compiling); those this CPU cannot run are errors."""
    ready, first_call, errors = {}, {}, {}
    for arithmetic, build in steps.items():
        began = time.perf_counter()
        try:
            step = build()
            step(image)
        except Exception as exc:  # noqa: BLE001 - an arithmetic this CPU cannot run is a result, not a crash
            errors[arithmetic] = " ".join(str(exc).split())[:400]
            continue
        ready[arithmetic] = lambda step=step: step(image)
        first_call[arithmetic] = time.perf_counter() - began
    return ready, first_call, errors


def speedups(seconds: dict[str, list[float]]) -> dict[str, float] | None:
    """float32 time over bf16 time: the median of adjacent pairs (robust to load that drifts) and the
    ratio of the fastest of each (what an idle machine approaches)."""
    if set(seconds) != set(ARITHMETICS):
        return None
    pairs = [f / b for f, b in zip(seconds["float32"], seconds["bf16"])]
    return {"paired_median": statistics.median(pairs), "fastest": min(seconds["float32"]) / min(seconds["bf16"])}


def child(args: argparse.Namespace) -> dict:
    """Time both arithmetics in this process, one evaluation of each in turn; print and return the figures."""
    steps, size, image = _steps(args)
    ready, first_call, errors = _compiled(steps, image)
    seconds: dict[str, list[float]] = {a: [] for a in ready}
    for pair in range(args.pairs):
        order = list(ready) if pair % 2 == 0 else list(ready)[::-1]  # neither always goes first
        for arithmetic in order:
            began = time.perf_counter()
            ready[arithmetic]()
            seconds[arithmetic].append(time.perf_counter() - began)
    ratio = speedups(seconds)
    report = {"size": size, "seconds": seconds, "median_seconds": {a: statistics.median(s) for a, s in seconds.items()},
              "first_call_seconds": first_call, "errors": errors, "bf16_speedup": ratio}
    print(json.dumps(report))
    return report


def run_as(isa: str, args: argparse.Namespace) -> dict:
    """Run the timing in a fresh process with oneDNN limited to `isa` (native: no limit)."""
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [sys.executable, "-m", "bench.host_precision", "--child", "--backbone", args.backbone,
               "--weights", str(args.weights), "--size", str(args.size), "--pairs", str(args.pairs)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench.host_precision as {isa} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _flags() -> list[str]:
    from daemon.engine.precision import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2", "avx_vnni")))


def _cell(run: dict, arithmetic: str) -> str:
    if arithmetic in run["errors"]:
        return f"{arithmetic} fails"
    return f"{arithmetic} {1000 * run['median_seconds'][arithmetic]:7.0f} ms"


def main(argv: list[str] | None = None) -> None:
    """Parent: one child per instruction set named (a set named twice runs twice), then the JSON and a table."""
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {}
    for isa in args.isa:
        print(f"timing as {isa} ...", file=sys.stderr, flush=True)
        runs.setdefault(isa, []).append(run_as(isa, args))
    model = cpu_model()
    document = {"machine": {"cpu": model, "cpus": os.cpu_count(), "flags": _flags(),
                            "load_average_before": load_before, "load_average_after": os.getloadavg()},
                "settings": {k: str(v) for k, v in vars(args).items() if k != "child"},
                "note": "a shared machine: compare the ratio (bf16_speedup), not the seconds", "runs": runs}
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"host-precision-{slug}.json"
    target.write_text(json.dumps(document, indent=2) + "\n")
    for isa, isa_runs in runs.items():
        for run in isa_runs:
            print(_line(isa, run))
    print(f"wrote {target}")


def _line(isa: str, run: dict) -> str:
    ratio = run["bf16_speedup"]
    said = f"{ratio['paired_median']:.2f}x (fastest of each {ratio['fastest']:.2f}x)" if ratio else "n/a"
    return (f"{isa:18} " + "  ".join(_cell(run, a) for a in ARITHMETICS) + f"  bf16 speedup {said}  "
            f"({run['size'][0]}x{run['size'][1]})")


if __name__ == "__main__":
    main()
