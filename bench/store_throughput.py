"""Figures for docs/several-machines.md: jobs per second of the 300-photo run with 1, 2 and 4 workers
on the dry-run engine (SQLite and PostgreSQL), the time from a daemon's death to its job being taken over,
and the claim latency with 10,000 jobs queued. Run as root from the repository root (bind mounts):

    python bench/store_throughput.py > bench/results/store_throughput.txt
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import Daemon, wait_until, write_config  # noqa: E402
from tests.support.pg_cluster import Cluster, server_bin  # noqa: E402
from tests.support.fleet import FAST, Fleet, distinct_photos, move_in, slow  # noqa: E402

PHOTOS = 300
SPLITS = {1: (1,), 2: (1, 1), 4: (2, 1, 1)}  # workers -> workers per machine


def run_postgres(cluster: Cluster, workers: int) -> float:
    """Jobs per second, from the moment the 300 photos land to the last one done."""
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    fleet = Fleet(root, cluster.new_database())
    try:
        for count in SPLITS[workers]:
            fleet.add(count)
        staging = root / "staging"
        staging.mkdir()
        distinct_photos(staging, PHOTOS)
        daemons = fleet.start_all()
        began = time.monotonic()
        move_in(staging, fleet.shared_in)
        wait_until(lambda: fleet.done() == PHOTOS, timeout=900, interval=0.1)
        elapsed = time.monotonic() - began
        for daemon in daemons:
            daemon.stop()
        return PHOTOS / elapsed
    finally:
        fleet.close()


def run_sqlite(workers: int) -> float:
    """The same on one machine with the SQLite journal (one daemon with `workers` workers)."""
    from tests.support.daemon import done_jobs

    root = Path(tempfile.mkdtemp(prefix="bench-"))
    config = write_config(root, workers=workers, engine=FAST, logging={"progress_every": 1, "file": False})
    staging = root / "staging"
    staging.mkdir()
    distinct_photos(staging, PHOTOS)
    daemon = Daemon(config, fake_delay=0.0)
    daemon.wait_ready()
    began = time.monotonic()
    move_in(staging, root / "in")
    wait_until(lambda: len(done_jobs(root)) == PHOTOS, timeout=900, interval=0.1)
    elapsed = time.monotonic() - began
    daemon.stop()
    return PHOTOS / elapsed


def takeover_seconds(cluster: Cluster, lease: float) -> float:
    """kill -9 of a whole daemon mid-job, to another machine's worker holding that job."""
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    fleet = Fleet(root, cluster.new_database())
    try:
        fleet.add(1, slow(100), lease=lease)
        fleet.add(1, slow(100), lease=lease)
        daemons = fleet.start_all(delay=0.05)
        staging = root / "staging"
        staging.mkdir()
        distinct_photos(staging, 1)
        move_in(staging, fleet.shared_in)
        job = wait_until(lambda: next(iter(fleet.rows("SELECT * FROM jobs WHERE progress_iteration >= 2")), None))
        victim = daemons[int(job["machine"][1:])]
        died = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)
        wait_until(lambda: fleet.rows(f"SELECT machine FROM jobs WHERE id={job['id']} AND state='running' AND "
                                      f"machine<>'{job['machine']}'"), timeout=120, interval=0.02)
        return time.monotonic() - died
    finally:
        fleet.close()


def claim_latency(cluster: Cluster) -> tuple[float, float]:
    """Median and 95th percentile of claim() in milliseconds with 10,000 jobs queued."""
    from daemon.store import StoreTarget, open_store

    url = cluster.new_database()
    store = open_store(StoreTarget(url, {"input": "/in", "output": "/out"}, "bench", 30.0))
    cluster.sql(url, "INSERT INTO jobs (content_sha, style_set, params_hash, source_path, rel_path, output_path, "
                     "created, updated) SELECT md5(g::text), 'starry', 'p', 'input:' || g || '.jpg', g || '.jpg', "
                     "'output:' || g || '.starry.jpg', 0, 0 FROM generate_series(1, 10000) g")
    cluster.sql(url, "ANALYZE jobs")
    times = []
    for _ in range(500):
        began = time.perf_counter()
        store.claim("w0:1")
        times.append((time.perf_counter() - began) * 1000)
    store.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def main() -> None:
    os.environ.setdefault("STYLE_DAEMON_OFFLINE", "1")
    cluster = Cluster(server_bin()).start()
    try:
        print(f"machine: {os.cpu_count()} cores (shared with other work at the time), dry-run engine, "
              f"{PHOTOS} photos, 1 iteration each")
        for workers in (1, 2, 4):
            pg = run_postgres(cluster, workers)
            lite = run_sqlite(workers)
            print(f"{workers} worker(s): PostgreSQL {pg:.1f} jobs/s over {len(SPLITS[workers])} daemon(s); "
                  f"SQLite {lite:.1f} jobs/s in one daemon", flush=True)
        for lease in (2.0, 5.0):
            print(f"daemon killed mid-job, lease {lease:g}s: job taken over after {takeover_seconds(cluster, lease):.2f}s",
                  flush=True)
        median, p95 = claim_latency(cluster)
        print(f"claim with 10,000 jobs queued: median {median:.2f} ms, 95th percentile {p95:.2f} ms")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
