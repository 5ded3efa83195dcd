"""Files in the input folder that style-daemon will not take: said once per file, counted for `status`."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

from daemon.media.path_text import display
from daemon.review.intake_report import IgnoredFile, IntakeReport, KEEP_IGNORED

log = logging.getLogger(__name__)


class _Seen:
    """Files refused during one full rescan (collected, then reconciled)."""

    def __init__(self, owner: "IgnoredFiles") -> None:
        self.owner = owner
        self.paths: set[Path] = set()

    def add(self, path: Path, reason: str) -> None:
        self.paths.add(Path(path))
        self.owner.add(path, reason)


class IgnoredFiles:
    """The refused files now in the input folder, in the order they were first seen."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: "OrderedDict[Path, str]" = OrderedDict()

    def add(self, path: Path, reason: str) -> None:
        """Note a refused file; the first time, say so at INFO with the reason."""
        path = Path(path)
        if path in self._files:
            return
        self._files[path] = reason
        log.info("ignored %s: %s", display(self._name(path)), reason)

    def gone(self, path: Path) -> None:
        """The file was deleted or moved away: no longer counted."""
        self._files.pop(Path(path), None)

    def rescan(self) -> _Seen:
        """Start a full rescan: what it refuses is collected."""
        return _Seen(self)

    def rescanned(self, seen: _Seen) -> None:
        """A full rescan ended: files it did not see are gone (missed events, renames)."""
        for path in [p for p in self._files if p not in seen.paths]:
            del self._files[path]

    def report(self, arriving: int) -> IntakeReport:
        """The newest refused files with their reasons, their number, and the files arriving."""
        newest = list(self._files.items())[-KEEP_IGNORED:]
        return IntakeReport([IgnoredFile(display(self._name(p)), r) for p, r in newest], len(self._files), arriving)

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
