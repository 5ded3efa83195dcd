"""The GPU run, ready (issue 27): what one evaluation, the default job and a batch cost on this device.

    KERAS_BACKEND=jax python -m bench.gpu [--profile gpu|quick] [--budget 480] [--out bench/results]
    bash bench/gpu.sh WHEELS_DIR            (installs what is missing from carried wheels, then runs this)

Sections, in order, each timed and each skipped once --budget seconds are spent: the dense matmul
rate in float32 (HIGHEST), tf32 (DEFAULT: TF32 on an NVIDIA GPU) and bf16; one evaluation (value and
gradient) at each size in float32 and bf16, in ms and as a fraction of those rates; the default job on
a few photos (the first pays the compilations, the later ones show the steady cost); a batch of photos
of varied shapes (photos per hour, compilations counted); the same job in bf16 and tf32 judged in
float32 against the float32 result (loss ratio and mean pixel difference); one tiled evaluation at
print size. Writes bench/results/gpu-DEVICE.json naming the device. `--profile quick` runs every
section at sizes a CPU does in a minute or two (tests/unit/bench/test_gpu_bench.py runs it so).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
PHOTOS = ("tubingen.jpg", "chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
STYLE = "starry_night.jpg"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    """The sizes of one run: the GPU's, or a CPU's quick rehearsal of every section."""

    eval_sizes: tuple[int, ...]
    job_size: int
    job_iterations: int | None  # None: the engine's default
    job_photos: int
    batch_photos: int
    tiled_size: int
    tile_size: int
    matmul_n: int


PROFILES = {
    "gpu": Profile((512, 1024, 2048), 512, None, 5, 20, 4096, 1024, 8192),
    "quick": Profile((64, 96), 64, 4, 2, 3, 160, 64, 512),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gpu")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds; later sections are skipped past it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


class Compilations:
    """Counts XLA backend compilations (JAX's monitoring events) from its creation on."""

    def __init__(self) -> None:
        import jax

        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._heard)

    def _heard(self, event: str, duration: float, **_: object) -> None:
        if event == COMPILE_EVENT:
            self.count += 1


def device() -> dict:
    """The device JAX computes on, named as its driver names it."""
    import jax

    first = jax.devices()[0]
    return {"platform": first.platform, "kind": first.device_kind, "count": jax.device_count(),
            "jax": jax.__version__}


def matmul_rates(n: int) -> dict[str, float]:
    """GFLOP/s of an n x n matmul in float32 (HIGHEST), tf32 (DEFAULT) and bf16."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    kinds = {"float32": (a, jax.lax.Precision.HIGHEST), "tf32": (a, jax.lax.Precision.DEFAULT),
             "bf16": (a.astype(jnp.bfloat16), jax.lax.Precision.DEFAULT)}
    rates = {}
    for name, (x, precision) in kinds.items():
        step = jax.jit(lambda x, precision=precision: jnp.matmul(x, x, precision=precision))
        step(x).block_until_ready()
        seconds = _best(lambda: step(x).block_until_ready(), 3)
        rates[name] = 2 * n**3 / seconds / 1e9
    return rates


def _best(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return min(times)


def _photo(name: str, size: int):
    from daemon.media.images import load_image, resize_long_side

    return resize_long_side(load_image(IMAGES / "content" / name).rgb, size)


def _styles():
    from daemon.engine.params import StyleImage
    from daemon.media.images import load_image

    return [StyleImage(load_image(IMAGES / "style" / STYLE).rgb)]


def evaluations(engine, sizes: tuple[int, ...], rates: dict[str, float]) -> list[dict]:
    """One value-and-gradient per size and arithmetic: ms, and the share of the matmul rate it reaches."""
    import numpy as np

    from bench.host_precision import loss_step
    from bench.keras_loss import vgg_flops
    from daemon.engine.params import TransferParams

    rows = []
    for size in sizes:
        photo = _photo(PHOTOS[0], size)
        params = TransferParams(max_size=size, scales=1)
        flops = 2 * vgg_flops(engine.model, photo.shape[0], photo.shape[1])  # forward, and a backward to the input
        for arithmetic in ("float32", "bf16"):
            step = loss_step(engine, params, arithmetic, photo, _styles())
            image = photo.astype(np.float32)[None]
            step(image)  # compiles
            seconds = _best(lambda: step(image), 3)
            rate = rates.get(arithmetic if arithmetic == "bf16" else "tf32", 0.0)
            rows.append({"size": [photo.shape[1], photo.shape[0]], "arithmetic": arithmetic, "ms": 1000 * seconds,
                         "gflop": flops / 1e9, "fraction_of_matmul_rate": flops / seconds / 1e9 / rate if rate else None})
    return rows


def _params(profile: Profile, **changes):
    from daemon.engine.params import TransferParams

    settings = {"max_size": profile.job_size, **changes}
    if profile.job_iterations is not None:
        settings["iterations"] = profile.job_iterations
    return TransferParams(**settings)


def jobs(engine, profile: Profile, counter: Compilations) -> dict:
    """The default job on a few photos, one after the other as a worker runs them."""
    seconds, compiled = [], []
    for name in PHOTOS[:profile.job_photos]:
        before, began = counter.count, time.perf_counter()
        result = engine.stylize(_photo(name, 4 * profile.job_size), _styles(), _params(profile))
        seconds.append(time.perf_counter() - began)  # wall time: set-up and compilations included
        compiled.append(counter.count - before)
    later = seconds[1:] or seconds
    return {"seconds": seconds, "compilations": compiled, "first_seconds": seconds[0],
            "later_median_seconds": statistics.median(later),
            "loops": sorted({r.optimizer for r in result.scale_reports})}


def batch(engine, profile: Profile, counter: Compilations, deadline: float = float("inf")) -> dict:
    """Photos of varied shapes (crops of the shared photos), as a hot folder receives them; fewer if the
    budget's deadline (perf_counter) comes first."""
    began, before, done = time.perf_counter(), counter.count, 0
    for index in range(profile.batch_photos):
        if time.perf_counter() > deadline:
            break
        photo = _photo(PHOTOS[index % len(PHOTOS)], 4 * profile.job_size)
        keep = 1.0 - 0.08 * (index // len(PHOTOS) + index % 3)  # a different aspect ratio now and then
        photo = photo[: max(8, int(photo.shape[0] * keep))]
        engine.stylize(photo, _styles(), _params(profile))
        done += 1
    seconds = time.perf_counter() - began
    return {"photos": done, "asked": profile.batch_photos, "seconds": seconds,
            "photos_per_hour": 3600 * done / seconds, "compilations": counter.count - before}


def precisions(engine, profile: Profile) -> dict:
    """The same job in float32, bf16 and tf32 (the on-device loop), each judged in float32."""
    import numpy as np

    photo, styles = _photo(PHOTOS[0], 4 * profile.job_size), _styles()
    judge = _params(profile, precision="float32")
    results = {}
    for arithmetic in ("float32", "bf16", "tf32"):
        began = time.perf_counter()
        result = engine.stylize(photo, styles, _params(profile, precision=arithmetic, lbfgs_impl="optax"))
        seconds = time.perf_counter() - began
        content, style, tv = engine.evaluate(result.rgb, photo, styles, judge)
        results[arithmetic] = {"seconds": seconds, "rgb": result.rgb,
                               "judged_loss": float(judge.content_weight * content + judge.style_weight * style)}
    base = results["float32"]
    return {name: {"seconds": r["seconds"], "judged_loss": r["judged_loss"],
                   "loss_ratio_to_float32": r["judged_loss"] / base["judged_loss"],
                   "mean_pixel_difference": float(np.mean(np.abs(r["rgb"] - base["rgb"])))}
            for name, r in results.items()}


def tiled(engine, profile: Profile) -> dict:
    """One iteration at print size, tiled: what an evaluation costs when the image does not fit."""
    photo = _photo(PHOTOS[0], profile.tiled_size)
    params = _params(profile, max_size=profile.tiled_size, scales=1, iterations=1, tiling="always",
                     tile_size=profile.tile_size)
    began = time.perf_counter()
    result = engine.stylize(photo, _styles(), params)
    report = result.scale_reports[-1]
    return {"size": list(result.size), "tiles": report.tiles, "seconds": time.perf_counter() - began,
            "evaluations": result.evaluations, "optimizer": report.optimizer}


def run(args: argparse.Namespace) -> dict:
    """Every section in order within the budget; the document written to bench/results."""
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights

    profile = PROFILES[args.profile]
    began = time.perf_counter()
    counter = Compilations()
    engine = StyleTransfer(hed_weights())
    document: dict = {"device": device(), "backend": engine.backend(), "profile": args.profile,
                      "settings": asdict(profile), "budget_seconds": args.budget, "skipped": [], "errors": {}}
    rates = document["matmul_gflops"] = matmul_rates(profile.matmul_n)
    sections = {"evaluations": lambda: evaluations(engine, profile.eval_sizes, rates),
                "jobs": lambda: jobs(engine, profile, counter), "batch": lambda: batch(engine, profile, counter, began + args.budget),
                "precisions": lambda: precisions(engine, profile), "tiled": lambda: tiled(engine, profile)}
    for name, section in sections.items():
        if time.perf_counter() - began > args.budget:
            document["skipped"].append(name)
            continue
        try:
            document[name] = section()
        except Exception as exc:  # noqa: BLE001 - one section's failure is a finding; the others still run
            log.exception("section %s failed", name)
            document["errors"][name] = " ".join(str(exc).split())[:500]
    document["seconds"] = time.perf_counter() - began
    return document


def main(argv: list[str] | None = None) -> int:
    """Run, write bench/results/gpu-DEVICE[-quick].json, print where; 1 if a section failed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    document = run(args)
    slug = re.sub(r"[^a-z0-9]+", "-", document["device"]["kind"].lower()).strip("-") or "device"
    suffix = "" if args.profile == "gpu" else f"-{args.profile}"
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"gpu-{slug}{suffix}.json"
    target.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps({k: document.get(k) for k in ("device", "matmul_gflops", "skipped", "errors", "seconds")}))
    print(f"wrote {target}")
    return 1 if document["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
