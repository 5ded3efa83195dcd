"""The intent payloads of the steps that touch an input (a release, a failed/ entry): ReleasePlan and FailPlan,
the hidden names they use, JSON in and out, checked field by field on the way in so that a malformed payload
is refused with one clear error instead of failing later."""

from __future__ import annotations

import json
import os
import secrets
import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar, Iterator, Literal, TypeVar

from daemon.config import Config
from daemon.media.derived_names import failed_copy_path, fit_name
from daemon.media.path_text import from_text, to_text
from daemon.store import Intent

# The quarantine and temp names say whose they are; hidden (the watcher ignores them) and not ending in
# .tmp (sweep_temp_files would take a quarantined input for a temp file and delete it).
QUARANTINE_PREFIX = ".style-daemon-release."
FAIL_PREFIX = ".style-daemon-fail."  # the failed/ entry's step (aftercare.py): its temp file and quarantine
PREFIXES = (QUARANTINE_PREFIX, FAIL_PREFIX)
TEMP_SUFFIX = ".part"

Plan = TypeVar("Plan", bound="StepPlan")


class StepPlan:
    """Base of the frozen dataclasses ReleasePlan and FailPlan: each has `source` (path_text) and `token`
    ("<job id>-<random>") fields and a PREFIX naming its hidden files."""

    PREFIX: ClassVar[str] = ""
    source: str
    token: str

    def to_json(self) -> str:
        """The payload's JSON text."""
        return json.dumps(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[Plan], text: str) -> Plan:
        """The plan an intent recorded; ValueError when it is not one (not an object, a field missing,
        unknown or of the wrong type, no absolute source path, no token)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the payload is not a JSON object")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        for name, field in known.items():
            if name not in data:
                if field.default is field.default_factory:  # both MISSING: a required field
                    raise ValueError(f"field {name} missing")
                continue
            if not _fits(data[name], hints[name]):
                raise ValueError(f"field {name} is {data[name]!r}, not {hints[name]}")
        if not data["source"].startswith("/") or not data["token"]:
            raise ValueError("no absolute source path or no token")
        return cls(**data)

    @property
    def path(self) -> Path:
        """The input's path."""
        return from_text(self.source)

    @property
    def quarantine(self) -> str:
        """The hidden name the input has (in its own folder) while it is checked before it is removed."""
        return fit_name(f"{self.PREFIX}{self.token}.{self.path.name}")


def _fits(value: object, hint: object) -> bool:
    """True when a JSON value is of the annotated type (Literal, X | None, str, int; a bool is not an int)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReleasePlan(StepPlan):
    """The release intent's payload: what is released, how, and the names the step uses."""

    PREFIX = QUARANTINE_PREFIX

    source: str  # the input's path (path_text)
    content_sha: str
    action: Literal["delete", "move"]
    token: str  # "<job id>-<random>": names the quarantine and the temp file
    target: str | None = None  # the processed/ path asked for (move)
    # The process that recorded it: a worker's death settles the steps it left (worker_deaths.py); None in
    # payloads recorded before the field existed (settled at the next start).
    pid: int | None = None

    @classmethod
    def new(cls, config: Config, source: Path, content_sha: str, job_id: int) -> "ReleasePlan":
        """A plan for releasing `source` now, per the configured after_success."""
        action: Literal["delete", "move"] = "delete" if config.after_success == "delete" else "move"
        target = to_text(config.processed_dir / source.relative_to(config.input)) if action == "move" else None
        return cls(to_text(source), content_sha, action, f"{job_id}-{secrets.token_hex(4)}", target, os.getpid())

    @property
    def temp(self) -> Path | None:
        """The hidden temp file a cross-file-system move copies into (in the target folder)."""
        if self.target is None:
            return None
        target = from_text(self.target)
        return target.with_name(fit_name(f"{QUARANTINE_PREFIX}{self.token}.{target.name}{TEMP_SUFFIX}"))


@dataclass(frozen=True)
class FailPlan(StepPlan):
    """The fail intent's payload: the failed/ entry to make (a copy, or the input moved, and its report)."""

    PREFIX = FAIL_PREFIX

    source: str  # the input's path (path_text)
    style_set: str
    action: Literal["copy", "move"]
    copy: str  # the copy's path, the first free name when the intent was recorded
    report_text: str
    token: str  # "<job id>-<random>": names the temp file and the input's quarantine
    sha: str | None = None  # sha256 of the bytes copied; None: nothing safe to copy, the report alone
    pid: int | None = None  # the process that recorded it: a worker's death settles it (worker_deaths.py)

    @property
    def temp(self) -> Path:
        """The hidden temp file the copy is written to before it gets its name (in failed/)."""
        return from_text(self.copy).with_name(f"{FAIL_PREFIX}{self.token}{TEMP_SUFFIX}")

    def candidates(self) -> Iterator[Path]:
        """failed/ names for the copy: name, name-1, name-2 ..."""
        folder = from_text(self.copy).parent
        return (failed_copy_path(folder, self.path.name, n) for n in range(10_000))


def recorded_by(intent: Intent, pid: int) -> bool:
    """True when a release or fail intent's payload says process `pid` recorded it."""
    if intent.step not in ("release", "fail"):
        return False
    try:
        return json.loads(intent.payload).get("pid") == pid
    except (ValueError, AttributeError):
        return False
