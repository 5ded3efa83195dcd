"""bench.host_precision (issue 27): the bf16 speedup from float32/bf16 pairs, and one tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.host_precision import speedups
from tests.support import ROOT


def test_the_speedup_is_the_median_of_pairs_and_the_ratio_of_the_fastest():
    seconds = {"float32": [2.0, 1.0, 4.0], "bf16": [1.0, 1.0, 1.0]}  # load rose during the third pair
    assert speedups(seconds) == {"paired_median": 2.0, "fastest": 1.0}
    assert speedups({"float32": [1.0]}) is None  # bf16 could not run on this CPU


@pytest.mark.engine
def test_a_small_run_writes_the_figures_per_instruction_set(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.host_precision", "--backbone", "vgg16-hed", "--size", "48",
                           "--pairs", "1", "--isa", "native", "AVX2", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [written] = tmp_path.glob("host-precision-*.json")
    document = json.loads(written.read_text())
    assert document["machine"]["cpu"] and document["machine"]["cpus"] >= 1
    [native], [avx2] = document["runs"]["native"], document["runs"]["AVX2"]
    assert native["median_seconds"]["float32"] > 0 and "bf16 speedup" in done.stdout
    assert avx2["median_seconds"]["float32"] > 0 and set(avx2["seconds"]) | set(avx2["errors"]) == {"float32", "bf16"}
