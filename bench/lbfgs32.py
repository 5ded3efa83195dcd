"""What the float32 L-BFGS (engine/lbfgs32.py) costs in quality against scipy's L-BFGS-B (maxcor 20, float64).

    python -m bench.lbfgs32 [--sizes 256 512] [--iterations 50] [--corrections 5]

The same photo/style pairs are stylised by the real engine (vgg16-hed, one scale, content init) with
each optimiser plugged in as engine.scale_loops.lbfgs; rows give the loss after the same number of
iterations (and at a few iterations on the way), the evaluations used and the seconds. The optimiser's
own memory is measured apart, each optimiser alone in a fresh process on a cheap loss of the same
image size (peak RSS minus RSS before it starts), and extrapolated to a 6000x4000 print. Writes
bench/results/lbfgs32-BACKEND-cpu.json and prints a table. Timings on a shared machine are labelled
with the load average.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
DEFAULT_PAIRS = ["tubingen.jpg:starry_night.jpg", "chelsea.png:the_scream.jpg", "coffee.png:shipwreck.jpg"]
SCIPY_MAXCOR = 20
CHECKPOINTS = (5, 10, 25)


def optimisers(corrections: int) -> dict:
    """name -> an optimiser with engine.optimize.lbfgs's signature."""
    from daemon.engine.lbfgs32 import lbfgs32
    from daemon.engine.optimize import lbfgs

    return {f"scipy-m{SCIPY_MAXCOR}-float64": lbfgs,
            f"lbfgs32-m{corrections}": functools.partial(lbfgs32, corrections=corrections)}


def quality_rows(pairs: list[str], sizes: list[int], iterations: int, corrections: int, on_row) -> list[dict]:
    """One row per pair, size and optimiser: losses, evaluations, seconds; on_row(rows) after each."""
    import daemon.engine.scale_loops as scale_loops
    import daemon.engine.transfer as transfer
    from daemon.engine.backbones import resolve_backbone
    from daemon.engine.params import StyleImage, TransferParams
    from daemon.media.images import load_image

    maker = transfer.StyleTransfer(resolve_backbone("vgg16-hed"))
    rows = []
    for pair in pairs:
        content_name, style_name = pair.split(":")
        content = load_image(IMAGES / "content" / content_name).rgb
        style = StyleImage(load_image(IMAGES / "style" / style_name).rgb)
        for size in sizes:
            # lbfgs_impl scipy: the host loop then calls scale_loops.lbfgs, the optimiser patched in below
            params = TransferParams(max_size=size, iterations=iterations, scales=1, log_every=1, lbfgs_impl="scipy")
            # one untimed iteration first: the graph for this size is traced once, not inside whichever
            # optimiser happens to run first (rows written before this warm-up charge it to scipy)
            maker.stylize(content, [style], TransferParams(max_size=size, iterations=1, scales=1))
            for name, run in optimisers(corrections).items():
                scale_loops.lbfgs = run  # what the host loop calls for L-BFGS (lbfgs_impl scipy)
                load = os.getloadavg()[0]
                result = maker.stylize(content, [style], params)
                losses = {r.iteration: r.loss for r in result.history}
                row = {"pair": pair, "size": size, "optimiser": name, "iterations_asked": iterations,
                       "iterations": result.iterations,
                       "evaluations": result.evaluations, "seconds": round(result.seconds, 1),
                       "load_average_1min": round(load, 2), "final_loss": result.losses.loss, "warmed_up": True,
                       "loss_at": {str(k): losses.get(k) for k in (*CHECKPOINTS, iterations)}}
                rows.append(row)
                on_row(rows)
                print(f"{pair:40} {size:4} {name:22} loss {row['final_loss']:12.5g} iters {row['iterations']:3} "
                      f"evals {row['evaluations']:3} {row['seconds']:6.1f}s (load {load:.1f})", flush=True)
    return rows


def memory_rows(sizes: list[int], corrections: int) -> list[dict]:
    """Peak RSS of each optimiser's own state on a size x size image, each in a fresh process."""
    from daemon.engine.lbfgs32 import state_bytes

    rows = []
    for size in sizes:
        for name in optimisers(corrections):
            out = subprocess.run([sys.executable, "-m", "bench.lbfgs32", "--state-only", name, str(size),
                                  "--corrections", str(corrections)],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            if name.startswith("lbfgs32"):
                row["state_bytes_estimate"] = state_bytes(size * size, corrections)
            rows.append(row)
            print(f"state {name:22} {size:5} px: peak RSS {row['peak_rss_bytes'] / 1e6:8.1f} MB", flush=True)
    return rows


def state_only(name: str, size: int, corrections: int) -> dict:
    """Run one optimiser 25 iterations on an ill-conditioned separable quadratic over a size x size x 3
    image (so it does not converge before its history fills; scipy touches its whole history anyway)."""
    shape = (1, size, size, 3)
    count = int(np.prod(shape))
    target = np.linspace(-50, 300, num=count, dtype=np.float32)
    curvature = np.linspace(0.5, 50, num=count, dtype=np.float32)[::-1].copy()
    chunk = 1 << 16

    def value_and_grad(x: np.ndarray):
        grad = np.subtract(x.reshape(-1), target, dtype=np.float32)  # the only image-sized allocation
        total = 0.0
        for i in range(0, count, chunk):
            r = grad[i:i + chunk]
            total += 0.5 * float(np.dot(r * curvature[i:i + chunk], r.astype(np.float64)))
            r *= curvature[i:i + chunk]
        return total, grad.reshape(shape), (total, 0.0, 0.0)

    x0 = np.full(shape, 128.0, dtype=np.float32)
    value_and_grad(x0)
    before = _rss_bytes()
    outcome = optimisers(corrections)[name](value_and_grad, x0, 25, lambda *a: True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"optimiser": name, "size": size, "values": count, "iterations": outcome.iterations,
            "peak_rss_bytes": peak - before}


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def print_summary(rows: list[dict]) -> None:
    """Final loss of lbfgs32 relative to scipy's, per pair and size."""
    by_key: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_key.setdefault((r["pair"], r["size"]), {})[r["optimiser"]] = r
    for (pair, size), runs in by_key.items():
        if len(runs) < 2:
            continue
        scipy, ours = (runs[k] for k in sorted(runs, key=lambda k: not k.startswith("scipy")))
        print(f"{pair:40} {size:4} loss ratio lbfgs32/scipy {ours['final_loss'] / scipy['final_loss']:.3f} "
              f"evals {ours['evaluations']}/{scipy['evaluations']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, help="CONTENT:STYLE file names")
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 512])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--corrections", type=int, default=5)
    parser.add_argument("--memory-sizes", nargs="*", type=int, default=[512, 1024])
    parser.add_argument("--state-only", nargs=2, metavar=("OPTIMISER", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--append", action="store_true", help="keep the rows already in the result file")
    args = parser.parse_args()
    if args.state_only:
        print(json.dumps(state_only(args.state_only[0], int(args.state_only[1]), args.corrections)))
        return
    from daemon.engine import gradient
    from daemon.engine.lbfgs32 import state_bytes
    from daemon.logs import setup_logging

    setup_logging("WARNING")
    start = time.time()
    memory = memory_rows(args.memory_sizes, args.corrections)
    kept = _kept(output_path(args, gradient)) if args.append else {"rows": [], "optimiser_memory": []}
    memory = memory or kept["optimiser_memory"]
    # written after every run, so that a long benchmark stopped half way keeps what it measured
    rows = quality_rows(args.pairs, args.sizes, args.iterations, args.corrections,
                        lambda rows: write_file(args, kept["rows"] + rows, memory, gradient, state_bytes, start))
    write_file(args, kept["rows"] + rows, memory, gradient, state_bytes, start)
    print_summary(kept["rows"] + rows)
    print(f"wrote {output_path(args, gradient)}")


def _extrapolated(memory: list[dict], values: int) -> dict:
    largest = {}
    for row in memory:
        if row["values"] >= largest.get(row["optimiser"], {"values": 0})["values"]:
            largest[row["optimiser"]] = row
    return {name: int(row["peak_rss_bytes"] / row["values"] * values) for name, row in largest.items()}


def _kept(path: Path) -> dict:
    """The rows and memory figures of an earlier run (--append), so runs can be split and resumed."""
    if not path.exists():
        return {"rows": [], "optimiser_memory": []}
    earlier = json.loads(path.read_text())
    return {"rows": earlier["rows"], "optimiser_memory": earlier["optimiser_memory"]}


def output_path(args, gradient) -> Path:
    return args.out or ROOT / "bench" / "results" / f"lbfgs32-{gradient.backend_name()}-cpu.json"


def write_file(args, rows, memory, gradient, state_bytes, start) -> None:
    """Write the JSON result file."""
    pixels = 6000 * 4000
    out = output_path(args, gradient)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "backbone": "vgg16-hed", "scales": 1, "init": "content", "iterations": "per row",
        "corrections": args.corrections, "scipy_maxcor": SCIPY_MAXCOR, "device": gradient.device_name(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared by 5 agents: timings under load",
        "note": ("seconds are wall time on a loaded machine (see load_average_1min); rows without "
                 "warmed_up include the size's graph tracing in the first optimiser run (scipy), so "
                 "compare evaluations rather than seconds there"),
        "wall_seconds": round(time.time() - start), "rows": rows, "optimiser_memory": memory,
        "print_6000x4000": {
            "lbfgs32_state_bytes": state_bytes(pixels, args.corrections),
            # L-BFGS-B: 2m n-vectors of history plus about 9 more (x, g, bounds, work) in float64
            "scipy_state_bytes_approx": (2 * SCIPY_MAXCOR + 9) * pixels * 3 * 8,
            # each optimiser's peak RSS per value at the largest size measured, times 6000x4000x3
            "extrapolated_from_measured": _extrapolated(memory, pixels * 3),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
