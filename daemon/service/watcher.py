"""Seeing files arrive: watchdog observers (inotify or polling), a filter, and a stability tracker.

Handlers only put paths on a queue and never raise: an exception in a watchdog handler would
kill the observer thread. Nothing here knows about jobs or Keras.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserverVFS

from daemon.media.formats import why_not_read

log = logging.getLogger(__name__)

_TEMP_SUFFIXES = (".part", ".tmp", "~", ".crdownload", ".partial", ".download", ".swp")


class InputFilter:
    """Which paths under the input folder are photos to process."""

    def __init__(self, root: Path, excluded: list[Path]) -> None:
        self.root = root.resolve()
        self.excluded = [p.resolve() for p in excluded if _inside(p.resolve(), self.root)]

    def accepts(self, path: Path) -> bool:
        """True for a regular image file of ours to take (not hidden, temporary or our own output)."""
        return self._ours(path) and why_not_read(path) is None and self._regular(path)

    def refusal(self, path: Path) -> str | None:
        """Why a file someone put in the input folder is not taken, or None when it is taken or normal.

        Hidden and temporary files, our own outputs and folders are normal there: no reason is given for them.
        """
        if not self._ours(path):
            return None
        rel = Path(path).relative_to(self.root)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return "a symbolic link; links are not followed - copy the photo itself into the folder"
        if stat.S_ISDIR(mode) or not _plain(self.root, rel, lambda _: True):
            return None  # a folder, or something reached through a linked folder (never walked)
        if not stat.S_ISREG(mode):
            return f"{_special_kind(mode)}, not a file; only regular files are read - copy the photo itself in"
        return why_not_read(rel)

    def _ours(self, path: Path) -> bool:
        """True for a path under the input folder that is not hidden, temporary or in an excluded folder."""
        path = Path(path)
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return False
        if any(part.startswith(".") for part in rel.parts):  # hidden files, ._AppleDouble, .syncthing.*.tmp
            return False
        name = path.name
        if name.startswith("~$") or name.lower().endswith(_TEMP_SUFFIXES):
            return False
        return not any(_inside(path, folder) for folder in self.excluded)

    def _regular(self, path: Path) -> bool:
        # Links are never followed, wherever they point: only a regular file reached through real folders.
        return _plain(self.root, Path(path).relative_to(self.root), stat.S_ISREG)

    def real_folder(self, folder: Path) -> bool:
        """True for a folder (not a link to one, nor inside one) under the input folder, or the folder itself."""
        try:
            rel = Path(folder).relative_to(self.root)
        except ValueError:
            return False
        return _plain(self.root, rel, stat.S_ISDIR)

    def excluded_dir(self, folder: Path) -> bool:
        """True for folders a scan must not descend into."""
        resolved = Path(folder)
        return any(resolved == f or _inside(resolved, f) for f in self.excluded)


def _special_kind(mode: int) -> str:
    """What a file that is neither a regular file, a folder nor a link is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    return "a special file"


def _plain(root: Path, rel: Path, is_kind) -> bool:
    """True when every folder from `root` down to root/rel is a real folder and root/rel is of `is_kind` (lstat)."""
    here = root
    try:
        for part in rel.parts[:-1]:
            here = here / part
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                return False
        return is_kind(os.lstat(root / rel).st_mode)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def scan(root: Path, accept: InputFilter, refused: Callable[[Path, str], None] | None = None,
         stop: Callable[[], bool] | None = None) -> Iterator[Path]:
    """Every acceptable file under `root`, not descending into excluded or hidden folders, nor any link.

    Files someone put there that are not taken go to `refused(path, reason)`. The walk ends as soon as
    `stop()` is true: a stop asked during the scan of a huge folder is honoured at once, not at its end.
    """
    stop = stop or (lambda: False)
    if not accept.real_folder(root):
        return  # os.walk would follow `root` itself if it is a link (a linked folder created at runtime)
    for folder, dirs, files in os.walk(root, followlinks=False):
        if stop():  # also between folders: a deep tree of empty folders is a long walk too
            return
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not accept.excluded_dir((here / d).resolve())]
        for name in files:
            if stop():
                return
            path = here / name
            if accept.accepts(path):
                yield path
            elif refused is not None and (reason := accept.refusal(path)) is not None:
                refused(path, reason)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class FileStabilityTracker:
    """A file is complete once its size and mtime have not changed for `settle_seconds`."""

    def __init__(self, settle_seconds: float) -> None:
        self.settle = settle_seconds
        self._files: dict[Path, _Seen] = {}

    def __len__(self) -> int:
        return len(self._files)

    def touch(self, path: Path) -> None:
        """Note activity on `path` (new, modified or moved in)."""
        self._observe(path, time.monotonic())

    def forget(self, path: Path) -> None:
        """Stop tracking `path` (deleted or moved away)."""
        self._files.pop(path, None)

    def keep(self, paths: list[Path]) -> None:
        """Track `paths` again as already settled (taken from ready() but not handled yet)."""
        for path in paths:
            self._observe(path, float("-inf"))

    def ready(self) -> list[Path]:
        """Paths that have settled; they are removed from tracking."""
        now = time.monotonic()
        settled = []
        for path in list(self._files):
            seen = self._files[path]
            try:
                info = os.lstat(path)  # a link's own data, never its target's
            except OSError:
                del self._files[path]
                continue
            if (info.st_size, info.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self._files[path] = _Seen(info.st_size, info.st_mtime_ns, now)
            elif now - seen.since >= self.settle:
                settled.append(path)
                del self._files[path]
        return settled

    def _observe(self, path: Path, now: float) -> None:
        try:
            info = os.lstat(path)
        except OSError:
            self._files.pop(path, None)
            return
        seen = self._files.get(path)
        if seen is None or (info.st_size, info.st_mtime_ns) != (seen.size, seen.mtime_ns):
            self._files[path] = _Seen(info.st_size, info.st_mtime_ns, now)


@dataclass(frozen=True)
class FileEvent:
    """A path that changed, and whether it is gone."""

    path: Path
    gone: bool = False


class _EnqueueHandler(FileSystemEventHandler):
    def __init__(self, events: "queue.SimpleQueue[FileEvent]") -> None:
        self.events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if event.is_directory and event.event_type not in ("moved", "created"):
                return
            kind = event.event_type
            if kind == "deleted":
                self.events.put(FileEvent(Path(os.fsdecode(event.src_path)), gone=True))
            elif kind == "moved":
                self.events.put(FileEvent(Path(os.fsdecode(event.src_path)), gone=True))
                self.events.put(FileEvent(Path(os.fsdecode(event.dest_path))))
            elif kind in ("created", "modified", "closed"):
                self.events.put(FileEvent(Path(os.fsdecode(event.src_path))))
        except Exception:  # never let an exception reach watchdog's thread
            log.exception("ignored an error while queueing a file event")


class FolderWatcher:
    """Runs a watchdog observer on the input folder; events land on `events`."""

    def __init__(self, root: Path, mode: str, poll_interval: float) -> None:
        self.root = root
        self.events: "queue.SimpleQueue[FileEvent]" = queue.SimpleQueue()
        if mode == "polling":
            # lstat: the snapshots never descend into a linked folder (the default os.stat would).
            self.observer = PollingObserverVFS(os.lstat, os.scandir, polling_interval=poll_interval)
        else:
            self.observer = Observer()
        self.observer.schedule(_EnqueueHandler(self.events), str(root), recursive=True)
        self.mode = mode

    def start(self) -> None:
        """Start watching (a daemon thread)."""
        self.observer.daemon = True
        self.observer.start()
        log.info("watching %s (%s)", self.root, self.mode)

    def stop(self) -> None:
        """Stop watching and wait for the observer thread."""
        self.observer.stop()
        self.observer.join(timeout=5)

    def alive(self) -> bool:
        """False if the observer thread died."""
        return self.observer.is_alive()

    def drain(self) -> list[FileEvent]:
        """All events queued since the last call."""
        events = []
        while True:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                return events
