"""The crash-safe move's parts: never a replaced file, never a partial file under a real name, no link followed."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from daemon.errors import UnsafeInputError
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
