"""The job store's own faults: told apart from other errors in one place (store/faults.py), never masked by a
failed ROLLBACK, and waited out by the service's wrapper (service/store_outage.py) on a real full disk."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from daemon.errors import StoreUnreachable
from daemon.service.store_outage import StoppedWhileWaiting, StoreOutage, waiting_store
from daemon.store import JobSpec, SqliteStore
from daemon.store.faults import outage_cause
from tests.support.store_faults import FaultyDisk, fill


@pytest.mark.parametrize("text, words", [
    ("database or disk is full", "disk is full"),
    ("attempt to write a readonly database", "read-only"),
    ("disk I/O error", "I/O error"),
    ("unable to open database file", "cannot open"),
    ("database is locked", "locked"),
])
def test_every_fault_of_the_store_disk_has_a_cause_in_words(text, words):
    assert words in outage_cause(sqlite3.OperationalError(text))


def test_the_first_error_counts_even_behind_a_failed_rollback():
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")
    except sqlite3.OperationalError as masked:
        assert "disk is full" in outage_cause(masked)


@pytest.mark.parametrize("exc", [
    sqlite3.OperationalError("no such column: x"),  # a bug: it must surface, not wait forever
    sqlite3.IntegrityError("UNIQUE constraint failed"),
    ValueError("database or disk is full"),
    OSError(28, "No space left on device"),  # the output disk: the job's own wait (failure_policy), not this
])
def test_other_errors_are_not_store_faults(exc):
    assert outage_cause(exc) is None


def test_a_lost_server_is_a_store_fault():
    psycopg = pytest.importorskip("psycopg")
    assert "unreachable" in outage_cause(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert "unreachable" in outage_cause(StoreUnreachable("job store database gone"))


@pytest.fixture
def small_disk(tmp_path):
    # Room for SQLite's WAL at its largest (1000 pages before a checkpoint) once the filler is gone.
    disk = FaultyDisk.tmpfs(tmp_path / "state", "8m")
    yield disk.path
    disk.remove()


def _spec(index: int) -> JobSpec:
    return JobSpec(f"{index:064x}", "starry", "p", f"/in/p{index}.png", f"p{index}.png", f"/out/p{index}.starry.jpg")


def test_a_write_on_a_full_disk_says_the_disk_is_full_not_cannot_rollback(small_disk):
    store = SqliteStore(small_disk / "journal.sqlite3")
    filler = fill(small_disk)
    with pytest.raises(sqlite3.OperationalError) as raised:
        for index in range(10_000):  # until the WAL needs a page the disk has not got
            store.remember_file(f"/in/{index}-" + "x" * 2000, index, index, f"{index:064x}")
    assert "full" in str(raised.value) and "rollback" not in str(raised.value)
    filler.unlink()
    store.remember_file("/in/after", 1, 1, "0" * 64)  # the connection works again once there is room
    assert store.known_file("/in/after", 1, 1) == "0" * 64
    store.close()


def test_the_waiting_store_waits_out_a_full_disk_and_the_write_lands_once(small_disk):
    changes: list[str | None] = []
    stop = threading.Event()
    outage = StoreOutage("test", stop.is_set, on_change=changes.append)
    store = waiting_store(SqliteStore(small_disk / "journal.sqlite3"), outage)
    filler = fill(small_disk)
    threading.Timer(1.5, filler.unlink).start()  # the cause goes while the call waits
    began = time.monotonic()
    for index in range(400):
        store.enqueue(_spec(index))
    assert time.monotonic() - began >= 1.0, "the disk never filled: the test proves nothing"
    assert changes[0] and "disk is full" in changes[0] and changes[-1] is None
    assert store.counts().queued == 400  # every write landed, none twice
    store.close()


def test_a_stop_while_waiting_ends_the_wait(small_disk):
    stop = threading.Event()
    store = waiting_store(SqliteStore(small_disk / "journal.sqlite3"), StoreOutage("test", stop.is_set))
    fill(small_disk)
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(StoppedWhileWaiting):
        for index in range(10_000):
            store.remember_file(f"/in/{index}-" + "x" * 2000, index, index, f"{index:064x}")
