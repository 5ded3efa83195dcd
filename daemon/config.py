"""The service configuration: parsed from YAML and validated once, at the edge, into typed objects."""

from __future__ import annotations

import os
import re
from datetime import time as dtime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from daemon.engine.params import TransferParams
from daemon.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TEMPLATE_FIELDS = {"stem", "style", "ext", "name", "suffix"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineSettings(_Strict):
    """Engine parameters (see TransferParams) plus the backbone and its weights."""

    backbone: Literal["auto", "vgg19", "vgg16-hed"] = "auto"
    weights: Path | None = None
    max_size: int = Field(512, ge=32)
    iterations: int = Field(100, ge=1)
    scales: int = Field(3, ge=1, le=6)
    min_scale_size: int = Field(128, ge=32)
    content_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(30.0, ge=0)
    tv_weight: float = Field(5.0, ge=0)
    content_layer: str = "block4_conv2"
    style_layers: dict[str, float] | None = None
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    lbfgs_impl: Literal["auto", "optax", "scipy"] = "auto"
    precision: Literal["float32", "tf32", "bf16"] = "float32"
    learning_rate: float = Field(2.0, gt=0)
    init: Literal["content", "noise", "style"] = "content"
    seed: int = 0
    style_scale: float = Field(1.0, gt=0)
    preserve_colors: Literal["none", "luminance", "histogram"] = "none"
    on_too_large: Literal["refuse", "downsize"] = "refuse"
    log_every: int = Field(50, ge=1)
    save_every: int = Field(0, ge=0)

    def transfer_params(self, overrides: "StyleOverrides | None" = None) -> TransferParams:
        """TransferParams from these settings with a style set's overrides applied."""
        values = self.model_dump(exclude={"backbone", "weights"}, exclude_none=True)
        if overrides is not None:
            values.update(overrides.model_dump(exclude_none=True))
        return TransferParams(**values)


class StyleOverrides(_Strict):
    """Per-style-set engine parameters; anything unset comes from `engine`."""

    max_size: int | None = Field(None, ge=32)
    iterations: int | None = Field(None, ge=1)
    scales: int | None = Field(None, ge=1, le=6)
    content_weight: float | None = Field(None, ge=0)
    style_weight: float | None = Field(None, ge=0)
    tv_weight: float | None = Field(None, ge=0)
    style_layers: dict[str, float] | None = None
    content_layer: str | None = None
    init: Literal["content", "noise", "style"] | None = None
    seed: int | None = None
    style_scale: float | None = Field(None, gt=0)
    preserve_colors: Literal["none", "luminance", "histogram"] | None = None


class StyleImageRef(_Strict):
    """One image of a style set and its blend weight."""

    path: Path
    weight: float = Field(1.0, gt=0)


class StyleSet(_Strict):
    """A named style: one or more images with blend weights, and optional parameter overrides."""

    images: list[StyleImageRef] = Field(min_length=1)
    params: StyleOverrides = StyleOverrides()

    @field_validator("images", mode="before")
    @classmethod
    def _plain_paths(cls, value):
        if isinstance(value, (str, Path)):
            value = [value]
        return [{"path": v} if isinstance(v, (str, Path)) else v for v in value]


class GlobRule(_Strict):
    """Files whose path relative to the input folder matches `glob` get `styles`."""

    glob: str
    styles: list[str] = Field(min_length=1)


class Routing(_Strict):
    """Which style sets each photo gets: glob rules, then its first subfolder, then the default."""

    default: list[str] = Field(default_factory=list)
    subfolders: bool = True
    rules: list[GlobRule] = Field(default_factory=list)


class WatchSettings(_Strict):
    """How new files are noticed and when they count as complete."""

    mode: Literal["inotify", "polling"] = "inotify"
    poll_interval: float = Field(5.0, gt=0)
    settle_seconds: float = Field(5.0, ge=0)
    rescan_seconds: float = Field(300.0, gt=0)


class OutputSettings(_Strict):
    """Naming and encoding of results."""

    template: str = "{stem}.{style}.{ext}"
    format: Literal["jpg", "png", "webp"] = "jpg"
    quality: int = Field(92, ge=1, le=100)

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


class Schedule(_Strict):
    """Only start jobs between `start` and `end` (local time; may wrap past midnight)."""

    start: dtime
    end: dtime

    def allows(self, now: dtime) -> bool:
        """True when a job may start at wall-clock time `now`."""
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


class Retries(_Strict):
    """Transient failures (disk full, permission denied, out of memory) are retried with backoff."""

    max_attempts: int = Field(3, ge=1)
    backoff_seconds: float = Field(30.0, ge=0)


class LoggingSettings(_Strict):
    """Log level and the rotating log file in <output>/logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: bool = True
    max_bytes: int = Field(10_000_000, ge=10_000)
    backups: int = Field(5, ge=0)
    progress_every: int = Field(50, ge=1)


class GallerySettings(_Strict):
    """The morning-after view in the output folder."""

    contact_sheets: bool = True
    index: bool = True


class MetricsSettings(_Strict):
    """Prometheus metrics: an HTTP endpoint on a local address and/or a node_exporter textfile."""

    listen: str | None = None
    textfile: Path | None = None
    interval_seconds: float = Field(15.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:9808; got {value!r}")
        return value


class Config(_Strict):
    """The whole service configuration."""

    input: Path
    output: Path
    state: Path
    failed: Path | None = None
    processed: Path | None = None
    styles: dict[str, StyleSet] = Field(min_length=1)
    routing: Routing = Routing()
    naming: OutputSettings = OutputSettings()
    after_success: Literal["keep", "move", "delete"] = "keep"
    on_failure: Literal["copy", "move"] = "copy"
    schedule: Schedule | None = None
    watch: WatchSettings = WatchSettings()
    engine: EngineSettings = EngineSettings()
    retries: Retries = Retries()
    workers: int = Field(1, ge=1, le=16)
    gpus: list[str] | None = None
    max_input_pixels: int = Field(64_000_000, ge=1)
    logging: LoggingSettings = LoggingSettings()
    gallery: GallerySettings = GallerySettings()
    metrics: MetricsSettings = MetricsSettings()

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
    def journal_path(self) -> Path:
        """The SQLite job store."""
        return self.state / "journal.sqlite3"

    def excluded_dirs(self) -> list[Path]:
        """Folders of ours that may sit inside the input folder and must never be watched."""
        return [self.output, self.state, self.failed_dir, self.processed_dir, self.logs_dir]


def load_config(path: Path) -> Config:
    """Read, validate and check a config file; raises ConfigError with the key path and the fix."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass -c PATH (see config.yaml in the project)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    raw = _resolve_paths(raw, path.parent.resolve())
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    check_filesystem(config, path)
    return config


def _resolve_paths(raw: dict, base: Path) -> dict:
    """Relative paths in the file are relative to the file's folder, not to the working directory."""
    raw = dict(raw)
    for key in ("input", "output", "state", "failed", "processed"):
        if isinstance(raw.get(key), str):
            raw[key] = str((base / os.path.expanduser(raw[key])).resolve())
    metrics = raw.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("textfile"), str):
        raw["metrics"] = dict(metrics, textfile=str((base / os.path.expanduser(metrics["textfile"])).resolve()))
    styles = raw.get("styles")
    if isinstance(styles, dict):
        resolved = {}
        for name, spec in styles.items():
            resolved[name] = _resolve_style(spec, base)
        raw["styles"] = resolved
    engine = raw.get("engine")
    if isinstance(engine, dict) and isinstance(engine.get("weights"), str):
        raw["engine"] = dict(engine, weights=str(base / os.path.expanduser(engine["weights"])))
    return raw


def _resolve_style(spec, base: Path):
    if not isinstance(spec, dict):
        return spec
    images = spec.get("images")
    if isinstance(images, str):
        images = [images]
    if isinstance(images, list):
        fixed = []
        for item in images:
            if isinstance(item, str):
                fixed.append(str((base / os.path.expanduser(item)).resolve()))
            elif isinstance(item, dict) and isinstance(item.get("path"), str):
                fixed.append(dict(item, path=str((base / os.path.expanduser(item["path"])).resolve())))
            else:
                fixed.append(item)
        spec = dict(spec, images=fixed)
    return spec


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against config.yaml"
        elif error["type"] == "missing":
            message = "required key is missing"
        parts.append(f"{where}: {message}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def check_filesystem(config: Config, source: Path) -> None:
    """Folders usable and style images present; ConfigError names the key and the fix."""
    if config.input.exists() and not config.input.is_dir():
        raise ConfigError(f"{source}: input: {config.input} is not a folder; fix the path")
    folders = [("input", config.input), ("output", config.output), ("state", config.state),
               ("failed", config.failed_dir)]
    if config.after_success == "move":
        folders.append(("processed", config.processed_dir))
    for key, folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{source}: {key}: cannot create {folder} ({exc.strerror}); fix the path or its permissions") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{source}: {key}: folder {folder} is not writable by this user; fix its permissions")
    for name, style in config.styles.items():
        for index, image in enumerate(style.images):
            if not image.path.is_file():
                raise ConfigError(f"{source}: styles.{name}.images.{index}: {image.path} not found; fix the path")
    _check_nesting(config, source)


def _check_nesting(config: Config, source: Path) -> None:
    inp = config.input.resolve()
    for key, folder in (("output", config.output), ("state", config.state)):
        folder = folder.resolve()
        if folder == inp:
            raise ConfigError(f"{source}: {key}: must not be the input folder itself; use a separate folder")
        if inp in folder.parents:
            # Allowed: the watcher excludes our own folders; said here so nobody is surprised.
            continue
        if folder in inp.parents:
            raise ConfigError(f"{source}: input: {inp} is inside the {key} folder {folder}; move it out")
