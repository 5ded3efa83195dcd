"""What the stopping rule costs or saves at one size: the default schedule with the rule and without it.

    python -m bench.stopping [--size 1024] [--pairs 2] [--backbone vgg16-hed|vgg19]

Per pair, the same job runs twice in this process (after a warm-up that compiles every scale):
TransferParams() as it is, and with stop_tolerance 0 (every scale runs to its cap). Reports each run's
seconds, iterations per scale and why each scale stopped, and the final picture's judged distances
(bench/quality_judge.py, the other network) and structure distance (bench/structure.py). Writes
bench/results/stopping-BACKBONE-SIZE.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import replace
from pathlib import Path

from bench.quality import JUDGE_OF, ROOT, VGG19_WEIGHTS, engines, pairs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--backbone", choices=sorted(JUDGE_OF), default="vgg16-hed")
    parser.add_argument("--vgg19-weights", type=Path, default=VGG19_WEIGHTS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    return parser.parse_args(argv)


def run_pair(maker, judge_engine, content_path, style_path, size: int) -> dict:
    """Both runs on one pair, judged."""
    from bench.quality_judge import Judge
    from bench.structure import structure_distance
    from daemon.engine.params import StyleImage, TransferParams
    from daemon.media.images import load_image, resize_long_side

    content = resize_long_side(load_image(content_path).rgb, size)
    style = StyleImage(load_image(style_path).rgb, name=style_path.name)
    rule = TransferParams(max_size=size)
    runs = {"with the rule": rule, "without (caps only)": replace(rule, stop_tolerance=0.0)}
    maker.stylize(content, [style], replace(rule, iterations=2, stop_tolerance=0.0))  # compile every scale
    judge = Judge(judge_engine, content, style)
    out = {"content": content_path.name, "style": style_path.name, "runs": {}}
    for name, params in runs.items():
        result = maker.stylize(content, [style], params)
        style_distance, content_distance = judge(result.rgb)
        out["runs"][name] = {
            "seconds": round(result.seconds, 1), "iterations": result.iterations,
            "judged_style": round(style_distance, 5), "judged_content": round(content_distance, 4),
            "structure": round(structure_distance(result.rgb, content), 4),
            "scales": [dataclasses.asdict(r) for r in result.scale_reports],
        }
        print(f"{content_path.name} + {style_path.name} {name}: {result.seconds:.1f}s, "
              f"{[r.iterations for r in result.scale_reports]} iterations, judged style {style_distance:.4f} "
              f"content {content_distance:.3f}", flush=True)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    from daemon.logs import setup_logging

    setup_logging("WARNING")
    maker, judge_engine = engines(args)
    rows = [run_pair(maker, judge_engine, c, s, args.size) for c, s in pairs(args.pairs)]
    doc = {"machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg()), "device": maker.device()},
           "size": args.size, "backbone": args.backbone, "judge": JUDGE_OF[args.backbone], "pairs": rows}
    path = os.path.join(args.out, f"stopping-{args.backbone}-{args.size}.json")
    with open(path, "w") as handle:
        json.dump(doc, handle, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
