"""Trust in results: jobs follow their content, results are never overwritten, settings apply to new
arrivals, `redo` writes beside, and the output folder's sidecars rebuild a lost journal.

The daemon runs as a real subprocess (dry-run engine) on real folders with a real SQLite job store.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.support import CONTENT, STYLE
from tests.support.daemon import ROOT, Daemon, done_jobs, drop, store_rows, wait_until, write_config

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "tubingen.jpg")


# -- helpers -------------------------------------------------------------------------------------

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def results(folder: Path) -> dict[str, int]:
    """Every file under out/ except logs and the gallery page (with the temporary files it is written
    through, which come and go while the daemon runs): relative name -> mtime_ns."""
    out = folder / "out"
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and "logs" not in p.relative_to(out).parts and p.name != "index.html"
            and not (p.name.startswith(".index.html.") and p.name.endswith(".tmp"))}


def images(folder: Path) -> list[str]:
    """Result images (not sidecars, sheets, failed copies)."""
    return sorted(n for n in results(folder) if n.endswith(".jpg") and not n.endswith(".sheet.jpg")
                  and not n.startswith("failed/"))


def closed_window() -> dict:
    hour = time.localtime().tm_hour
    return {"start": f"{(hour + 2) % 24:02d}:00", "end": f"{(hour + 3) % 24:02d}:00"}


def edit_config(config: Path, **changes) -> None:
    """Set (or, with None, delete) top-level keys of the config file."""
    data = yaml.safe_load(config.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    config.write_text(yaml.safe_dump(data))


def reload(daemon: Daemon, config: Path, **changes) -> None:
    """Edit the config, SIGHUP, wait until the supervisor and the (one) worker reloaded it."""
    lines = ("supervisor: reloaded ", "worker 0 reloaded ")
    before = [daemon.output().count(line) for line in lines]
    edit_config(config, **changes)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: all(daemon.output().count(line) > n for line, n in zip(lines, before)), what="reload")


def open_window_in_workers(daemon: Daemon, config: Path, folder: Path) -> None:
    """Drop the schedule and SIGHUP only the worker: jobs start, and no rescan hides what the queue did."""
    edit_config(config, schedule=None)
    before = daemon.output().count("worker 0 reloaded ")
    for row in store_rows(folder, "SELECT pid FROM workers"):
        os.kill(row["pid"], signal.SIGHUP)
    wait_until(lambda: daemon.output().count("worker 0 reloaded ") > before, what="worker reload")


def known_paths(folder: Path) -> set[str]:
    return {r["path"] for r in store_rows(folder, "SELECT path FROM files")}


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, STYLE_DAEMON_FAKE_ENGINE="0")
    return subprocess.run([sys.executable, "-m", "daemon", *args, "-c", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def distinct_pngs(folder: Path, names: list[str]) -> list[Path]:
    """Small photos, each one pixel different (so each is its own content), under `names` in `folder`."""
    base = np.asarray(Image.open(CONTENT / "chelsea.png").convert("RGB").resize((48, 32)))
    made = []
    for index, name in enumerate(names):
        pixels = base.copy()
        pixels[0, 0] = (index % 256, index // 256, 11)
        staging = folder / f"staging-{index}.png"
        Image.fromarray(pixels).save(staging)
        os.replace(staging, folder / name)  # renamed in whole: long names cannot take a .part suffix
        made.append(folder / name)
    return made


def name_of_bytes(total: int, char: str, ext: str = ".png") -> str:
    """A file name of exactly `total` bytes (UTF-8) made of `char`, padded with ASCII."""
    room = total - len(ext.encode())
    count = room // len(char.encode())
    return char * count + "a" * (room - count * len(char.encode())) + ext


# -- 1. a job follows its content ----------------------------------------------------------------

FOLLOW_CASES = {
    # what happens to a.png (and its copy b.png) while the job waits: the file the result must come from
    "copy_dropped_then_deleted": "a.png",
    "original_deleted_copy_kept": "b.png",
    "renamed": "c.png",
    "both_deleted_then_one_dropped_again": "d.png",
}


@pytest.mark.parametrize("case", list(FOLLOW_CASES))
def test_queued_job_runs_while_any_copy_of_its_content_remains(folder, case):
    config = write_config(folder, schedule=closed_window())
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    a = drop(CONTENT / "chelsea.png", inp / "a.png")
    wait_until(lambda: store_rows(folder), what="job queued")
    if case != "renamed":
        b = drop(CONTENT / "chelsea.png", inp / "b.png")  # the same photo under a second name
        wait_until(lambda: str(b) in known_paths(folder), what="copy seen")
    if case == "copy_dropped_then_deleted":
        b.unlink()
    elif case == "original_deleted_copy_kept":
        a.unlink()
    elif case == "renamed":
        os.rename(a, inp / "c.png")
        wait_until(lambda: str(inp / "c.png") in known_paths(folder), what="rename seen")
    else:
        a.unlink()
        b.unlink()
        drop(CONTENT / "chelsea.png", inp / "d.png")
        wait_until(lambda: str(inp / "d.png") in known_paths(folder), what="re-drop seen")
    open_window_in_workers(daemon, config, folder)
    wait_until(lambda: done_jobs(folder), what="the photo processed from a remaining copy")
    daemon.stop()
    rows = store_rows(folder)
    assert len(rows) == 1 and rows[0]["state"] == "done"
    assert Path(rows[0]["source_path"]).name == FOLLOW_CASES[case]
    assert Path(rows[0]["output_path"]).is_file()
    assert "Traceback" not in daemon.output()


def test_job_dropped_when_every_copy_is_gone_says_so_and_a_redrop_makes_a_new_job(folder):
    config = write_config(folder, schedule=closed_window())
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    a = drop(CONTENT / "chelsea.png", inp / "a.png")
    wait_until(lambda: store_rows(folder), what="job queued")
    b = drop(CONTENT / "chelsea.png", inp / "b.png")
    wait_until(lambda: str(b) in known_paths(folder), what="copy seen")
    a.unlink()
    b.unlink()
    open_window_in_workers(daemon, config, folder)
    wait_until(lambda: "no other copy of it is left" in daemon.output(), what="drop explained")
    assert store_rows(folder) == []
    drop(CONTENT / "chelsea.png", inp / "a.png")
    wait_until(lambda: done_jobs(folder), what="re-dropped photo processed")
    daemon.stop()
    assert images(folder) == ["a.starry.jpg"]


def test_restart_processes_a_photo_whose_job_was_dropped_while_it_was_away(folder, tmp_path_factory):
    config = write_config(folder, schedule=closed_window())
    daemon = Daemon(config)
    daemon.wait_ready()
    away = tmp_path_factory.mktemp("away")
    a = drop(CONTENT / "coffee.png", folder / "in" / "a.png")
    wait_until(lambda: store_rows(folder), what="job queued")
    os.rename(a, away / "a.png")  # moved out (mtime kept) ...
    open_window_in_workers(daemon, config, folder)
    wait_until(lambda: "vanished or changed while queued" in daemon.output(), what="job dropped")
    daemon.stop()
    os.rename(away / "a.png", a)  # ... and back while the service is down
    daemon = Daemon(config)
    daemon.wait_ready()
    wait_until(lambda: done_jobs(folder), what="startup scan processed it")
    daemon.stop()
    assert images(folder) == ["a.starry.jpg"]


# -- 2. an existing result is never overwritten ----------------------------------------------------

@pytest.mark.parametrize("template", ["{stem}.{style}.{ext}", "{style}.{ext}"])
def test_different_photos_that_would_share_a_result_name_get_distinct_names(folder, template):
    config = write_config(folder, naming={"template": template}, workers=2)  # two workers race for the name
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    sources = {"holiday.png": "chelsea.png", "holiday.jpg": "rocket.jpg", "holiday.jpeg": "tubingen.jpg"}
    for name, source in sources.items():
        drop(CONTENT / source, inp / name)
    wait_until(lambda: len(done_jobs(folder)) == 3, what="three jobs")
    daemon.stop()
    rows = store_rows(folder)
    outputs = [Path(r["output_path"]) for r in rows]
    assert len(set(outputs)) == 3 and all(p.is_file() for p in outputs)
    assert len(images(folder)) == 3
    stem = "holiday.starry" if template.startswith("{stem}") else "starry"
    assert {p.name for p in outputs} == {f"{stem}.jpg", f"{stem}.2.jpg", f"{stem}.3.jpg"}
    gallery = (folder / "out" / "index.html").read_text()
    for row, output in zip(rows, outputs):
        sidecar = json.loads(Path(str(output) + ".json").read_text())
        assert sidecar["output"] == str(output)
        assert sidecar["content"]["sha256"] == row["content_sha"] == sha(inp / row["rel_path"])
        assert Path(str(output) + ".sheet.jpg").is_file()
        assert f'href="{output.name}"' in gallery.replace("%20", " ")


def test_changed_photo_foreign_file_and_late_arrival_at_the_name_are_never_overwritten(folder):
    config = write_config(folder, schedule=closed_window(),
                          engine={"iterations": 4, "max_size": 64, "scales": 1, "backbone": "vgg16-hed",
                                  "save_every": 2})
    out = folder / "out"
    out.mkdir(exist_ok=True)
    (out / "mine.starry.jpg").write_bytes(b"a person's file")  # there before the photo arrives
    (out / "late.starry.iter0002.jpg").write_bytes(b"a person's snapshot")
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    drop(CONTENT / "chelsea.png", inp / "mine.png")
    drop(CONTENT / "coffee.png", inp / "late.png")
    drop(CONTENT / "rocket.jpg", inp / "same.jpg")
    wait_until(lambda: len(store_rows(folder)) == 3, what="three queued")
    (out / "late.starry.jpg").write_bytes(b"arrived after the name was reserved")
    reload(daemon, config, schedule=None)
    wait_until(lambda: len(done_jobs(folder)) == 3, what="three done")
    first = (out / "same.starry.jpg").read_bytes()
    first_sidecar = (out / "same.starry.jpg.json").read_bytes()
    image = Image.open(CONTENT / "rocket.jpg").rotate(180)
    image.save(inp / "same.jpg.part", format="JPEG")
    os.replace(inp / "same.jpg.part", inp / "same.jpg")  # the photo changed in place
    wait_until(lambda: len(done_jobs(folder)) == 4, what="changed photo processed")
    daemon.stop()
    assert (out / "mine.starry.jpg").read_bytes() == b"a person's file"
    assert (out / "late.starry.jpg").read_bytes() == b"arrived after the name was reserved"
    assert (out / "late.starry.iter0002.jpg").read_bytes() == b"a person's snapshot"
    assert (out / "same.starry.jpg").read_bytes() == first
    assert (out / "same.starry.jpg.json").read_bytes() == first_sidecar
    names = {Path(r["rel_path"]).name + ":" + Path(r["output_path"]).name for r in store_rows(folder)}
    assert names == {"mine.png:mine.starry.2.jpg", "late.png:late.starry.2.jpg", "same.jpg:same.starry.jpg",
                     "same.jpg:same.starry.2.jpg"}
    assert (out / "late.starry.2.iter0002.jpg").exists() or (out / "late.starry.iter0002.2.jpg").exists()
    for row in store_rows(folder):
        assert json.loads(Path(row["output_path"] + ".json").read_text())["output"] == row["output_path"]


def test_names_of_226_to_255_bytes_are_processed_and_failures_reported(folder, tmp_path_factory):
    config = write_config(folder, routing={"default": ["starry", "scream"]})
    staging = tmp_path_factory.mktemp("long")
    names = [name_of_bytes(n, "x") for n in (226, 230, 240, 249, 250, 251, 252, 253, 254, 255)]
    names += [name_of_bytes(n, c) for n in (226, 253, 254, 255) for c in ("é", "写", "🎨")]
    names.append(name_of_bytes(255, "x", ".jpeg"))
    distinct_pngs(staging, names)
    bad = "b" * 251 + ".jpg"
    (staging / bad).write_bytes(b"not a photo at all")
    daemon = Daemon(config, fake_delay=0.0)
    daemon.wait_ready()
    for name in [*names, bad]:
        os.replace(staging / name, folder / "in" / name)
    total = 2 * (len(names) + 1)
    wait_until(lambda: len([r for r in store_rows(folder) if r["state"] in ("done", "failed")]) == total,
               timeout=120, what="every long-named job ended")
    daemon.stop()
    rows = store_rows(folder)
    done = [r for r in rows if r["state"] == "done"]
    assert len(done) == 2 * len(names), [r["error"] for r in rows if r["state"] == "failed"]
    outputs = {r["output_path"] for r in done}
    assert len(outputs) == len(done)
    for row in done:
        output = Path(row["output_path"])
        assert output.is_file() and Path(str(output) + ".json").is_file() and Path(str(output) + ".sheet.jpg").is_file()
        assert json.loads(Path(str(output) + ".json").read_text())["content"]["sha256"] == row["content_sha"]
    reports = list((folder / "out" / "failed").glob("*.error.txt"))
    assert reports and all(bad in r.read_text() for r in reports)
    assert [p for p in (folder / "out" / "failed").iterdir() if p.read_bytes() == b"not a photo at all"]
    assert "File name too long" not in daemon.output()


# -- 3. settings apply to new arrivals; redo is explicit ------------------------------------------

@pytest.mark.parametrize("change", ["params", "style_image"])
def test_changed_settings_apply_to_new_arrivals_not_to_photos_already_done(folder, change):
    config = write_config(folder)
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "old.png")
    wait_until(lambda: done_jobs(folder), what="first photo")
    before = results(folder)
    styles = yaml.safe_load(config.read_text())["styles"]
    if change == "params":
        styles["starry"]["params"] = {"iterations": 7}
    else:
        styles["starry"]["images"] = [str(STYLE / "shipwreck.jpg")]
    reload(daemon, config, styles=styles)
    drop(CONTENT / "coffee.png", folder / "in" / "new.png")
    wait_until(lambda: len(done_jobs(folder)) == 2, what="new arrival processed")
    daemon.stop()
    daemon = Daemon(config)  # a restart with the changed settings does not redo either
    daemon.wait_ready()
    wait_until(lambda: "startup scan" in daemon.output(), what="startup scan")
    drop(CONTENT / "astronaut.png", folder / "in" / "newer.png")
    wait_until(lambda: len(done_jobs(folder)) == 3, what="third photo")
    daemon.stop()
    rows = store_rows(folder)
    assert [Path(r["rel_path"]).name for r in rows] == ["old.png", "new.png", "newer.png"]
    assert {k: v for k, v in results(folder).items() if k in before} == before
    new_doc = json.loads((folder / "out" / "new.starry.jpg.json").read_text())
    old_doc = json.loads((folder / "out" / "old.starry.jpg.json").read_text())
    assert new_doc["params_hash"] == rows[1]["params_hash"] != old_doc["params_hash"] == rows[0]["params_hash"]
    if change == "params":
        assert new_doc["parameters"]["iterations"] == 7 and old_doc["parameters"]["iterations"] == 5
    else:
        assert new_doc["styles"][0]["path"].endswith("shipwreck.jpg")


def test_jobs_queued_before_a_change_run_with_the_current_settings_after_a_restart(folder):
    config = write_config(folder, schedule=closed_window())
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "waiting.png")
    wait_until(lambda: store_rows(folder), what="queued")
    daemon.stop()
    edit_config(config, schedule=None, engine={"iterations": 3, "max_size": 64, "scales": 1,
                                               "backbone": "vgg16-hed"})
    daemon = Daemon(config)
    daemon.wait_ready()
    wait_until(lambda: done_jobs(folder), what="queued job ran")
    daemon.stop()
    doc = json.loads((folder / "out" / "waiting.starry.jpg.json").read_text())
    assert doc["parameters"]["iterations"] == 3
    assert doc["params_hash"] == store_rows(folder)[0]["params_hash"]


def test_redo_writes_new_results_beside_the_old_ones_with_or_without_the_service(folder):
    config = write_config(folder, routing={"default": ["starry"], "subfolders": False,
                                           "rules": [{"glob": "both/*", "styles": ["starry", "scream"]}]})
    inp = folder / "in"
    drop(CONTENT / "chelsea.png", inp / "a.png")
    drop(CONTENT / "coffee.png", inp / "both" / "b.png")
    assert cli(config, "once").returncode == 0
    before = results(folder)
    assert sorted(images(folder)) == ["a.starry.jpg", "both/b.scream.jpg", "both/b.starry.jpg"]

    done = cli(config, "redo")  # service stopped: queued now, done by the next run
    assert done.returncode == 0, done.stderr
    assert "3 job(s) queued" in done.stdout and "a.png [starry] ->" in done.stdout
    daemon = Daemon(config)
    daemon.wait_ready()
    wait_until(lambda: len(done_jobs(folder)) == 6, what="redo jobs done by the service")
    done = cli(config, "redo", "--style", "scream", str(inp / "both"))  # service running
    assert done.returncode == 0 and "1 job(s) queued" in done.stdout, done.stdout + done.stderr
    wait_until(lambda: len(done_jobs(folder)) == 7, what="redo picked up by the running service")
    assert "0 job(s) queued" in cli(config, "redo", "--since", "2999-01-01").stdout
    daemon.stop()
    assert {k: v for k, v in results(folder).items() if k in before} == before, "an old result was touched"
    assert sorted(images(folder)) == ["a.starry.2.jpg", "a.starry.jpg", "both/b.scream.2.jpg",
                                      "both/b.scream.3.jpg", "both/b.scream.jpg", "both/b.starry.2.jpg",
                                      "both/b.starry.jpg"]
    assert len({(r["content_sha"], r["style_set"], r["params_hash"], r["generation"])
                for r in store_rows(folder)}) == 7
    bad = cli(config, "redo", "--style", "nope")
    assert bad.returncode == 78 and "no such style set" in bad.stderr


def test_redo_help_names_every_option_and_its_default(folder):
    done = subprocess.run([sys.executable, "-m", "daemon", "redo", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for expected in ("--config", "(default: ./config.yaml)", "--style SET", "--since DATE", "PATH",
                     "default: the whole input folder", "beside", "never touched"):
        assert expected in text, expected


# -- 4. the output folder rebuilds a lost journal -----------------------------------------------

@pytest.mark.parametrize("loss", ["deleted", "emptied"])
def test_lost_journal_is_rebuilt_from_sidecars_without_redoing_anything(folder, loss):
    config = write_config(folder, routing={"default": ["starry", "scream"]})
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        drop(CONTENT / name, folder / "in" / name)
    drop(CONTENT / "tubingen.jpg", folder / "in" / "rocket.jpeg")  # shares its result name with rocket.jpg
    assert cli(config, "once").returncode == 0
    before = results(folder)
    assert len(images(folder)) == 8
    for path in images(folder):
        doc = json.loads((folder / "out" / (path + ".json")).read_text())
        assert {"params_hash", "style_set", "content"} <= set(doc) and len(doc["params_hash"]) == 16
    journal = folder / "state" / "journal.sqlite3"
    if loss == "deleted":
        for extra in ("", "-wal", "-shm"):
            Path(str(journal) + extra).unlink(missing_ok=True)
    else:
        journal.write_bytes(b"")

    daemon = Daemon(config)
    daemon.wait_ready()
    wait_until(lambda: daemon.output().count("this content was already handled") == 4, what="intake done")
    status = json.loads(cli(config, "status", "--json").stdout)
    daemon.stop()
    assert f"adopted 8 result(s) from sidecars in {folder / 'out'}" in daemon.output()
    assert status["done"] == 8 and status["queued"] == 0 and status["running"] == 0
    assert results(folder) == before, "a result was rewritten or added"
    daemon = Daemon(config)  # the next start finds nothing new to adopt
    daemon.wait_ready()
    daemon.stop()
    assert "adopted" not in daemon.output()
    assert len(store_rows(folder)) == 8


# -- the pieces under the rules ------------------------------------------------------------------

def test_concurrent_publishers_never_overwrite_each_other(tmp_path):
    """Eight threads publish to one name at once: eight files, each whole, none replaced."""
    import threading

    from daemon.media.atomic import publish_exclusive
    from daemon.media.derived_names import variants

    (tmp_path / "r.jpg").write_bytes(b"already here")
    published: list[Path] = []
    start = threading.Barrier(8)

    def publish(index: int) -> None:
        start.wait()
        published.append(publish_exclusive(variants(tmp_path / "r.jpg"), lambda h: h.write(b"%d" % index * 1000)))

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(published)) == 8 and tmp_path / "r.jpg" not in published
    assert (tmp_path / "r.jpg").read_bytes() == b"already here"
    assert sorted({p.read_bytes()[:1] for p in published}) == sorted(b"%d" % i for i in range(8))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_a_journal_from_before_generations_is_migrated_in_place(folder):
    """An existing journal (old key, no generation) keeps its jobs and gets the new key."""
    import sqlite3

    path = folder / "state" / "journal.sqlite3"
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE jobs (id INTEGER PRIMARY KEY, content_sha TEXT NOT NULL, style_set TEXT NOT NULL,
            params_hash TEXT NOT NULL, source_path TEXT NOT NULL, rel_path TEXT NOT NULL, output_path TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
            created REAL NOT NULL, updated REAL NOT NULL, started REAL, finished REAL,
            next_attempt REAL NOT NULL DEFAULT 0, worker TEXT, heartbeat REAL, progress_iteration INTEGER,
            progress_total INTEGER, progress_loss REAL, progress_eta REAL, seconds REAL,
            UNIQUE (content_sha, style_set, params_hash));
        INSERT INTO jobs (content_sha, style_set, params_hash, source_path, rel_path, output_path, state,
            created, updated) VALUES ('ab', 'starry', 'p1', '/in/a.png', 'a.png', '/out/a.starry.jpg', 'done', 1, 1);
    """)
    db.commit()
    db.close()
    from daemon.store import JobSpec, open_store

    store = open_store(path)
    try:
        assert [(j.id, j.state, j.generation) for j in store.jobs()] == [(1, "done", 0)]
        redo = store.enqueue(JobSpec("ab", "starry", "p1", "/in/a.png", "a.png", "/out/a.starry.jpg"),
                             names=iter(["/out/a.starry.2.jpg"]), redo=True)
        assert redo is not None and redo.generation == 1 and redo.output_path == "/out/a.starry.2.jpg"
    finally:
        store.close()


def test_exclusive_publish_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    """On filesystems without hard links (some SMB/FAT mounts) an exclusive create reserves the name."""
    import errno

    from daemon.media import atomic
    from daemon.media.derived_names import variants

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    (tmp_path / "r.jpg").write_bytes(b"already here")
    first = atomic.publish_exclusive(variants(tmp_path / "r.jpg"), lambda h: h.write(b"one"))
    second = atomic.publish_exclusive(variants(tmp_path / "r.jpg"), lambda h: h.write(b"two"))
    assert (first.name, second.name) == ("r.2.jpg", "r.3.jpg")
    assert [(tmp_path / n).read_bytes() for n in ("r.jpg", "r.2.jpg", "r.3.jpg")] == [b"already here", b"one", b"two"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.2.jpg", "r.3.jpg", "r.jpg"]
