"""Reconciling a publish intent against a real SQLite job store: the job ends done with the result found or
completed, or queued again without using an attempt, and the intent is cleared - twice in a row too."""

from __future__ import annotations

import json
import threading

import pytest

from daemon.config import load_config
from daemon.job.publish import make_payload
from daemon.job.sidecar import sidecar_path
from daemon.service.job_failures import JobFailures
from daemon.service.job_life import JobLife
from daemon.service.reconcile import reconcile_all
from daemon.service.step_plan import FailPlan
from daemon.store import JobSpec, SqliteStore
from tests.support import wait_until
from tests.support.daemon import write_config

IMAGE = b"encoded result bytes"


@pytest.fixture
def setting(tmp_path):
    config = load_config(write_config(tmp_path), create_folders=True)
    store = SqliteStore(tmp_path / "store.sqlite3")
    output = config.output / "a.starry.jpg"
    store.enqueue(JobSpec("c" * 64, "starry", "p", str(config.input / "a.png"), "a.png", str(output)))
    job = store.claim("w0:1")
    document = {"output": "", "content": {"path": str(config.input / "a.png"), "sha256": "c" * 64},
                "style_set": "starry", "params_hash": "p", "generation": 0, "result": {"seconds": 2.5}}
    payload = make_payload(output, IMAGE, document)
    store.record_intent(job.id, "publish", payload.to_json())
    yield config, store, job, output
    store.close()


@pytest.mark.parametrize("files", ["image", "image_and_sidecar"])
def test_a_found_result_makes_the_job_done(setting, files):
    config, store, job, output = setting
    output.write_bytes(IMAGE)
    if files == "image_and_sidecar":
        sidecar_path(output).write_text(json.dumps({"content": {"sha256": "c" * 64}, "style_set": "starry",
                                                    "params_hash": "p", "generation": 0}))
    for _ in range(2):
        reconcile_all(config, store)
    done = store.get(job.id)
    assert (done.state, done.output_path, done.seconds) == ("done", str(output), 2.5)
    assert json.loads(sidecar_path(output).read_text())["content"]["sha256"] == "c" * 64
    assert store.intents() == []


def test_no_result_queues_the_job_again_without_using_an_attempt(setting):
    config, store, job, output = setting
    assert job.attempts == 1
    for _ in range(2):
        reconcile_all(config, store)
    again = store.get(job.id)
    assert (again.state, again.attempts) == ("queued", 0)
    assert store.intents() == []
    assert not output.exists()


def test_a_result_recorded_before_the_crash_only_clears_the_intent(setting):
    config, store, job, output = setting
    output.write_bytes(IMAGE)
    sidecar_path(output).write_text(json.dumps({"content": {"sha256": "c" * 64}, "style_set": "starry",
                                                "params_hash": "p", "generation": 0}))
    store.finish(job.id, 1.0, str(output))
    reconcile_all(config, store)
    assert store.get(job.id).seconds == 1.0
    assert store.intents() == []


def test_an_unreadable_intent_is_dropped(setting):
    config, store, job, output = setting
    store.clear_intent(store.intents()[0].id)
    store.record_intent(job.id, "publish", "not json")
    reconcile_all(config, store)
    assert store.intents() == []
    assert store.get(job.id).state == "running"


def test_a_sidecar_that_cannot_be_written_leaves_the_intent_for_later(setting, monkeypatch):
    config, store, job, output = setting
    output.write_bytes(IMAGE)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("daemon.job.publish.write_sidecar", full)
    assert reconcile_all(config, store) == 0
    assert [i.step for i in store.intents()] == ["publish"]
    assert store.get(job.id).state == "running"


@pytest.mark.parametrize("published", [True, False])
def test_a_worker_claiming_a_job_with_an_open_intent_settles_it_first(tmp_path, published):
    """A shared store: another machine's worker died while publishing; the next claim settles its intent."""
    config = load_config(write_config(tmp_path), create_folders=True)
    store = SqliteStore(tmp_path / "store.sqlite3")
    output = config.output / "a.starry.jpg"
    job = store.enqueue(JobSpec("c" * 64, "starry", "p", str(config.input / "a.png"), "a.png", str(output)))
    document = {"output": "", "content": {"path": str(config.input / "a.png"), "sha256": "c" * 64},
                "style_set": "starry", "params_hash": "p", "generation": 0, "result": {"seconds": 2.5}}
    store.record_intent(job.id, "publish", make_payload(output, IMAGE, document).to_json())
    if published:
        output.write_bytes(IMAGE)
    galleries = []
    life = JobLife(store, "w0:1", threading.Event(), JobFailures(store, lambda: config, lambda: None),
                   lambda: galleries.append(1))
    assert life.claim(config) is None  # nothing to run now: settled one way or the other
    settled = store.get(job.id)
    assert (settled.state, settled.attempts) == (("done", 1) if published else ("queued", 0))
    assert store.intents() == []
    assert galleries == ([1] if published else [])  # a result recorded: the gallery shows it
    if not published:
        assert life.claim(config).id == job.id  # and runs again, as a fresh attempt
    store.close()


def test_an_io_error_while_looking_leaves_the_intent_open(setting, monkeypatch):
    """EIO on the output folder at start: not "nothing published" (no rollback, no second result later)."""
    config, store, job, output = setting
    output.write_bytes(IMAGE)

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("daemon.job.publish.sha256_file", broken)
    assert reconcile_all(config, store) == 0
    assert [i.step for i in store.intents()] == ["publish"]
    assert (store.get(job.id).state, store.get(job.id).attempts) == ("running", 1)


def test_an_intent_whose_handler_raises_is_left_open_and_the_others_settled(setting, monkeypatch, caplog):
    """A bug or a malformed payload in one intent: logged with its traceback, never a crash loop at start."""
    config, store, job, output = setting
    other = store.enqueue(JobSpec("d" * 64, "starry", "p", str(config.input / "b.png"), "b.png",
                                  str(config.output / "b.starry.jpg")))
    store.record_intent(other.id, "release", "{}")

    def bug(*args, **kwargs):
        raise TypeError("a malformed payload")

    monkeypatch.setattr("daemon.service.reconcile.reconcile_release", bug)
    assert reconcile_all(config, store) == 1  # the publish intent settled all the same
    assert [(i.job_id, i.step) for i in store.intents()] == [(other.id, "release")]
    assert any(r.exc_info for r in caplog.records if "could not be settled" in r.getMessage())


def test_an_intent_of_an_unknown_step_is_dropped_once(setting, caplog):
    """Nothing here settles it, and it would hold its job back forever: said once, dropped."""
    config, store, job, output = setting
    store.clear_intent(store.intents()[0].id)
    store.record_intent(job.id, "mystery", "{}")
    assert reconcile_all(config, store) == 1
    assert store.intents() == []
    assert reconcile_all(config, store) == 0
    assert sum("mystery" in r.getMessage() for r in caplog.records) == 1


def test_a_claim_does_not_wait_forever_on_an_unknown_step(tmp_path):
    config = load_config(write_config(tmp_path), create_folders=True)
    store = SqliteStore(tmp_path / "store.sqlite3")
    job = store.enqueue(JobSpec("c" * 64, "starry", "p", str(config.input / "a.png"), "a.png",
                                str(config.output / "a.starry.jpg")))
    store.record_intent(job.id, "mystery", "{}")
    life = JobLife(store, "w0:1", threading.Event(), JobFailures(store, lambda: config, lambda: None), lambda: None)
    assert life.claim(config).id == job.id
    store.close()


@pytest.mark.parametrize("where", ["claim", "start"])
def test_a_settled_fail_intent_fails_its_job(tmp_path, where):
    """The failure was being filed when the worker died: filed now, and the job failed - never run again."""
    config = load_config(write_config(tmp_path), create_folders=True)
    store = SqliteStore(tmp_path / "store.sqlite3")
    photo = config.input / "a.png"
    photo.write_bytes(b"a photo that crashes the engine")
    job = store.enqueue(JobSpec("c" * 64, "starry", "p", str(photo), "a.png", str(config.output / "a.starry.jpg")))
    plan = FailPlan(str(photo), "starry", "copy", str(config.failed_dir / "a.png"),
                    "file: a.png\nerror: it crashes the engine\n", f"{job.id}-abcd", None, 1)
    config.failed_dir.mkdir(parents=True, exist_ok=True)
    if where == "claim":  # another machine's worker died filing it; this one claims the job
        store.record_intent(job.id, "fail", plan.to_json())
        life = JobLife(store, "w0:1", threading.Event(), JobFailures(store, lambda: config, lambda: None),
                       lambda: None)
        assert life.claim(config) is None
    else:  # this machine's service restarts after a crash
        store.claim("w0:1")
        store.record_intent(job.id, "fail", plan.to_json())
        reconcile_all(config, store)
    failed = store.get(job.id)
    assert (failed.state, failed.error) == ("failed", "it crashes the engine")
    assert store.intents() == []
    assert (config.failed_dir / "a.png.error.txt").exists() or any(config.failed_dir.glob("*.error.txt"))
    store.close()


@pytest.mark.parametrize("race", [False, True])
def test_an_intent_of_a_job_another_machine_runs_now_is_left_to_it(tmp_path, pg_cluster, monkeypatch, race):
    """PostgreSQL, two machines: a's worker died publishing, its lease lapsed and b claimed the job; a restarts.
    a must not record the job done without b's lease (a silent no-op), release its input, nor clear the intent
    b's claim needs: b settles it. `race`: b claims just after a looked - a sees finish did not take and stops."""
    from daemon.store import StoreTarget
    from daemon.store.postgres import PostgresStore

    url = pg_cluster.new_database()
    config = load_config(write_config(tmp_path, after_success="delete"), create_folders=True)
    photo = config.input / "a.png"
    photo.write_bytes(b"the photo")
    output = config.output / "a.starry.jpg"
    a = PostgresStore(StoreTarget(url, machine="a", lease_seconds=0.2))
    b = PostgresStore(StoreTarget(url, machine="b"))
    job = a.enqueue(JobSpec("c" * 64, "starry", "p", str(photo), "a.png", str(output)))
    a.claim("w0:1")
    document = {"output": "", "content": {"path": str(photo), "sha256": "c" * 64}, "style_set": "starry",
                "params_hash": "p", "generation": 0, "result": {"seconds": 2.5}}
    a.record_intent(job.id, "publish", make_payload(output, IMAGE, document).to_json())
    output.write_bytes(IMAGE)
    a.close()  # a's service dies
    wait_until(lambda: b.claim("w0:2"), timeout=10, what="b claims the lapsed job")
    restarted = PostgresStore(StoreTarget(url, machine="a"))
    if race:
        monkeypatch.setattr("daemon.service.reconcile.runs_elsewhere", lambda store, job: False)
    assert reconcile_all(config, restarted) == 0
    monkeypatch.undo()
    running = restarted.get(job.id)
    assert (running.state, running.machine) == ("running", "b")
    assert [i.step for i in restarted.intents()] == ["publish"]
    assert photo.exists()
    assert reconcile_all(config, b, job.id) == 1  # b's claim settles it, under its lease
    assert (b.get(job.id).state, b.intents(job.id)) == ("done", [])
    restarted.close()
    b.close()
