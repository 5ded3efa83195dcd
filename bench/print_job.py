"""A complete print-size job through the CLI: total time, peak memory, and the picture for docs/.

    python -m bench.print_job [--size 4000] [--backbone vgg19] [--memory-budget 0]

The photos in ../shared are at most 1024 px, and stylize never upscales, so the Tübingen photo is
first upscaled (Lanczos) to the size asked: the result's fine detail comes from the optimisation, not
from the photo. Writes bench/results/print-SIZE.json, docs/print-SIZE-crop.jpg (a 768x512 crop at
full resolution) and docs/print-SIZE-whole.jpg (the whole picture, 1200 px wide).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.memory import big_content

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
VGG19 = ROOT.parent / "shared" / "weights" / "vgg19_notop.weights.h5"


def run_job(args: argparse.Namespace, photo: Path, out: Path) -> dict:
    """One `style-daemon stylize` process; its wall time and its own peak RSS (wait4)."""
    command = [sys.executable, "-m", "daemon", "stylize", str(photo), "--style",
               str(IMAGES / "style" / args.style), "-o", str(out), "--size", str(args.size),
               "--backbone", args.backbone, "--memory-budget", args.memory_budget]
    if args.backbone == "vgg19":
        command += ["--weights", str(VGG19)]
    log = out.with_suffix(".log")
    begin = time.perf_counter()
    with open(log, "w") as handle:
        child = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - begin
    return {"exit_code": os.waitstatus_to_exitcode(status), "seconds": seconds,
            "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "command": command[2:], "log": str(log)}


def figures(result: Path, size: int) -> None:
    """docs/print-SIZE-crop.jpg at full resolution and docs/print-SIZE-whole.jpg downsized."""
    from PIL import Image

    image = Image.open(result)
    left, top = image.width * 55 // 100, image.height * 30 // 100
    image.crop((left, top, left + 768, top + 512)).save(ROOT / "docs" / f"print-{size}-crop.jpg", quality=90)
    scale = 1200 / image.width
    image.resize((1200, round(image.height * scale)), Image.LANCZOS).save(
        ROOT / "docs" / f"print-{size}-whole.jpg", quality=88)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--backbone", default="vgg19")
    parser.add_argument("--memory-budget", default="0")
    args = parser.parse_args()
    workdir = Path("/tmp") / "style-daemon-print"
    workdir.mkdir(exist_ok=True)
    out = workdir / f"print-{args.size}.jpg"
    for stale in workdir.glob(f"print-{args.size}.jpg*"):
        stale.unlink()
    row = run_job(args, big_content(workdir, args.size), out)
    sidecar = out.with_name(out.name + ".json")
    if sidecar.exists():
        row["sidecar"] = json.loads(sidecar.read_text())
    print(json.dumps({k: v for k, v in row.items() if k != "sidecar"}, indent=2))
    (ROOT / "bench" / "results" / f"print-{args.size}.json").write_text(json.dumps(row, indent=2))
    if row["exit_code"] == 0:
        figures(out, args.size)


if __name__ == "__main__":
    main()
