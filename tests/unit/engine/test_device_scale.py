"""The accelerator path on the CPU under JAX: on-device L-BFGS, shape buckets with a masked loss,
the persistent compilation cache and the precision setting (issue 15). GPU speed is benchmarked,
not tested."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daemon.engine import buckets
from daemon.engine.params import StyleImage, TransferParams
from daemon.errors import ConfigError

from tests.support import ROOT


def _probe(mode: str, keras_home: Path) -> dict:
    env = dict(os.environ, KERAS_BACKEND="jax", KERAS_HOME=str(keras_home), STYLE_DAEMON_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "tests.support.jax_probe", mode], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_keras_home")


@pytest.fixture(scope="module")
def probe(keras_home):
    return _probe("full", keras_home)


def test_probe_ran_on_jax(probe):
    assert probe["backend"] == "jax" and probe["device"].startswith("cpu")


def test_on_device_lbfgs_reaches_scipy_loss_at_equal_iterations(probe):
    assert probe["optax_iterations"] == probe["scipy_iterations"] == 20
    assert probe["optax_total"] < probe["initial_total"] / 3, probe
    assert probe["optax_total"] <= 1.05 * probe["scipy_total"], (probe["optax_total"], probe["scipy_total"])


def test_on_device_lbfgs_keeps_pixels_in_range(probe):
    low, high = probe["optax_range"]
    assert 0.0 <= low and high <= 255.0
    assert probe["optax_at_bounds"] > 0, "the bounds were never active, so this checks nothing"


def test_masked_padded_loss_equals_unpadded_loss(probe):
    assert probe["bucket"] == [64, 48]  # a 61x45 image, padded with values that must not matter
    assert probe["masked_total"] == pytest.approx(probe["unpadded_total"], rel=1e-5)
    assert probe["masked_parts"] == pytest.approx(probe["unpadded_parts"], rel=1e-5)
    assert probe["grad_max_abs_diff"] < 1e-4 * probe["grad_max_abs"]
    assert probe["grad_on_padding"] == 0.0


def test_one_compilation_for_two_aspect_ratios_in_one_bucket(probe):
    traces = probe["traces"]
    assert traces["start"] == 0
    assert traces["64x48"] == 1 and traces["64x42"] == 1, traces  # 4:3 and 32:21 share bucket 64x48
    assert traces["64x64"] == 2, traces  # another bucket compiles once more
    assert traces["64x42_shape"] == [42, 64, 3], "the result is cropped back to the photo's size"


def test_progress_saves_and_stop_between_compiled_calls(probe):
    hooks = probe["hooks"]
    assert hooks["progress"] == [1, 2, 3, 4, 5, 6, 7]
    assert hooks["saves"] == [[3, [45, 64, 3]], [6, [45, 64, 3]]]
    assert hooks["history"] == [5, 7]
    assert hooks["stopped"] and hooks["stop_checks"] == 4
    assert hooks["new_traces"] == 0, "calls of different lengths must not compile again"


def test_precisions_run_and_bf16_stays_close(probe):
    for precision in ("float32", "tf32", "bf16"):
        assert probe[f"{precision}_dtype"] == "float32"
        assert math.isfinite(probe[f"{precision}_loss"])
        low, high = probe[f"{precision}_range"]
        assert 0.0 <= low and high <= 255.0
    same = probe["same_image_losses"]
    difference = abs(same["bf16"] - same["float32"]) / same["float32"]
    assert 0.0 < difference < 0.02, same  # bf16 really is used, and changes the loss little


def test_persistent_compilation_cache_is_reused_by_a_new_process(probe, keras_home):
    cache = keras_home / "jax-compilation-cache"
    assert cache.is_dir() and any(cache.iterdir())
    assert probe["cache_misses"] >= 1
    again = _probe("cache", keras_home)
    assert again["cache_hits"] >= 1, again
    # The first job of the new process is served compilations from the cache the first process wrote
    # (counted, not timed: seconds depend on the machine and its load). Lookups of programs too quick to
    # be worth caching still miss in both processes, so the misses are not compared.
    assert probe["first_job_cache_hits"] == 0, probe  # the first process started from an empty cache
    assert again["first_job_cache_hits"] >= 1, again


@pytest.mark.engine
def test_without_optax_auto_still_runs_and_optax_is_refused_with_the_fix(tmp_path):
    report = _probe("no-optax", tmp_path)
    assert report["fallback_iterations"] == 2 and report["device_loops"] == 0
    assert "needs the optax package" in report["optax_error"]


@pytest.mark.parametrize("n", [1, 31, 32, 33, 45, 63, 64, 65, 100, 129, 255, 256, 257, 383, 511, 513, 1000, 2047])
def test_bucket_holds_the_side_with_little_padding(n):
    side = buckets.bucket_side(n)
    assert side >= n and side % 8 == 0
    assert side <= (1.125 * n if n >= 64 else max(n + 7, 32))  # steps of 8 px below 64 px
    assert buckets.bucket_side(side) == side


def test_buckets_are_a_small_set():
    sides = {buckets.bucket_side(n) for n in range(32, 2049)}
    assert len(sides) <= 48


def test_pad_batch_keeps_the_image_top_left():
    image = np.arange(2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)
    padded = buckets.pad_batch(image, (8, 5))
    assert padded.shape == (1, 5, 8, 3)
    np.testing.assert_array_equal(padded[:, :2, :3], image)
    assert not padded[:, 2:].any() and not padded[:, :, 3:].any()


@pytest.mark.parametrize("field,value", [("precision", "fp8"), ("lbfgs_impl", "lbfgs")])
def test_unknown_precision_or_implementation_is_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        TransferParams(**{field: value})


def test_config_and_cli_pass_the_settings_to_the_engine():
    from daemon.cli import _params_from_args, build_parser
    from daemon.config import EngineSettings

    params = EngineSettings(precision="bf16", lbfgs_impl="scipy").transfer_params()
    assert (params.precision, params.lbfgs_impl) == ("bf16", "scipy")
    assert (EngineSettings().transfer_params().precision, EngineSettings().transfer_params().lbfgs_impl) == (
        "auto", "auto")
    args = build_parser().parse_args(["stylize", "a.jpg", "-s", "b.jpg", "-o", "c.jpg",
                                      "--precision", "tf32", "--lbfgs-impl", "optax"])
    params = _params_from_args(args)
    assert (params.precision, params.lbfgs_impl) == ("tf32", "optax")


@pytest.mark.parametrize("params,message", [
    (TransferParams(max_size=64, scales=1, precision="tf32"), "precision tf32 needs"),
    (TransferParams(max_size=64, scales=1, lbfgs_impl="optax"), "optax needs the JAX backend"),
])
def test_tensorflow_refuses_device_only_settings(hed_engine, tubingen, starry, params, message):
    if hed_engine.backend() != "tensorflow":
        pytest.skip("checks the TensorFlow backend")
    with pytest.raises(ConfigError, match=message):
        hed_engine.stylize(tubingen, [StyleImage(starry)], params)
