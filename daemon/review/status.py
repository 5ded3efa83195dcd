"""`style-daemon status`: what the service is doing, read from the job store (works while it runs)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace

from daemon.config import Config
from daemon.media.path_text import display
from daemon.media.style_images import style_problem
from daemon.store import WorkerRecord, open_store
from daemon.review.intake_report import IgnoredFile, read_report
from daemon.review.store_wait import read_wait
from daemon.errors import StoreUnreachable
from daemon.review.progress import format_duration, format_eta

# The job store's error text of a job held back by its environment (service.environment writes it).
WAITING_PREFIX = "waiting: "


@dataclass(frozen=True)
class RunningJob:
    """A job in progress."""

    id: int
    input: str
    style_set: str
    iteration: int | None
    total: int | None
    loss: float | None
    eta_seconds: float | None
    running_seconds: float
    worker: str | None
    machine: str | None = None  # a shared store: the machine whose worker holds the job
    lease_age_seconds: float | None = None  # since that worker last renewed its claim


@dataclass(frozen=True)
class FailedJob:
    """A recent failure and its reason."""

    id: int
    input: str
    style_set: str
    error: str | None
    when: float | None


@dataclass(frozen=True)
class WaitingJob:
    """A queued job held back by its environment (full disk, read-only folder, out of memory)."""

    id: int
    input: str
    style_set: str
    reason: str
    next_try_seconds: float


@dataclass(frozen=True)
class UnavailableStyle:
    """A style set whose image cannot be used now (missing, empty, not an image): its jobs wait for the fix."""

    style_set: str
    path: str
    problem: str
    message: str  # the one line: the style set, the file and the fix


@dataclass(frozen=True)
class StatusReport:
    """Everything `status` shows."""

    queued: int
    running: int
    done: int
    failed: int
    running_jobs: list[RunningJob] = field(default_factory=list)
    last_errors: list[FailedJob] = field(default_factory=list)
    mean_seconds_per_job: float | None = None
    drain_seconds: float | None = None
    workers: list[WorkerRecord] = field(default_factory=list)
    waiting_jobs: list[WaitingJob] = field(default_factory=list)
    arriving: int = 0  # files in the input folder still being written (not yet settled)
    ignored_count: int = 0  # files in the input folder that are not photos style-daemon reads
    ignored: list[IgnoredFile] = field(default_factory=list)  # the newest of them, with the reason
    unavailable_styles: list[UnavailableStyle] = field(default_factory=list)  # read now, as a job reads them
    store_waiting: str = ""  # the service waits for its job store itself (full disk, server gone): the cause


SHOWN_IGNORED = 5  # the text view lists this many; --json and the gallery have the newest 50


def collect(config: Config) -> StatusReport:
    """Read the job store and the intake report, and summarise them."""
    waiting = _store_waiting(config)
    try:
        report = _collect_jobs(config)
    except StoreUnreachable:
        if not waiting:
            raise
        report = StatusReport(0, 0, 0, 0)  # the service waits for that server too: say that, not a traceback
    report = replace(report, store_waiting=waiting)
    intake = read_report(config.state)
    return replace(report, arriving=intake.arriving, ignored_count=intake.ignored_count, ignored=intake.ignored,
                   unavailable_styles=unavailable_styles(config))


def unavailable_styles(config: Config) -> list[UnavailableStyle]:
    """The style sets an image of which cannot be used now (each image decoded, as a job would)."""
    found = []
    for name, style in config.styles.items():
        for image in style.images:
            problem = style_problem(image.path, name, config.max_input_pixels)
            if problem is not None:
                found.append(UnavailableStyle(name, str(problem.path), problem.problem, str(problem)))
                break  # one line per style set: its first broken image
    return found


def _collect_jobs(config: Config) -> StatusReport:
    if not config.store_shared and (not config.store_path.exists() or config.store_path.stat().st_size == 0):
        return StatusReport(0, 0, 0, 0)  # nothing recorded yet (the service creates the tables at start)
    store = open_store(config.store_target, readonly=True)
    try:
        counts = store.counts()
        now = time.time()
        running = [
            RunningJob(j.id, j.rel_path, j.style_set, j.progress_iteration, j.progress_total, j.progress_loss,
                       j.progress_eta, now - (j.started or now), j.worker, j.machine,
                       None if j.heartbeat is None else max(0.0, now - j.heartbeat))
            for j in store.jobs("running")
        ]
        failed = [FailedJob(j.id, j.rel_path, j.style_set, j.error, j.finished) for j in store.jobs("failed", 5)]
        recent = [j.seconds for j in store.jobs("done", 20) if j.seconds]
        mean = sum(recent) / len(recent) if recent else None
        drain = None
        if mean is not None:
            left = sum(r.eta_seconds or 0 for r in running)
            serving = len(current_workers(store.workers())) if config.store_shared else config.workers
            drain = (left + mean * counts.queued) / max(serving, 1)  # a shared store: every machine's workers
        waiting = [WaitingJob(j.id, j.rel_path, j.style_set, j.error, max(0.0, j.next_attempt - now))
                   for j in store.jobs("queued", 100_000) if (j.error or "").startswith(WAITING_PREFIX)]
        return StatusReport(counts.queued, counts.running, counts.done, counts.failed, running, failed, mean,
                            drain, current_workers(store.workers()), waiting)
    finally:
        store.close()


def _store_waiting(config: Config) -> str:
    """The cause when the running service waits for its job store (its word in the state folder)."""
    wait = read_wait(config.state)
    return wait.cause if wait.waiting else ""


def current_workers(rows: list[WorkerRecord]) -> list[WorkerRecord]:
    """The newest row of each worker slot: a restarted worker replaces its dead predecessor."""
    newest: dict[tuple[str | None, str], WorkerRecord] = {}
    for row in rows:
        slot = (row.machine, row.id.partition(":")[0])
        if slot not in newest or row.started > newest[slot].started:
            newest[slot] = row
    return sorted(newest.values(), key=lambda w: (w.machine or "", w.id))


def render_json(report: StatusReport) -> str:
    """The report as JSON for scripts."""
    return json.dumps(asdict(report), indent=2)


def render_text(report: StatusReport) -> str:
    """The report as a readable table."""
    lines = [
        f"queued {report.queued}   running {report.running}   done {report.done}   failed {report.failed}",
    ]
    if report.store_waiting:
        lines.append(f"waiting for the job store: {display(report.store_waiting)} (arrivals are noted, "
                     "queued once it answers)")
    if report.arriving:
        lines.append(f"{_files(report.arriving)} arriving (waiting until they stop changing)")
    if report.ignored_count:
        lines.append(f"{_files(report.ignored_count)} ignored in the input folder (not photos style-daemon reads)")
    for style in report.unavailable_styles:
        lines.append(f"unavailable  {display(style.message)}")
    said = {style.style_set for style in report.unavailable_styles}
    for reason in dict.fromkeys(job.reason for job in report.waiting_jobs):  # each cause in words, once
        if not any(reason.startswith(f"{WAITING_PREFIX}style set {name} ") for name in said):
            lines.append(display(reason))  # "waiting: output disk full ..."
    if report.mean_seconds_per_job is not None:
        lines.append(f"mean time per job {format_duration(report.mean_seconds_per_job)}; "
                     f"queue drains in about {format_duration(report.drain_seconds or 0)}")
    for job in report.running_jobs:
        progress = f"{job.iteration}/{job.total}" if job.total else "starting"
        loss = f"loss {job.loss:.4g}" if job.loss is not None else ""
        eta = f"eta {format_eta(job.eta_seconds)}" if job.total else ""
        where = f" on {display(job.machine)}/{job.worker} lease {job.lease_age_seconds:.0f}s ago" \
            if job.machine and job.lease_age_seconds is not None else ""
        lines.append(f"running  #{job.id} {display(job.input)} [{job.style_set}] iter {progress} {loss} {eta}".rstrip()
                     + where)
    for job in report.waiting_jobs:
        lines.append(f"waiting  #{job.id} {display(job.input)} [{job.style_set}]: "
                     f"{display(_why(job, said))}; next try in {format_duration(job.next_try_seconds)}")
    for job in report.last_errors:
        # Names may hold newlines or escape sequences: each job stays one line, nothing reaches the terminal raw.
        lines.append(f"failed   #{job.id} {display(job.input)} [{job.style_set}]: {display(job.error or '')}")
    for item in report.ignored[-SHOWN_IGNORED:]:
        lines.append(f"ignored  {display(item.name)}: {display(item.reason)}")
    for worker in report.workers:
        machine = f"{display(worker.machine)}/" if worker.machine else ""
        lines.append(f"worker   {machine}{worker.id} {worker.state} backbone {worker.backbone or '-'}")
    return "\n".join(lines)


def _why(job: WaitingJob, unavailable: set[str]) -> str:
    """A waiting job's cause, short when its style set's line above says it already."""
    if job.style_set in unavailable and job.reason.startswith(f"{WAITING_PREFIX}style set {job.style_set} "):
        return "its style set is unavailable (above)"
    return job.reason.removeprefix(WAITING_PREFIX)


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"
