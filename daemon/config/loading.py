"""Reading a config file: YAML to a validated Config, relative paths resolved, errors in one line with the key."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from daemon.config.filesystem import check_filesystem
from daemon.config.settings import Config
from daemon.errors import ConfigError


def load_config(path: Path, create_folders: bool = False, styles: bool = True) -> Config:
    """Read, validate and check a config file; raises ConfigError with the key path and the fix.

    Nothing is written unless `create_folders` (the service itself): validation never creates folders that
    would then belong to whoever ran it (root running check-config would lock the service out).
    """
    config = parse_config(path)
    check_filesystem(config, Path(path), create_folders, styles)  # styles: see check_filesystem
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
            message = "unknown key; check its spelling against docs/configuration.md or config.yaml"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] in ("int_type", "float_type") and isinstance(error.get("input"), (bool, str)):
            kind = "a whole number" if error["type"] == "int_type" else "a number"
            message = f"expected {kind}, got {error['input']!r}; write the number without quotes"
        parts.append(f"{where}: {message}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


