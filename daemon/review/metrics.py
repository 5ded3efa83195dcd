"""Prometheus metrics read from the job store: an HTTP endpoint on a local address and/or a textfile."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from daemon.config import MetricsSettings
from daemon.store import JobStore, StoreTarget, open_store

log = logging.getLogger(__name__)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)


class StoreCollector:
    """Builds every series on each scrape from a read-only look at the job store."""

    def __init__(self, target: StoreTarget) -> None:
        self.target = target
        self.up = 1

    def collect(self):
        """prometheus_client's collector protocol."""
        yield GaugeMetricFamily("style_daemon_up", "1 while the service runs", value=self.up)
        if not self.target.shared and not Path(self.target.location).exists():
            return
        store = open_store(self.target, readonly=True)
        try:
            yield from self._from_store(store)
        finally:
            store.close()

    def _from_store(self, store: JobStore):
        counts = store.counts()
        jobs = GaugeMetricFamily("style_daemon_jobs", "Jobs in the job store by state", labels=["state"])
        for state in ("queued", "running", "done", "failed"):
            jobs.add_metric([state], getattr(counts, state))
        yield jobs
        yield GaugeMetricFamily("style_daemon_queue_length", "Jobs waiting to run", value=counts.queued)
        done = store.jobs("done", limit=100_000)
        yield _histogram([j.seconds or 0.0 for j in done])
        last = max((j.finished or 0 for j in done), default=0)
        since = time.time() - last if last else float("nan")
        yield GaugeMetricFamily("style_daemon_seconds_since_last_completed_job",
                                "Seconds since a job last completed (NaN before the first)", value=since)
        running = store.jobs("running", limit=1)
        progress = 0.0
        if running and running[0].progress_total:
            progress = (running[0].progress_iteration or 0) / running[0].progress_total
        yield GaugeMetricFamily("style_daemon_current_job_progress", "Fraction of the running job done (0..1)",
                                value=progress)
        info = GaugeMetricFamily("style_daemon_backbone_info", "Backbone loaded by the workers", labels=["backbone"])
        for backbone in sorted({w.backbone for w in store.workers() if w.backbone}):
            info.add_metric([backbone], 1)
        yield info


def _histogram(seconds: list[float]) -> HistogramMetricFamily:
    buckets = [(str(float(b)), sum(1 for s in seconds if s <= b)) for b in DURATION_BUCKETS]
    buckets.append(("+Inf", len(seconds)))
    family = HistogramMetricFamily("style_daemon_job_duration_seconds", "Wall time of completed jobs")
    family.add_metric([], buckets, sum_value=sum(seconds))
    return family


class MetricsExporter:
    """Serves and/or writes the metrics as configured; inert when neither is set."""

    def __init__(self, settings: MetricsSettings, target: StoreTarget) -> None:
        self.settings = settings
        self.collector = StoreCollector(target)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self._next_write = 0.0
        if settings.listen:
            host, _, port = settings.listen.rpartition(":")
            start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
            log.info("metrics on http://%s/metrics", settings.listen)

    def tick(self) -> None:
        """Rewrite the textfile when due (write_to_textfile renames atomically)."""
        if self.settings.textfile is None or time.monotonic() < self._next_write:
            return
        self._next_write = time.monotonic() + self.settings.interval_seconds
        self.write()

    def write(self) -> None:
        """Write the textfile now."""
        if self.settings.textfile is None:
            return
        try:
            self.settings.textfile.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(self.settings.textfile), self.registry)
        except OSError as exc:
            log.warning("could not write metrics to %s: %s", self.settings.textfile, exc)

    def close(self) -> None:
        """Mark the service down in the textfile."""
        self.collector.up = 0
        self.write()
