"""Peak memory and seconds per evaluation, tiled against untiled, by image size.

    python -m bench.tiling [--sizes 1024 2048 3072] [--tiled-only 4096 6000 8192] [--budget-gb 2]

Each measurement runs in its own process (peak RSS is per process): it builds the targets (content
features and style Grams), then evaluates the loss and gradient once or twice; the second evaluation
is the steady figure (the first includes tracing). Untiled runs whose estimate exceeds the free
memory are reported as not fitting rather than started. Writes bench/results/tiling-TAG.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
VGG19 = ROOT.parent / "shared" / "weights" / "vgg19_notop.weights.h5"

def child_main() -> None:
    """Run in the measuring process: one size, one mode; prints one JSON line."""
    import resource

    import numpy as np

    from daemon.engine import network_facts, style_targets, tile_boxes, tiled_loss, tile_plan
    from daemon.engine.backbones import resolve_backbone
    from daemon.engine.params import StyleImage, TransferParams
    from daemon.engine.transfer import StyleTransfer
    from daemon.media.images import load_image, resize_long_side

    size, mode, budget, count, backbone, weights, style_side = sys.argv[2:9]
    size, budget, count, style_side = int(size), int(budget), int(count), int(style_side)
    engine = StyleTransfer(resolve_backbone(backbone, Path(weights) if weights != "-" else None, allow_fetch=False))
    photo = load_image(IMAGES / "content" / "tubingen.jpg").rgb
    # Upscaled: the photo is smaller than the sizes measured, and stylize never upscales.
    content = resize_long_side(photo, size)
    styles = [StyleImage(load_image(IMAGES / "style" / "starry_night.jpg").rgb)]
    height, width = content.shape[:2]
    # The style Grams come from the painting at style_side (not upscaled to the print size) so that the
    # figure measured, one evaluation, is not buried under target-building time; the evaluation is the same.
    style_scale = min(1.0, style_side / size) if style_side else 1.0
    params = TransferParams(max_size=size, tiling=mode, memory_budget=budget, style_scale=style_scale)
    model, spec = engine.features.model_for(params)
    plan = tile_plan.plan_scale(width, height, params, network_facts.network(engine.model, params), budget)
    begin = time.perf_counter()
    if plan.tiled:
        passes = engine.features.tiled_passes(model, spec, params)
        image = tile_boxes.tiled_image(engine.model, params, (width, height), plan.core, plan.halo)
        target, _ = tiled_loss.content_features_and_grams(passes, content, image)
        grams = style_targets.tiled_style_grams(passes, engine.model, styles, (width, height), plan.core, plan.halo,
                                                params)
        step = tiled_loss.TiledLoss(passes, image, target, grams)
    else:
        targets = style_targets.whole_targets(engine.features, model, spec, content, styles, (width, height), params)
        step = engine.features.value_and_grad(model, spec, targets)
    targets_seconds = time.perf_counter() - begin
    times = []
    x = content[None].astype(np.float32)
    for _ in range(count):
        begin = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - begin)
    print(json.dumps({
        "size": size, "width": width, "height": height, "mode": "tiled" if plan.tiled else "untiled",
        "core": plan.core, "halo": plan.halo, "tiles": len(image.layout.tiles) if plan.tiled else 0,
        "budget_gb": budget / 1e9, "planned_gb": plan.need / 1e9, "targets_seconds": targets_seconds,
        "evaluation_seconds": times, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
    }), flush=True)


def measure(size: int, mode: str, budget: int, count: int, backbone: str, weights: str, style_side: int) -> dict:
    """One child process; its own peak RSS from wait4."""
    command = [sys.executable, "-m", "bench.tiling", "--child", str(size), mode, str(budget), str(count),
               backbone, weights, str(style_side)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    begin = time.perf_counter()
    out, err = child.communicate()
    if child.returncode != 0:
        return {"size": size, "mode": mode, "error": err.strip().splitlines()[-1] if err.strip() else "failed",
                "seconds": time.perf_counter() - begin}
    return json.loads(out.strip().splitlines()[-1])


def untiled_need(size: int, backbone: str) -> int:
    """The engine's own untiled estimate for the 4:3 photo at `size` (no model loaded)."""
    from daemon.engine import memory

    convs = (2, 2, 4, 4, 4) if backbone == "vgg19" else (2, 2, 3, 3, 3)
    return memory.work_bytes(size, size * 3 // 4, convs, 5)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main()
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[1024, 2048, 3072])
    parser.add_argument("--tiled-only", type=int, nargs="*", default=[4096, 6000, 8192])
    parser.add_argument("--budget-gb", type=float, default=2.0, help="budget of the tiled runs of --sizes")
    parser.add_argument("--big-budget-gb", type=float, default=16.0, help="budget of the --tiled-only runs")
    parser.add_argument("--backbone", default="vgg19")
    parser.add_argument("--weights", default=str(VGG19))
    parser.add_argument("--tag", default="")
    parser.add_argument("--style-side", type=int, default=1024,
                        help="long side of the painting for the style Grams (0: the image's size, as style_scale 1)")
    parser.add_argument("--machine", default="", help="how to name the machine in the results")
    parser.add_argument("--big-count", type=int, default=1, help="evaluations at the --tiled-only sizes")
    args = parser.parse_args()
    from daemon.engine import memory

    rows = []
    plan = [(s, "never", 2) for s in args.sizes] + [(s, "always", 2) for s in args.sizes] + \
           [(s, "always", args.big_count) for s in args.tiled_only]
    for size, mode, count in plan:
        budget = int((args.budget_gb if size in args.sizes else args.big_budget_gb) * 1e9)
        if mode == "never":
            budget = int(0.9 * memory.available_bytes())
            need = untiled_need(size, args.backbone)
            if need > budget:
                row = {"size": size, "mode": "untiled", "error": f"does not fit: estimate {need / 1e9:.1f} GB "
                       f"beyond the runtime, {budget / 1e9:.1f} GB free"}
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
        row = measure(size, mode, budget, count, args.backbone, args.weights, args.style_side)
        row["style_side"] = args.style_side
        rows.append(row)
        print(json.dumps(row), flush=True)
    tag = args.tag or f"{args.backbone}-cpu"
    out = ROOT / "bench" / "results" / f"tiling-{tag}.json"
    machine = args.machine or f"{os.uname().nodename}, {os.cpu_count()} cores"
    out.write_text(json.dumps({"machine": machine, "cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
