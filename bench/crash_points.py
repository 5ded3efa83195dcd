"""Every crash point of every setting (issue 24): the full sweep the CI test samples.

For after_success keep, delete, move (processed/ on the same file system) and move to another file system
(a tmpfs), on SQLite and PostgreSQL, it kills the worker and, separately, the supervisor at each call that
changes the file system or commits the store during one photo's job, restarts the daemon and checks the
invariants (tests/support/crash_points.py). Run as root from the repository root (tmpfs mounts, strace):

    python bench/crash_points.py [--settings delete-sqlite-worker,...] [--parallel 2]

Prints one line per setting and writes bench/results/crash-points.json: crash points per setting, how many
were tried, failures with the invariant each broke, seconds per crash point, the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.crash_points import SETTINGS, Sweep, require_strace, sweep, tmpfs  # noqa: E402
from tests.support.pg_cluster import Cluster, server_bin  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """The CPU model (lscpu), cores and kernel, for the results file."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown"
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}"


def merged(old: dict, new: dict) -> dict:
    """`old` with the settings `new` ran replaced (in place, order kept) and its run noted."""
    fresh = {s["setting"]: s for s in new["settings"]}
    settings = [fresh.pop(s["setting"], s) for s in old["settings"]] + list(fresh.values())
    reruns = old.get("reruns", []) + [{k: new[k] for k in ("commit", "when", "minutes")}
                                      | {"settings": [s["setting"] for s in new["settings"]]}]
    return old | {"settings": settings, "reruns": reruns}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="", help="comma-separated setting names (default: all 16)")
    parser.add_argument("--pick", choices=("all", "spread"), default="all")
    parser.add_argument("--parallel", type=int, default=2, help="crash runs at once")
    parser.add_argument("--out", type=Path, default=RESULTS / "crash-points.json")
    parser.add_argument("--merge", action="store_true",
                        help="replace only these settings' entries in an existing results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_strace()
    wanted = [s for s in SETTINGS if not args.settings or s.name in args.settings.split(",")]
    began = time.monotonic()
    sweeps: list[Sweep] = []
    with tempfile.TemporaryDirectory(prefix="crash-bench-") as base:
        root = Path(base)
        cluster = Cluster(server_bin()).start() if any(s.store == "postgres" for s in wanted) else None
        try:
            with tmpfs(root / "mounts" / "crash-other-fs", "64m") as other:
                for setting in wanted:
                    result = sweep(setting, root / setting.name, args.pick,
                                   new_store=cluster.new_database if setting.store == "postgres" else None,
                                   other_fs=other if setting.processed == "other" else None,
                                   parallel=args.parallel)
                    sweeps.append(result)
                    summary = result.to_json()
                    print(f"{setting.name:36} {summary['crash_points']:3} crash points, {summary['tried']:3} tried, "
                          f"{summary['failures']:3} broke an invariant, {summary['kill_landed_elsewhere']} landed "
                          f"elsewhere, {summary['seconds_per_crash_point']} s each", flush=True)
                    for outcome in result.failures():
                        print(f"    {outcome.point.syscall}#{outcome.point.occurrence} {outcome.point.label[:90]}: "
                              f"{'; '.join(outcome.violations)[:200]}", flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    report = {
        "machine": machine(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parents[1]).stdout.strip(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "pick": args.pick,
        "parallel": args.parallel,
        "minutes": round((time.monotonic() - began) / 60, 1),
        "settings": [s.to_json() for s in sweeps],
    }
    if args.merge and args.out.exists():
        report = merged(json.loads(args.out.read_text()), report)
    report["crash_points"] = sum(s["crash_points"] for s in report["settings"])
    report["tried"] = sum(s["tried"] for s in report["settings"])
    report["failures"] = sum(s["failures"] for s in report["settings"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{report['tried']} crash points tried in {report['minutes']} min, {report['failures']} broke an "
          f"invariant; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
