"""Time to a judged quality: ours at the new defaults, ours at the old defaults, plain L-BFGS and the
Keras example's SGD, on photo/style pairs, judged by a network other than the one optimised.

    python -m bench.quality [--pairs 6] [--size 512] [--backbone vgg16-hed|vgg19] [--cap-factor 1.0]
                            [--margin 0.05] [--grid 40] [--quick] [--out bench/results]

Per pair, all methods run one after another in this process (ours-old first: its time sets the cap
and its final picture the target), recording timed snapshots; judging happens after the runs,
off the clock. Target: the judge's (style, content) distances of ours-old's final picture, each
with `margin` slack. Time to target: run seconds at the first snapshot meeting it; a method that
does not meet it within cap-factor x ours-old's total time is "> cap" (null in the JSON).
The photo itself is judged too: each final style distance is also given as the share of the
photo's own that is left (comparable across pairs: every photo starts at 100 %). Writes
bench/results/quality-BACKEND-DEVICE-SIZE.json, a .png of the ratios and a -finals.jpg contact sheet
of the final pictures side by side, and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.time_to_target import Judged, Target, first_reaching, ratio

if TYPE_CHECKING:
    import numpy as np

    from bench.quality_runs import MethodRun
    from daemon.engine.params import StyleImage, TransferParams

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
VGG19_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg19_notop.weights.h5"
# ours-new-sw30: the new schedule (stopping rule, coarse budget) at the old look (style weight 30, not
# adapted to the pair), so its time to ours-old's target measures the schedule alone; ours-new is the
# default, which on the pairs where the old look drowned the subject damps the style weight (adapt.py)
# and so is judged by its distances beside its time there.
METHODS = ("ours-old", "ours-new", "ours-new-sw30", "lbfgs-plain", "keras-sgd")
# Today's defaults (before issue #16); fields this TransferParams lacks are skipped.
OLD_DEFAULTS = {"iterations": 100, "scales": 3, "style_weight": 30.0, "content_weight": 1.0, "tv_weight": 5.0,
                "stop_tolerance": 0.0, "budget": "even", "adapt_strength": False, "precision": "float32",
                "lbfgs_impl": "scipy"}
QUICK = {"size": 96, "iterations": 3, "grid": 4}
JUDGE_OF = {"vgg19": "vgg16-hed", "vgg16-hed": "vgg19"}


@dataclass
class MethodResult:
    """One method on one pair: the time to target (None: not within the cap) and the judged curve."""

    method: str
    seconds_to_target: float | None
    total_seconds: float
    final: Judged
    snapshots: int
    curve: list[Judged] = field(default_factory=list)  # every snapshot judged, in time order


@dataclass
class PairResult:
    """All methods on one photo/style pair."""

    content: str
    style: str
    size: tuple[int, int]
    target: Target
    cap_seconds: float
    warm_up_seconds: float
    methods: dict[str, MethodResult]
    photo: Judged  # the unmodified photo, judged: how far the picture started from the painting
    # not in the JSON: the photo, the painting and each method's final picture, for the contact sheet
    pictures: dict[str, np.ndarray] = field(default_factory=dict)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="photo/style pairs from ../shared/images (1-20)")
    parser.add_argument("--size", type=int, default=512, help="long side in pixels")
    parser.add_argument("--backbone", choices=sorted(JUDGE_OF), default="vgg16-hed",
                        help="the network optimised; the other one judges")
    parser.add_argument("--vgg19-weights", type=Path, default=VGG19_WEIGHTS)
    parser.add_argument("--cap-factor", type=float, default=1.0, help="time cap, in ours-old's total time")
    parser.add_argument("--margin", type=float, default=0.05, help="slack on each target distance (0.05: 5%%)")
    parser.add_argument("--grid", type=int, default=40,
                        help="snapshots judged first, evenly over the cap (0: judge every snapshot)")
    parser.add_argument("--snapshot-every", type=int, default=1,
                        help="ours: iterations between snapshots (on a GPU's device loop each one ends a "
                             "compiled chunk, so raise it there)")
    parser.add_argument("--new-param", action="append", default=[], metavar="KEY=VALUE",
                        help="override one TransferParams field of ours-new (repeatable), e.g. "
                             "style_weight=30 to compare speed at the old look")
    parser.add_argument("--methods", nargs="+", choices=METHODS[1:], default=list(METHODS[1:]),
                        help="the methods run beside ours-old (which always runs: it sets the cap and target)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK['size']} px, {QUICK['iterations']} iterations per scale, "
                             f"grid {QUICK['grid']}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if not 1 <= args.pairs <= 20:
        parser.error("--pairs must be 1 to 20 (5 photos x 4 styles)")
    if args.cap_factor <= 0 or args.margin < 0 or args.grid < 0 or args.snapshot_every < 1:
        parser.error("--cap-factor must be positive, --margin and --grid not negative, --snapshot-every "
                     "at least 1")
    args.methods = [METHODS[0]] + [m for m in METHODS[1:] if m in args.methods]
    if args.quick:
        args.size, args.grid = QUICK["size"], min(args.grid, QUICK["grid"])
    return args


def pairs(count: int) -> list[tuple[Path, Path]]:
    """`count` photo/style pairs; the k-th is photo k mod 5 with style k mod 4, so the first ones
    differ in both (5 and 4 are coprime, so 20 steps give every pair once)."""
    contents = sorted((IMAGES / "content").iterdir())
    styles = sorted((IMAGES / "style").iterdir())
    return [(contents[k % len(contents)], styles[k % len(styles)]) for k in range(count)]


def method_params(quick: bool, overrides: list[str] = ()) -> dict[str, TransferParams]:
    """TransferParams of ours-new (the defaults as they are now, with KEY=VALUE `overrides`) and
    ours-old (today's defaults)."""
    from daemon.engine.params import MIN_SIDE, TransferParams

    known = {f.name for f in dataclasses.fields(TransferParams)}
    params = {"ours-new": replace(TransferParams(), **_parse_overrides(overrides)),
              "ours-old": replace(TransferParams(), **{k: v for k, v in OLD_DEFAULTS.items() if k in known})}
    params["ours-new-sw30"] = replace(params["ours-new"], style_weight=OLD_DEFAULTS["style_weight"],
                                      content_weight=OLD_DEFAULTS["content_weight"], adapt_strength=False)
    if quick:  # tiny and short, but still two scales (min_scale_size down to the smallest side)
        params = {name: replace(p, iterations=min(p.iterations, QUICK["iterations"]), min_scale_size=MIN_SIDE)
                  for name, p in params.items()}
    return params


def _parse_overrides(overrides: list[str]) -> dict:
    """KEY=VALUE strings -> fields of TransferParams, each value of its field's default type."""
    from daemon.engine.params import TransferParams

    defaults = TransferParams()
    fields = {f.name for f in dataclasses.fields(TransferParams)}
    parsed = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in fields or not value:
            raise SystemExit(f"--new-param {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}")
        kind = type(getattr(defaults, key))
        try:
            parsed[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:
            raise SystemExit(f"--new-param {item!r}: {key} takes a {kind.__name__}") from None
    return parsed


def engines(args: argparse.Namespace):
    """(the engine that optimises, the engine that judges)."""
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights, user_vgg19

    def build(name: str):
        return StyleTransfer(hed_weights() if name == "vgg16-hed" else user_vgg19(args.vgg19_weights))

    return build(args.backbone), build(JUDGE_OF[args.backbone])


def run_pair(index: int, content_path: Path, style_path: Path, maker, judge_engine, loss, params,
             args: argparse.Namespace) -> PairResult:
    """Runs every method on one pair, then judges their snapshots (off the clock)."""
    from bench.quality_judge import Judge
    from bench.quality_runs import warm_up
    from daemon.engine.params import StyleImage
    from daemon.media.images import load_image, resize_long_side

    content = resize_long_side(load_image(content_path).rgb, args.size)
    style = StyleImage(load_image(style_path).rgb, name=style_path.name)
    warm = warm_up(maker, loss, content, style, [params[m] for m in args.methods if m in params])
    done = _run_methods(index, maker, loss, content, style, params, args)
    cap = args.cap_factor * done["ours-old"].total_seconds
    _say(f"pair {index + 1}: judging")
    judge = Judge(judge_engine, content, style)
    target = Target(*judge(done["ours-old"].images[-1]), args.margin)
    step = cap / args.grid if args.grid else 0.0
    results = {m: _judge_run(done[m], judge, target, cap, step) for m in args.methods}
    size = (int(content.shape[1]), int(content.shape[0]))
    photo = Judged(0.0, *judge(content))
    pictures = {"photo": content, "painting": style.rgb} | {m: done[m].images[-1] for m in args.methods}
    return PairResult(content_path.name, style_path.name, size, target, cap, warm, results, photo, pictures)


def _run_methods(index: int, maker, loss, content, style: StyleImage, params,
                 args: argparse.Namespace) -> dict[str, MethodRun]:
    """ours-old first (its time sets the cap), then the others in an order that rotates per pair."""
    from bench import quality_runs as runs

    done = {"ours-old": runs.run_ours("ours-old", maker, content, style, params["ours-old"], args.snapshot_every)}
    cap = args.cap_factor * done["ours-old"].total_seconds
    others = list(args.methods[1:])
    for _ in range(index % len(others)):  # rotate, so no method always runs last
        others.append(others.pop(0))
    for method in others:
        _say(f"pair {index + 1}: {method}")
        if method.startswith("ours-new"):
            done[method] = runs.run_ours(method, maker, content, style, params[method], args.snapshot_every)
        elif method == "lbfgs-plain":
            done[method] = runs.run_lbfgs_plain(loss, content, style, cap)
        else:
            done[method] = runs.run_keras_sgd(loss, content, style, cap)
    return done


def _judge_run(run: MethodRun, judge, target: Target, cap: float, step: float) -> MethodResult:
    """Time to target within the cap, the final picture's distances, and every judged snapshot."""
    cache: dict[int, Judged] = {}

    def judged(index: int) -> Judged:
        if index not in cache:
            cache[index] = Judged(run.times[index], *judge(run.images[index]))
        return cache[index]

    within = [t for t in run.times if t <= cap]
    hit = first_reaching(within, judged, target, step)
    final = judged(len(run.times) - 1)
    curve = [cache[i] for i in sorted(cache)]
    return MethodResult(run.method, hit.seconds if hit else None, run.total_seconds, final, len(run.times), curve)


def document(results: list[PairResult], params, args: argparse.Namespace, machine: dict) -> dict:
    """The JSON written: settings, parameters, and per pair and method the times, distances and ratios."""
    pair_docs = []
    for pair in results:
        old = pair.methods["ours-old"]
        methods = {}
        for name, m in pair.methods.items():
            methods[name] = {
                "seconds_to_target": m.seconds_to_target,
                "total_seconds": m.total_seconds,
                "ratio_to_old_total": ratio(m.seconds_to_target, old.total_seconds),
                "ratio_to_old_target": ratio(m.seconds_to_target, old.seconds_to_target),
                "final_style_distance": m.final.style,
                "final_content_distance": m.final.content,
                "style_left": m.final.style / pair.photo.style,
                "snapshots": m.snapshots,
                "curve": [[round(j.seconds, 3), j.style, j.content] for j in m.curve],
            }
        pair_docs.append({"content": pair.content, "style": pair.style, "size": list(pair.size),
                          "target": dataclasses.asdict(pair.target), "cap_seconds": pair.cap_seconds,
                          "warm_up_seconds": pair.warm_up_seconds,
                          "photo": {"style_distance": pair.photo.style, "content_distance": pair.photo.content},
                          "methods": methods})
    summary = {}
    for name in args.methods:
        ratios = [p["methods"][name]["ratio_to_old_total"] for p in pair_docs]
        reached = [r for r in ratios if r is not None]
        summary[name] = {"pairs_reached": len(reached), "pairs": len(ratios),
                         "median_ratio_to_old_total": statistics.median(reached) if reached else None,
                         "max_ratio_to_old_total": max(reached) if reached else None}
    return {
        "machine": machine,
        "settings": {"size": args.size, "backbone": args.backbone, "judge": JUDGE_OF[args.backbone],
                     "cap_factor": args.cap_factor, "margin": args.margin, "grid": args.grid,
                     "snapshot_every": args.snapshot_every, "new_param": args.new_param, "quick": args.quick,
                     "methods": args.methods},
        "params": {name: dataclasses.asdict(p) for name, p in params.items()},
        "old_defaults_skipped": sorted(set(OLD_DEFAULTS) - set(dataclasses.asdict(params["ours-old"]))),
        "pairs": pair_docs,
        "summary": summary,
    }


def table(doc: dict) -> str:
    """Seconds to target with the ratio to ours-old's total time, and the final judged distances."""
    def cell(m: dict) -> str:
        if m["seconds_to_target"] is None:
            return "> cap"
        return f"{m['seconds_to_target']:.1f}s ({m['ratio_to_old_total']:.2f})"

    width = 40
    methods = doc["settings"].get("methods", list(METHODS))
    new = methods[1]  # the total beside ours-old's: ours-new when it ran
    lines = [f"time to target (ratio to ours-old's total time); cap {doc['settings']['cap_factor']}x ours-old, "
             f"margin {100 * doc['settings']['margin']:.0f}%, made by {doc['settings']['backbone']}, "
             f"judged by {doc['settings']['judge']}",
             f"{'pair':{width}} {'old total':>9} {new[:9]:>9} " + " ".join(f"{m:>16}" for m in methods)]
    for p in doc["pairs"]:
        name = f"{p['content']} + {p['style']}"
        lines.append(f"{name:{width}} {p['methods']['ours-old']['total_seconds']:8.1f}s "
                     f"{p['methods'][new]['total_seconds']:8.1f}s "
                     + " ".join(f"{cell(p['methods'][m]):>16}" for m in methods))
    medians = [doc["summary"][m]["median_ratio_to_old_total"] for m in methods]
    lines.append(f"{'median ratio (pairs reached)':{width}} {'':19} " + " ".join(
        f"{(f'{r:.2f}' if r is not None else '-') + ' (' + str(doc['summary'][m]['pairs_reached']) + ')':>16}"
        for r, m in zip(medians, methods)))
    lines.append("")
    lines.append("final judged distances, style / content (target: ours-old's)")
    for p in doc["pairs"]:
        name = f"{p['content']} + {p['style']}"
        lines.append(f"{name:{width}} {'':19} " + " ".join(
            f"{p['methods'][m]['final_style_distance']:.4f}/{p['methods'][m]['final_content_distance']:.3f}".rjust(16)
            for m in methods))
    if all("photo" in p for p in doc["pairs"]):
        lines.append("")
        lines.append("style distance left, as a share of the photo's own (the photo's distance in brackets)")
        for p in doc["pairs"]:
            name = f"{p['content']} + {p['style']} ({p['photo']['style_distance']:.3f})"
            lines.append(f"{name:{width + 21}}" + " ".join(
                f"{100 * p['methods'][m]['style_left']:.1f}%".rjust(16) for m in methods))
    return "\n".join(lines)


def machine_info(maker) -> dict:
    return {"backend": maker.backend(), "device": maker.device(), "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine()}


def main(argv=None) -> None:
    args = parse_args(argv)
    from daemon.logs import setup_logging

    setup_logging("WARNING")
    from bench.keras_loss import KerasExampleLoss
    from bench.quality_plot import contact_sheet, plot

    params = method_params(args.quick, args.new_param)
    maker, judge_engine = engines(args)
    loss = KerasExampleLoss(maker.model)
    results = []
    for index, (content_path, style_path) in enumerate(pairs(args.pairs)):
        _say(f"pair {index + 1}/{args.pairs}: {content_path.name} + {style_path.name}, ours-old")
        results.append(run_pair(index, content_path, style_path, maker, judge_engine, loss, params, args))
    info = machine_info(maker)
    doc = document(results, params, args, info)
    tag = f"{info['backend']}-{info['device'].split(':')[0]}-{args.size}"
    if args.methods != list(METHODS):  # a partial run never overwrites the full one's results
        tag += "-" + "+".join(args.methods[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"quality-{tag}.json").write_text(json.dumps(doc, indent=2))
    plot(doc, args.out / f"quality-{tag}.png")
    contact_sheet(results, args.methods, args.out / f"quality-{tag}-finals.jpg")
    print(table(doc))


_STARTED = time.monotonic()


def _say(line: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.0f} s] {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
