"""failed/ entries under a "fail" intent: one copy with its report whatever the crash point, an input moved
there only if it is still that content (real files, real SQLite; reconcile_failure from every state)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.media.derived_names import error_report_path
from daemon.service.aftercare import reconcile_failure, record_failure
from daemon.service.step_plan import FailPlan
from daemon.service.stray_inputs import put_back_strays
from tests.support.release_bench import Bench, bench


def _entries(b: Bench) -> dict[str, bytes]:
    return Bench.files(None, b.config.failed_dir)


def _fail(b: Bench, handle=None) -> Path:
    return record_failure(b.config, b.source, "not a photo", "starry", handle, store=b.store, job_id=b.job_id)


def _check_one_entry(b: Bench, with_copy: bool = True) -> None:
    entries = _entries(b)
    copies = {k: v for k, v in entries.items() if not k.endswith(".error.txt")}
    reports = [k for k in entries if k.endswith(".error.txt")]
    assert copies == ({"a.png": b.data} if with_copy else {})
    assert reports == ["a.png.error.txt"]
    text = (b.config.failed_dir / reports[0]).read_text()
    assert text.startswith(f"file: {b.source}\nstyle set: starry\n") and "error: not a photo" in text
    assert b.store.intents(b.job_id) == []


@pytest.mark.parametrize("action", ["copy", "move"])
def test_a_failure_is_one_copy_with_its_report_even_when_recorded_again(tmp_path, action):
    b = bench(tmp_path, on_failure=action)
    report = _fail(b)
    assert report == b.config.failed_dir / "a.png.error.txt"
    assert b.source.exists() == (action == "copy")
    if action == "move":
        b.source.write_bytes(b.data)  # the same photo dropped again fails again: still one entry
    _fail(b)
    _check_one_entry(b)


def test_on_failure_move_keeps_an_input_that_changed_since_it_was_read(tmp_path):
    b = bench(tmp_path, on_failure="move")
    with open(b.source, "rb") as handle:  # the job's descriptor; the photo is replaced while it runs
        new = b.other_photo()
        tmp = b.source.with_name(".x.part")
        tmp.write_bytes(new)
        os.replace(tmp, b.source)
        _fail(b, handle)
    assert b.source.read_bytes() == new
    _check_one_entry(b)


STATES = ["nothing yet", "partial temp", "complete temp", "copy without report", "copy and report",
          "copy, report, input quarantined"]


def _prepare(b: Bench, plan: FailPlan, state: str) -> None:
    copy = Path(plan.copy)
    copy.parent.mkdir(parents=True, exist_ok=True)
    if state == "partial temp":
        plan.temp.write_bytes(b.data[:100])
    if state == "complete temp":
        plan.temp.write_bytes(b.data)
    if state.startswith("copy"):
        copy.write_bytes(b.data)
    if state.startswith("copy and report") or state.startswith("copy, report"):
        error_report_path(copy).write_text(plan.report_text)
    if state.endswith("quarantined"):
        os.rename(b.source, b.source.with_name(plan.quarantine))


@pytest.mark.parametrize("action, state", [(a, s) for a in ("copy", "move") for s in STATES
                                           if a == "move" or not s.endswith("quarantined")])
def test_reconcile_rolls_forward_to_exactly_one_entry_from_every_state(tmp_path, action, state):
    b = bench(tmp_path, on_failure=action)
    plan = FailPlan(str(b.source), "starry", action, str(b.config.failed_dir / "a.png"),
                    f"file: {b.source}\nstyle set: starry\nerror: not a photo\n", f"{b.job_id}-abcd", b.sha)
    b.store.record_intent(b.job_id, "fail", plan.to_json())
    _prepare(b, plan, state)
    for _ in range(2):  # idempotent: a crash while reconciling is a crash point too
        for intent in b.store.intents(b.job_id):
            reconcile_failure(b.config, b.store, intent)
    _check_one_entry(b)
    assert b.source.exists() == (action == "copy")
    assert [p.name for p in b.config.input.iterdir()] == (["a.png"] if action == "copy" else [])


def test_reconcile_without_anything_to_copy_still_writes_the_report(tmp_path):
    b = bench(tmp_path)
    b.source.unlink()
    plan = FailPlan(str(b.source), "starry", "copy", str(b.config.failed_dir / "a.png"),
                    f"file: {b.source}\nstyle set: starry\nerror: not a photo\n", f"{b.job_id}-abcd", b.sha)
    b.store.record_intent(b.job_id, "fail", plan.to_json())
    reconcile_failure(b.config, b.store, b.store.intents(b.job_id)[0])
    _check_one_entry(b, with_copy=False)


@pytest.mark.parametrize("recorded", [False, True])
def test_an_input_hidden_by_an_interrupted_move_comes_back_at_start_unless_its_intent_is_open(tmp_path, recorded):
    b = bench(tmp_path, on_failure="move")
    plan = FailPlan(str(b.source), "starry", "move", str(b.config.failed_dir / "a.png"), "report\n",
                    f"{b.job_id}-abcd", b.sha)
    if recorded:
        b.store.record_intent(b.job_id, "fail", plan.to_json())
    plan.temp.parent.mkdir(parents=True, exist_ok=True)
    plan.temp.write_bytes(b"partial")
    os.rename(b.source, b.source.with_name(plan.quarantine))
    assert put_back_strays(b.config, b.store) == (0 if recorded else 1)
    assert b.source.exists() == (not recorded) and plan.temp.exists() == recorded


def test_an_input_whose_removal_failed_keeps_its_intent_until_it_is_settled(tmp_path, monkeypatch):
    b = bench(tmp_path, on_failure="move")
    real = os.unlink

    def unlink(path, *args, **kwargs):
        if str(path).startswith(".style-daemon-fail."):  # the hidden input's removal: the disk errs
            raise OSError(5, "Input/output error")
        real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(OSError):
        _fail(b)
    monkeypatch.undo()
    assert not b.source.exists()  # hidden under its quarantine name ...
    intents = b.store.intents(b.job_id)
    assert len(intents) == 1  # ... so the intent stays to put it right
    reconcile_failure(b.config, b.store, intents[0])
    _check_one_entry(b)
    assert list(b.config.input.iterdir()) == []


@pytest.mark.parametrize("payload", ["[]", '{"source": "/in/a.png"}', '{"source": "/in/a.png", "style_set": "s", '
                                     '"action": "copy", "copy": "FAILED/a.png", "report_text": "r", "token": "1-a", '
                                     '"sha": 5}'])
def test_a_malformed_fail_intent_is_dropped(tmp_path, payload):
    b = bench(tmp_path)
    b.store.record_intent(b.job_id, "fail", payload.replace("FAILED", str(b.config.failed_dir)))
    reconcile_failure(b.config, b.store, b.store.intents(b.job_id)[0])
    assert b.store.intents(b.job_id) == [] and _entries(b) == {}
