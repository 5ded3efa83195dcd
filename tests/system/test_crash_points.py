"""Every crash point of a photo's job (issue 24): the daemon SIGKILLed at each call that changes the file system
or commits the store, restarted, and checked: one complete result per photo, no partial file under a real
name, no input lost or released before its result, the store agreeing with the files.

The harness is tests/support/crash_points.py (strace fault injection, no hook in the product). CI tries every
crash point of the worker for after_success: delete on SQLite (the riskiest) and a deterministic spread for the
other settings and for the supervisor; bench/crash_points.py tries every point of every setting.
"""

from __future__ import annotations

import pytest

from tests.support.crash_points import (PHOTO, Scenario, Setting, count, crash_at, parse_trace, require_strace,
                                        sweep, tmpfs, touches_input)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def other_fs(tmp_path_factory):
    """processed/ on another file system: a small tmpfs (the tests run as root)."""
    with tmpfs(tmp_path_factory.mktemp("mounts") / "crash-other-fs") as mounted:
        yield mounted


def test_strace_is_installed():
    require_strace()  # fails with the install hint, never skips


def test_counting_finds_the_publish_and_release_calls(tmp_path):
    """The harness sees the calls it must kill at: the result published by name, the input deleted."""
    points, _ = count(Scenario(tmp_path / "count", Setting("delete")))
    labels = [p.label for p in points]
    assert any(p.syscall in ("link", "linkat", "rename", "renameat", "renameat2") and "/out/chelsea" in p.label
               for p in points), labels
    assert any(p.syscall in ("unlink", "unlinkat", "rename", "renameat", "renameat2")
               and touches_input(p) and PHOTO.name in p.label for p in points), labels
    assert any(p.syscall in ("fsync", "fdatasync") and "journal" in p.label for p in points), labels


def test_a_kill_lands_on_the_counted_call_and_the_checks_can_fail(tmp_path):
    """Kill at the input's first release call: strace reports the very call; the checks catch a photo lost."""
    scenario = Scenario(tmp_path / "count", Setting("delete"))
    points, _ = count(scenario)
    target = next(p for p in points if touches_input(p) and PHOTO.name in p.label)
    victim = Scenario(tmp_path / "victim", Setting("delete"))
    outcome = crash_at(victim, target)
    assert outcome.hit == target.label, (outcome.hit, target.label)
    for result in (victim.folder / "out").glob("chelsea*"):
        result.unlink()
    assert any("chelsea.png" in line for line in victim.check()), "the checks did not see a lost photo"
    assert parse_trace(tmp_path / "victim" / "crash.strace"), "no trace written"


def test_every_worker_crash_point_delete_sqlite(tmp_path):
    """The riskiest setting in full: the input is deleted once its result exists."""
    result = sweep(Setting("delete"), tmp_path, "all")
    assert len(result.outcomes) == len(result.points) >= 20
    assert not result.failures(), f"{len(result.failures())} of {len(result.points)} crash points broke:\n" \
                                  + result.report()


@pytest.mark.parametrize("setting", [Setting("keep"), Setting("move"), Setting("move", "other"),
                                     Setting("delete", role="supervisor")], ids=lambda s: s.name)
def test_spread_of_crash_points_sqlite(setting, tmp_path, other_fs):
    result = sweep(setting, tmp_path, "spread", other_fs=other_fs if setting.processed == "other" else None)
    assert result.outcomes
    assert not result.failures(), result.report()


@pytest.mark.parametrize("setting", [Setting("delete", role="restart", stage="publish"),
                                     Setting("delete", role="restart", stage="release")], ids=lambda s: s.name)
def test_spread_of_crash_points_of_the_reconciling_restart(setting, tmp_path):
    """Worker and supervisor killed together with an intent open; the next supervisor killed as it reconciles."""
    result = sweep(setting, tmp_path, "spread")
    assert result.outcomes
    assert not result.failures(), result.report()


@pytest.mark.parametrize("setting", [Setting("delete", store="postgres"),
                                     Setting("delete", store="postgres", role="supervisor")],
                         ids=lambda s: s.name)
def test_spread_of_crash_points_postgres(setting, tmp_path, other_fs, pg_cluster):
    result = sweep(setting, tmp_path, "spread", new_store=pg_cluster.new_database,
                   other_fs=other_fs if setting.processed == "other" else None)
    assert result.outcomes
    assert not result.failures(), result.report()
