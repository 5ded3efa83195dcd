"""Choosing the backbone: vgg19 (ImageNet), vgg16-hed (offline, shipped), or auto."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from daemon.engine.fetch import fetch_vgg19
from daemon.engine.weights import WeightsSource, cached_vgg19, hed_weights, user_vgg19
from daemon.errors import ConfigError, WeightsError

log = logging.getLogger(__name__)

BACKBONES = ("auto", "vgg19", "vgg16-hed")


def fetch_allowed() -> bool:
    """False when STYLE_DAEMON_OFFLINE is set: never touch the network for weights."""
    return os.environ.get("STYLE_DAEMON_OFFLINE", "") in ("", "0")


def resolve_backbone(name: str, weights: Path | None = None, allow_fetch: bool | None = None) -> WeightsSource:
    """The weights to use for backbone `name`; raises WeightsError with the fixes if there are none."""
    allow = fetch_allowed() if allow_fetch is None else allow_fetch
    if name == "vgg16-hed":
        return hed_weights()
    if name == "vgg19":
        return _vgg19(weights, allow)
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
            return fetch_vgg19()
        except WeightsError as exc:
            log.warning("backbone auto: using vgg16-hed because VGG19 is unavailable (%s)", exc)
            return hed_weights()
    log.warning("backbone auto: using vgg16-hed (VGG19 not cached and fetching is off); "
                "run 'style-daemon fetch-weights' for the better VGG19")
    return hed_weights()


def _vgg19(weights: Path | None, allow: bool) -> WeightsSource:
    if weights is not None:
        return user_vgg19(weights)
    cached = cached_vgg19()
    if cached is not None:
        return cached
    if allow:
        return fetch_vgg19()
    raise WeightsError(
        "VGG19 weights are not cached and fetching is off; run 'style-daemon fetch-weights' on "
        "a machine with network, set weights: PATH to a Keras VGG19 notop file, or use vgg16-hed"
    )
