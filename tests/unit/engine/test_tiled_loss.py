"""Exact tiled evaluation: the tiled loss and gradient equal the untiled ones, and the budget holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from daemon.engine import network_facts, style_targets, tile_boxes, tiled_loss, tile_plan
from daemon.engine.params import StyleImage, TransferParams
from daemon.errors import ResourceError
from tests.support import CONTENT, STYLE, VGG19_H5

from tests.support import ROOT
# 203x141: odd sides, so the 'valid' pools drop a last row and column inside the edge tiles too.
WIDTH, HEIGHT, CORE = 203, 141, 48


def _engine(backbone: str):
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights, user_vgg19

    return StyleTransfer(hed_weights() if backbone == "vgg16-hed" else user_vgg19(VGG19_H5))


def _images():
    from daemon.media.images import load_image, resize_to

    content = resize_to(load_image(CONTENT / "tubingen.jpg").rgb, (WIDTH, HEIGHT))
    style = resize_to(load_image(STYLE / "starry_night.jpg").rgb, (WIDTH, HEIGHT))
    noisy = content + np.random.default_rng(0).normal(0, 20, content.shape)
    return content, style, np.clip(noisy, 0, 255).astype(np.float32)


def _compare(engine, halo: int | None):
    """(relative gradient error, relative loss error, tiles) of tiled against untiled at WIDTHxHEIGHT."""
    from daemon.engine.device_scale import feature_layers

    params = TransferParams()
    model, spec = engine.features.model_for(params)
    content, style, x = _images()
    targets = style_targets.whole_targets(engine.features, model, spec, content, [StyleImage(style)], (WIDTH, HEIGHT),
                                          params)
    total, grad, _ = engine.features.value_and_grad(model, spec, targets)(x[None])
    deepest = network_facts.deepest_layer(engine.model, params)
    grid = network_facts.pooling_grid(engine.model, deepest)
    layers = feature_layers(params)
    levels = tile_boxes.Levels.of(engine.model, layers)
    layout = tile_boxes.layout(HEIGHT, WIDTH, CORE, network_facts.safe_halo(engine.model, deepest) if halo is None else halo,
                               grid)
    image = tile_boxes.TiledImage(HEIGHT, WIDTH, layout, levels)
    passes = tiled_loss.TiledPasses(model, spec, levels)
    content_target, grams = tiled_loss.content_features_and_grams(passes, content, image)
    _, style_grams = tiled_loss.content_features_and_grams(passes, style, image)
    loss = tiled_loss.TiledLoss(passes, image, content_target, style_grams)
    tiled_total, tiled_grad, _ = loss(x[None])
    target_error = max(np.abs(content_target - targets[0][0]).max() / np.abs(targets[0]).max(),
                       *(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(style_grams, targets[1:])))
    return (float(np.linalg.norm(tiled_grad - grad) / np.linalg.norm(grad)),
            abs(tiled_total - total) / total, len(layout.tiles), target_error)


@pytest.mark.parametrize("backbone", ["vgg16-hed", "vgg19"])
@pytest.mark.engine
def test_tiled_loss_and_gradient_equal_the_untiled_ones(backbone):
    engine = _engine(backbone)
    grad_error, loss_error, tiles, target_error = _compare(engine, halo=None)
    assert tiles == 15  # 5 columns x 3 rows of 48 px cores: several tiles in each direction
    assert grad_error < 1e-4, grad_error
    assert loss_error < 1e-5, loss_error
    assert target_error < 1e-4, target_error  # the targets computed tile by tile too


@pytest.mark.parametrize("backbone", ["vgg16-hed", "vgg19"])
@pytest.mark.engine
def test_a_halo_narrower_than_the_receptive_field_is_not_exact(backbone):
    """The exactness check can fail: half the safe halo (on the pooling grid) breaks it."""
    engine = _engine(backbone)
    deepest = network_facts.deepest_layer(engine.model, TransferParams())
    grid = network_facts.pooling_grid(engine.model, deepest)
    halo = network_facts.safe_halo(engine.model, deepest) // 2 // grid * grid
    grad_error, _, _, _ = _compare(engine, halo=halo)
    assert grad_error > 1e-3, grad_error


def test_receptive_radius_of_both_backbones():
    """Counted by hand: each 3x3 conv adds the current stride, each 2x2 pool its input stride."""
    hed = _engine("vgg16-hed")
    assert network_facts.receptive_radius(hed.model, "block5_conv1") == 2 + 1 + 4 + 2 + 12 + 4 + 24 + 8 + 16
    assert network_facts.pooling_grid(hed.model, "block5_conv1") == 16
    assert network_facts.safe_halo(hed.model, "block5_conv1") == 80
    assert network_facts.safe_halo(_engine("vgg19").model, "block5_conv1") == 96  # 85: two more convs in blocks 3, 4


@pytest.mark.parametrize("height,width,core,halo", [(141, 203, 48, 32), (1000, 700, 256, 96), (64, 64, 64, 16)])
def test_layout_cores_partition_the_image_and_start_on_the_grid(height, width, core, halo):
    layout = tile_boxes.layout(height, width, core, halo, 16)
    covered = np.zeros((height, width), int)
    for tile in layout.tiles:
        top, bottom, left, right = tile.core
        covered[top:bottom, left:right] += 1
        r0, r1, c0, c1 = tile.region
        assert r0 % 16 == 0 and c0 % 16 == 0
        assert r0 == max(top - halo, 0) and r1 == min(bottom + halo, height)
    assert (covered == 1).all()


NET = tile_plan.Network(convs_per_block=(2, 2, 3, 3, 3), deepest_block=5, halo=80, grid=16)


def test_plan_is_untiled_under_the_budget_and_tiled_above_it():
    params = TransferParams()
    need = tile_plan.untiled_bytes(1024, 768, NET)
    assert not tile_plan.plan_scale(1024, 768, params, NET, need + 1).tiled
    plan = tile_plan.plan_scale(1024, 768, params, NET, need // 3)
    assert plan.tiled and plan.core % 16 == 0 and plan.need <= need // 3
    assert tile_plan.plan_scale(1024, 768, replace(params, tiling="always", tile_size=64), NET, 10**12).core == 64
    assert not tile_plan.plan_scale(1024, 768, replace(params, tiling="never"), NET, 1).tiled


def test_plan_takes_the_optimizer_that_leaves_the_largest_tile():
    params = TransferParams()
    # 2048x1536 in 80 GB: either optimiser leaves room for one tile over the whole image; scipy's kept
    roomy = tile_plan.plan_scale(2048, 1536, replace(params, tiling="always"), NET, 80 * 10**9)
    assert roomy.tiled and roomy.optimizer == "lbfgs-scipy" and roomy.core >= 2048
    # 6000x4000 in 16 GB: scipy's ~47 GB state cannot fit at all; in 80 GB it fits but leaves a smaller tile
    for budget in (16 * 10**9, 80 * 10**9):
        plan = tile_plan.plan_scale(6000, 4000, params, NET, budget)
        assert plan.tiled and plan.optimizer == "lbfgs-float32" and plan.need <= budget
    scipy_room = 80 * 10**9 - tile_plan.image_bytes(6000, 4000) - tile_plan.optimizer_bytes("lbfgs-scipy", 6000, 4000)
    assert tile_plan.tile_bytes(tile_plan.plan_scale(6000, 4000, params, NET, 80 * 10**9).core, 6000, 4000, NET) > scipy_room


def test_a_forced_tile_size_keeps_scipy_when_it_fits_beside_it():
    params = TransferParams(tiling="always", tile_size=256)
    assert tile_plan.plan_scale(1024, 768, params, NET, 10**12).optimizer == "lbfgs-scipy"
    tight = tile_plan.plan_scale(1024, 768, params, NET, 2 * 10**9)  # scipy's 1.5 GB state leaves too little
    assert tight.optimizer == "lbfgs-float32" and tight.core == 256


def test_refusal_names_the_image_and_optimizer_state_when_even_tiles_cannot_fit():
    with pytest.raises(ResourceError, match=r"8000x6000 result needs about [\d.]+ GB for the image and "
                                            r"optimiser state alone.*raise memory_budget"):
        tile_plan.plan_scale(8000, 6000, TransferParams(), NET, 2 * 10**9)


_RSS_SCRIPT = """
import json, resource, sys
import numpy as np
from daemon.engine import network_facts, style_targets, tile_boxes, tiled_loss, tile_plan
from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.transfer import StyleTransfer
from daemon.engine.weights import hed_weights
width, mode = int(sys.argv[1]), sys.argv[2]
height = width * 3 // 4
engine = StyleTransfer(hed_weights())
rng = np.random.default_rng(0)
content = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
styles = [StyleImage(rng.uniform(0, 255, (96, 128, 3)).astype(np.float32))]
# Layers up to block3 only: the activations that dominate memory (blocks 1-2) are all there, at a
# fraction of the compute of the whole network, so the test stays quick.
params = TransferParams(tiling=mode, tile_size=64, content_layer="block2_conv2",
                        style_layers={"block1_conv1": 1.0, "block2_conv1": 1.0, "block3_conv1": 1.0})
model, spec = engine.features.model_for(params)
if mode == "never":
    targets = style_targets.whole_targets(engine.features, model, spec, content, styles, (width, height), params)
    engine.features.value_and_grad(model, spec, targets)(content[None])
    tiles = 0
else:
    plan = tile_plan.plan_scale(width, height, params, network_facts.network(engine.model, params), 10**12)
    passes = engine.features.tiled_passes(model, spec, params)
    image = tile_boxes.tiled_image(engine.model, params, (width, height), plan.core, plan.halo)
    target, _ = tiled_loss.content_features_and_grams(passes, content, image)
    grams = style_targets.tiled_style_grams(passes, engine.model, styles, (width, height), plan.core, plan.halo, params)
    tiled_loss.TiledLoss(passes, image, target, grams)(content[None])
    tiles = len(image.layout.tiles)
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "tiles": tiles}))
"""


def _peak_rss(width: int, mode: str) -> tuple[int, int]:
    """Peak RSS of a fresh process that makes the targets and evaluates once at width x 3/4 width."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(width), mode], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return row["rss"], row["tiles"]


@pytest.mark.engine
def test_peak_memory_of_a_tiled_evaluation_grows_only_with_the_image_sized_arrays():
    """From 384 to 1024 px the untiled peak grows by the activations (GBs); the tiled one only by a
    few image-sized arrays, because interior tiles (64 px cores, 16 px halo) are the same at both."""
    small, small_tiles = _peak_rss(384, "always")
    large, large_tiles = _peak_rss(1024, "always")
    untiled_small, _ = _peak_rss(384, "never")
    untiled_large, _ = _peak_rss(1024, "never")
    assert (small_tiles, large_tiles) == (30, 192)
    image_arrays = tile_plan.image_bytes(1024 * 768 - 384 * 288, 1, content_floats=128 / 4)  # block2_conv2
    assert large - small < image_arrays + 128 * 2**20, (small, large, image_arrays)
    assert untiled_large - untiled_small > 4 * (large - small), (untiled_small, untiled_large, small, large)


@pytest.mark.engine
def test_tiled_stylisation_within_a_small_budget_is_as_stylised_as_the_untiled_one(tmp_path):
    """768 px with a 1 GB budget (its untiled estimate is 1.6 GB) through `style-daemon stylize`; the
    result is judged by our own style and content distances against the untiled result's."""
    from daemon.media.images import load_image, resize_long_side

    engine = _engine("vgg16-hed")
    photo = CONTENT / "tubingen.jpg"  # 1024x768, made 768x576 by --size
    content = resize_long_side(load_image(photo).rgb, 768)
    style = load_image(STYLE / "starry_night.jpg").rgb
    # float32 like the tiled run (tiles always compute in float32): the comparison is of tiling, not arithmetic
    params = TransferParams(max_size=768, scales=1, iterations=8, style_weight=30.0, precision="float32")
    assert tile_plan.untiled_bytes(768, 576, network_facts.network(engine.model, params)) > 1.5e9
    out = tmp_path / "tiled.png"
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "stylize", str(photo), "--style", str(STYLE / "starry_night.jpg"),
         "-o", str(out), "--size", "768", "--scales", "1", "--iterations", "8", "--style-weight", "30",
         "--memory-budget", "1GB", "--backbone", "vgg16-hed"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    sidecar = json.loads((tmp_path / "tiled.png.json").read_text())
    report = sidecar["result"]["scales"][0]
    assert sidecar["tiled"] is True and report["tiles"] > 1 and report["halo"] == 80
    assert report["optimizer"].startswith("lbfgs-") and report["iterations"] == 8
    plain = engine.stylize(content, [StyleImage(style)], params)
    assert plain.scale_reports[0].tiles == 0
    tiled_rgb = load_image(out).rgb
    start_content, start_style, _ = engine.evaluate(content, content, [StyleImage(style)], params)
    plain_content, plain_style, _ = engine.evaluate(plain.rgb, content, [StyleImage(style)], params)
    tiled_content, tiled_style, _ = engine.evaluate(tiled_rgb, content, [StyleImage(style)], params)
    assert plain_style < start_style / 2  # the untiled run did stylise
    assert tiled_style < plain_style * 1.25, (plain_style, tiled_style)
    assert tiled_content < plain_content * 1.25 + 0.02, (plain_content, tiled_content)


def test_a_stop_request_is_honoured_between_tiles_of_one_iteration(hed_engine, tubingen, starry):
    """A print-size iteration takes minutes: the stop must not wait for it to end."""
    from daemon.errors import StopRequested

    reports = []
    params = TransferParams(max_size=96, scales=1, iterations=5, tiling="always", tile_size=32)
    with pytest.raises(StopRequested):
        hed_engine.stylize(tubingen, [StyleImage(starry)], params, on_progress=reports.append,
                           should_stop=lambda: len(reports) >= 4)
    assert len(reports) == 4 and all(r.tiles > 1 and r.iteration == 0 for r in reports)
