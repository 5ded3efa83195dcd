"""Peak memory of the engine by image size, and the largest size that completes on this machine.

    python -m bench.memory [--sizes 256 512 1024 2048] [--backbone vgg16-hed]

Each size runs `style-daemon stylize` (3 iterations, one scale) in its own process and reads its peak
RSS; sizes are tried in order until one fails. Writes bench/results/memory-TAG.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


def big_content(workdir: Path, long_side: int) -> Path:
    """The Tübingen photo upscaled so that no tested size is capped by the photo (stylize never upscales)."""
    from PIL import Image

    target = workdir / f"tubingen-{long_side}.png"
    if not target.exists():
        image = Image.open(IMAGES / "content" / "tubingen.jpg").convert("RGB")
        scale = long_side / max(image.size)
        image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS).save(target)
    return target


def measure(size: int, backbone: str, weights: Path | None, workdir: Path, content: Path) -> dict:
    """One stylize run at `size`; returns its peak RSS, wall time and exit code."""
    command = [sys.executable, "-m", "daemon", "stylize", str(content), "--style",
               str(IMAGES / "style" / "starry_night.jpg"), "-o", str(workdir / f"m{size}.jpg"), "--size", str(size),
               "--iterations", "3", "--scales", "1", "--backbone", backbone]
    if weights:
        command += ["--weights", str(weights)]
    begin = time.perf_counter()
    log = workdir / f"m{size}.log"
    with open(log, "w") as handle:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=handle, cwd=ROOT)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix all children).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    message = [line for line in log.read_text().splitlines() if "ERROR" in line]
    return {"size": size, "exit_code": child.returncode, "seconds": time.perf_counter() - begin,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "error": re.sub(r"^.*ERROR [^:]*: ", "", message[-1]) if message else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 1536, 2048, 2560, 3072])
    parser.add_argument("--backbone", default="vgg16-hed")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    workdir = Path("/tmp") / "style-daemon-memory"
    workdir.mkdir(exist_ok=True)
    rows = []
    content = big_content(workdir, max(args.sizes))
    for size in sorted(args.sizes):
        row = measure(size, args.backbone, args.weights, workdir, content)
        rows.append(row)
        print(f"{size:5d} px: exit {row['exit_code']}, peak RSS {row['peak_rss_mb']:.0f} MB, "
              f"{row['seconds']:.0f} s {row['error'] or ''}", flush=True)
        if row["exit_code"] != 0:
            break
    largest = max((r["size"] for r in rows if r["exit_code"] == 0), default=None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"memory-{args.backbone}.json").write_text(json.dumps({"rows": rows, "largest_ok": largest}, indent=2))
    print(f"largest size that completed: {largest} px")


if __name__ == "__main__":
    main()
