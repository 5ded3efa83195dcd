"""A dead worker's job settled by the supervisor (service/worker_deaths.py) against a real SQLite job store and
real files: an interrupted step that cannot be settled makes the job wait (the death not counted, never
failed while its result may be in the output folder), and a job failed at max_attempts has its failed/
entry filed before it is marked failed (one rule with job_failures: fail_job)."""

from __future__ import annotations

import pytest

from daemon.config import load_config
from daemon.job.publish import make_payload
from daemon.review.status import WAITING_PREFIX
from daemon.service import job_failures
from daemon.service.worker_deaths import settle_dead_worker, settle_steps_left
from daemon.service.worker_pool import EndedWorker
from daemon.store import JobSpec, SqliteStore
from tests.support.daemon import write_config

IMAGE = b"encoded result bytes"
DEAD = EndedWorker(index=0, pid=4242, code=-9, restart_in=1.0)


@pytest.fixture
def setting(tmp_path):
    config = load_config(write_config(tmp_path), create_folders=True)
    store = SqliteStore(tmp_path / "store.sqlite3")
    photo = config.input / "a.png"
    photo.write_bytes(b"not really a png, but a photo's bytes")
    output = config.output / "a.starry.jpg"
    store.enqueue(JobSpec("c" * 64, "starry", "p", str(photo), "a.png", str(output)))
    yield config, store, output
    store.close()


def _claim_at_max(config, store):
    """The job claimed by the dead worker on its last allowed attempt."""
    for _ in range(config.retries.max_attempts - 1):
        store.retry_later(store.claim("w9:1").id, "earlier death", 0)
    job = store.claim("w0:4242")
    assert job.attempts == config.retries.max_attempts
    return job


def test_an_unsettled_step_makes_the_job_wait_not_fail(setting, monkeypatch):
    config, store, output = setting
    job = _claim_at_max(config, store)
    document = {"output": "", "content": {"sha256": "c" * 64}, "style_set": "starry", "params_hash": "p",
                "generation": 0, "result": {"seconds": 1.0}}
    store.record_intent(job.id, "publish", make_payload(output, IMAGE, document).to_json())
    output.write_bytes(IMAGE)  # the result is there; its sidecar cannot be written now

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("daemon.job.publish.write_sidecar", full)
    settle_dead_worker(config, store, DEAD)
    after = store.get(job.id)
    assert (after.state, after.attempts) == ("queued", job.attempts - 1)
    assert after.error.startswith(WAITING_PREFIX)
    assert [i.step for i in store.intents()] == ["publish"]
    assert not config.failed_dir.exists() or list(config.failed_dir.iterdir()) == []


def test_a_job_failed_at_max_attempts_has_its_entry_filed_first(setting, monkeypatch):
    config, store, output = setting
    job = _claim_at_max(config, store)
    seen = []
    real_fail = store.fail

    def fail(job_id, error):
        seen.append(sorted(p.name for p in config.failed_dir.iterdir()))  # at the moment it is marked failed
        real_fail(job_id, error)

    monkeypatch.setattr(store, "fail", fail)
    settle_dead_worker(config, store, DEAD)
    assert store.get(job.id).state == "failed"
    assert seen and any(name.endswith(".error.txt") for name in seen[0])
    assert store.intents() == []


def test_both_failure_paths_use_the_one_rule(setting, monkeypatch):
    config, store, output = setting
    _claim_at_max(config, store)
    calls = []
    monkeypatch.setattr("daemon.service.worker_deaths.fail_job", lambda *a, **k: calls.append(a))
    settle_dead_worker(config, store, DEAD)
    assert len(calls) == 1
    assert job_failures.fail_job.__module__ == "daemon.service.job_failures"


def test_a_full_failed_folder_makes_the_job_wait(setting, monkeypatch):
    config, store, output = setting
    job = _claim_at_max(config, store)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("daemon.service.job_failures.record_failure", full)
    settle_dead_worker(config, store, DEAD)
    after = store.get(job.id)
    assert (after.state, after.attempts) == ("queued", job.attempts - 1)
    assert after.error.startswith(WAITING_PREFIX)


def test_a_step_left_that_raises_does_not_stop_the_supervisor(setting, monkeypatch):
    config, store, output = setting
    job = store.claim("w0:4242")
    store.finish(job.id, 1.0)
    broken = store.record_intent(job.id, "release", '{"pid": 4242, "source": 1}')

    def bug(*args, **kwargs):
        raise TypeError("a malformed payload")

    monkeypatch.setattr("daemon.service.reconcile.reconcile_release", bug)
    settle_steps_left(config, store, 4242)  # raises nothing
    assert [i.id for i in store.intents()] == [broken]  # left open, said with its traceback


def test_a_workers_failure_has_its_entry_filed_first_too(setting, monkeypatch):
    """The worker's own path (JobFailures.fail) keeps the same order."""
    config, store, output = setting
    job = store.claim("w0:1")
    seen = []
    real_fail = store.fail

    def fail(job_id, error):
        seen.append(sorted(p.name for p in config.failed_dir.iterdir()))
        real_fail(job_id, error)

    monkeypatch.setattr(store, "fail", fail)
    job_failures.JobFailures(store, lambda: config, lambda: None).fail(job, config.input / "a.png", "unreadable")
    assert store.get(job.id).state == "failed"
    assert seen and any(name.endswith(".error.txt") for name in seen[0])
