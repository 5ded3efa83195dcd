"""One plan per run: made once before any optimisation, logged, returned, written to the sidecar, and
what ran agrees with it; the style blend is the weighted mean of the style images' Grams."""

from __future__ import annotations

import json
import logging

import numpy as np

from daemon.engine.params import StyleImage, TransferParams
from daemon.media.images import resize_long_side
from tests.support import CONTENT, STYLE

TWO_SCALES = TransferParams(max_size=96, iterations=3, scales=2, min_scale_size=48, stop_tolerance=0.0, budget="even")


def _agrees(plan, reports) -> None:
    """Every scale report says what its plan entry said it would do."""
    assert len(plan.scales) == len(reports)
    for scale, report in zip(plan.scales, reports):
        assert tuple(report.size) == tuple(scale.size)
        assert report.optimizer == scale.optimizer and report.precision == scale.precision
        assert (report.tiles, report.tile_size, report.halo) == (scale.tiles, scale.core, scale.halo)
        assert report.iterations <= scale.cap


def test_the_plan_is_made_once_logged_and_returned(hed_engine, tubingen, starry, monkeypatch, caplog):
    import daemon.engine.transfer as transfer

    made = []

    def counting(*args, **kwargs):
        made.append(transfer_make_plan(*args, **kwargs))
        return made[-1]

    transfer_make_plan = transfer.make_plan
    monkeypatch.setattr(transfer, "make_plan", counting)
    with caplog.at_level(logging.INFO, logger="daemon.engine.plan"):
        result = hed_engine.stylize(tubingen, [StyleImage(starry)], TWO_SCALES)
    assert len(made) == 1 and result.plan is made[0]
    plan = result.plan
    assert [s.cap for s in plan.scales] == [3, 3] and plan.sizes == result.scale_sizes == ((48, 36), (96, 72))
    assert plan.backend == hed_engine.backend() and plan.device == hed_engine.device()
    assert all(s.loop == "host" and s.budget == plan.budget > 0 and 0 < s.need for s in plan.scales)
    _agrees(plan, result.scale_reports)
    lines = [r.getMessage() for r in caplog.records if r.name == "daemon.engine.plan"]
    assert len(lines) == 2 and lines[0].startswith("plan scale 1/2: 48x36, up to 3 iterations, host loop")


def test_a_forced_tiling_is_planned_tiled_and_runs_as_planned(hed_engine, tubingen, starry):
    params = TransferParams(max_size=96, scales=1, iterations=2, tiling="always", tile_size=32)
    plan = hed_engine.plan(tubingen, params)
    (scale,) = plan.scales
    assert (scale.loop, scale.precision, scale.core, scale.halo) == ("tiled", "float32", 32, 80)
    assert scale.tiles == 3 * 3  # 96x72 in 32 px cores
    assert "9 tiles of 32 px + 80 px halo" in scale.line()
    result = hed_engine.stylize(tubingen, [StyleImage(starry)], params)
    assert result.plan == plan
    _agrees(result.plan, result.scale_reports)


def test_the_plan_is_in_the_sidecar_of_a_real_job(hed_engine, tmp_path):
    from daemon.job.pipeline import StyleRef, StylizeRequest, run_stylize

    out = tmp_path / "planned.png"
    request = StylizeRequest(CONTENT / "chelsea.png", (StyleRef(STYLE / "starry_night.jpg", 1.0),), out, TWO_SCALES)
    doc = json.loads(run_stylize(hed_engine, request).sidecar.read_text())
    plan = doc["plan"]
    assert plan["backend"] == doc["keras_backend"] and plan["device"] == doc["device"]
    assert [s["size"] for s in plan["scales"]] == doc["result"]["scales_run"]
    for scale, report in zip(plan["scales"], doc["result"]["scales"], strict=True):
        assert report["size"] == scale["size"] and report["iterations"] <= scale["cap"]
        assert (report["optimizer"], report["precision"]) == (scale["optimizer"], scale["precision"])
        assert (report["tiles"], report["tile_size"], report["halo"]) == (scale["tiles"], scale["core"], scale["halo"])
    assert doc["tiled"] is False and {s["loop"] for s in plan["scales"]} == {"host"}


def test_the_style_blend_is_the_weighted_mean_of_the_grams(hed_engine, tubingen, starry):
    from daemon.engine.losses import gram_numpy
    from daemon.engine.style_targets import style_side, whole_targets
    from daemon.media.images import load_image

    scream = resize_long_side(load_image(STYLE / "the_scream.jpg").rgb, 128)
    params = TransferParams(max_size=96, scales=1)
    model, spec = hed_engine.features.model_for(params)
    size = (tubingen.shape[1], tubingen.shape[0])
    targets = whole_targets(hed_engine.features, model, spec, tubingen,
                            [StyleImage(starry, 2.0), StyleImage(scream, 1.0)], size, params)

    def grams(rgb):
        features = hed_engine.features.features(model, resize_long_side(rgb, style_side(rgb, 96)))
        return [gram_numpy(features[i]).astype(np.float64) for i in spec.style_indices]

    by_hand = [(2 * a + b) / 3 for a, b in zip(grams(starry), grams(scream))]
    assert len(targets) == 1 + len(spec.style_indices)
    for blended, expected in zip(targets[1:], by_hand, strict=True):
        np.testing.assert_allclose(blended, expected, rtol=1e-5, atol=1e-6)
    alone = grams(starry)
    assert max(np.abs(b - a).max() / np.abs(a).max() for b, a in zip(targets[1:], alone)) > 0.01  # scream counts


def test_the_blend_of_one_style_is_its_grams_whatever_its_weight():
    from daemon.engine.style_targets import style_blend

    rgb = np.zeros((40, 60, 3), np.float32)
    blended = style_blend([StyleImage(rgb, 5.0)], lambda image: [np.full((2, 2), float(image.shape[1]))], 60)
    np.testing.assert_array_equal(blended[0], np.full((2, 2), 60.0, np.float32))
