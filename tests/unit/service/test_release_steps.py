"""Releasing an input (after_success: delete or move): only the content the jobs processed, under an intent,
and finished or undone by reconcile_release from every state a crash can leave (real files, real SQLite)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from daemon.media.path_text import to_text
from daemon.service.release import reconcile_release, release_input
from daemon.service.step_plan import QUARANTINE_PREFIX, ReleasePlan
from daemon.service.stray_inputs import put_back_strays
from tests.support.release_bench import Bench, bench, fill, tmpfs

ACTIONS = ["delete", "move"]


def _setup(tmp_path: Path, action: str, processed: Path | None = None) -> Bench:
    extra = {"processed": str(processed)} if processed is not None else {}
    return bench(tmp_path, after_success=action, **extra)


def _release(b: Bench) -> None:
    release_input(b.config, b.store, b.source, b.sha, b.job_id)


def _visible(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in Bench.files(None, folder).items() if not Path(k).name.startswith(".")}


def _hidden(*folders: Path) -> list[str]:
    return [str(p) for f in folders if f.exists() for p in f.rglob(".*")]


def _assert_clean(b: Bench) -> None:
    """No intent open, no quarantine or temp file left anywhere."""
    assert b.store.intents(b.job_id) == []
    assert _hidden(b.config.input, b.config.processed_dir) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_the_processed_content_is_released(tmp_path, action):
    b = _setup(tmp_path, action)
    _release(b)
    assert not b.source.exists()
    assert _visible(b.config.processed_dir) == ({"a.png": b.data} if action == "move" else {})
    _assert_clean(b)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("how", ["replaced", "rewritten in place"])
def test_a_different_photo_under_the_name_is_never_touched(tmp_path, caplog, action, how):
    b = _setup(tmp_path, action)
    new = b.other_photo()
    if how == "replaced":
        tmp = b.source.with_name(".new.part")
        tmp.write_bytes(new)
        os.replace(tmp, b.source)
    else:
        b.source.write_bytes(new)  # same inode, new bytes: only the content tells
    inode = os.stat(b.source).st_ino
    with caplog.at_level(logging.INFO, logger="daemon.service.release"):
        _release(b)
    assert b.source.read_bytes() == new and os.stat(b.source).st_ino == inode
    assert _visible(b.config.processed_dir) == {}
    verb = "deleted" if action == "delete" else "moved"
    assert [r.getMessage() for r in caplog.records] == [f"not {verb}: {b.source} changed since it was processed; kept"]
    _assert_clean(b)


def _hook_rename(monkeypatch, before=None, after=None):
    """Run `before`/`after` around the release's rename to the quarantine name (the race window itself)."""
    real = os.rename

    def rename(src, dst, *args, **kwargs):
        if isinstance(dst, str) and dst.startswith(QUARANTINE_PREFIX) and before:
            before()
        real(src, dst, *args, **kwargs)
        if isinstance(dst, str) and dst.startswith(QUARANTINE_PREFIX) and after:
            after()

    monkeypatch.setattr(os, "rename", rename)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("swap", ["other photo", "hard link", "symlink"])
def test_swapped_in_right_before_the_rename_it_goes_back_untouched(tmp_path, monkeypatch, action, swap):
    b = _setup(tmp_path, action)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b.other_photo() if swap != "symlink" else b.data)  # a link to the SAME content too

    def swap_in():
        b.source.unlink()
        if swap == "other photo":
            b.source.write_bytes(outside.read_bytes())
        elif swap == "hard link":
            os.link(outside, b.source)
        else:
            os.symlink(outside, b.source)

    _hook_rename(monkeypatch, before=swap_in)
    _release(b)
    if swap == "symlink":
        assert os.readlink(b.source) == str(outside)
    else:
        assert b.source.read_bytes() == outside.read_bytes()
    if swap == "hard link":
        assert os.stat(b.source).st_ino == os.stat(outside).st_ino
    assert outside.exists() and _visible(b.config.processed_dir) == {}
    _assert_clean(b)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_new_photo_under_the_name_after_the_rename_is_left_alone(tmp_path, monkeypatch, action):
    b = _setup(tmp_path, action)
    new = b.other_photo()
    _hook_rename(monkeypatch, after=lambda: b.source.write_bytes(new))
    _release(b)
    assert b.source.read_bytes() == new
    assert _visible(b.config.processed_dir) == ({"a.png": b.data} if action == "move" else {})
    _assert_clean(b)


def test_a_changed_photo_goes_back_under_a_free_variant_if_its_name_was_taken(tmp_path, monkeypatch, caplog):
    b = _setup(tmp_path, "delete")
    first, second = b.other_photo(), b"a third photo"

    def swap_then_drop():
        b.source.write_bytes(first)  # rewritten in place before the rename: quarantined, then found changed

    _hook_rename(monkeypatch, before=swap_then_drop, after=lambda: b.source.write_bytes(second))
    with caplog.at_level(logging.WARNING, logger="daemon.service.release"):
        _release(b)
    assert b.source.read_bytes() == second and b.source.with_name("a-1.png").read_bytes() == first
    assert "kept (kept as a-1.png: the name was taken meanwhile)" in caplog.text
    _assert_clean(b)


def test_a_move_to_another_file_system_copies_whole_then_unlinks(tmp_path):
    with tmpfs(tmp_path / "elsewhere") as processed:
        b = _setup(tmp_path, "move", processed)
        (processed / "a.png").write_bytes(b"someone else's")
        _release(b)
        assert not b.source.exists()
        assert _visible(processed) == {"a.png": b"someone else's", "a-1.png": b.data}
        _assert_clean(b)


def test_a_full_target_file_system_leaves_the_input_and_no_partial_file(tmp_path, caplog):
    with tmpfs(tmp_path / "elsewhere", size="1m") as processed:
        b = _setup(tmp_path, "move", processed)
        fill(processed)
        with caplog.at_level(logging.INFO, logger="daemon.service.release"):
            _release(b)
        assert b.source.read_bytes() == b.data
        assert sorted(p.name for p in processed.rglob("*")) == ["filler.bin"]
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "could not move input" in lines[0] and "No space left" in lines[0]
        _assert_clean(b)
        (processed / "filler.bin").unlink()
        _release(b)  # the next try (a rescan, a restart) moves it
        assert not b.source.exists() and _visible(processed) == {"a.png": b.data}


# -- reconcile_release from every state a crash leaves ------------------------------------------------------

STATES = ["source only", "quarantine only", "quarantine + partial temp", "quarantine + complete temp",
          "quarantine + complete target", "target only", "changed quarantine"]


def _prepare(b: Bench, plan: ReleasePlan, state: str) -> None:
    quarantine = b.source.with_name(plan.quarantine)
    if state != "source only" and state != "target only":
        os.rename(b.source, quarantine)
    if state == "changed quarantine":
        quarantine.write_bytes(b.other_photo())
    if plan.action != "move":
        if state == "target only":
            b.source.unlink()
        return
    target = Path(plan.target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if state == "quarantine + partial temp":
        plan.temp.write_bytes(b.data[: len(b.data) // 3])
    if state == "quarantine + complete temp":
        plan.temp.write_bytes(b.data)
    if state == "quarantine + complete target":
        target.write_bytes(b.data)  # a copy (other file system) or a link: both count as complete
    if state == "target only":
        target.write_bytes(b.data)
        b.source.unlink()


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action, fs", [("delete", "same"), ("move", "same"), ("move", "other")])
def test_reconcile_finishes_or_undoes_from_every_state_and_twice_is_once(tmp_path, action, state, fs):
    processed = tmp_path / "elsewhere"
    with tmpfs(processed) if fs == "other" else _nothing():
        b = _setup(tmp_path, action, processed)
        plan = ReleasePlan.new(b.config, b.source, b.sha, b.job_id)
        intent_id = b.store.record_intent(b.job_id, "release", plan.to_json())
        _prepare(b, plan, state)
        for _ in range(2):  # a crash during reconciliation is a crash point too: running it again changes nothing
            for intent in b.store.intents(b.job_id):
                assert intent.id == intent_id
                reconcile_release(b.config, b.store, intent)
        if state == "source only":
            assert b.source.read_bytes() == b.data and _visible(processed) == {}
        elif state == "changed quarantine":
            assert b.source.read_bytes() == b.other_photo() and _visible(processed) == {}
        else:
            assert not b.source.exists()
            assert _visible(processed) == ({"a.png": b.data} if action == "move" else {})
        _assert_clean(b)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("taken", [False, True])
def test_a_quarantined_input_without_its_intent_comes_back_at_start(tmp_path, taken):
    b = _setup(tmp_path, "move")
    plan = ReleasePlan.new(b.config, b.source, b.sha, b.job_id)  # the store lost the intent: never recorded
    os.rename(b.source, b.source.with_name(plan.quarantine))
    if taken:
        b.source.write_bytes(b"arrived meanwhile")
    temp = plan.temp
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"partial")
    assert put_back_strays(b.config, b.store) == 1
    name = "a-1.png" if taken else "a.png"
    assert b.source.with_name(name).read_bytes() == b.data
    _assert_clean(b)


def test_a_quarantined_input_with_its_intent_is_left_to_reconcile(tmp_path):
    b = _setup(tmp_path, "delete")
    plan = ReleasePlan.new(b.config, b.source, b.sha, b.job_id)
    b.store.record_intent(b.job_id, "release", plan.to_json())
    os.rename(b.source, b.source.with_name(plan.quarantine))
    assert put_back_strays(b.config, b.store) == 0
    assert b.source.with_name(plan.quarantine).exists()
    assert to_text(b.source) == plan.source


@pytest.mark.parametrize("action", ACTIONS)
def test_an_error_whose_undo_meets_a_swapped_folder_leaves_the_intent_open_and_never_raises(tmp_path, monkeypatch,
                                                                                            action):
    b = bench(tmp_path, "sub/a.png", after_success=action)
    folder = b.source.parent

    def swap_and_fail():
        os.rename(folder, folder.with_name("moved"))
        os.symlink(folder.with_name("moved"), folder)  # the undo would have to follow a link: refused
        raise OSError(5, "Input/output error")

    _hook_rename(monkeypatch, after=swap_and_fail)
    _release(b)  # the OSError and the UnsafeInputError of the undo: logged, not raised into the intake
    assert len(b.store.intents(b.job_id)) == 1


@pytest.mark.parametrize("payload", ["[1]", '{"source": 1}', '{"source": "/in/a.png"}', "not json",
                                     '{"source": "/in/a.png", "content_sha": "x", "action": "eat", "token": "1-a"}',
                                     '{"source": "/in/a.png", "content_sha": "x", "action": "move", "token": "1-a", '
                                     '"pid": "7"}',
                                     '{"source": "a.png", "content_sha": "x", "action": "delete", "token": "1-a"}'])
def test_a_malformed_release_intent_is_dropped_with_one_line(tmp_path, caplog, payload):
    b = _setup(tmp_path, "move")
    b.store.record_intent(b.job_id, "release", payload)
    with caplog.at_level(logging.WARNING, logger="daemon.service"):
        reconcile_release(b.config, b.store, b.store.intents(b.job_id)[0])
    assert b.store.intents(b.job_id) == []
    assert [r.getMessage() for r in caplog.records if "unreadable release intent" in r.getMessage()] != []
    assert b.source.read_bytes() == b.data


@pytest.mark.parametrize("action", ACTIONS)
def test_an_output_without_its_sidecar_is_not_a_result_yet(tmp_path, action):
    b = _setup(tmp_path, action)
    sidecar = next(b.config.output.glob("*.json"))
    sidecar.unlink()
    _release(b)
    assert b.source.read_bytes() == b.data and b.store.intents(b.job_id) == []
    sidecar.write_text("{}")
    _release(b)
    assert not b.source.exists()


def test_putting_back_strays_stops_when_asked(tmp_path):
    b = _setup(tmp_path, "move")
    plan = ReleasePlan.new(b.config, b.source, b.sha, b.job_id)
    os.rename(b.source, b.source.with_name(plan.quarantine))
    asked = []
    assert put_back_strays(b.config, b.store, stop=lambda: asked.append(1) or True) == 0
    assert asked and b.source.with_name(plan.quarantine).exists()
    assert put_back_strays(b.config, b.store, stop=lambda: False) == 1
