"""The JSON record written beside every output: what went in, how, and what came out."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
from dataclasses import dataclass
from pathlib import Path

from daemon.media.atomic import write_atomic
from daemon.media.path_text import to_text
from daemon.engine.params import TransferParams, TransferResult
from daemon.engine.protocol import DRY_RUN_BACKEND

_PACKAGES = ("style-daemon", "keras", "tensorflow", "jax", "numpy", "pillow", "scipy", "h5py")


@dataclass(frozen=True)
class InputRecord:
    """One input file: where it was, its hash, and its blend weight for style images."""

    path: str
    sha256: str
    weight: float | None = None


@dataclass(frozen=True)
class BackboneRecord:
    """The backbone used and where its weights came from."""

    name: str
    weights_origin: str
    weights_path: str
    weights_sha256: str


@dataclass(frozen=True)
class JobTimes:
    """When the job ran: UTC ISO 8601 start and end."""

    started: str
    finished: str


@dataclass(frozen=True)
class EncodingRecord:
    """How the result was encoded: Pillow format name, and quality for the lossy formats (None for PNG)."""

    format: str
    quality: int | None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the result."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def build_sidecar(
    *,
    output: Path,
    content: InputRecord,
    styles: list[InputRecord],
    style_set: str,
    backbone: BackboneRecord,
    params: TransferParams,
    result: TransferResult,
    device: str,
    keras_backend: str,
    params_hash: str | None = None,
    generation: int = 0,
    times: JobTimes | None = None,
    encoding: EncodingRecord | None = None,
    command_line: str | None = None,
) -> dict:
    """The sidecar document as plain JSON-ready data; content sha256, style set and params hash identify the job."""
    document = {
        "output": to_text(output),  # names with undecodable bytes stay valid JSON (see media/path_text.py)
        "content": dataclasses.asdict(content),
        "style_set": style_set,
        "params_hash": params_hash,
        "generation": generation,
        "styles": [dataclasses.asdict(s) for s in styles],
        "backbone": dataclasses.asdict(backbone),
        "parameters": dataclasses.asdict(params),
        "result": {
            "size": list(result.size),
            "downsized_from": list(result.downsized_from) if result.downsized_from else None,
            "size_requested": params.max_size,
            "scales_requested": params.scales,
            # What ran, not what was asked: a photo smaller than max_size is not upscaled and runs fewer scales.
            "scales_run": [list(size) for size in result.scale_sizes],
            "iterations": result.iterations,
            "evaluations": result.evaluations,
            "seconds": round(result.seconds, 3),
            "losses": dataclasses.asdict(result.losses),
            "loss_history": [dataclasses.asdict(r) for r in result.history],
            # Per scale, coarse to fine: iterations run, time, and why it stopped (cap or converged).
            "scales": [dataclasses.asdict(r) for r in result.scale_reports],
            # The style weight used for this pair and why (issue 16); null with adapt_strength off.
            "adaptation": dataclasses.asdict(result.adaptation) if result.adaptation else None,
        },
        "tiled": any(report.tiles for report in result.scale_reports),  # how: each scale's report (issue 14)
        # What the engine planned before it began (every scale: size, cap, loop, optimiser, arithmetic,
        # tiling, memory); null from an engine that makes no plan (the dry-run engine).
        "plan": plan_record(result),
        "device": device,
        "keras_backend": keras_backend,
        "versions": package_versions(),
        "started": times.started if times else None,
        "finished": times.finished if times else None,
        "encoding": dataclasses.asdict(encoding) if encoding else None,
    }
    if command_line is not None:
        document["command_line"] = command_line  # stylize only: the command as typed
    if keras_backend == DRY_RUN_BACKEND:
        document["dry_run"] = True  # the dry-run engine made it: a tinted photo, not a stylisation
    return document


def plan_record(result: TransferResult) -> dict | None:
    """The run's plan as JSON-ready data, or None when the engine made none."""
    return dataclasses.asdict(result.plan) if result.plan is not None else None


def sidecar_path(output: Path) -> Path:
    """Where the sidecar of `output` goes: photo.starry.jpg -> photo.starry.jpg.json."""
    return output.with_name(output.name + ".json")


def write_sidecar(output: Path, document: dict) -> Path:
    """Write the sidecar next to `output` atomically; returns its path."""
    path = sidecar_path(output)
    write_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


@dataclass(frozen=True)
class SidecarKey:
    """What identifies the job a sidecar was written for."""

    content_sha: str
    content_path: str
    style_set: str
    params_hash: str | None
    generation: int
    seconds: float | None


def read_sidecar_key(path: Path) -> SidecarKey | None:
    """The job key recorded in a sidecar, or None if it is not one of ours (or is unreadable)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        content = document["content"]
        sha, style_set = content["sha256"], document["style_set"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(sha, str) and len(sha) == 64 and isinstance(style_set, str) and style_set):
        return None
    params_hash = document.get("params_hash")
    generation = document.get("generation")
    seconds = (document.get("result") or {}).get("seconds") if isinstance(document.get("result"), dict) else None
    return SidecarKey(sha, str(content.get("path", "")), style_set,
                      params_hash if isinstance(params_hash, str) else None,
                      generation if isinstance(generation, int) else 0,
                      seconds if isinstance(seconds, (int, float)) else None)
