"""VGG19 (ImageNet) against vgg16-hed on the same photos and styles, judged by both networks.

    python -m bench.compare_backbones --vgg19-weights ../shared/weights/vgg19_notop.weights.h5

Writes docs/backbones.jpg (content | style | vgg19 | vgg16-hed per pair) and
bench/results/backbones.json, and prints a table. "Style distance" is the relative Gram-matrix
error over block1..5_conv1 against the style image, "content distance" the relative feature error
at block4_conv2 against the photo (both as in the engine's loss, lower is closer), each measured by
a judge network; both judges are reported because each favours results made with itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from daemon.review.contact_sheet import Panel, contact_sheet
from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.transfer import StyleTransfer
from daemon.engine.weights import hed_weights, user_vgg19
from daemon.media.images import load_image
from daemon.logs import setup_logging

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
DEFAULT_PAIRS = ["tubingen.jpg:starry_night.jpg", "chelsea.png:the_scream.jpg"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, help="CONTENT:STYLE file names")
    parser.add_argument("--vgg19-weights", type=Path, required=True)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--figure", type=Path, default=Path("docs/backbones.jpg"))
    parser.add_argument("--json", type=Path, default=Path("bench/results/backbones.json"))
    args = parser.parse_args()
    setup_logging("WARNING")
    engines = {"vgg19": StyleTransfer(user_vgg19(args.vgg19_weights)), "vgg16-hed": StyleTransfer(hed_weights())}
    params = TransferParams(max_size=args.size, iterations=args.iterations)
    rows, sheets = [], []
    for pair in args.pairs:
        content_name, style_name = pair.split(":")
        content = load_image(IMAGES / "content" / content_name).rgb
        style = StyleImage(load_image(IMAGES / "style" / style_name).rgb)
        panels = [Panel(content, content_name), Panel(style.rgb, style_name)]
        for made_by, engine in engines.items():
            result = engine.stylize(content, [style], params)
            panels.append(Panel(result.rgb, f"{made_by}, {result.seconds:.0f}s"))
            for judge_name, judge in engines.items():
                c, s, _ = judge.evaluate(result.rgb, content, [style], params)
                rows.append({"pair": pair, "made_by": made_by, "judge": judge_name, "content_distance": c,
                             "style_distance": s, "seconds": result.seconds})
        sheets.append(contact_sheet(panels, height=180))
    save_figure(sheets, args.figure)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"size": args.size, "iterations": args.iterations, "rows": rows}, indent=2))
    print(f"{'pair':40} {'made by':10} {'judge':10} {'style dist':>10} {'content dist':>12}")
    for r in rows:
        print(f"{r['pair']:40} {r['made_by']:10} {r['judge']:10} {r['style_distance']:10.4f} {r['content_distance']:12.4f}")


def save_figure(sheets, target: Path) -> None:
    """Stack images (contact sheets, grid rows) top to bottom into one JPEG at `target`."""
    from PIL import Image

    width = max(s.width for s in sheets)
    figure = Image.new("RGB", (width, sum(s.height for s in sheets)), "white")
    y = 0
    for sheet in sheets:
        figure.paste(sheet, (0, y))
        y += sheet.height
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.save(target, quality=85)


if __name__ == "__main__":
    main()
