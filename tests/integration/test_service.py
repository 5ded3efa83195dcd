"""The folder-watching daemon as a real subprocess on real folders, with the fast dry-run engine."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from tests.support import CONTENT
from tests.support.daemon import Daemon, done_jobs, drop, store_rows, wait_until, write_config


def outputs(folder):
    """Results and sidecars under out/ (not logs, failed inputs, contact sheets or the gallery page)."""
    out = folder / "out"
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                  and "logs" not in p.parts and "failed" not in p.parts
                  and not p.name.endswith(".sheet.jpg") and p.name != "index.html")


def test_files_dropped_while_running_and_while_stopped_are_processed(folder):
    config = write_config(folder)
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: (folder / "out" / "chelsea.starry.jpg.json").exists(), what="first output")
    wait_until(lambda: "queue drained: 1 done, 0 failed" in daemon.output(), what="summary line")
    assert daemon.stop() == 0
    first_mtime = (folder / "out" / "chelsea.starry.jpg").stat().st_mtime_ns

    drop(CONTENT / "coffee.png", folder / "in" / "coffee.png")  # arrives while stopped
    daemon = Daemon(config)
    daemon.wait_ready()
    wait_until(lambda: (folder / "out" / "coffee.starry.jpg.json").exists(), what="output of file dropped while down")
    assert daemon.stop() == 0
    assert outputs(folder) == ["chelsea.starry.jpg", "chelsea.starry.jpg.json", "coffee.starry.jpg",
                               "coffee.starry.jpg.json"]
    assert (folder / "out" / "chelsea.starry.jpg").stat().st_mtime_ns == first_mtime, "restart redid a done job"
    assert [r["state"] for r in store_rows(folder)] == ["done", "done"]
    log = (folder / "out" / "logs" / "style-daemon.log").read_text()
    assert "job 1: start chelsea.png" in log and "job 1: done" in log and "queue drained" in log
    assert "job 2: iter 5/5" in log


def test_slow_writer_is_not_taken_before_it_finishes(folder):
    config = write_config(folder, watch={"settle_seconds": 1.5, "rescan_seconds": 300})
    daemon = Daemon(config)
    daemon.wait_ready()
    data = (CONTENT / "tubingen.jpg").read_bytes()
    target = folder / "in" / "slow.jpg"
    with open(target, "wb") as handle:  # written in place, in chunks, over about 4 s
        for start in range(0, len(data), len(data) // 8 + 1):
            handle.write(data[start:start + len(data) // 8 + 1])
            handle.flush()
            time.sleep(0.5)
    finished = time.time()
    wait_until(lambda: done_jobs(folder), what="slow file processed")
    daemon.stop()
    rows = store_rows(folder)
    assert len(rows) == 1 and rows[0]["started"] >= finished
    assert not list((folder / "out" / "failed").glob("*")), "a partial file was taken"


def _distinct_images(folder, count):
    base = np.asarray(Image.open(CONTENT / "chelsea.png").convert("RGB").resize((48, 32)))
    for index in range(count):
        pixels = base.copy()
        pixels[0, 0] = (index % 256, index // 256, 7)  # one pixel differs: a different photo
        Image.fromarray(pixels).save(folder / f"p{index:03d}.png")


def test_200_files_dropped_at_once_each_processed_exactly_once(folder, tmp_path_factory, journal):
    config = write_config(folder, workers=2, engine={"iterations": 1, "max_size": 32, "scales": 1,
                                                      "backbone": "vgg16-hed"}, **journal)
    staging = tmp_path_factory.mktemp("staging")
    _distinct_images(staging, 200)
    daemon = Daemon(config, fake_delay=0.0)
    daemon.wait_ready()
    started = time.monotonic()
    for path in staging.iterdir():
        os.replace(path, folder / "in" / path.name)  # 200 moved in at once
    wait_until(lambda: len(done_jobs(folder)) == 200, timeout=300, interval=0.2, what="200 jobs done")
    elapsed = time.monotonic() - started
    daemon.stop()
    rows = store_rows(folder)
    assert len(rows) == 200 and {r["state"] for r in rows} == {"done"}
    assert {r["attempts"] for r in rows} == {1}, "a job ran twice"
    names = outputs(folder)
    assert len([n for n in names if n.endswith(".jpg")]) == 200
    print(f"\n200 files: {elapsed:.1f}s from drop to all done")


def test_duplicates_renames_and_changes(folder):
    config = write_config(folder)
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "rocket.jpg", folder / "in" / "rocket.jpg")
    wait_until(lambda: len(done_jobs(folder)) == 1, what="first job")
    drop(CONTENT / "rocket.jpg", folder / "in" / "renamed.jpg")  # same photo, new name
    wait_until(lambda: "renamed.jpg: this content was already handled" in daemon.output(), what="dedupe line")
    image = Image.open(CONTENT / "rocket.jpg")
    image.rotate(180).save(folder / "in" / "rocket.jpg.part", format="JPEG")
    os.replace(folder / "in" / "rocket.jpg.part", folder / "in" / "rocket.jpg")  # a changed photo
    wait_until(lambda: len(done_jobs(folder)) == 2, what="changed photo processed")
    daemon.stop()
    assert len(store_rows(folder)) == 2
    assert "renamed.starry.jpg" not in outputs(folder)


def _start_long_job(folder, iterations, delay, name="chelsea.png", journal=None):
    """A daemon whose one job runs `iterations` iterations of `delay` seconds; returns once it is running."""
    config = write_config(folder, engine={"iterations": iterations, "max_size": 64, "scales": 1,
                                          "backbone": "vgg16-hed"}, **(journal or {}))
    daemon = Daemon(config, fake_delay=delay)
    daemon.wait_ready()
    drop(CONTENT / name, folder / "in" / name)
    wait_until(lambda: any((r["progress_iteration"] or 0) >= 3 for r in store_rows(folder)), what="job running")
    return config, daemon


def test_kill_9_mid_job_then_restart_completes_once(folder, journal):
    config, daemon = _start_long_job(folder, 60, 0.1, "astronaut.png", journal)
    worker_pids = [r["pid"] for r in store_rows(folder, "SELECT pid FROM workers")]
    daemon.kill()
    # The worker dies with its supervisor: no orphan keeps working on the job.
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower()
                               for pid in worker_pids), timeout=10, what="worker gone")
    assert store_rows(folder)[0]["state"] == "running"
    assert not (folder / "out" / "astronaut.starry.jpg").exists()

    daemon = Daemon(config, fake_delay=0.01)
    daemon.wait_ready()
    wait_until(lambda: done_jobs(folder), what="job completed after restart")
    daemon.stop()
    assert "re-queued 1 job(s) interrupted" in daemon.output()
    assert outputs(folder) == ["astronaut.starry.jpg", "astronaut.starry.jpg.json"]
    assert not [p for p in (folder / "out").rglob(".*") if p.is_file()], "temp file left behind"
    assert len(store_rows(folder)) == 1


def test_bad_inputs_land_in_failed_and_good_ones_are_processed(folder):
    config = write_config(folder, max_input_pixels=20_000_000)
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    staging = folder / "staging"
    staging.mkdir()
    (staging / "empty.jpg").write_bytes(b"")
    data = (CONTENT / "tubingen.jpg").read_bytes()
    (staging / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (staging / "notes.jpg").write_text("not a photo\n")
    Image.new("L", (6000, 5000)).save(staging / "huge.png")
    drop(CONTENT / "coffee.png", staging / "good.png")
    for path in staging.iterdir():
        os.replace(path, inp / path.name)
    wait_until(lambda: len([r for r in store_rows(folder) if r["state"] in ("done", "failed")]) == 5,
               what="all five ended")
    assert daemon.proc.poll() is None, "daemon died"
    daemon.stop()
    failed = folder / "out" / "failed"
    reasons = {p.name.removesuffix(".error.txt"): p.read_text() for p in failed.glob("*.error.txt")}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "notes.jpg", "huge.png"}
    assert "empty (0 bytes)" in reasons["empty.jpg"] and "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "megapixels" in reasons["huge.png"]
    assert all("what to do:" in text for text in reasons.values())
    assert (failed / "notes.jpg").read_text() == "not a photo\n"  # a copy of the input beside it
    assert (inp / "notes.jpg").exists()  # copied, not moved, by default
    assert "good.starry.jpg" in outputs(folder)
    assert daemon.output().count("failed notes.jpg") == 1


def test_config_errors_exit_78_with_the_key_and_the_fix(folder):
    import subprocess
    import sys

    from tests.support.daemon import ROOT

    cases = [
        ({"enigne": {}}, "enigne: unknown key"),
        ({"engine": {"iterations": "many"}}, "engine.iterations"),
        ({"styles": {"x": {"images": [str(folder / "missing.jpg")]}}, "routing": {"default": ["x"]}},
         "styles.x.images.0"),
        ({"routing": {"default": ["nope"]}}, "unknown style set(s) nope"),
    ]
    for overrides, expected in cases:
        config = write_config(folder, **overrides)
        for command in ("check-config", "run"):
            done = subprocess.run([sys.executable, "-m", "daemon", command, "-c", str(config)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 78, (command, overrides, done.stderr)
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
            assert len(errors) == 1 and expected in errors[0], (expected, done.stderr)


def test_sighup_reloads_and_keeps_old_config_when_new_is_invalid(folder):
    config = write_config(folder)
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: len(done_jobs(folder)) == 1)
    good = config.read_text()
    config.write_text(good.replace("default:\n  - starry", "default:\n  - starry\n  - scream"))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: (folder / "out" / "chelsea.scream.jpg.json").exists(), what="new style set applied")
    config.write_text("styles: [this is: not valid")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed, keeping the old config" in daemon.output(), what="reload refusal")
    drop(CONTENT / "coffee.png", folder / "in" / "coffee.png")
    wait_until(lambda: (folder / "out" / "coffee.scream.jpg.json").exists(), what="old config still serving")
    assert daemon.stop() == 0


def test_sigterm_mid_job_exits_0_quickly_and_requeues(folder):
    _, daemon = _start_long_job(folder, 1000, 0.05)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    # Quickly: well before the 50 s job would end, with room for a loaded machine.
    assert daemon.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 20
    assert store_rows(folder)[0]["state"] == "queued"
    assert "interrupted by shutdown; re-queued" in daemon.output()
    assert not (folder / "out" / "chelsea.starry.jpg").exists()


def test_subfolder_and_glob_routing_mirror_folders(folder):
    config = write_config(folder, routing={"default": ["starry"], "subfolders": True,
                                           "rules": [{"glob": "portraits/*", "styles": ["scream", "starry"]}]})
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "scream" / "cat.png")
    drop(CONTENT / "astronaut.png", folder / "in" / "portraits" / "eileen.png")
    drop(CONTENT / "coffee.png", folder / "in" / "misc" / "coffee.png")
    wait_until(lambda: len(done_jobs(folder)) == 4, what="four jobs")
    daemon.stop()
    assert [n for n in outputs(folder) if n.endswith(".jpg")] == [
        "misc/coffee.starry.jpg", "portraits/eileen.scream.jpg", "portraits/eileen.starry.jpg",
        "scream/cat.scream.jpg"]


def _window(hours_from_now: int) -> dict:
    """A one-hour (or, for hours_from_now < 0, a three-hour open-now) schedule window."""
    hour = time.localtime().tm_hour
    if hours_from_now < 0:
        return {"start": f"{(hour - 1) % 24:02d}:00", "end": f"{(hour + 2) % 24:02d}:00"}
    return {"start": f"{(hour + hours_from_now) % 24:02d}:00", "end": f"{(hour + hours_from_now + 1) % 24:02d}:00"}


def test_schedule_window_holds_jobs_until_open(folder):
    closed = _window(hours_from_now=2)
    config = write_config(folder, schedule=closed)
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: store_rows(folder), what="job queued")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert store_rows(folder)[0]["state"] == "queued"
        time.sleep(0.1)
    text = config.read_text()
    import yaml

    data = yaml.safe_load(text)
    data["schedule"] = _window(hours_from_now=-1)
    config.write_text(yaml.safe_dump(data))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: done_jobs(folder), what="job ran once the window opened")
    daemon.stop()


@pytest.mark.parametrize("action", ["move", "delete"])
def test_inputs_moved_or_deleted_only_after_success(folder, action):
    config = write_config(folder, after_success=action, routing={"default": ["starry", "scream"]},
                          engine={"iterations": 20, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=0.05)
    daemon.wait_ready()
    source = drop(CONTENT / "coffee.png", folder / "in" / "coffee.png")
    wait_until(lambda: len(done_jobs(folder)) == 1, what="first of two jobs")
    assert source.exists(), "input removed before all its outputs were written"
    wait_until(lambda: not source.exists(), what="input released")
    assert len(done_jobs(folder)) == 2
    assert (folder / "out" / "coffee.starry.jpg").exists() and (folder / "out" / "coffee.scream.jpg").exists()
    moved = folder / "out" / "processed" / "coffee.png"
    assert moved.exists() == (action == "move")
    daemon.stop()


def test_ignored_files_and_output_inside_input_do_not_loop(folder):
    config = write_config(folder, output="in/results")
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    for name in (".hidden.jpg", "photo.jpg.part", "photo.jpg.crdownload", "._photo.jpg", "notes.txt",
                 ".syncthing.photo.jpg.tmp", "photo.jpg~"):
        (inp / name).write_bytes((CONTENT / "rocket.jpg").read_bytes())
    os.symlink(CONTENT / "coffee.png", inp / "link-outside.png")
    drop(CONTENT / "rocket.jpg", inp / "rocket.jpg")
    wait_until(lambda: len(done_jobs(folder)) == 1, what="the one real photo")
    # A second photo, dropped after the first outputs were written, settles after them: once it is
    # done, any output taken for a new photo would be in the journal too.
    drop(CONTENT / "coffee.png", inp / "coffee.png")
    wait_until(lambda: len(done_jobs(folder)) == 2, what="the second photo")
    daemon.stop()
    assert [r["rel_path"] for r in store_rows(folder)] == ["rocket.jpg", "coffee.png"]
    assert (inp / "results" / "rocket.starry.jpg").exists()


def test_transient_errors_are_retried_with_backoff(folder):
    # EAGAIN: transient but not the environment's known faults (those wait without counting, see
    # tests/test_trust_process.py), so each try counts.
    config = write_config(folder)
    daemon = Daemon(config, env={"STYLE_DAEMON_FAKE_FAULT": "EAGAIN", "STYLE_DAEMON_FAKE_FAULT_TIMES": "2"})
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: done_jobs(folder), what="done after two retries")
    daemon.stop()
    assert done_jobs(folder)[0]["attempts"] == 3
    assert daemon.output().count("Resource temporarily unavailable; retry") == 2


def test_transient_errors_fail_after_max_attempts(folder):
    config = write_config(folder, retries={"max_attempts": 2, "backoff_seconds": 0.2})
    daemon = Daemon(config, env={"STYLE_DAEMON_FAKE_FAULT": "EAGAIN", "STYLE_DAEMON_FAKE_FAULT_TIMES": "5"})
    daemon.wait_ready()
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: [r for r in store_rows(folder) if r["state"] == "failed"], what="failed for good")
    daemon.stop()
    assert (folder / "out" / "failed" / "chelsea.png.error.txt").exists()


def test_file_deleted_while_queued_is_dropped_quietly(folder):
    closed = _window(hours_from_now=2)
    config = write_config(folder, schedule=closed)
    daemon = Daemon(config)
    daemon.wait_ready()
    source = drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    wait_until(lambda: store_rows(folder), what="queued")
    source.unlink()
    import yaml

    data = yaml.safe_load(config.read_text())
    del data["schedule"]
    config.write_text(yaml.safe_dump(data))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "vanished or changed while queued" in daemon.output(), what="dropped")
    daemon.stop()
    assert store_rows(folder) == []
    assert "Traceback" not in daemon.output() and "ERROR" not in daemon.output()


def test_polling_observer_sees_new_files(folder):
    config = write_config(folder, watch={"mode": "polling", "poll_interval": 0.3, "settle_seconds": 0.5})
    daemon = Daemon(config)
    daemon.wait_ready()
    drop(CONTENT / "coffee.png", folder / "in" / "coffee.png")
    wait_until(lambda: done_jobs(folder), what="polling pick-up")
    daemon.stop()
    assert "(polling)" in daemon.output()


def test_once_processes_the_batch_and_reports_failures(folder):
    import subprocess
    import sys

    from tests.support.daemon import ROOT

    config = write_config(folder)
    drop(CONTENT / "chelsea.png", folder / "in" / "a.png")
    drop(CONTENT / "coffee.png", folder / "in" / "b.png")
    env = dict(os.environ, STYLE_DAEMON_FAKE_ENGINE="0")
    done = subprocess.run([sys.executable, "-m", "daemon", "once", "-c", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done_jobs(folder)) == 2
    (folder / "in" / "c.jpg").write_text("nope")
    done = subprocess.run([sys.executable, "-m", "daemon", "once", "-c", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "failed c.jpg" in done.stderr


def test_status_shows_queue_running_job_and_errors(folder):
    import json
    import subprocess
    import sys

    from tests.support.daemon import ROOT

    config = write_config(folder, engine={"iterations": 400, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=0.05)
    daemon.wait_ready()
    (folder / "in" / "broken.jpg").write_text("x")
    wait_until(lambda: [r for r in store_rows(folder) if r["state"] == "failed"], what="failure recorded")
    drop(CONTENT / "chelsea.png", folder / "in" / "chelsea.png")
    drop(CONTENT / "coffee.png", folder / "in" / "coffee.png")
    wait_until(lambda: any((r["progress_iteration"] or 0) >= 5 for r in store_rows(folder)), what="running")

    def status(*extra):
        return subprocess.run([sys.executable, "-m", "daemon", "status", "-c", str(config), *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    report = json.loads(status("--json").stdout)
    assert report["queued"] == 1 and report["running"] == 1 and report["failed"] == 1
    job = report["running_jobs"][0]
    assert job["input"] == "chelsea.png" and job["total"] == 400 and 0 < job["iteration"] < 400
    assert job["eta_seconds"] > 0 and report["last_errors"][0]["input"] == "broken.jpg"
    text = status().stdout
    assert "queued 1   running 1" in text and "running  #2 chelsea.png [starry] iter" in text
    assert "failed   #1 broken.jpg" in text
    daemon.stop()


@pytest.mark.engine
def test_real_engine_end_to_end(folder):
    """The service with the real Keras engine (offline backbone, tiny size): result, sidecar, failure."""
    import json

    config = write_config(folder, engine={"iterations": 8, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=None)
    daemon.wait_ready(timeout=120)
    drop(CONTENT / "rocket.jpg", folder / "in" / "rocket.jpg")
    (folder / "in" / "bad.jpg").write_bytes(b"")
    wait_until(lambda: len([r for r in store_rows(folder) if r["state"] in ("done", "failed")]) == 2,
               timeout=120, what="real jobs ended")
    assert daemon.stop() == 0
    doc = json.loads((folder / "out" / "rocket.starry.jpg.json").read_text())
    assert doc["backbone"]["name"] == "vgg16-hed" and doc["keras_backend"] == "tensorflow"
    assert doc["style_set"] == "starry" and doc["result"]["iterations"] == 8
    import hashlib

    assert doc["content"]["sha256"] == hashlib.sha256((CONTENT / "rocket.jpg").read_bytes()).hexdigest()
    assert Image.open(folder / "out" / "rocket.starry.jpg").size == (64, 43)
    assert (folder / "out" / "failed" / "bad.jpg.error.txt").exists()
