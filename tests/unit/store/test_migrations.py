"""The SQLite job store's numbered migrations and its intents: every earlier file shape upgrades in place and
keeps its rows, a newer file is refused, and an intent is on disk before record_intent returns."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daemon.errors import LeaseLost, StoreTooNew
from daemon.store import JobSpec, SqliteStore, StoreTarget, open_store
from daemon.store import sqlite_migrations
from daemon.store.migrate import store_migrate
from daemon.store.schema_versions import SchemaChange
from daemon.store.sqlite_migrations import INDEXES, LATEST, SCHEMA

ROOT = Path(__file__).resolve().parents[3]

BEFORE_GENERATIONS = """
CREATE TABLE jobs (id INTEGER PRIMARY KEY, content_sha TEXT NOT NULL, style_set TEXT NOT NULL,
    params_hash TEXT NOT NULL, source_path TEXT NOT NULL, rel_path TEXT NOT NULL, output_path TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, started REAL, finished REAL,
    next_attempt REAL NOT NULL DEFAULT 0, worker TEXT, heartbeat REAL, progress_iteration INTEGER,
    progress_total INTEGER, progress_loss REAL, progress_eta REAL, seconds REAL,
    UNIQUE (content_sha, style_set, params_hash));
"""
ONE_JOB = ("INSERT INTO jobs (content_sha, style_set, params_hash, source_path, rel_path, output_path, state, "
           "created, updated) VALUES ('ab', 'starry', 'p1', '/in/a.png', 'a.png', '/out/a.starry.jpg', 'done', 1, 1)")


def _spec(sha: str) -> JobSpec:
    return JobSpec(sha * 64, "starry", "p", f"/in/{sha}.jpg", f"{sha}.jpg", f"/out/{sha}.jpg")


def _write(path: Path, script: str, version: int = 0) -> None:
    db = sqlite3.connect(path)
    db.executescript(script)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def _version_1(path: Path) -> None:
    """A file as this code writes it when it stops after migration 1 (the last version without intents)."""
    db = sqlite3.connect(path, isolation_level=None)
    sqlite_migrations.upgrade(db, path, latest=1)
    db.execute(ONE_JOB)
    db.close()


SHAPES = {  # every shape a job store file had before this version, with one done job in each but the empty one
    "empty file": lambda path: path.write_bytes(b""),
    "before generations": lambda path: _write(path, BEFORE_GENERATIONS + ONE_JOB + ";"),
    "before versions": lambda path: _write(path, SCHEMA + INDEXES + ONE_JOB + ";"),
    "version 1": _version_1,
}


def _shape(path: Path) -> dict[str, list[tuple]]:
    """Every table's columns and every index's columns: what the code reading the file relies on."""
    db = sqlite3.connect(path)
    names = db.execute("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                       "ORDER BY name").fetchall()
    shape = {}
    for kind, name, table in names:
        info = "table_info" if kind == "table" else "index_info"
        shape[f"{kind} {name} on {table}"] = [tuple(row) for row in db.execute(f"PRAGMA {info}({name})")]
    shape["foreign keys"] = [tuple(row) for row in db.execute("PRAGMA foreign_key_list(intents)")]
    db.close()
    return shape


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_earlier_file_upgrades_in_place_to_the_newest_schema_and_keeps_its_rows(tmp_path, shape):
    fresh = tmp_path / "fresh.sqlite3"
    SqliteStore(fresh).close()
    path = tmp_path / "old.sqlite3"
    SHAPES[shape](path)
    before = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    store = SqliteStore(path)
    try:
        assert store.schema == SchemaChange(before, LATEST)
        expected = [] if shape == "empty file" else [("ab", "starry", "done", 0, "/out/a.starry.jpg")]
        assert [(j.content_sha, j.style_set, j.state, j.generation, j.output_path) for j in store.jobs()] == expected
        job = store.enqueue(_spec("c"))  # the upgraded file takes new rows and intents like a fresh one
        assert job is not None and store.intents(job.id) == []
        store.record_intent(job.id, "publish", "{}")
    finally:
        store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert _shape(path) == _shape(fresh), "an upgraded file differs from a new one"


@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_newer_than_this_code_is_refused_with_one_line_and_left_untouched(tmp_path, readonly):
    path = tmp_path / "store.sqlite3"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.commit()
    db.close()
    stamp = path.read_bytes()
    with pytest.raises(StoreTooNew) as caught:
        open_store(StoreTarget(str(path)), readonly=readonly)
    assert str(caught.value) == (f"job store {path} has schema version {LATEST + 1}, this style-daemon knows up to "
                                 f"{LATEST}: upgrade style-daemon")
    assert caught.value.exit_code == 78  # the unit's RestartPreventExitStatus: a restart cannot fix it
    assert path.read_bytes() == stamp


def test_store_migrate_says_from_which_version_to_which_and_a_second_run_changes_nothing(tmp_path):
    path = tmp_path / "store.sqlite3"
    SHAPES["before generations"](path)
    target = StoreTarget(str(path))
    first = store_migrate(target, None, path)
    assert first.schema == SchemaChange(0, LATEST) and not first.copied
    assert first.lines() == [f"job store {path}: schema version 0 (before numbered versions) -> {LATEST}"]
    cookie = sqlite3.connect(path).execute("PRAGMA schema_version").fetchone()[0]  # bumped by any DDL
    second = store_migrate(target, None, path)
    assert second.schema == SchemaChange(LATEST, LATEST)
    assert second.lines() == [f"job store {path}: schema version {LATEST}, the newest this style-daemon knows"]
    assert sqlite3.connect(path).execute("PRAGMA schema_version").fetchone()[0] == cookie


def test_processes_opening_an_old_file_together_each_succeed_and_it_is_upgraded_once(tmp_path):
    path = tmp_path / "store.sqlite3"
    SHAPES["before generations"](path)
    start, changes, errors = threading.Barrier(6), [], []

    def open_it() -> None:
        start.wait()
        try:
            store = SqliteStore(path)  # a connection of its own: SQLite locks it like another process
            changes.append(store.schema)
            store.close()
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(c.before for c in changes) == [0] + [LATEST] * 5 and {c.after for c in changes} == {LATEST}
    assert len(SqliteStore(path).jobs()) == 1


def test_a_migration_that_fails_half_way_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "store.sqlite3"
    SHAPES["before versions"](path)
    shape = _shape(path)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_made (a)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_migrations, "MIGRATIONS", (*sqlite_migrations.MIGRATIONS, broken))
    with pytest.raises(sqlite3.OperationalError):
        SqliteStore(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0
    assert _shape(path) == shape, "a step of the failed upgrade stayed"


def test_intents_are_kept_across_reopening_oldest_first_per_job(tmp_path):
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    a, b = store.enqueue(_spec("a")), store.enqueue(_spec("b"))
    ids = [store.record_intent(a.id, "publish", '{"n": 1}'), store.record_intent(b.id, "release", '{"n": 2}'),
           store.record_intent(a.id, "fail", '{"n": 3}')]
    store.close()
    store = SqliteStore(path)
    assert [(i.id, i.job_id, i.step, i.payload) for i in store.intents()] == [
        (ids[0], a.id, "publish", '{"n": 1}'), (ids[1], b.id, "release", '{"n": 2}'),
        (ids[2], a.id, "fail", '{"n": 3}')]
    assert [i.id for i in store.intents(a.id)] == [ids[0], ids[2]]
    assert all(i.machine is None and i.created > 0 for i in store.intents())
    store.close()


def test_an_intent_is_on_disk_when_record_intent_returns(tmp_path):
    """The recording process is SIGKILLed right after the call returns: the intent is there for the next one."""
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    job = store.enqueue(_spec("a"))
    script = (f"import os, signal\nfrom daemon.store import SqliteStore\nstore = SqliteStore({str(path)!r})\n"
              f"print(store.record_intent({job.id}, 'release', 'x'), flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert [(i.id, i.payload) for i in store.intents(job.id)] == [(int(done.stdout), "x")]
    store.close()


def test_clearing_an_intent_is_idempotent_and_touches_no_other(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    job = store.enqueue(_spec("a"))
    first, second = store.record_intent(job.id, "publish", "1"), store.record_intent(job.id, "release", "2")
    store.clear_intent(first)
    store.clear_intent(first)  # reconciliation may run twice (a crash during it is a crash point too)
    store.clear_intent(10_000)
    assert [i.id for i in store.intents()] == [second]
    assert store.record_intent(job.id, "publish", "3") > second, "a cleared intent's id came back"
    store.close()


def test_dropping_a_job_removes_its_intents_and_a_dropped_job_takes_none(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    a, b = store.enqueue(_spec("a")), store.enqueue(_spec("b"))
    store.record_intent(a.id, "release", "a")
    kept = store.record_intent(b.id, "release", "b")
    store.drop(a.id)
    assert [i.id for i in store.intents()] == [kept] and store.intents(a.id) == []
    with pytest.raises(LeaseLost, match=f"job {a.id} is no longer in the job store"):
        store.record_intent(a.id, "publish", "late")
    store.close()


def test_a_read_only_open_of_an_older_file_changes_nothing_and_lists_no_intents(tmp_path):
    path = tmp_path / "store.sqlite3"
    SHAPES["version 1"](path)
    stamp = path.read_bytes()
    store = SqliteStore(path, readonly=True)
    assert store.schema == SchemaChange(1, 1) and store.intents() == [] and len(store.jobs()) == 1
    store.close()
    assert path.read_bytes() == stamp


@pytest.mark.parametrize("command", [["run"], ["once"], ["status"], ["check-config"], ["store", "migrate"]])
def test_every_command_refuses_a_newer_store_with_its_one_line_and_exit_78(tmp_path, command):
    from tests.support.daemon import write_config

    config = write_config(tmp_path)
    path = tmp_path / "state" / "journal.sqlite3"
    path.parent.mkdir()
    _write(path, SCHEMA, version=LATEST + 1)
    done = subprocess.run([sys.executable, "-m", "daemon", *command, "-c", str(config)], cwd=ROOT, timeout=120,
                          capture_output=True, text=True, env={**os.environ, "STYLE_DAEMON_FAKE_ENGINE": "1"})
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert done.returncode == 78, done.stderr
    assert len(errors) == 1 and errors[0].endswith(f"job store {path} has schema version {LATEST + 1}, this "
                                                   f"style-daemon knows up to {LATEST}: upgrade style-daemon"), errors
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == LATEST + 1
