"""Choosing the backbone: vgg19 (ImageNet), vgg16-hed (offline, shipped), or auto."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from daemon.engine.fetch import CLI_WEIGHTS_HINT, CONFIG_WEIGHTS_HINT, fetch_allowed, fetch_vgg19
from daemon.engine.weights import WeightsSource, cached_vgg19, hed_weights, user_vgg19
from daemon.errors import ConfigError, WeightsError

log = logging.getLogger(__name__)

BACKBONES = ("auto", "vgg19", "vgg16-hed")
__all__ = ["BACKBONES", "BackbonePlan", "CLI_WEIGHTS_HINT", "CONFIG_WEIGHTS_HINT", "fetch_allowed",
           "plan_backbone", "resolve_backbone"]


@dataclass(frozen=True)
class BackbonePlan:
    """What resolve_backbone would pick, found without downloading or loading anything."""

    backbone: str
    path: Path | None  # None: VGG19 weights will be fetched on first use
    origin: str  # where the weights come from, or "download"


def plan_backbone(name: str, weights: Path | None = None, allow_fetch: bool | None = None,
                  weights_hint: str = CONFIG_WEIGHTS_HINT) -> BackbonePlan:
    """The backbone `name` resolves to and where its weights are; raises WeightsError as resolving would."""
    allow = fetch_allowed() if allow_fetch is None else allow_fetch
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONES)}")
    if name != "vgg16-hed":
        found = user_vgg19(weights) if weights is not None else cached_vgg19()
        if found is not None:
            return BackbonePlan(found.backbone, found.path, found.origin)
        if allow:
            return BackbonePlan("vgg19", None, "download")
        if name == "vgg19":
            raise _vgg19_unavailable(weights_hint)
    hed = hed_weights()
    return BackbonePlan(hed.backbone, hed.path, hed.origin)


def resolve_backbone(name: str, weights: Path | None = None, allow_fetch: bool | None = None,
                     weights_hint: str = CONFIG_WEIGHTS_HINT) -> WeightsSource:
    """The weights to use for backbone `name`; raises WeightsError with the fixes if there are none.

    `weights_hint` says how to give a weights file where the message is shown (command line or config)."""
    allow = fetch_allowed() if allow_fetch is None else allow_fetch
    if name == "vgg16-hed":
        return hed_weights()
    if name == "vgg19":
        return _vgg19(weights, allow, weights_hint)
    if name != "auto":
        raise ConfigError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONES)}")
    if weights is not None:
        return user_vgg19(weights)
    cached = cached_vgg19()
    if cached is not None:
        return cached
    if allow:
        log.info("backbone auto: VGG19 weights not cached yet; fetching them once")
        try:
            return fetch_vgg19(weights_hint=weights_hint)
        except WeightsError as exc:
            log.warning("backbone auto: using vgg16-hed because VGG19 is unavailable (%s)", exc)
            return hed_weights()
    log.warning("backbone auto: using vgg16-hed (VGG19 not cached and fetching is off); "
                "run 'style-daemon fetch-weights' for the better VGG19")
    return hed_weights()


def _vgg19(weights: Path | None, allow: bool, weights_hint: str) -> WeightsSource:
    if weights is not None:
        return user_vgg19(weights)
    cached = cached_vgg19()
    if cached is not None:
        return cached
    if allow:
        return fetch_vgg19(weights_hint=weights_hint)
    raise _vgg19_unavailable(weights_hint)


def _vgg19_unavailable(weights_hint: str) -> WeightsError:
    return WeightsError(
        "VGG19 weights are not cached and fetching is off; run 'style-daemon fetch-weights' on "
        f"a machine with network, {weights_hint} (a Keras VGG19 notop file), or use vgg16-hed"
    )
