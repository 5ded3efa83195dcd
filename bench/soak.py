"""The chaos soak (issue 24): photos flowing through the real daemon while it is killed and its disks fill.

At least 1000 small distinct photos arrive in the input folder over the run (dry-run engine) while a random
worker or a whole supervisor is SIGKILLed about every --kill-every seconds (a killed supervisor is started
again), the output and the state folders live on small tmpfs mounts that are filled to the last byte and
freed twice, and, with --postgres, two daemons share one PostgreSQL server that is restarted twice. When the
time is up the chaos stops, the daemons drain the queue, and the folders and the store are counted:

    photos in, results, done twice, lost, partial files, inputs lost (+ results without sidecar, blamed)

Run as root from the repository root (tmpfs and bind mounts):

    python bench/soak.py --minutes 30 [--photos 1000] [--postgres] [--after-success delete]

Writes bench/results/soak-{sqlite|postgres}-<minutes>min.json (figures, settings, events, the machine).
The goal: results == photos in, and 0 done twice, 0 lost, 0 partial files, 0 inputs lost.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.crash_points import machine  # noqa: E402
from tests.support.crash_points import _complete_file, results, tmpfs  # noqa: E402
from tests.support.daemon import Daemon, pg_rows, write_config  # noqa: E402
from tests.support.fleet import FAST, distinct_photos  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figures:
    """What the soak counts at the end."""

    photos_in: int = 0
    results: int = 0
    done_twice: int = 0
    lost: int = 0
    partial_files: int = 0
    inputs_lost: int = 0
    results_without_sidecar: int = 0
    blamed_in_failed: int = 0
    unfinished: int = 0
    kills_worker: int = 0
    kills_supervisor: int = 0
    daemon_exits: int = 0
    disk_fills: int = 0
    database_restarts: int = 0
    details: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long photos flow and chaos runs")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds between kills (on average)")
    parser.add_argument("--postgres", action="store_true", help="two daemons on one PostgreSQL, restarted twice")
    parser.add_argument("--workers", type=int, default=2, help="workers per daemon")
    parser.add_argument("--after-success", choices=("keep", "delete", "move"), default="delete")
    parser.add_argument("--out-mb", type=int, default=192, help="size of the output folder's tmpfs")
    parser.add_argument("--state-mb", type=int, default=32, help="size of the state folder's tmpfs")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds allowed to finish after the chaos")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/soak-...)")
    return parser.parse_args(argv)


class Soak:
    """The folders, the daemons and the chaos of one soak."""

    def __init__(self, args: argparse.Namespace, root: Path, url: str | None) -> None:
        self.args, self.root, self.url = args, root, url
        self.rng = random.Random(args.seed)
        self.figures = Figures()
        self.events: list[str] = []
        self.began = time.monotonic()
        self.inbox = root / "in"
        self.inbox.mkdir()
        self.outfs, self.statefs = root / "outfs", root / "statefs"
        self.out = self.outfs / "out"
        self.configs: list[Path] = []
        self.daemons: list[Daemon] = []
        self._binds: list[Path] = []
        self.cluster = None  # the PostgreSQL cluster (--postgres), restarted twice

    def log(self, text: str) -> None:
        line = f"{time.monotonic() - self.began:7.1f}s {text}"
        self.events.append(line)
        print(line, flush=True)

    def configure(self) -> None:
        """One daemon (SQLite) or two sharing the folders through bind mounts, like two machines (PostgreSQL)."""
        self.out.mkdir()
        count = 2 if self.url else 1
        for index in range(count):
            machine_dir = self.root / f"m{index}"
            machine_dir.mkdir()
            state = self.statefs / f"state{index}"
            if self.url:  # each machine mounts the shared folders at its own paths
                for name, shared in (("in", self.inbox), ("out", self.out)):
                    (machine_dir / name).mkdir()
                    subprocess.run(["mount", "--bind", str(shared), str(machine_dir / name)], check=True)
                    self._binds.append(machine_dir / name)
                inbox, out = machine_dir / "in", machine_dir / "out"
            else:
                inbox, out = self.inbox, self.out
            overrides = dict(input=str(inbox), output=str(out), state=str(state), workers=self.args.workers,
                             after_success=self.args.after_success, engine=FAST,
                             watch={"settle_seconds": 0.3, "rescan_seconds": 30},
                             logging={"progress_every": 1000, "file": False})
            if self.url:
                overrides.update(store=self.url, machine=f"m{index}", lease_seconds=3.0)
            self.configs.append(write_config(machine_dir, **overrides))
        for config in self.configs:
            self.daemons.append(Daemon(config, fake_delay=0.0))
        for daemon in self.daemons:
            daemon.wait_ready(timeout=120)

    # chaos ------------------------------------------------------------------------------------------------

    def workers_of(self, daemon: Daemon) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == daemon.proc.pid and b"worker" in command and stat[0] != "Z":
                pids.append(int(entry.name))
        return pids

    def kill_something(self) -> None:
        index = self.rng.randrange(len(self.daemons))
        daemon = self.daemons[index]
        workers = self.workers_of(daemon) if daemon.proc.poll() is None else []
        if workers and self.rng.random() < 0.7:
            victim = self.rng.choice(workers)
            os.kill(victim, signal.SIGKILL)
            self.figures.kills_worker += 1
            self.log(f"killed worker {victim} of daemon {index}")
            return
        if daemon.proc.poll() is None:
            daemon.kill()
            self.figures.kills_supervisor += 1
            self.log(f"killed supervisor of daemon {index}")
        self.restart(index)

    def restart(self, index: int) -> None:
        deadline = time.monotonic() + 15
        while self.workers_of(self.daemons[index]) and time.monotonic() < deadline:
            time.sleep(0.05)  # its workers die with it (PDEATHSIG) and hold the state lock until then
        self.daemons[index] = Daemon(self.configs[index], fake_delay=0.0)

    def watch_exits(self) -> None:
        """A daemon that ended by itself (not killed by us) is counted and started again."""
        for index, daemon in enumerate(self.daemons):
            code = daemon.proc.poll()
            if code is not None and code != -signal.SIGKILL:
                self.figures.daemon_exits += 1
                tail = " | ".join(daemon.output().splitlines()[-3:])[-300:]
                self.log(f"daemon {index} exited by itself with {code}: {tail}")
                self.figures.details.append(f"daemon {index} exited {code}: {tail}")
                self.restart(index)

    def fill(self, folder: Path) -> Path:
        """Fill the file system of `folder` to the last byte with a filler beside the daemon's folder."""
        filler = folder / ".soak-filler"
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # big blocks, then the last few bytes too
                block = b"\0" * size
                try:
                    while True:
                        os.write(descriptor, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(descriptor)
        return filler

    # the run ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        seconds = args.minutes * 60
        staging = self.root / "staging"
        staging.mkdir()
        distinct_photos(staging, args.photos)
        pending = sorted(staging.iterdir())
        self.expected = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in pending}
        self.figures.photos_in = len(pending)
        flow_until = seconds * 0.8  # the last photos still meet some chaos
        fills = [seconds * f for f in (0.2, 0.55)]
        frees = [seconds * f + max(5.0, seconds * 0.08) for f in (0.2, 0.55)]
        restarts = [seconds * f for f in (0.35, 0.7)] if self.url else []
        fillers: list[Path] = []
        next_kill = self.rng.uniform(0.5, 1.5) * args.kill_every
        dropped = 0
        while (now := time.monotonic() - self.began) < seconds:
            due = len(pending) if now >= flow_until else int(len(pending) * now / flow_until)
            while dropped < due:
                os.replace(pending[dropped], self.inbox / pending[dropped].name)
                dropped += 1
            if fills and now >= fills[0]:
                fills.pop(0)
                fillers = [self.fill(self.outfs), self.fill(self.statefs)]
                self.figures.disk_fills += 1
                self.log("output and state file systems full")
            if fillers and frees and now >= frees[0]:
                frees.pop(0)
                for filler in fillers:
                    filler.unlink()
                fillers = []
                self.log("output and state file systems freed")
            if restarts and now >= restarts[0]:
                restarts.pop(0)
                self.cluster.restart()
                self.figures.database_restarts += 1
                self.log("PostgreSQL restarted")
            if now >= next_kill:
                self.kill_something()
                next_kill = now + self.rng.uniform(0.5, 1.5) * args.kill_every
            self.watch_exits()
            time.sleep(0.1)
        while dropped < len(pending):
            os.replace(pending[dropped], self.inbox / pending[dropped].name)
            dropped += 1
        for filler in fillers:
            filler.unlink()
        self.log("chaos over; draining")
        self.drain()

    def jobs(self) -> list[dict]:
        """The store's jobs (id, state, content_sha)."""
        if self.url:
            return pg_rows(self.url, "SELECT id, state, content_sha FROM jobs ORDER BY id")
        return _sqlite_rows(self.statefs / "state0" / "journal.sqlite3")

    def drain(self) -> None:
        deadline = time.monotonic() + self.args.drain
        while time.monotonic() < deadline:
            self.watch_exits()
            jobs = self.jobs()
            settled = {j["content_sha"] for j in jobs if j["state"] in ("done", "failed")}
            busy = any(j["state"] in ("queued", "running") for j in jobs)
            if not busy and set(self.expected) <= settled:
                break
            time.sleep(1.0)
        else:
            self.log("the drain timed out")
        time.sleep(2.0)  # releases after the last done
        for daemon in self.daemons:
            if daemon.proc.poll() is None:
                daemon.stop(timeout=60)

    # the count --------------------------------------------------------------------------------------------

    def count(self) -> Figures:
        figures = self.figures
        out, failed = self.out, self.out / "failed"
        processed = self.out / "processed"
        per_content: dict[str, int] = {}
        for image in results(out, (failed, processed)):
            sidecar = image.with_name(image.name + ".json")
            if not sidecar.is_file():
                figures.results_without_sidecar += 1
                figures.details.append(f"result without sidecar: {image.name}")
                continue
            try:
                digest = json.loads(sidecar.read_text())["content"]["sha256"]
            except (ValueError, KeyError, OSError):
                figures.partial_files += 1
                continue
            if not _complete_file(image, set()):
                figures.partial_files += 1
                figures.details.append(f"partial result: {image.name}")
                continue
            per_content[digest] = per_content.get(digest, 0) + 1
        figures.results = sum(1 for d in per_content if d in self.expected)
        figures.done_twice = sum(1 for d, n in per_content.items() if n > 1)
        present = _hashes(self.inbox)
        moved = _hashes(processed)
        for digest, name in self.expected.items():
            if digest in per_content:
                continue
            if digest in present:
                figures.unfinished += 1
                figures.details.append(f"unfinished: {name} still waits in the input folder")
            else:
                figures.lost += 1
                figures.inputs_lost += 1 if digest not in moved else 0
                figures.details.append(f"lost: {name} has no result" + ("" if digest in moved else
                                                                         " and its input is gone"))
        shas = set(self.expected)
        for root in (self.inbox, out):
            for path in root.rglob("*"):
                if not path.is_file() or any(p.startswith(".") for p in path.relative_to(root).parts):
                    continue
                if not _complete_file(path, shas):
                    figures.partial_files += 1
                    figures.details.append(f"partial file: {path.relative_to(self.root)}")
        if failed.is_dir():
            figures.blamed_in_failed = sum(1 for p in failed.iterdir() if p.name.endswith(".error.txt"))
        return figures


def _hashes(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def _sqlite_rows(path: Path) -> list[dict]:
    import sqlite3

    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT id, state, content_sha FROM jobs").fetchall()]
        finally:
            db.close()
    except sqlite3.Error:
        return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    store = "postgres" if args.postgres else "sqlite"
    out_file = args.out or RESULTS / f"soak-{store}-{args.minutes:g}min.json"
    with tempfile.TemporaryDirectory(prefix="soak-") as base:
        root = Path(base)
        cluster = None
        with tmpfs(root / "outfs", f"{args.out_mb}m"), tmpfs(root / "statefs", f"{args.state_mb}m"):
            if args.postgres:
                from tests.support.pg_cluster import Cluster, server_bin

                cluster = Cluster(server_bin()).start()
            soak = Soak(args, root, cluster.new_database() if cluster else None)
            soak.cluster = cluster
            try:
                soak.configure()
                soak.run()
                figures = soak.count()
            finally:
                for daemon in soak.daemons:
                    if daemon.proc.poll() is None:
                        daemon.kill()
                for bind in soak._binds:
                    subprocess.run(["umount", "-l", str(bind)], check=False)
                if cluster is not None:
                    cluster.stop()
    summary = {k: v for k, v in asdict(figures).items() if k != "details"}
    print("  ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items()))
    report = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=Path(__file__).resolve().parents[1]).stdout.strip(),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "store": store, "figures": summary, "details": figures.details[:200], "events": soak.events}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
