"""The quality benchmark (bench/quality.py): time-to-target logic on synthetic snapshot series, the
clock that leaves recording out, the judge, the old/new parameters, and a --quick run end to end."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bench.time_to_target import Judged, Target, first_reaching, grid_indices, ratio
from tests.support import CONTENT, STYLE, VGG19_H5
from tests.support.daemon import ROOT


def _series(styles, contents, dt=1.0):
    return [Judged(dt * (i + 1), s, c) for i, (s, c) in enumerate(zip(styles, contents))]


def _counting(series):
    calls = []

    def judge(index):
        calls.append(index)
        return series[index]

    return judge, calls


def _brute_force(series, target):
    return next((j for j in series if target.met_by(j)), None)


def test_target_needs_both_distances_within_the_margin():
    target = Target(style=0.10, content=0.50, margin=0.05)
    assert target.met_by(Judged(1, 0.105, 0.525))  # exactly at the margin on both
    assert target.met_by(Judged(1, 0.01, 0.01))  # closer than the target on both
    assert not target.met_by(Judged(1, 0.1051, 0.40))  # style too far, however good the content
    assert not target.met_by(Judged(1, 0.05, 0.5251))  # content too far, however good the style
    assert not Target(0.10, 0.50, 0.0).met_by(Judged(1, 0.1001, 0.5))


def test_grid_takes_the_first_snapshot_at_each_step_and_always_the_last():
    times = [0.4, 0.9, 1.1, 1.2, 2.6, 2.7, 4.05, 4.5]
    assert grid_indices(times, 1.0) == [0, 2, 4, 6, 7]
    assert grid_indices(times, 0.0) == list(range(len(times)))
    assert grid_indices(times, 100.0) == [0, 7]
    assert grid_indices([], 1.0) == []


@pytest.mark.parametrize("step", [0.0, 0.5, 1.0, 3.0, 7.5, 1000.0])
def test_first_reaching_finds_the_earliest_hit_on_falling_series(step):
    rng = random.Random(step)
    for _ in range(300):
        n = rng.randint(1, 60)
        styles = sorted((rng.uniform(0.01, 1.0) for _ in range(n)), reverse=True)
        contents = sorted((rng.uniform(0.3, 0.8) for _ in range(n)), reverse=True)
        times = np.cumsum([rng.uniform(0.1, 2.0) for _ in range(n)]).tolist()
        series = [Judged(t, s, c) for t, s, c in zip(times, styles, contents)]
        target = Target(style=rng.uniform(0.0, 1.0), content=rng.uniform(0.25, 0.8), margin=0.05)
        judge, calls = _counting(series)
        assert first_reaching(times, judge, target, step) == _brute_force(series, target)
        assert len(calls) == len(set(calls))  # no snapshot judged twice


@pytest.mark.parametrize("step", [0.0, 2.0, 5.0])
def test_first_reaching_is_exact_when_the_series_stays_met(step):
    for first_hit in range(0, 21):
        series = _series([1.0] * first_hit + [0.1] * (20 - first_hit), [0.5] * 20)
        judge, calls = _counting(series)
        found = first_reaching([j.seconds for j in series], judge, Target(0.1, 0.5, 0.05), step)
        assert found == (series[first_hit] if first_hit < 20 else None)
        if step:  # fewer judged than snapshots: the grid, then only the gap before the first hit
            assert len(calls) < len(series) or first_hit == 20 and len(calls) <= len(series)


def test_first_reaching_judges_only_the_grid_and_one_gap():
    series = _series([1.0] * 70 + [0.1] * 30, [0.5] * 100)  # one snapshot a second, hit at 71 s
    judge, calls = _counting(series)
    found = first_reaching([j.seconds for j in series], judge, Target(0.1, 0.5, 0.05), step=10.0)
    assert found.seconds == 71.0
    grid = [0, 9, 19, 29, 39, 49, 59, 69, 79]  # times 1, 10, 20, ... 80 s
    assert calls == grid + [70]  # the gap after 70 s is scanned from its start: 71 s meets


def test_first_reaching_without_a_hit_and_with_dips():
    never = _series([0.5] * 10, [0.5] * 10)
    assert first_reaching([j.seconds for j in never], _counting(never)[0], Target(0.1, 0.5, 0.05), 3.0) is None
    # grid of 3 s over snapshots at 1..10 s: 1, 3, 6, 9 (first hit), 10; the gap before 9 s is 7-8 s
    target = Target(0.1, 0.5, 0.05)
    dip_in_gap = _series([0.5] * 6 + [0.1, 0.5, 0.1, 0.1], [0.5] * 10)  # met at 7 s, not at 8 s
    assert first_reaching([j.seconds for j in dip_in_gap], _counting(dip_in_gap)[0], target, 3.0).seconds == 7.0
    # a dip before a grid point that misses (5 s, then 6 s misses) is the stated blind spot of the grid;
    # step 0 judges every snapshot and finds it
    early_dip = _series([0.5] * 4 + [0.1] + [0.5] * 3 + [0.1, 0.1], [0.5] * 10)
    times = [j.seconds for j in early_dip]
    assert first_reaching(times, _counting(early_dip)[0], target, 3.0).seconds == 9.0
    assert first_reaching(times, _counting(early_dip)[0], target, 0.0).seconds == 5.0


def test_ratio_is_none_for_a_method_that_never_got_there():
    assert ratio(30.0, 120.0) == 0.25
    assert ratio(None, 120.0) is None
    assert ratio(30.0, None) is None
    assert ratio(30.0, 0.0) is None


def test_judging_a_run_ignores_snapshots_after_the_cap():
    from bench.quality import _judge_run
    from bench.quality_runs import MethodRun

    images = [np.full((2, 2, 3), v, np.uint8) for v in (0, 1, 2, 3)]
    run = MethodRun("lbfgs-plain", [1.0, 2.0, 3.0, 4.0], images, 4.0)
    distances = {0: (0.9, 0.5), 1: (0.8, 0.5), 2: (0.5, 0.5), 3: (0.1, 0.5)}  # meets only at 4 s

    def judge(image):
        return distances[int(image[0, 0, 0])]

    target = Target(0.1, 0.5, 0.05)
    assert _judge_run(run, judge, target, cap=3.5, step=0.0).seconds_to_target is None
    within = _judge_run(run, judge, target, cap=4.0, step=0.0)
    assert within.seconds_to_target == 4.0
    assert (within.final.style, within.final.content) == (0.1, 0.5)


def test_recorder_takes_the_time_spent_recording_off_the_clock(monkeypatch):
    from bench import quality_runs

    ticks = iter([0.0, 10.0, 15.0, 30.0, 31.0, 40.0])  # start; enter/leave record 1; enter/leave 2; now
    monkeypatch.setattr(quality_runs.time, "perf_counter", lambda: next(ticks))
    recorder = quality_runs.Recorder()
    recorder.record(np.full((2, 2, 3), 300.0))
    recorder.record(np.full((2, 2, 3), -4.6))
    assert recorder.times == [10.0, 25.0]  # the 5 s spent keeping the first snapshot do not count
    assert recorder.elapsed() == 34.0  # 40 s of wall time less 6 s of recording
    assert recorder.images[0].dtype == np.uint8 and recorder.images[0].max() == 255
    assert recorder.images[1].max() == 0  # clipped to what an 8-bit picture holds


def test_old_params_are_todays_defaults_whatever_fields_exist(monkeypatch):
    from bench import quality
    from bench.quality import OLD_DEFAULTS, method_params
    from daemon.engine.params import TransferParams

    # a field this TransferParams lacks (as stop_tolerance and budget before #16) is skipped, not an error
    monkeypatch.setitem(OLD_DEFAULTS, "no_such_field", 1)
    assert quality.OLD_DEFAULTS is OLD_DEFAULTS
    params = method_params(quick=False)
    assert params["ours-new"] == TransferParams()
    known = {f.name for f in dataclasses.fields(TransferParams)}
    for name, value in OLD_DEFAULTS.items():
        if name in known:
            assert getattr(params["ours-old"], name) == value
    assert {"iterations", "scales", "style_weight", "content_weight", "tv_weight"} <= known
    quick = method_params(quick=True)
    assert all(p.iterations <= 3 for p in quick.values())


def test_new_param_overrides_only_ours_new():
    from bench.quality import method_params
    from daemon.engine.params import TransferParams

    params = method_params(quick=False, overrides=["style_weight=30", "iterations=7", "init=noise"])
    assert params["ours-new"] == dataclasses.replace(TransferParams(), style_weight=30.0, iterations=7, init="noise")
    assert params["ours-old"] == method_params(quick=False)["ours-old"]
    for bad in (["no_such_field=1"], ["style_weight"], ["iterations=many"]):
        with pytest.raises(SystemExit):
            method_params(quick=False, overrides=bad)



def test_methods_chooses_what_runs_beside_ours_old_and_the_table_and_plot_show_only_those(tmp_path):
    from bench.quality import METHODS, parse_args, table
    from bench.quality_plot import plot

    args = parse_args(["--methods", "keras-sgd", "ours-new-sw30"])
    assert args.methods == ["ours-old", "ours-new-sw30", "keras-sgd"]  # ours-old first, the rest in METHODS order
    assert parse_args([]).methods == list(METHODS)
    with pytest.raises(SystemExit):
        parse_args(["--methods", "ours-old"])  # not a choice: it always runs
    run = {"seconds_to_target": None, "total_seconds": 50.0, "ratio_to_old_total": None,
           "final_style_distance": 0.2, "final_content_distance": 0.9}
    doc = {"settings": {"cap_factor": 1.0, "margin": 0.05, "backbone": "vgg16-hed", "judge": "vgg19", "size": 64,
                        "methods": args.methods},
           "machine": {"backend": "tensorflow", "device": "cpu:0"},
           "pairs": [{"content": "a.png", "style": "b.jpg", "methods": {m: run for m in args.methods}}],
           "summary": {m: {"median_ratio_to_old_total": None, "pairs_reached": 0} for m in args.methods}}
    shown = table(doc)
    assert "ours-new-sw30" in shown and "keras-sgd" in shown
    assert "lbfgs-plain" not in shown and "ours-new " not in shown
    plot(doc, tmp_path / "plot.png")
    assert Image.open(tmp_path / "plot.png").size[0] == 900


def test_judge_measures_what_the_engine_evaluates(hed_engine, tubingen, starry):
    from bench.quality_judge import JUDGE_PARAMS, Judge
    from daemon.engine.params import StyleImage

    style = StyleImage(starry)
    picture = np.clip(tubingen + np.random.default_rng(0).normal(0, 40, tubingen.shape), 0, 255)
    style_distance, content_distance = Judge(hed_engine, tubingen, style)(picture.astype(np.uint8))
    content_ref, style_ref, _ = hed_engine.evaluate(picture.astype(np.uint8).astype(np.float32), tubingen,
                                                    [style], JUDGE_PARAMS)
    assert style_distance == pytest.approx(style_ref, rel=1e-3)
    assert content_distance == pytest.approx(content_ref, rel=1e-3)
    assert Judge(hed_engine, tubingen, style)(tubingen.astype(np.uint8))[1] < 1e-3  # the photo itself


@pytest.mark.skipif(not VGG19_H5.is_file(), reason="the judge of vgg16-hed needs ../shared/weights/vgg19_notop.weights.h5")
def test_quick_run_end_to_end(tmp_path):
    from bench.quality import METHODS, pairs

    done = subprocess.run([sys.executable, "-m", "bench.quality", "--quick", "--pairs", "2", "--backbone",
                           "vgg16-hed", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [json_file] = tmp_path.glob("quality-*-96.json")
    doc = json.loads(json_file.read_text())
    assert doc["settings"]["backbone"] == "vgg16-hed" and doc["settings"]["judge"] == "vgg19"
    expected = [(c.name, s.name) for c, s in pairs(2)]
    assert [(p["content"], p["style"]) for p in doc["pairs"]] == expected
    assert {c.parent for c, _ in pairs(2)} == {CONTENT} and {s.parent for _, s in pairs(2)} == {STYLE}
    assert expected[0][0] != expected[1][0] and expected[0][1] != expected[1][1]
    for pair in doc["pairs"]:
        assert set(pair["methods"]) == set(METHODS)
        old = pair["methods"]["ours-old"]
        assert pair["cap_seconds"] == pytest.approx(doc["settings"]["cap_factor"] * old["total_seconds"])
        # ours-old's final picture is the target: it meets it, no later than its end
        assert old["seconds_to_target"] is not None and old["seconds_to_target"] <= old["total_seconds"]
        assert old["ratio_to_old_target"] == pytest.approx(1.0)
        target = Target(**pair["target"])
        assert (old["final_style_distance"], old["final_content_distance"]) == (target.style, target.content)
        for name, m in pair["methods"].items():
            assert m["total_seconds"] > 0 and m["snapshots"] >= 1
            assert m["final_style_distance"] > 0 and m["final_content_distance"] >= 0
            times = [t for t, _, _ in m["curve"]]
            assert times == sorted(times)
            # the recorded time to target is the first judged snapshot within the cap that meets it
            hits = [t for t, s, c in m["curve"] if t <= pair["cap_seconds"] and target.met_by(Judged(t, s, c))]
            assert m["seconds_to_target"] == (pytest.approx(hits[0], abs=1e-3) if hits else None), name
            if m["seconds_to_target"] is None:
                assert m["ratio_to_old_total"] is None and m["ratio_to_old_target"] is None
            else:  # ratios come from the recorded times
                assert m["ratio_to_old_total"] == pytest.approx(m["seconds_to_target"] / old["total_seconds"])
                assert m["ratio_to_old_target"] == pytest.approx(m["seconds_to_target"] / old["seconds_to_target"])
        # the photo is judged as it is: no content distance to itself, and each style share is measured from it
        assert pair["photo"]["content_distance"] < 1e-3 and pair["photo"]["style_distance"] > 0
        for m in pair["methods"].values():
            assert m["style_left"] == pytest.approx(m["final_style_distance"] / pair["photo"]["style_distance"])
        # SGD never stops by itself: it ran until the cap (L-BFGS-B may end sooner, at a failed line search)
        assert pair["methods"]["keras-sgd"]["total_seconds"] >= pair["cap_seconds"]
    for name in METHODS:
        ratios = [p["methods"][name]["ratio_to_old_total"] for p in doc["pairs"]]
        reached = sorted(r for r in ratios if r is not None)
        assert doc["summary"][name]["pairs_reached"] == len(reached)
        if reached:
            assert doc["summary"][name]["median_ratio_to_old_total"] == pytest.approx(float(np.median(reached)))
    assert Image.open(json_file.with_suffix(".png")).size[0] == 900
    sheet = Image.open(json_file.with_name(json_file.stem + "-finals.jpg"))
    assert sheet.size == (340 * (2 + len(METHODS)), 18 + 298 * 2)  # photo, painting, every method; a row a pair
    assert "style distance left" in done.stdout
    assert "time to target" in done.stdout and all(m in done.stdout for m in METHODS)
