"""How good the progress ETA is on the real engine: the ETA shown against the time that then remained.

    python -m bench.eta [--size 128] [--scales 3] [--iterations 40]      (the offline vgg16-hed backbone)

Runs the same job twice on one engine, as a worker does: the first job compiles and learns how step
time grows with size here; the second is what every later job sees. Prints one line per tenth of each
run (done, ETA shown, time that remained, error) and a JSON summary; exits 1 when the second run's ETA
at one third is more than 30 % off.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


@dataclass(frozen=True)
class Sample:
    """One progress callback: when it came, how far the run was, the ETA it showed."""

    at: float
    done: int
    total: int
    eta: float | None


def run(engine, size: int, scales: int, iterations: int) -> list[Sample]:
    """One real stylisation, every progress callback recorded with its time."""
    from daemon.engine.params import StyleImage, TransferParams
    from daemon.media.images import load_image

    content = load_image(IMAGES / "content" / "tubingen.jpg").rgb
    style = load_image(IMAGES / "style" / "starry_night.jpg").rgb
    params = TransferParams(max_size=size, scales=scales, min_scale_size=32, iterations=iterations)
    samples: list[Sample] = []
    engine.stylize(content, [StyleImage(style)], params,
                   on_progress=lambda p: samples.append(Sample(time.perf_counter(), p.iteration,
                                                               p.total_iterations, p.eta)))
    return samples


def errors(samples: list[Sample]) -> list[tuple[float, float | None, float, float | None]]:
    """(fraction done, ETA shown, time that remained, relative error) at each tenth of the run."""
    end = samples[-1].at
    rows = []
    for tenth in range(1, 10):
        sample = samples[max(round(len(samples) * tenth / 10) - 1, 0)]
        remaining = end - sample.at
        error = None if sample.eta is None or remaining <= 0 else (sample.eta - remaining) / remaining
        rows.append((sample.done / sample.total, sample.eta, remaining, error))
    return rows


def at_one_third(samples: list[Sample]) -> tuple[float | None, float]:
    """(ETA shown, time that then remained) at one third of the run."""
    sample = samples[max(round(len(samples) / 3) - 1, 0)]
    return sample.eta, samples[-1].at - sample.at


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ETA accuracy on the real engine")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args(argv)
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights

    engine = StyleTransfer(hed_weights())
    summary = {}
    for label in ("first job", "next job"):
        samples = run(engine, args.size, args.scales, args.iterations)
        print(label)
        for fraction, eta, remaining, error in errors(samples):
            shown = "estimating" if eta is None else f"{eta:7.1f}s"
            off = "" if error is None else f"{error:+.0%}"
            print(f"{fraction:5.0%} done  eta {shown:>10}  remained {remaining:7.1f}s  {off}")
        eta, remaining = at_one_third(samples)
        summary[label] = {"eta_at_one_third": eta, "remaining_at_one_third": remaining,
                          "total_seconds": samples[-1].at - samples[0].at,
                          "within_30_percent": eta is not None and abs(eta - remaining) <= 0.3 * remaining}
    print(json.dumps(summary))
    return 0 if summary["next job"]["within_30_percent"] else 1


if __name__ == "__main__":
    sys.exit(main())
