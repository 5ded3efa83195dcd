"""Make docs/gallery.png: a real `style-daemon once` batch (real engine) rendered by headless Chromium.

    python docs/make_gallery_screenshot.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="style-daemon-gallery-"))
    (work / "in").mkdir(parents=True, exist_ok=True)
    config = {
        "input": "in", "output": "out", "state": "state",
        "styles": {"starry": {"images": [str(IMAGES / "style" / "starry_night.jpg")]},
                   "scream": {"images": [str(IMAGES / "style" / "the_scream.jpg")]}},
        "routing": {"default": ["starry", "scream"]},
        "engine": {"max_size": 200, "iterations": 40, "scales": 2, "backbone": "auto"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    for name, target in (("chelsea.png", "Chelsea the cat.png"), ("rocket.jpg", "rocket <launch> & co.jpg"),
                         ("coffee.png", "café.png")):
        shutil.copy(IMAGES / "content" / name, work / "in" / target)
    (work / "in" / "holiday-notes.jpg").write_text("this is not a photo")
    subprocess.run([sys.executable, "-m", "daemon", "once", "-c", str(work / "config.yaml")], cwd=ROOT)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    target = ROOT / "docs" / "gallery.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={work / 'profile'}", "--hide-scrollbars", "--window-size=1100,760",
                    "--virtual-time-budget=5000", f"--screenshot={target}", (work / "out" / "index.html").as_uri()],
                   check=True, capture_output=True)
    print(f"wrote {target} from {work}")


if __name__ == "__main__":
    main()
