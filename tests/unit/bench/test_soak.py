"""bench/soak.py runs end to end and reports (a short run: a few photos, kills and both disk fills)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

FIGURES = ("photos_in", "results", "done_twice", "lost", "partial_files", "inputs_lost")


@pytest.mark.timeout(300)
def test_a_short_soak_runs_and_reports(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, "bench/soak.py", "--minutes", "0.3", "--photos", "12", "--kill-every", "3",
                          "--drain", "90", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for words in ("photos in: 12", "results:", "done twice:", "lost:", "partial files:", "inputs lost:"):
        assert words in run.stdout, run.stdout[-2000:]
    report = json.loads(out.read_text())
    figures = report["figures"]
    assert set(FIGURES) <= set(figures)
    assert figures["photos_in"] == 12
    assert figures["results"] + figures["lost"] + figures["unfinished"] == 12, figures
    assert figures["disk_fills"] == 2 and figures["kills_worker"] + figures["kills_supervisor"] >= 2, figures
    assert report["machine"] and report["events"]
