"""The loss terms against numpy references, and their size independence."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.engine.losses import gram, gram_numpy, relative_error, total_variation
from tests.support.engine_parts import loss_step


def test_gram_matches_numpy():
    from keras import ops

    rng = np.random.default_rng(1)
    feats = rng.normal(size=(1, 7, 5, 4)).astype(np.float32)
    flat = feats.reshape(-1, 4).astype(np.float64)
    expected = flat.T @ flat / 35
    got = ops.convert_to_numpy(gram(ops.convert_to_tensor(feats)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(gram_numpy(feats), expected, rtol=1e-5)


def test_gram_is_size_independent_for_a_repeated_texture():
    rng = np.random.default_rng(2)
    tile = rng.normal(size=(1, 8, 8, 3)).astype(np.float32)
    big = np.tile(tile, (1, 4, 4, 1))
    np.testing.assert_allclose(gram_numpy(big), gram_numpy(tile), rtol=1e-5)


def test_relative_error_and_tv_against_numpy():
    from keras import ops

    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6)).astype(np.float32)
    b = rng.normal(size=(6, 6)).astype(np.float32)
    expected = ((a - b) ** 2).sum() / (b**2).sum()
    got = float(ops.convert_to_numpy(relative_error(ops.convert_to_tensor(a), ops.convert_to_tensor(b))))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(ops.convert_to_numpy(relative_error(ops.convert_to_tensor(b), ops.convert_to_tensor(b)))) == 0.0

    img = rng.uniform(0, 255, size=(1, 5, 4, 3)).astype(np.float32)
    tv_expected = (np.mean(np.diff(img, axis=1) ** 2) + np.mean(np.diff(img, axis=2) ** 2)) / 255**2
    assert float(ops.convert_to_numpy(total_variation(ops.convert_to_tensor(img)))) == pytest.approx(tv_expected, rel=1e-5)


def test_content_loss_zero_at_content_and_gradients_finite(hed_engine, tubingen, starry):
    from daemon.engine.params import TransferParams

    params = TransferParams(max_size=96, scales=1)
    value_and_grad = loss_step(hed_engine, tubingen, starry, params)
    total, grad, (content, style, tv) = value_and_grad(tubingen[None])
    assert content == pytest.approx(0.0, abs=1e-6)
    assert style > 0.05  # a photo is far from Van Gogh's statistics
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    noise = np.random.default_rng(0).uniform(0, 255, size=tubingen.shape).astype(np.float32)
    _, grad_noise, (content_noise, _, _) = value_and_grad(noise[None])
    assert content_noise > 0.3 and np.all(np.isfinite(grad_noise))


def test_style_loss_comparable_across_sizes(hed_engine):
    """The same texture pair gives similar style loss at two sizes (normalisation works)."""
    from daemon.engine.params import TransferParams
    from daemon.media.images import load_image, resize_long_side
    from tests.support import STYLE

    scream = load_image(STYLE / "the_scream.jpg").rgb
    starry = load_image(STYLE / "starry_night.jpg").rgb
    losses = []
    for side in (128, 256):
        content = resize_long_side(scream, side)
        params = TransferParams(max_size=side, scales=1, style_scale=1.0)
        _, _, (_, style, _) = loss_step(hed_engine, content, resize_long_side(starry, side), params)(content[None])
        losses.append(style)
    assert losses[0] > 0 and losses[1] > 0
    assert 0.5 < losses[0] / losses[1] < 2.0, losses
