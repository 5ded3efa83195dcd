"""Smoke test of the benchmark harness: a few iterations at tiny size; every field is present (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from tests.support.daemon import ROOT


def test_bench_harness_writes_every_field(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--size", "256", "--iterations", "3", "--repeats", "1",
                           "--out", str(tmp_path), "--tag", "smoke"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((tmp_path / "bench-smoke.json").read_text())
    assert set(doc["reference_losses"]) == {"keras-sgd", "lbfgs-plain"}
    assert set(doc["methods"]) == {"keras-sgd", "lbfgs-plain", "ours"}
    for method in doc["methods"].values():
        for key in ("ms_per_eval", "evaluations", "wall_seconds", "compile_seconds", "final_loss",
                    "seconds_to_reach", "peak_rss_mb"):
            assert key in method, key
        assert method["ms_per_eval"] > 0 and method["peak_rss_mb"] > 100
        assert set(method["seconds_to_reach"]) == {"keras-sgd", "lbfgs-plain"}
    assert set(doc["ratios"]) == {"time_to_keras-sgd_loss", "time_to_lbfgs-plain_loss",
                                  "ms_per_eval_vs_keras-sgd", "ms_per_eval_vs_lbfgs-plain"}
    for key in ("gflop_per_eval", "achieved_gflops", "dense_matmul_gflops", "fraction_of_matmul_rate"):
        assert doc["flops"][key] > 0
    assert doc["machine"]["backend"] == "tensorflow" and doc["size"] == [256, 192]
    # ours ran coarse-to-fine: more evaluations than the plain run (128 px, then 256 px).
    assert doc["methods"]["ours"]["evaluations"] > doc["methods"]["lbfgs-plain"]["evaluations"]
    # L-BFGS beats plain gradient descent on the same loss even in a few steps.
    assert doc["methods"]["lbfgs-plain"]["final_loss"] < doc["methods"]["keras-sgd"]["final_loss"]
    assert Image.open(tmp_path / "bench-smoke.png").size == (760, 420)
    assert "ratios ours/reference" in done.stdout
