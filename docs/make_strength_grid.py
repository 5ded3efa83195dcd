"""Every photo x style pair of ../shared/images at the default settings, for checking the subject by eye.

    python docs/make_strength_grid.py --vgg19-weights ../shared/weights/vgg19_notop.weights.h5 [--size 256]

Writes docs/strength_grid.jpg (one row per photo: the photo, then its result with each style; a last
row shows the damped pairs again with adapt_strength off, the old look) and docs/strength_grid.json
(per pair: seconds, iterations and stop reason per scale, the adaptation, the structure distance of
bench/structure.py, and the content distance: the relative content loss at block4_conv2 of the result
against the photo, as the engine computes it with the network that made it). Results are kept in
--cache so a rerun only redraws.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compare_backbones import save_figure  # noqa: E402
from bench.structure import structure_distance  # noqa: E402
from daemon.engine.params import StyleImage, TransferParams  # noqa: E402
from daemon.logs import setup_logging  # noqa: E402
from daemon.media.images import load_image, resize_to  # noqa: E402
from daemon.review.contact_sheet import Panel, contact_sheet  # noqa: E402

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
DOCS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg19-weights", type=Path, help="VGG19 notop weights (default: vgg16-hed)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/strength_grid"))
    parser.add_argument("--photos", nargs="*", help="make only these photos' pairs (to share the work "
                        "between processes); the grid is drawn when every pair is in the cache")
    parser.add_argument("--draw-only", action="store_true", help="draw from the cache; missing pairs stay grey")
    args = parser.parse_args()
    setup_logging("WARNING")
    engine, backbone = (None, "vgg19" if args.vgg19_weights else "vgg16-hed") if args.draw_only \
        else _engine(args.vgg19_weights)
    params = TransferParams(max_size=args.size)
    args.cache.mkdir(parents=True, exist_ok=True)
    photos = sorted((IMAGES / "content").iterdir())
    styles = sorted((IMAGES / "style").iterdir())
    if args.photos:
        for photo in [p for p in photos if p.name in args.photos]:
            for style_path in styles:
                content, style = load_image(photo).rgb, StyleImage(load_image(style_path).rgb)
                cache = args.cache / f"{photo.stem}__{style_path.stem}"
                if _pair(engine, content, style, params, cache)[0]["adaptation"]["factor"] < 1:
                    _pair(engine, content, style, dataclasses.replace(params, adapt_strength=False), _off(cache))
        return
    rows, records, undamped = [], [], [Panel(np.full((64, 64, 3), 255.0), "adapt off:")]
    for photo in photos:
        content = load_image(photo).rgb
        panels = [Panel(content, photo.name)]
        for style_path in styles:
            style = StyleImage(load_image(style_path).rgb)
            cache = args.cache / f"{photo.stem}__{style_path.stem}"
            if args.draw_only and not cache.with_suffix(".json").exists():
                panels.append(Panel(np.full_like(content, 200.0), f"{style_path.stem[:9]}: not made"))
                continue
            record, rgb = _pair(engine, content, style, params, cache)
            records.append({"photo": photo.name, "style": style_path.name, **record})
            panels.append(Panel(rgb, _label(style_path.stem, record)))
            print(f"{photo.name:14} {style_path.name:28} factor {record['adaptation']['factor']:.3f} structure "
                  f"{record['structure_distance']:.3f} content {record['content_distance']:.3f} "
                  f"{record['seconds']:6.1f}s {record['iterations']} iterations", flush=True)
            missing = args.draw_only and not _off(cache).with_suffix(".json").exists()
            if record["adaptation"]["factor"] < 1 and not missing:  # the old look, for comparison
                off, off_rgb = _pair(engine, content, style, dataclasses.replace(params, adapt_strength=False),
                                     _off(cache))
                records[-1]["adapt_off"] = off
                undamped.append(Panel(off_rgb, f"{photo.stem[:6]}/{style_path.stem[:5]} "
                                               f"s{off['structure_distance']:.2f}"))
        rows.append(contact_sheet(panels, height=160))
    if len(undamped) > 1:
        rows.append(contact_sheet(undamped, height=160))
    save_figure(rows, DOCS / "strength_grid.jpg")
    summary = {"size": args.size, "backbone": backbone, "style_weight": params.style_weight,
               "iterations_cap": params.iterations, "budget": params.budget,
               "stop_tolerance": params.stop_tolerance, "stop_window": params.stop_window,
               "max_content_distance": max(r["content_distance"] for r in records),
               "max_structure_distance": max(r["structure_distance"] for r in records), "pairs": records}
    (DOCS / "strength_grid.json").write_text(json.dumps(summary, indent=1) + "\n")


def _off(cache: Path) -> Path:
    return cache.with_name(cache.name + "__off")


def _label(style: str, record: dict) -> str:
    """Short enough for a 160 px panel: the style, the style weight factor if damped, the structure distance."""
    factor = record["adaptation"]["factor"]
    damped = f" x{factor:.2f}" if factor < 1 else ""
    return f"{style[:9]}{damped} s{record['structure_distance']:.2f}"


def _engine(weights: Path | None):
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights, user_vgg19

    if weights is None:
        return StyleTransfer(hed_weights()), "vgg16-hed"
    return StyleTransfer(user_vgg19(weights)), "vgg19"


def _pair(engine, content: np.ndarray, style: StyleImage, params: TransferParams, cache: Path):
    """(record, image) of one pair, from the cache when it was already made."""
    image_file, record_file = cache.with_suffix(".npy"), cache.with_suffix(".json")
    if image_file.exists() and record_file.exists():
        return json.loads(record_file.read_text()), np.load(image_file)
    print(f"making {cache.name}", flush=True)
    result = engine.stylize(content, [style], params)
    content_distance, style_distance, _ = engine.evaluate(result.rgb, content, [style], params)
    photo = resize_to(content, result.size)
    record = {"content_distance": round(float(content_distance), 4),
              "structure_distance": round(structure_distance(result.rgb, photo), 4),
              "adaptation": dataclasses.asdict(result.adaptation) if result.adaptation else
              {"start_style_error": None, "factor": 1.0, "style_weight": params.style_weight},
              "style_distance": round(float(style_distance), 4), "seconds": round(result.seconds, 1),
              "iterations": result.iterations, "size": list(result.size),
              "scales": [dataclasses.asdict(r) for r in result.scale_reports]}
    np.save(image_file, result.rgb)
    record_file.write_text(json.dumps(record))
    return record, result.rgb


if __name__ == "__main__":
    main()
