"""bench.gpu (issue 27), rehearsed on the CPU with JAX at the quick profile's sizes: every section runs
and the document names the device, so that the GPU run needs nothing but a GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.engine, pytest.mark.jax,
              pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX (pip install 'jax[cpu]')")]


def test_the_quick_profile_runs_every_section_on_the_cpu(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", KERAS_HOME=str(tmp_path / "keras"), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "bench.gpu", "--profile", "quick", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    [written] = tmp_path.glob("gpu-*-quick.json")
    doc = json.loads(written.read_text())
    assert doc["backend"] == "jax" and doc["device"]["platform"] == "cpu" and doc["device"]["kind"]
    assert not doc["errors"] and not doc["skipped"], (doc["errors"], doc["skipped"])
    assert set(doc["matmul_gflops"]) == {"float32", "tf32", "bf16"} and min(doc["matmul_gflops"].values()) > 0
    assert {(tuple(r["size"]), r["arithmetic"]) for r in doc["evaluations"]} == {
        ((64, 48), "float32"), ((64, 48), "bf16"), ((96, 72), "float32"), ((96, 72), "bf16")}
    assert all(r["ms"] > 0 and 0 < r["fraction_of_matmul_rate"] for r in doc["evaluations"])
    jobs = doc["jobs"]
    assert len(jobs["seconds"]) == 2 and jobs["compilations"][0] >= 1  # the first photo pays the compilations
    assert doc["batch"]["compilations"] >= 0 and doc["tiled"]["seconds"] > 0
    assert doc["batch"]["photos"] == 3 and doc["batch"]["photos_per_hour"] > 0
    # Judged, not asserted: after 4 iterations at 64 px the arithmetics' quality differs more than a real
    # job's would (bf16 1.7x float32's loss here); the GPU run measures it at the real sizes.
    for arithmetic in ("bf16", "tf32"):
        judged = doc["precisions"][arithmetic]
        assert judged["loss_ratio_to_float32"] > 0 and 0 <= judged["mean_pixel_difference"] < 255, judged
        assert judged["seconds"] > 0
    assert doc["tiled"]["tiles"] > 1 and doc["tiled"]["size"] == [160, 120]
