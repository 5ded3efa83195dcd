"""The SQLite job store assembled from its parts: one key per job, one output per name, damage as one line."""

from __future__ import annotations

import sqlite3

import pytest

from daemon.errors import StoreCorrupt
from daemon.store import JobSpec, SqliteStore


def _spec(sha: str, output: str = "/out/x.jpg") -> JobSpec:
    return JobSpec(sha * 64, "starry", "p", f"/in/{sha}.jpg", f"{sha}.jpg", output)


def test_a_job_is_queued_once_per_key_and_holds_its_own_output(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    first = store.enqueue(_spec("a"))
    assert first is not None and store.enqueue(_spec("a")) is None
    second = store.enqueue(_spec("b"), names=iter(["/out/x-1.jpg", "/out/x-2.jpg"]))
    assert second is not None and second.output_path == "/out/x-1.jpg"
    claimed = store.claim("w0:1")
    assert claimed is not None and claimed.id == first.id and claimed.state == "running"
    store.finish(claimed.id, 1.5)
    assert store.counts().done == 1 and store.pending() == 1
    store.close()


@pytest.mark.parametrize("call", ["claim", "enqueue", "counts"])  # one method of each part of the class
def test_a_damaged_file_is_one_journal_error_from_every_part(tmp_path, call):
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    other = sqlite3.connect(path)
    other.execute("DROP TABLE jobs")
    other.commit()
    other.close()
    args = {"claim": ("w0:1",), "enqueue": (_spec("a"),), "counts": ()}[call]
    with pytest.raises(StoreCorrupt) as caught:
        getattr(store, call)(*args)
    assert str(path) in str(caught.value) and "no such table" in str(caught.value)
    store.close()
