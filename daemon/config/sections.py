"""The sections of the service configuration besides `engine`: style sets, routing, naming, watching, retries,
logging, the gallery and metrics. Every key has a one-line description: docs/configuration.md is generated
from them (python -m daemon.config.reference).
"""

from __future__ import annotations

import re
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from daemon.config.engine import StyleOverrides

_TEMPLATE_FIELDS = {"stem", "style", "ext", "name", "suffix"}

# Numbers are numbers: YAML's true/false (or "5") where a number is meant is refused, not read as 1/0.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]


class Section(BaseModel):
    """Base of every section: unknown keys are refused (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StyleImageRef(Section):
    """One image of a style set and its blend weight."""

    path: Path = Field(description="the painting (relative to the config file)")
    weight: Float = Field(1.0, gt=0, description="its share of the blend, relative to the set's other images")


class StyleSet(Section):
    """A named style: one or more images with blend weights, and optional parameter overrides."""

    images: list[StyleImageRef] = Field(min_length=1, description=(
        "one or more paintings: a path, or {path, weight} to blend several"))
    params: StyleOverrides = Field(StyleOverrides(), description=(
        "this set's engine parameters: any key of `engine` but backbone and weights; unset ones come from `engine`"))

    @field_validator("images", mode="before")
    @classmethod
    def _plain_paths(cls, value):
        if isinstance(value, (str, Path)):
            value = [value]
        return [{"path": v} if isinstance(v, (str, Path)) else v for v in value]


class GlobRule(Section):
    """Files whose path relative to the input folder matches `glob` get `styles`."""

    glob: str = Field(description="a glob on the path relative to the input folder (or on the file name)")
    styles: list[str] = Field(min_length=1, description="the style sets a matching photo gets")


class Routing(Section):
    """Which style sets each photo gets: glob rules, then its first subfolder, then the default."""

    default: list[str] = Field(default_factory=list, description=(
        "style sets of a photo that matches no rule and is not in a style set's subfolder"))
    subfolders: bool = Field(True, description="a photo in input/<set>/ gets style set <set>")
    rules: list[GlobRule] = Field(default_factory=list, description=(
        "glob rules, first match wins: [{glob, styles}]"))


class WatchSettings(Section):
    """How new files are noticed and when they count as complete."""

    mode: Literal["inotify", "polling"] = Field("inotify", description=(
        "inotify, or polling for network shares (NFS/SMB written from other machines)"))
    poll_interval: Float = Field(5.0, gt=0, description="seconds between scans, polling mode only")
    settle_seconds: Float = Field(5.0, ge=0, description=(
        "a file is taken once its size and modification time are unchanged this long"))
    rescan_seconds: Float = Field(300.0, gt=0, description="seconds between full rescans, a safety net")


class OutputSettings(Section):
    """Naming and encoding of results."""

    template: str = Field("{stem}.{style}.{ext}", description=(
        "result file name; fields: stem, style, ext, name, suffix (subfolders are mirrored)"))
    format: Literal["jpg", "png", "webp", "tif"] = Field("jpg", description=(
        "encoding of the results; tif is a 16-bit TIFF for print (its gallery preview is a JPEG)"))
    quality: Int = Field(92, ge=1, le=100, description="JPEG/WebP quality")
    metadata: Literal["keep", "private", "none"] = Field("private", description=(
        "the photo's EXIF and XMP in the result: private (date, camera, lens, description; no GPS, place, "
        "serial numbers or maker note), keep (all but what no longer fits) or none (only the software and style)"))
    depth: Literal[8, 16] | None = Field(None, description=(
        "bits a channel: 16 for png or tif, written from the unquantised result; unset: 16 for tif, 8 otherwise"))
    color_space: Literal["srgb", "original"] = Field("srgb", description=(
        "the results' colours: srgb (with its profile), or original, back in the photo's own RGB space "
        "(e.g. Display P3) with its profile; docs/colour.md"))

    @model_validator(mode="after")
    def _depth_fits_format(self) -> OutputSettings:
        if self.depth == 16 and self.format not in ("png", "tif"):
            raise ValueError(f"depth 16 needs format png or tif ({self.format} holds 8 bits a channel)")
        return self

    @field_validator("template")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        names = set(re.findall(r"{(\w*)}", value))
        unknown = names - _TEMPLATE_FIELDS
        if unknown or "/" in value:
            raise ValueError(
                f"template may use {', '.join(sorted(_TEMPLATE_FIELDS))} and no '/'; got {value!r}"
            )
        if "{style}" not in value:
            raise ValueError("template must contain {style} so that style sets do not overwrite each other")
        return value


class Schedule(Section):
    """Only start jobs between `start` and `end` (local time; may wrap past midnight)."""

    start: dtime = Field(description='local time jobs may start from, e.g. "22:00"')
    end: dtime = Field(description='local time from which no job starts, e.g. "07:00"')

    def allows(self, now: dtime) -> bool:
        """True when a job may start at wall-clock time `now`."""
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


class Retries(Section):
    """Transient failures (disk full, permission denied, out of memory) are retried with backoff."""

    max_attempts: Int = Field(3, ge=1, description=(
        "attempts of a job that meets a transient error (disk full, permission denied, out of memory)"))
    backoff_seconds: Float = Field(30.0, ge=0, description="wait before the second attempt; doubles after each")
    max_wait_seconds: Float = Field(300.0, gt=0, description=(
        "cap of the growing wait while the environment stays broken"))


class LoggingSettings(Section):
    """Log level and the rotating log file in <output>/logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="how much the service logs")
    file: bool = Field(True, description="also write <output>/logs/style-daemon.log, rotated")
    max_bytes: Int = Field(10_000_000, ge=10_000, description="size at which the log file is rotated")
    backups: Int = Field(5, ge=0, description="rotated log files kept")
    progress_every: Int = Field(50, ge=1, description="a progress line every N iterations of a job")


class GallerySettings(Section):
    """The morning-after view in the output folder."""

    contact_sheets: bool = Field(True, description=(
        "photo | style(s) | result, labelled, beside each result (NAME.sheet.jpg)"))
    index: bool = Field(True, description="OUTPUT/index.html, rebuilt after each job; works offline from a share")


class MetricsSettings(Section):
    """Prometheus metrics: an HTTP endpoint on a local address and/or a node_exporter textfile."""

    listen: str | None = Field(None, description="HOST:PORT of an HTTP /metrics endpoint, e.g. 127.0.0.1:9808")
    textfile: Path | None = Field(None, description=(
        "a file for node_exporter's textfile collector (relative to the config file)"))
    interval_seconds: Float = Field(15.0, gt=0, description="how often the textfile is rewritten")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:9808; got {value!r}")
        return value
