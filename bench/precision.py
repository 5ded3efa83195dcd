"""Does bf16 hurt the optimisation? The same photo/style pairs made with precision float32 and bf16
by the on-device loop, each result judged in float32 by two networks.

    KERAS_BACKEND=jax python -m bench.precision --vgg19-weights ../shared/weights/vgg19_notop.weights.h5

Writes bench/results/precision-jax-DEVICE-SIZE.json and prints a table. "Style distance" and
"content distance" are those of bench/compare_backbones.py (relative Gram error over
block1..5_conv1, relative feature error at block4_conv2; lower is closer). On a CPU this measures
quality only: bf16 is emulated there, so its seconds say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.transfer import StyleTransfer
from daemon.engine.weights import hed_weights, user_vgg19
from daemon.logs import setup_logging
from daemon.media.images import load_image

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
DEFAULT_PAIRS = ["tubingen.jpg:starry_night.jpg", "chelsea.png:the_scream.jpg", "coffee.png:shipwreck.jpg",
                 "astronaut.png:woman-with-hat-matisse.jpg"]
PRECISIONS = ("float32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, help="CONTENT:STYLE file names")
    parser.add_argument("--vgg19-weights", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    setup_logging("WARNING")
    maker = StyleTransfer(hed_weights())
    if maker.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax: precision applies to the on-device loop")
    judges = {"vgg19": StyleTransfer(user_vgg19(args.vgg19_weights)), "vgg16-hed": maker}
    rows = []
    for pair in args.pairs:
        content_name, style_name = pair.split(":")
        content = load_image(IMAGES / "content" / content_name).rgb
        style = StyleImage(load_image(IMAGES / "style" / style_name).rgb)
        images = {}
        for precision in PRECISIONS:
            params = TransferParams(max_size=args.size, iterations=args.iterations, precision=precision,
                                    lbfgs_impl="optax")
            result = maker.stylize(content, [style], params)
            images[precision] = result.rgb
            judge_params = TransferParams(max_size=args.size)
            for judge_name, judge in judges.items():
                c, s, _ = judge.evaluate(result.rgb, content, [style], judge_params)
                rows.append({"pair": pair, "precision": precision, "judge": judge_name, "style_distance": s,
                             "content_distance": c, "final_loss": result.losses.loss, "seconds": result.seconds})
        rows.append({"pair": pair, "mean_abs_pixel_difference": float(np.abs(images["bf16"] - images["float32"]).mean())})
        _print_pair(rows, pair)
    device = maker.device().split(":")[0]
    out = args.out or Path(f"bench/results/precision-jax-{device}-{args.size}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "size": args.size, "iterations_per_scale": args.iterations, "made_by": "vgg16-hed",
        "device": maker.device(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "note": "quality only on a CPU; speed figures need a GPU", "rows": rows,
    }, indent=2))
    print(f"wrote {out}")


def _print_pair(rows: list[dict], pair: str) -> None:
    judged = [r for r in rows if r["pair"] == pair and "judge" in r]
    for r in judged:
        print(f"{pair:45} {r['precision']:8} judge {r['judge']:10} style {r['style_distance']:.4f} "
              f"content {r['content_distance']:.4f} loss {r['final_loss']:.4f} {r['seconds']:.0f}s", flush=True)
    diff = [r for r in rows if r["pair"] == pair and "mean_abs_pixel_difference" in r][0]
    print(f"{pair:45} mean |bf16 - float32| = {diff['mean_abs_pixel_difference']:.2f} (0..255)", flush=True)


if __name__ == "__main__":
    main()
