"""`style-daemon check-config`: validate a config without writing anything, print the settings in effect and
what will compute (backbone, Keras backend, device, memory budget)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from daemon.errors import ConfigError

if TYPE_CHECKING:
    from daemon.config import Config

log = logging.getLogger("style-daemon")  # the command line's own name in every message it logs


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate and print the effective configuration."""
    import yaml

    from daemon.config import check_filesystem, folder_needs, parse_config
    from daemon.media.folder_access import will_create

    config = parse_config(args.config)
    for need in will_create(folder_needs(config)):  # said even when a later check fails
        log.info("%s: %s does not exist yet; it will be created by run", need.key, need.path)
    check_filesystem(config, args.config)  # writes nothing: as root it must not create root-owned folders
    _check_store(config)
    print(yaml.safe_dump(effective_settings(config), sort_keys=False), end="")
    for line in _compute_lines(config):  # YAML comments: the output stays a valid config
        print(f"# {line}")
    log.info("%s is valid", args.config)
    return 0


def effective_settings(config: Config) -> dict:
    """The configuration as check-config prints it, as plain YAML data: every key with the value in effect,
    the default folders filled in, and the engine section with every engine parameter (the schema's order)."""
    from daemon.config import effective_engine

    effective = config.model_dump(mode="json", exclude_none=True)
    effective.update(failed=str(config.failed_dir), processed=str(config.processed_dir))
    effective["engine"] = effective_engine(config.engine)
    return effective


def _compute_lines(config: Config) -> list[str]:
    """Which backbone (and weights), Keras backend and device will compute; nothing is loaded or fetched."""
    from daemon.engine.backbones import plan_backbone
    from daemon.engine.device_guess import device_guess, keras_backend
    from daemon.errors import WeightsError

    engine = config.engine
    try:
        plan = plan_backbone(engine.backbone, engine.weights)
    except WeightsError as exc:
        raise ConfigError(f"engine.backbone {engine.backbone}: {exc}") from None
    where = ("weights to be downloaded into the Keras cache on first use (or run 'style-daemon fetch-weights')"
             if plan.path is None else f"weights {plan.path} ({plan.origin})")
    device = device_guess()
    return [f"backbone: {engine.backbone} -> {plan.backbone}, {where}",
            f"keras backend: {keras_backend()}",
            f"device: {device}",
            _memory_line(config, device.startswith("gpu"))]


def _memory_line(config: Config, gpu: bool) -> str:
    """The memory budget each style set's jobs get; 0 is read when a job starts, so say what is free now."""
    from daemon.engine.memory import available_bytes

    budgets = {name: style.params.memory_budget for name, style in config.styles.items()
               if style.params.memory_budget is not None}
    budget = config.engine.memory_budget
    if budget:
        free = available_bytes()
        more = f" (more than the {_human_bytes(free)} of RAM free now)" if not gpu and budget > free else ""
        line = f"memory budget: {_human_bytes(budget)}{more}, tiling {config.engine.tiling}"
    else:
        where = "GPU memory free" if gpu else f"RAM free (now {_human_bytes(available_bytes())})"
        line = f"memory budget: the {where} when a job starts, tiling {config.engine.tiling}"
    others = ", ".join(f"{name} {_human_bytes(value) if value else 'what is free'}" for name, value in budgets.items())
    return line + (f"; style sets: {others}" if others else "")


def _human_bytes(size: int) -> str:
    """12345678901 -> '12.3 GB' (decimal units, as the config accepts them)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _check_store(config: Config) -> None:
    """StoreCorrupt (one line) if an existing job store is corrupt or a shared one unreachable; writes nothing."""
    from daemon.store import open_store

    path = config.store_path
    if config.store_shared:
        open_store(config.store_target, readonly=True).close()  # says: server, database or permissions
        return
    if path.exists() and path.stat().st_size > 0:  # an empty file is a job store not yet started
        open_store(path, readonly=True).close()
