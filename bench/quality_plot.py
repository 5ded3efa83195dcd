"""The quality benchmark's figures, drawn with Pillow (no matplotlib here): per pair, one bar per
method for its time to target as a fraction of ours-old's total time ("> cap" bars are hollow); and a
contact sheet of the final pictures, to judge them by eye side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

COLOURS = {"ours-old": (120, 120, 120), "ours-new": (20, 150, 60), "ours-new-sw30": (150, 200, 40),
           "lbfgs-plain": (40, 90, 200), "keras-sgd": (200, 60, 40)}
BAR, GAP, LABEL, PAD = 12, 14, 250, 30
CELL = (340, 280)  # contact sheet: each picture fits in this box
HEADER = 18

if TYPE_CHECKING:
    from bench.quality import PairResult


def plot(doc: dict, target: Path) -> None:
    """Writes the figure for a quality document (see bench/quality.py) to `target`."""
    methods = [m for m in COLOURS if m in doc["settings"].get("methods", COLOURS)]
    pairs = doc["pairs"]
    cap = doc["settings"]["cap_factor"]
    x_max = max([cap, 1.0] + [p["methods"][m]["ratio_to_old_total"] or 0 for p in pairs for m in methods])
    width = 900
    plot_width = width - LABEL - PAD
    row = BAR * len(methods) + GAP
    height = 3 * PAD + row * len(pairs) + 16 * len(methods)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def x(value: float) -> float:
        return LABEL + plot_width * value / x_max

    top = 2 * PAD
    marks = {1 / 3: "1/3 (goal)", 1.0: "ours-old total"}
    marks[cap] = f"{marks[cap]} = cap" if cap in marks else f"cap {cap:g}x"
    for level, (mark, text) in enumerate(sorted(marks.items())):
        draw.line([(x(mark), top - 4), (x(mark), top + row * len(pairs))], fill=(190, 190, 190))
        text_x = min(x(mark) - 20, width - 6 - draw.textlength(text))
        draw.text((text_x, top - 18 - 12 * (level % 2)), text, fill="black")
    for i, pair in enumerate(pairs):
        y0 = top + i * row
        draw.text((6, y0 + 2), f"{pair['content']} + {pair['style']}", fill="black")
        for j, method in enumerate(methods):
            m = pair["methods"][method]
            y = y0 + j * BAR
            if m["ratio_to_old_total"] is None:
                draw.rectangle([x(0), y + 1, x(cap), y + BAR - 2], outline=COLOURS[method])
                draw.text((x(cap) + 4, y - 1), "> cap", fill=COLOURS[method])
            else:
                draw.rectangle([x(0), y + 1, x(m["ratio_to_old_total"]), y + BAR - 2], fill=COLOURS[method])
                draw.text((x(m["ratio_to_old_total"]) + 4, y - 1), f"{m['ratio_to_old_total']:.2f}",
                          fill=COLOURS[method])
    legend_y = top + row * len(pairs) + PAD // 2
    for j, method in enumerate(methods):
        draw.rectangle([LABEL, legend_y + 16 * j + 2, LABEL + 10, legend_y + 16 * j + 12], fill=COLOURS[method])
        draw.text((LABEL + 16, legend_y + 16 * j), method, fill="black")
    s = doc["settings"]
    draw.text((6, 6), f"time to ours-old's judged quality, as a fraction of ours-old's total time - "
                      f"{doc['machine']['backend']} {doc['machine']['device']}, {s['size']} px, made by "
                      f"{s['backbone']}, judged by {s['judge']}", fill="black")
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target)


def contact_sheet(results: list[PairResult], methods: list[str], target: Path) -> None:
    """A JPEG with a row per pair: the photo, the painting and each method's final picture."""
    import numpy as np

    columns = ["photo", "painting", *methods]
    width, height = CELL[0] * len(columns), HEADER + (CELL[1] + HEADER) * len(results)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(columns):
        draw.text((CELL[0] * j + 6, 3), name, fill="black")
    for i, pair in enumerate(results):
        top = HEADER + i * (CELL[1] + HEADER)
        draw.text((6, top + 2), f"{pair.content} + {pair.style}", fill="black")
        for j, name in enumerate(columns):
            picture = Image.fromarray(np.clip(pair.pictures[name], 0, 255).astype(np.uint8))
            picture.thumbnail((CELL[0] - 6, CELL[1] - 6), Image.Resampling.LANCZOS)
            sheet.paste(picture, (CELL[0] * j + 3, top + HEADER))
            if name in pair.methods:
                m = pair.methods[name]
                draw.text((CELL[0] * j + 6, top + HEADER + picture.height - 14),
                          f"{m.total_seconds:.0f} s  style {m.final.style:.3f}  content {m.final.content:.3f}",
                          fill="white", stroke_width=2, stroke_fill="black")
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, quality=88)
