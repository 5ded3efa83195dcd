"""What the intake sees but has not queued: files it ignores (and why) and files still arriving.

The supervisor writes STATE/intake.json (atomically, when it changes); `status` and the gallery read it
from other processes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from daemon.media.atomic import write_atomic

log = logging.getLogger(__name__)

REPORT_NAME = "intake.json"
KEEP_IGNORED = 50  # the newest names shown; the count covers all


@dataclass(frozen=True)
class IgnoredFile:
    """A file in the input folder that style-daemon will not take, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class IntakeReport:
    """The intake's view: ignored files (newest last), how many in all, how many still arriving."""

    ignored: list[IgnoredFile] = field(default_factory=list)
    ignored_count: int = 0
    arriving: int = 0
    updated: float | None = None


def report_path(state: Path) -> Path:
    """Where the report lives in the state folder."""
    return Path(state) / REPORT_NAME


def write_report(state: Path, report: IntakeReport) -> None:
    """Replace the report atomically (readers never see half a file)."""
    data = asdict(report)
    data["ignored"] = data["ignored"][-KEEP_IGNORED:]
    write_atomic(report_path(state), json.dumps(data, indent=1) + "\n")


def read_report(state: Path) -> IntakeReport:
    """The last report written, or an empty one (service never ran, or an unreadable file)."""
    try:
        data = json.loads(report_path(state).read_text(encoding="utf-8"))
        return IntakeReport([IgnoredFile(str(i["name"]), str(i["reason"])) for i in data.get("ignored", [])],
                            int(data.get("ignored_count", 0)), int(data.get("arriving", 0)), data.get("updated"))
    except FileNotFoundError:
        return IntakeReport()
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.debug("intake report unreadable: %s", exc)
        return IntakeReport()


def stamped(report: IntakeReport) -> IntakeReport:
    """The same report with the current time."""
    return IntakeReport(report.ignored, report.ignored_count, report.arriving, time.time())
