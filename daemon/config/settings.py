"""The whole service configuration (the Config model) and where its folders and job store are."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from daemon.config.engine import EngineSettings
from daemon.config.sections import (Float, GallerySettings, Int, LoggingSettings, MetricsSettings, OutputSettings,
                                    Retries, Routing, Schedule, Section, StyleSet, WatchSettings)
from daemon.media.path_text import to_text
from daemon.store.records import StoreTarget

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The job store's key was once `journal`; it is still read, with one warning per process.
_OLD_STORE_KEY = "journal"
_warned: set[str] = set()


def _renamed_store_key(raw: Any) -> Any:
    """`journal:` read as `store:` (deprecated name), warned about once; both at once is an error."""
    if not isinstance(raw, dict) or _OLD_STORE_KEY not in raw:
        return raw
    if "store" in raw:
        raise ValueError("journal: is the old name of store:; keep only store:")
    if _OLD_STORE_KEY not in _warned:
        _warned.add(_OLD_STORE_KEY)
        log.warning("journal: is deprecated, rename it to store:")
    raw = dict(raw)
    raw["store"] = raw.pop(_OLD_STORE_KEY)
    return raw


class Config(Section):
    """The whole service configuration."""

    input: Path = Field(description="the hot folder people drop photos into (watched recursively)")
    output: Path = Field(description=(
        "results, sidecars, logs/ and failed/ (may sit inside input: it is excluded)"))
    state: Path = Field(description="the job store (SQLite) and the service's lock; keep it on a local disk")
    failed: Path | None = Field(None, description=(
        "unusable inputs (a copy) and their .error.txt; default <output>/failed"))
    processed: Path | None = Field(None, description=(
        "where inputs go with after_success: move; default <output>/processed"))
    styles: dict[str, StyleSet] = Field(min_length=1, description=(
        "named style sets (letters, digits, '_', '-', '.'), each one or more paintings"))
    routing: Routing = Field(Routing(), description="which style sets each photo gets")
    naming: OutputSettings = Field(OutputSettings(), description="names and encoding of the results")
    after_success: Literal["keep", "move", "delete"] = Field("keep", description=(
        "what happens to an input once all its results are written: keep, move (to processed) or delete"))
    on_failure: Literal["copy", "move"] = Field("copy", description="copy or move an unusable input into failed")
    schedule: Schedule | None = Field(None, description="only start jobs in this window; unset: any time")
    watch: WatchSettings = Field(WatchSettings(), description="how new files are noticed")
    engine: EngineSettings = Field(EngineSettings(), description="the style transfer's parameters")
    retries: Retries = Field(Retries(), description="retries of transient failures")
    workers: Int = Field(1, ge=1, le=16, description="worker processes; with several GPUs, one per GPU")
    gpus: list[str] | None = Field(None, description=(
        "CUDA_VISIBLE_DEVICES of each worker, one per worker, e.g. [\"0\", \"1\"]"))
    max_input_pixels: Int = Field(64_000_000, ge=1, description="larger images are refused (decompression bombs)")
    logging: LoggingSettings = Field(LoggingSettings(), description="log level and the rotating log file")
    gallery: GallerySettings = Field(GallerySettings(), description="the contact sheets and index.html")
    metrics: MetricsSettings = Field(MetricsSettings(), description="Prometheus metrics; off by default")
    store: str | None = Field(None, description=(
        "the job store: a postgresql:// URL (several machines share it) or a SQLite file; default "
        "<state>/journal.sqlite3 (formerly `journal`)"))
    machine: str = Field(default_factory=socket.gethostname, min_length=1, description=(
        "this service's name in a shared job store"), json_schema_extra={"default_text": "the host name"})
    lease_seconds: Float = Field(30.0, ge=1.0, le=3600.0, description=(
        "a shared job store's claim lapses this long after a job's last progress"))

    @model_validator(mode="before")
    @classmethod
    def _journal_is_store(cls, raw: Any) -> Any:
        return _renamed_store_key(raw)

    @field_validator("styles")
    @classmethod
    def _style_names(cls, value: dict[str, StyleSet]) -> dict[str, StyleSet]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"style set name {name!r} must be letters, digits, '_', '-' or '.'")
        return value

    @model_validator(mode="after")
    def _routes_name_known_sets(self) -> "Config":
        known = set(self.styles)
        named = list(self.routing.default) + [s for r in self.routing.rules for s in r.styles]
        unknown = sorted(set(named) - known)
        if unknown:
            raise ValueError(f"routing names unknown style set(s) {', '.join(unknown)}; defined: {', '.join(sorted(known))}")
        if not self.routing.default and not self.routing.rules and not self.routing.subfolders:
            raise ValueError("routing sends photos nowhere: set routing.default, rules or subfolders")
        if self.gpus is not None and len(self.gpus) != self.workers:
            raise ValueError(f"gpus lists {len(self.gpus)} device(s) but workers is {self.workers}; give one per worker")
        return self

    @property
    def failed_dir(self) -> Path:
        """Where failed inputs and their .error.txt go (default <output>/failed)."""
        return self.failed or self.output / "failed"

    @property
    def processed_dir(self) -> Path:
        """Where inputs go after success with after_success: move (default <output>/processed)."""
        return self.processed or self.output / "processed"

    @property
    def logs_dir(self) -> Path:
        """The rotating log file's folder."""
        return self.output / "logs"

    @property
    def store_shared(self) -> bool:
        """True when the job store is a PostgreSQL database shared by several machines."""
        return bool(self.store) and self.store.startswith(("postgresql://", "postgres://"))

    @property
    def store_path(self) -> Path:
        """The SQLite job store (unused when the store is shared); the file keeps its old name journal.sqlite3."""
        if self.store and not self.store_shared:
            return Path(self.store)
        return self.state / "journal.sqlite3"

    @property
    def store_target(self) -> StoreTarget:
        """The job store to open, with this machine's folders (a shared store keeps paths relative to them)."""
        roots = {"input": self.input, "output": self.output, "processed": self.processed_dir,
                 "failed": self.failed_dir}
        location = self.store if self.store_shared else str(self.store_path)
        return StoreTarget(location, {k: to_text(v) for k, v in roots.items()}, self.machine, self.lease_seconds,
                           self.retries.max_attempts)

    def excluded_dirs(self) -> list[Path]:
        """Folders of ours that may sit inside the input folder and must never be watched."""
        return [self.output, self.state, self.failed_dir, self.processed_dir, self.logs_dir]
