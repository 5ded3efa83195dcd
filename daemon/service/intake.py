"""From files to jobs: the startup scan, the periodic rescan and the watch loop feed the job store.

A photo gets one job per style set its routing names, once: a (content, style set) that already has
a job, whatever its parameters, is seen. Changed settings apply to new arrivals; `redo` re-does.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path, PurePosixPath
from typing import Callable

from daemon.service.release import release_input
from daemon.config import Config
from daemon.store import JobSpec, JobStore
from daemon.service.routing import free_output_names, output_path_for, style_sets_for
from daemon.errors import StoreUnreachable, UnsafeInputError
from daemon.media.hashing import sha256_handle
from daemon.media.path_text import to_text
from daemon.media.safe_open import open_input
from daemon.review.gallery import write_gallery
from daemon.review.intake_report import stamped, write_report
from daemon.service.ignored import IgnoredFiles
from daemon.service.watcher import FileEvent, FileStabilityTracker, FolderWatcher, InputFilter, scan

log = logging.getLogger(__name__)


class Intake:
    """Turns settled input files into queued jobs; the watcher never waits on the engine."""

    def __init__(self, config: Config, store: JobStore, fingerprints: dict[str, str],
                 stop: Callable[[], bool] = lambda: False, reload: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.stop_asked = stop  # a scan of a huge folder ends early when the service is asked to stop
        self.reload_asked = reload  # thousands of files to hash do not hold a reload back
        self.store = store
        self.fingerprints = fingerprints
        self.filter = InputFilter(config.input, config.excluded_dirs())
        self.tracker = FileStabilityTracker(config.watch.settle_seconds)
        self.watcher: FolderWatcher | None = None
        self._last_rescan = 0.0
        self._unrouted: set[str] = set()
        self.ignored = IgnoredFiles(config.input)
        self._published: tuple | None = None

    def start(self) -> None:
        """Scan what arrived while we were down, then watch."""
        self.watcher = FolderWatcher(self.config.input, self.config.watch.mode, self.config.watch.poll_interval)
        self.watcher.start()
        count = self.scan_all()
        if self.stop_asked():
            log.info("startup scan of %s cut short by the stop after %d file(s)", self.config.input, count)
            return
        log.info("startup scan: %d file(s) to check in %s", count, self.config.input)
        self.publish()

    def stop(self) -> None:
        """Stop watching; nothing is arriving any more as far as `status` is concerned."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.publish(arriving=0)

    def scan_all(self) -> int:
        """Put files under the input folder that may need a job on the stability tracker."""
        self._last_rescan = time.monotonic()
        count = 0
        seen = self.ignored.rescan()
        for path in scan(self.config.input, self.filter, seen.add, self.stop_asked):
            if self._needs_look(path):
                self.tracker.touch(path)
                count += 1
        if not self.stop_asked():  # a scan cut short saw only part of the folder: keep what was known
            self.ignored.rescanned(seen)
        return count

    def notice(self) -> None:
        """Put what the watcher saw on the stability tracker, touching nothing else (not the job store).

        Called while the job store is down (store_outage.py): every arrival stays noted until it can be queued.
        """
        if self.watcher is not None:
            for event in self.watcher.drain():
                self._on_event(event)

    def step(self) -> int:
        """Handle queued events, rescan when due, enqueue settled files; returns jobs added."""
        if self.watcher is not None:
            if not self.watcher.alive():
                log.error("the folder observer stopped; restarting it")
                self.stop()
                self.start()
            for event in self.watcher.drain():
                self._on_event(event)
        if time.monotonic() - self._last_rescan >= self.config.watch.rescan_seconds:
            self.scan_all()
        added = 0
        ready = self.tracker.ready()
        for index, path in enumerate(ready):
            if self.stop_asked() or self.reload_asked():  # thousands settled at once: a stop or reload goes first
                self.tracker.keep(ready[index:])  # still settled: taken at the next step (or the new intake's scan)
                break
            added += self.consider(path)
        self.publish()
        return added

    def publish(self, arriving: int | None = None) -> None:
        """Write STATE/intake.json for `status` and the gallery when what it says has changed."""
        arriving = len(self.tracker) if arriving is None else arriving
        report = self.ignored.report(arriving)
        key = (report.arriving, report.ignored_count, tuple(report.ignored))
        if key == self._published:
            return
        before = self._published[1:] if self._published is not None else (0, ())
        changed_ignored = key[1:] != before  # the page changes only with the ignored files, not with arrivals
        try:
            write_report(self.config.state, stamped(report))
            self._published = key
            if changed_ignored and self.config.gallery.index:
                with self.store.exclusive("gallery"):  # machines sharing the output folder: one rebuild at a time
                    write_gallery(self.config, self.store)  # someone who dropped the wrong file sees why there
        except (OSError, StoreUnreachable) as exc:  # only a display: the service goes on (the next change tries again)
            log.debug("cannot write the intake report or the gallery: %s", exc)

    def busy(self) -> bool:
        """True while files are still settling."""
        return len(self.tracker) > 0

    def _on_event(self, event: FileEvent) -> None:
        if event.gone:
            self.tracker.forget(event.path)
            self.ignored.gone(event.path)
            return
        if self.filter.real_folder(event.path):
            # A folder moved in: its files produce no events of their own. A link to a folder is no
            # folder of ours (never followed), so it is left to the filter, which refuses it.
            for path in scan(event.path, self.filter, self.ignored.add, self.stop_asked):
                self.tracker.touch(path)
        elif self.filter.accepts(event.path):
            self.tracker.touch(event.path)
        elif (reason := self.filter.refusal(event.path)) is not None:
            self.ignored.add(event.path, reason)

    def _needs_look(self, path: Path) -> bool:
        try:
            stat = os.lstat(path)
        except OSError:
            return False
        sha = self.store.known_file(to_text(path), stat.st_size, stat.st_mtime_ns)
        return sha is None or self.config.after_success != "keep" or bool(self._unserved(path, sha))

    def _unserved(self, path: Path, sha: str) -> list[str]:
        """Style sets routed to this photo that have no job for its content (new routes, dropped jobs)."""
        rel = PurePosixPath(path.relative_to(self.config.input).as_posix())
        served = {j.style_set for j in self.store.jobs_for_content(sha)}
        return [s for s in style_sets_for(rel, self.config) if s not in served]

    def _identify(self, path: Path) -> tuple[str, bool]:
        """(content sha256, whether it was already known) read through a descriptor that follows no link."""
        with open_input(self.config.input, path) as handle:
            info = os.fstat(handle.fileno())
            key = to_text(path)  # any name bytes: the job store holds text (media/path_text.py)
            known = self.store.known_file(key, info.st_size, info.st_mtime_ns)
            if known is not None:
                return known, True
            sha = sha256_handle(handle)
        self.store.remember_file(key, info.st_size, info.st_mtime_ns, sha)
        return sha, False

    def consider(self, path: Path) -> int:
        """Hash a settled file and queue its (content, style set) jobs; returns how many are new."""
        try:
            sha, known = self._identify(path)
        except UnsafeInputError as exc:
            log.warning("skipping %s", exc)
            return 0
        except OSError as exc:
            log.info("skipping %s for now: %s", path, exc.strerror or exc)
            return 0
        rel = PurePosixPath(path.relative_to(self.config.input).as_posix())
        sets = style_sets_for(rel, self.config)
        if not sets:
            if str(rel) not in self._unrouted:
                self._unrouted.add(str(rel))
                log.warning("%s matches no routing rule and there is no default style set; left alone", rel)
            return 0
        added = 0
        for style_set in sets:
            base = output_path_for(rel, style_set, self.config)
            names = free_output_names(base)
            spec = JobSpec(sha, style_set, self.fingerprints[style_set], to_text(path), to_text(rel), next(names))
            job = self.store.enqueue(spec, retry_failed=not known, names=names)
            if job is not None:
                added += 1
                log.info("queued %s with style %s (job %d)", rel, style_set, job.id)
        if added == 0 and not known:
            log.info("%s: this content was already handled for %s; nothing to do", rel, ", ".join(sets))
        if added == 0:
            release_input(self.config, self.store, path, sha)
        return added

