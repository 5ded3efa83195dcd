"""The on-device L-BFGS loop (optax) against scipy's L-BFGS-B on the host, and the persistent
compilation cache: time to the first result in a fresh process with a cold, then a warm cache.

    KERAS_BACKEND=jax python -m bench.device_loop [--size 256] [--iterations 30]

Writes bench/results/device-loop-jax-DEVICE-SIZE.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


def child(size: int, iterations: int, with_scipy: bool) -> dict:
    """One fresh process: engine start, then timed jobs (the first one includes compiling)."""
    from daemon.engine.params import StyleImage, TransferParams
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights
    from daemon.logs import setup_logging
    from daemon.media.images import load_image, resize_long_side

    setup_logging("WARNING")
    start = time.perf_counter()
    engine = StyleTransfer(hed_weights())
    out = {"device": engine.device(), "engine_start_s": time.perf_counter() - start}
    content = resize_long_side(load_image(IMAGES / "content" / "tubingen.jpg").rgb, size)
    style = StyleImage(load_image(IMAGES / "style" / "starry_night.jpg").rgb)
    for impl in ("optax", "scipy") if with_scipy else ("optax",):
        params = TransferParams(max_size=size, iterations=iterations, scales=1, lbfgs_impl=impl)
        for run in ("first", "second"):
            begin = time.perf_counter()
            result = engine.stylize(content, [style], params)
            c, s, tv = engine.evaluate(result.rgb, content, [style], params)
            out[f"{impl}_{run}"] = {
                "seconds": time.perf_counter() - begin, "optimiser_seconds": result.seconds,
                "evaluations": result.evaluations, "iterations": result.iterations,
                "loss": params.content_weight * c + params.style_weight * s + params.tv_weight * tv,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--child", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.size, args.iterations, with_scipy=args.child == "cold")))
        return
    runs = {}
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, KERAS_BACKEND="jax", KERAS_HOME=home, STYLE_DAEMON_OFFLINE="1")
        for cache in ("cold", "warm"):
            done = subprocess.run([sys.executable, "-m", "bench.device_loop", "--size", str(args.size),
                                   "--iterations", str(args.iterations), "--child", cache],
                                  cwd=ROOT, env=env, capture_output=True, text=True, check=True)
            runs[cache] = json.loads(done.stdout.strip().splitlines()[-1])
    device = runs["cold"]["device"].split(":")[0]
    report = {"size": args.size, "iterations": args.iterations, "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} cores", "backbone": "vgg16-hed", "runs": runs}
    out = ROOT / "bench" / "results" / f"device-loop-jax-{device}-{args.size}.json"
    out.write_text(json.dumps(report, indent=2))
    cold, warm = runs["cold"], runs["warm"]
    for impl in ("optax", "scipy"):
        first, second = cold[f"{impl}_first"], cold[f"{impl}_second"]
        print(f"{impl:6} first job {first['seconds']:6.1f} s (compiling), then {second['seconds']:6.1f} s; "
              f"{second['optimiser_seconds'] / second['iterations'] * 1000:5.0f} ms/iteration, "
              f"{second['evaluations']} evaluations, loss {second['loss']:.4f}")
    print(f"first optax job in a new process: {cold['optax_first']['seconds']:.1f} s with a cold cache, "
          f"{warm['optax_first']['seconds']:.1f} s with a warm one")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
