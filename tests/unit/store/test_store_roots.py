"""Paths in a shared store are relative to named roots: each machine maps them to its own mounts."""

from __future__ import annotations

import os

from daemon.media.path_text import from_text, to_text
from daemon.store.roots import RootMap

HERE = RootMap({"input": "/mnt/photos/in", "output": "/mnt/photos/out", "processed": "/mnt/photos/out/processed"})
THERE = RootMap({"input": "/srv/share/in", "output": "/srv/share/out", "processed": "/srv/share/out/processed"})


def test_a_path_stored_on_one_machine_is_the_same_file_on_another():
    odd = to_text(os.fsdecode(b"/mnt/photos/in/a:b/\xff caf\xc3\xa9\n.jpg"))  # undecodable byte, colon, newline
    for here, there in ((odd, odd.replace("/mnt/photos", "/srv/share")),
                        ("/mnt/photos/out/processed/x.jpg", "/srv/share/out/processed/x.jpg"),
                        ("/mnt/photos/out/x.starry.jpg", "/srv/share/out/x.starry.jpg")):
        stored = HERE.stored(here)
        assert not stored.startswith("/") and THERE.absolute(stored) == there and HERE.absolute(stored) == here
    assert HERE.stored("/mnt/photos/out/processed/x.jpg") == "processed:x.jpg"  # the innermost root names it
    assert from_text(THERE.absolute(HERE.stored(odd))) == from_text(odd.replace("/mnt/photos", "/srv/share"))


def test_paths_outside_every_root_stay_absolute_and_a_root_prefix_is_not_a_root():
    for path in ("/elsewhere/x.jpg", "/mnt/photos/inbox/x.jpg", "/mnt/photos/in"):
        assert HERE.stored(path) == path and THERE.absolute(path) == path
