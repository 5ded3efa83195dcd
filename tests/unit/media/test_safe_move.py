"""The crash-safe move's parts: never a replaced file, never a partial file under a real name, no link followed."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from daemon.errors import UnsafeInputError
from daemon.media import atomic
from daemon.media.atomic import publish_exclusive
from daemon.media.safe_move import (copy_verified, dash_variants, link_free, open_entry, open_folder, publish_temp,
                                    restore)
from tests.support.release_bench import fill, tmpfs


def _folder(path: Path) -> int:
    return open_folder(path, path)


def test_a_link_takes_the_first_free_name_and_never_replaces(tmp_path):
    src, target = tmp_path / "in", tmp_path / "processed"
    src.mkdir(), target.mkdir()
    (src / "a.png").write_bytes(b"new")
    (target / "a.png").write_bytes(b"someone else's")
    fd = _folder(src)
    try:
        got = link_free(fd, "a.png", dash_variants(target / "a.png"))
    finally:
        os.close(fd)
    assert got == target / "a-1.png" and got.read_bytes() == b"new"
    assert (target / "a.png").read_bytes() == b"someone else's"
    assert os.stat(got).st_ino == os.stat(src / "a.png").st_ino  # a link: the caller unlinks the source after


def test_across_file_systems_the_link_says_so_and_the_verified_copy_lands_whole(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = os.urandom(300_000)
    (src / "a.png").write_bytes(data)
    with tmpfs(tmp_path / "processed") as target:
        fd = _folder(src)
        try:
            assert link_free(fd, "a.png", dash_variants(target / "a.png")) is None  # EXDEV
            with open_entry(fd, "a.png") as handle:
                temp = target / ".x.part"
                assert copy_verified(handle, temp, hashlib.sha256(data).hexdigest())
        finally:
            os.close(fd)
        got = publish_temp(temp, dash_variants(target / "a.png"))
        assert got == target / "a.png" and got.read_bytes() == data and not temp.exists()


def test_a_copy_that_is_not_the_content_or_does_not_fit_leaves_nothing(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(os.urandom(400_000))
    with tmpfs(tmp_path / "processed", size="1m") as target:
        fd = _folder(src)
        try:
            with open_entry(fd, "a.png") as handle:
                assert not copy_verified(handle, target / ".x.part", "0" * 64)
                assert list(target.iterdir()) == []
                fill(target)
                with pytest.raises(OSError) as full:
                    copy_verified(handle, target / ".x.part", "0" * 64)
        finally:
            os.close(fd)
        assert full.value.errno == errno.ENOSPC
        assert sorted(p.name for p in target.iterdir()) == ["filler.bin"]


@pytest.mark.parametrize("taken", [False, True])
def test_restore_puts_back_under_the_name_or_a_free_variant(tmp_path, taken):
    (tmp_path / ".hidden").write_bytes(b"mine")
    if taken:
        (tmp_path / "a.png").write_bytes(b"arrived meanwhile")
    fd = _folder(tmp_path)
    try:
        got = restore(fd, ".hidden", "a.png")
    finally:
        os.close(fd)
    assert got == ("a-1.png" if taken else "a.png")
    assert (tmp_path / got).read_bytes() == b"mine" and not (tmp_path / ".hidden").exists()
    if taken:
        assert (tmp_path / "a.png").read_bytes() == b"arrived meanwhile"


def test_restore_puts_a_symlink_back_as_the_link_not_its_target(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not ours")
    folder = tmp_path / "in"
    folder.mkdir()
    os.symlink(outside, folder / ".hidden")
    fd = _folder(folder)
    try:
        assert restore(fd, ".hidden", "a.png") == "a.png"
    finally:
        os.close(fd)
    assert os.readlink(folder / "a.png") == str(outside) and outside.read_bytes() == b"not ours"


def test_no_link_is_followed_to_an_entry_or_through_a_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.png").write_bytes(b"x")
    root = tmp_path / "in"
    root.mkdir()
    os.symlink(real, root / "sub")
    os.symlink(real / "a.png", root / "a.png")
    os.mkfifo(root / "pipe.png")
    with pytest.raises(UnsafeInputError):
        open_folder(root, root / "sub")
    fd = _folder(root)
    try:
        for name in ("a.png", "pipe.png"):
            with pytest.raises(UnsafeInputError):
                open_entry(fd, name)
    finally:
        os.close(fd)


def _refuse_links(monkeypatch) -> None:
    """os.link answers EPERM, as under fs.protected_hardlinks=1 for another user's file (or no hard links)."""
    def refused(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "link", refused)


def _kill_at_rename(monkeypatch) -> None:
    """A kill at the first os.rename/os.replace: a step that reserved the name before it would leave it empty."""
    def killed(*args, **kwargs):
        raise SystemExit("killed")
    monkeypatch.setattr(os, "rename", killed)
    monkeypatch.setattr(os, "replace", killed)


def _move_each_way(way: str, tmp_path: Path) -> Path:
    """Move the bytes b"mine" to a.png (taken: it gets a-1.png) in tmp_path/t by one entry point; its name."""
    target = tmp_path / "t"
    if way == "publish_exclusive":
        return publish_exclusive(dash_variants(target / "a.png"), lambda handle: handle.write(b"mine"))
    (tmp_path / ("t/.hidden" if way == "restore" else "src")).write_bytes(b"mine")
    if way == "publish_temp":
        return publish_temp(tmp_path / "src", dash_variants(target / "a.png"))
    folder = target if way == "restore" else tmp_path
    fd = _folder(folder)
    try:
        if way == "restore":
            return target / restore(fd, ".hidden", "a.png")
        got = link_free(fd, "src", dash_variants(target / "a.png"))
        assert got is not None
        return got
    finally:
        os.close(fd)


WAYS = ["link_free", "publish_temp", "restore", "publish_exclusive"]


@pytest.mark.parametrize("way", WAYS)
def test_with_links_refused_a_kill_leaves_no_empty_file_under_a_real_name(tmp_path, monkeypatch, way):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.png").write_bytes(b"someone else's")
    if atomic._renameat2 is None:
        pytest.skip("no renameat2 in this libc")
    _refuse_links(monkeypatch)
    _kill_at_rename(monkeypatch)  # renameat2 is one call: nothing is reserved before it, so nothing to kill
    got = _move_each_way(way, tmp_path)
    monkeypatch.undo()
    assert got == tmp_path / "t" / "a-1.png"
    files = {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir() if p.is_file()}
    assert files["a.png"] == b"someone else's" and files["a-1.png"] == b"mine"
    assert all(data for data in files.values())  # no 0-byte placeholder anywhere
    assert sorted(files) == ["a-1.png", "a.png"]


@pytest.mark.parametrize("way", WAYS)
def test_without_renameat2_the_placeholder_way_still_never_replaces(tmp_path, monkeypatch, way):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.png").write_bytes(b"someone else's")
    _refuse_links(monkeypatch)
    monkeypatch.setattr(atomic, "_renameat2", None)
    got = _move_each_way(way, tmp_path)
    monkeypatch.undo()
    assert got == tmp_path / "t" / "a-1.png" and got.read_bytes() == b"mine"
    assert (tmp_path / "t" / "a.png").read_bytes() == b"someone else's"


def test_rename_noreplace_says_taken_and_unsupported(tmp_path, monkeypatch):
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    if atomic._renameat2 is None:
        pytest.skip("no renameat2 in this libc")
    assert atomic.rename_noreplace(tmp_path / "a", tmp_path / "b") is False
    assert (tmp_path / "b").read_bytes() == b"b" and (tmp_path / "a").exists()
    assert atomic.rename_noreplace(tmp_path / "a", tmp_path / "c") is True
    assert (tmp_path / "c").read_bytes() == b"a" and not (tmp_path / "a").exists()
    with pytest.raises(FileNotFoundError):
        atomic.rename_noreplace(tmp_path / "gone", tmp_path / "d")
