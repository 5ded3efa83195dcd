"""The service configuration: parsed from YAML and validated once, at the edge, into typed objects."""

from __future__ import annotations

import math
import os
import re
import socket
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from PIL import Image
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError,
                      field_validator, model_validator)

from daemon.engine.params import STRENGTH_PRESETS, TransferParams, strength_value, style_weight_for
from daemon.media import folder_access
from daemon.errors import ConfigError
from daemon.media.folder_access import Need
from daemon.media.path_text import to_text
from daemon.store.records import StoreTarget

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TEMPLATE_FIELDS = {"stem", "style", "ext", "name", "suffix"}


# Numbers are numbers: YAML's true/false (or "5") where a number is meant is refused, not read as 1/0.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]

# Memory sizes: decimal units (kB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB, and the bare
# K, M, G, T as systemd reads them) powers of 1024. A bare number is bytes.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(?:([KMGT])(I)?)?(B)?\s*$", re.IGNORECASE)
_SIZE_HINT = "a number of bytes or a size such as 8GB or 512MiB (0: what is free)"
_SMALLEST_BUDGET = 64 * 1024**2  # below this a number is a forgotten unit ("8" meant 8GB), not a budget


def parse_byte_size(value: object) -> int:
    """Bytes from an int or a text such as '8GB', '512MiB', '2G' or '1.5 GB'; ValueError (one line) if not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {_SIZE_HINT}, got {value!r}")
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"expected {_SIZE_HINT}, got {value!r}")
        number, prefix, binary, unit = match.groups()
        power = " KMGT".index(prefix.upper()) if prefix else 0
        base = 1024 if binary or (prefix and not unit) else 1000
        size = float(number) * base**power
    elif math.isfinite(value) and value >= 0 and float(value).is_integer():
        size = float(value)
    else:
        raise ValueError(f"expected {_SIZE_HINT}, got {value!r}")
    if 0 < size < _SMALLEST_BUDGET:
        raise ValueError(f"{value!r} is only {int(size)} bytes; write the unit, e.g. 8GB or 512MiB (at least 64MiB)")
    return int(size)


ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]


def _check_tile_size(value: int) -> int:
    """0 (auto) or a multiple of 16 of at least 32: tiles align with VGG's pooling grid."""
    if value and (value < 32 or value % 16):
        raise ValueError(f"must be 0 (chosen from the memory budget) or a multiple of 16 of at least 32, "
                         f"e.g. {max(32, value // 16 * 16)}; got {value}")
    return value


TileSize = Annotated[int, Strict(), Field(ge=0), AfterValidator(_check_tile_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DEFAULTS = TransferParams()
# A number 0..1 or a preset name; checked by _check_strength (one message for both forms).
Strength = Annotated[float, Strict()] | str


def _check_strength(value: float | str | None) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a number from 0 to 1 or one of {', '.join(STRENGTH_PRESETS)}; got {value!r}")
    if isinstance(value, str) and value not in STRENGTH_PRESETS:
        raise ValueError(f"must be a number from 0 to 1 or one of {', '.join(STRENGTH_PRESETS)}; got {value!r}")
    if not isinstance(value, str) and not 0.0 <= value <= 1.0:
        raise ValueError(f"must be from 0 (a hint of style) to 1 (style everywhere); got {value}")
    return value


def _style_weight(levels: list) -> float | None:
    """The style weight the most specific level asks for; at one level style_weight wins over strength."""
    chosen = None
    for level in levels:
        if level.style_weight is not None:
            chosen = level.style_weight
        elif level.strength is not None:
            chosen = style_weight_for(strength_value(level.strength))
    return chosen


class EngineSettings(_Strict):
    """Engine parameters (see TransferParams) plus the backbone and its weights."""

    backbone: Literal["auto", "vgg19", "vgg16-hed"] = "auto"
    weights: Path | None = None
    max_size: Int = Field(512, ge=32)
    iterations: Int = Field(_DEFAULTS.iterations, ge=1)
    scales: Int = Field(3, ge=1, le=6)
    min_scale_size: Int = Field(128, ge=32)
    # strength (0..1 or a preset) sets the style weight; style_weight, if given, wins over it.
    strength: Strength | None = None
    content_weight: Float = Field(1.0, ge=0)
    style_weight: Float | None = Field(None, ge=0)
    tv_weight: Float = Field(5.0, ge=0)
    content_layer: str = "block4_conv2"
    style_layers: dict[str, Float] | None = None
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    lbfgs_impl: Literal["auto", "optax", "numpy", "scipy"] = "auto"
    precision: Literal["auto", "float32", "tf32", "bf16"] = "auto"
    learning_rate: Float = Field(2.0, gt=0)
    init: Literal["content", "noise", "style"] = "content"
    seed: Int = 0
    style_scale: Float = Field(1.0, gt=0)
    preserve_colors: Literal["none", "luminance", "histogram"] = "none"
    on_too_large: Literal["refuse", "downsize"] = "refuse"
    log_every: Int = Field(50, ge=1)
    save_every: Int = Field(0, ge=0)
    memory_budget: ByteSize = 0  # bytes beyond the loaded model; 0: 90% of what is free when a job starts
    tiling: Literal["auto", "always", "never"] = "auto"
    tile_size: TileSize = 0
    stop_tolerance: Float = Field(_DEFAULTS.stop_tolerance, ge=0, lt=1)
    stop_window: Int = Field(_DEFAULTS.stop_window, ge=1)
    budget: Literal["even", "coarse"] = _DEFAULTS.budget
    adapt_strength: bool = _DEFAULTS.adapt_strength

    _strength = field_validator("strength", mode="before")(_check_strength)

    def transfer_params(self, overrides: "StyleOverrides | None" = None) -> TransferParams:
        """TransferParams from these settings with a style set's overrides applied.

        A style set's strength or style_weight wins over the engine's; within one, style_weight wins."""
        values = self.model_dump(exclude={"backbone", "weights", "strength"}, exclude_none=True)
        if overrides is not None:
            values.update(overrides.model_dump(exclude={"strength"}, exclude_none=True))
        style_weight = _style_weight([self, *([overrides] if overrides is not None else [])])
        if style_weight is not None:
            values["style_weight"] = style_weight
        return TransferParams(**values)


class StyleOverrides(_Strict):
    """Per-style-set engine parameters; anything unset comes from `engine`."""

    max_size: Int | None = Field(None, ge=32)
    iterations: Int | None = Field(None, ge=1)
    scales: Int | None = Field(None, ge=1, le=6)
    strength: Strength | None = None
    adapt_strength: bool | None = None
    content_weight: Float | None = Field(None, ge=0)
    style_weight: Float | None = Field(None, ge=0)
    tv_weight: Float | None = Field(None, ge=0)
    style_layers: dict[str, Float] | None = None
    content_layer: str | None = None

    _strength = field_validator("strength", mode="before")(_check_strength)
    init: Literal["content", "noise", "style"] | None = None
    seed: Int | None = None
    style_scale: Float | None = Field(None, gt=0)
    preserve_colors: Literal["none", "luminance", "histogram"] | None = None
    memory_budget: ByteSize | None = None
    tiling: Literal["auto", "always", "never"] | None = None
    tile_size: TileSize | None = None


class StyleImageRef(_Strict):
    """One image of a style set and its blend weight."""

    path: Path
    weight: Float = Field(1.0, gt=0)


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
    poll_interval: Float = Field(5.0, gt=0)
    settle_seconds: Float = Field(5.0, ge=0)
    rescan_seconds: Float = Field(300.0, gt=0)


class OutputSettings(_Strict):
    """Naming and encoding of results."""

    template: str = "{stem}.{style}.{ext}"
    format: Literal["jpg", "png", "webp"] = "jpg"
    quality: Int = Field(92, ge=1, le=100)

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

    max_attempts: Int = Field(3, ge=1)
    backoff_seconds: Float = Field(30.0, ge=0)
    max_wait_seconds: Float = Field(300.0, gt=0)  # cap of the growing wait while the environment is broken


class LoggingSettings(_Strict):
    """Log level and the rotating log file in <output>/logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: bool = True
    max_bytes: Int = Field(10_000_000, ge=10_000)
    backups: Int = Field(5, ge=0)
    progress_every: Int = Field(50, ge=1)


class GallerySettings(_Strict):
    """The morning-after view in the output folder."""

    contact_sheets: bool = True
    index: bool = True


class MetricsSettings(_Strict):
    """Prometheus metrics: an HTTP endpoint on a local address and/or a node_exporter textfile."""

    listen: str | None = None
    textfile: Path | None = None
    interval_seconds: Float = Field(15.0, gt=0)

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
    workers: Int = Field(1, ge=1, le=16)
    gpus: list[str] | None = None
    max_input_pixels: Int = Field(64_000_000, ge=1)
    logging: LoggingSettings = LoggingSettings()
    gallery: GallerySettings = GallerySettings()
    metrics: MetricsSettings = MetricsSettings()
    journal: str | None = None  # a postgresql:// URL (several machines) or a SQLite file; default state/journal.sqlite3
    machine: str = Field(default_factory=socket.gethostname, min_length=1)  # this service's name in a shared journal
    lease_seconds: Float = Field(30.0, ge=1.0, le=3600.0)  # a shared journal's claim lapses this long after progress

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
    def journal_shared(self) -> bool:
        """True when the journal is a PostgreSQL database shared by several machines."""
        return bool(self.journal) and self.journal.startswith(("postgresql://", "postgres://"))

    @property
    def journal_path(self) -> Path:
        """The SQLite job store (unused when the journal is shared)."""
        if self.journal and not self.journal_shared:
            return Path(self.journal)
        return self.state / "journal.sqlite3"

    @property
    def store_target(self) -> StoreTarget:
        """The job store to open, with this machine's folders (a shared store keeps paths relative to them)."""
        roots = {"input": self.input, "output": self.output, "processed": self.processed_dir,
                 "failed": self.failed_dir}
        location = self.journal if self.journal_shared else str(self.journal_path)
        return StoreTarget(location, {k: to_text(v) for k, v in roots.items()}, self.machine, self.lease_seconds,
                           self.retries.max_attempts)

    def excluded_dirs(self) -> list[Path]:
        """Folders of ours that may sit inside the input folder and must never be watched."""
        return [self.output, self.state, self.failed_dir, self.processed_dir, self.logs_dir]


def load_config(path: Path, create_folders: bool = False) -> Config:
    """Read, validate and check a config file; raises ConfigError with the key path and the fix.

    Nothing is written unless `create_folders` (the service itself): validation never creates folders that
    would then belong to whoever ran it (root running check-config would lock the service out).
    """
    config = parse_config(path)
    check_filesystem(config, Path(path), create_folders)
    return config


def parse_config(path: Path) -> Config:
    """Read and validate a config file without looking at the file system it names."""
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
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None


def state_folder(path: Path) -> Path:
    """Only the `state` folder of a config file, read leniently (the rest may be invalid); ConfigError if absent."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path} ({str(exc).splitlines()[0]}); fix it, then reload again") from None
    state = _resolve_paths(raw, path.parent.resolve()).get("state") if isinstance(raw, dict) else None
    if not isinstance(state, str):
        raise ConfigError(f"{path}: state: required key is missing or not a path; fix it, then reload again")
    return Path(state)


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
        elif error["type"] in ("int_type", "float_type") and isinstance(error.get("input"), (bool, str)):
            kind = "a whole number" if error["type"] == "int_type" else "a number"
            message = f"expected {kind}, got {error['input']!r}; write the number without quotes"
        parts.append(f"{where}: {message}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def folder_needs(config: Config) -> list[Need]:
    """Every folder the service writes (and the files it rewrites there), and the input folder it reads."""
    edits_input = config.after_success != "keep" or config.on_failure == "move"
    needs = [Need("input", config.input, write=edits_input), Need("output", config.output),
             Need("state", config.state), Need("failed", config.failed_dir)]
    if config.after_success == "move":
        needs.append(Need("processed", config.processed_dir))
    if config.logging.file:
        needs += [Need("logging.file", config.logs_dir),
                  Need("logging.file", config.logs_dir / "style-daemon.log", folder=False)]
    journal = config.journal_path
    for name in (journal.name, journal.name + "-wal", journal.name + "-shm", "daemon.lock"):
        needs.append(Need("state", config.state / name, folder=False))
    return needs


def check_filesystem(config: Config, source: Path, create_folders: bool = False) -> None:
    """Folders usable and style images present, without writing anything unless `create_folders` (run).

    ConfigError names the key, the path and the fix.
    """
    if not config.input.exists():
        raise ConfigError(f"{source}: input: folder {config.input} does not exist; create it (mkdir -p "
                          f"{config.input}) or fix the path")
    if not config.input.is_dir():
        raise ConfigError(f"{source}: input: {config.input} is not a folder; fix the path")
    needs = folder_needs(config)
    _refuse_problems(needs, source)
    if create_folders:
        try:
            folder_access.create(needs)
        except OSError as exc:
            raise ConfigError(f"{source}: cannot create {exc.filename} ({exc.strerror}); fix the path or its "
                              "permissions") from None
        _refuse_problems(needs, source)
    for name, style in config.styles.items():
        for index, image in enumerate(style.images):
            _check_style_image(image.path, f"{source}: styles.{name}.images.{index}")
    _check_nesting(config, source)


def _check_style_image(path: Path, where: str) -> None:
    """The style image exists, is a file and decodes: otherwise every photo would fail later."""
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a folder, not an image; name one image file in it")
    if not path.is_file():
        raise ConfigError(f"{where}: {path} not found; fix the path")
    try:
        with Image.open(path) as image:
            image.load()  # a full decode: a truncated or corrupt painting is caught here, not per photo
    except Image.DecompressionBombError:
        raise ConfigError(f"{where}: {path} is too large to decode safely; use a smaller copy") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"{where}: {path} is not a readable image ({exc}); replace it with a JPEG or PNG") from None


def _refuse_problems(needs: list[Need], source: Path) -> None:
    for need in needs:
        reason = folder_access.problem(need)
        if reason:
            raise ConfigError(f"{source}: {reason}")


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
