"""Outputs appear whole or not at all."""

from __future__ import annotations

import threading

import pytest

from daemon.media.atomic import atomic_open, write_atomic


def test_reader_never_sees_a_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    payload = b"x" * (8 << 20)
    seen: list[int] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            if target.exists():
                seen.append(target.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with atomic_open(target) as handle:
            for start in range(0, len(payload), 1 << 20):
                handle.write(payload[start:start + (1 << 20)])
                assert not target.exists()
    finally:
        done.set()
        watcher.join()
    assert target.read_bytes() == payload
    assert set(seen) <= {len(payload)}


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"new and partial")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
