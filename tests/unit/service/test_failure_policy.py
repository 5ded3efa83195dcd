"""The one failure policy over the class of exceptions a job can raise: every branch of classify, and the one
backoff formula (grows with n, starts at backoff_seconds, never above max_wait_seconds, never 0 for a wait);
every kind of broken style image is the style set's fault, and its fingerprint neither crashes nor goes stale."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path

import pytest

from daemon.config import Config, load_config
from daemon.config.sections import Retries
from daemon.errors import (BadInputError, ConfigError, LeaseLost, ResourceError, StopRequested, StyleUnavailable,
                           UnsafeInputError, WeightsError)
from daemon.media.style_images import load_style_image, style_problem
from daemon.service.failure_policy import WAIT_FLOOR_SECONDS, Verdict, backoff_delay, classify
from daemon.service.fingerprint import UNAVAILABLE, style_fingerprints
from daemon.store import Job
from tests.support import STYLE
from tests.support.daemon import write_config


@pytest.fixture
def config(tmp_path) -> Config:
    painting = tmp_path / "paintings" / "starry.jpg"
    painting.parent.mkdir()
    shutil.copyfile(STYLE / "starry_night.jpg", painting)
    path = write_config(tmp_path, styles={"starry": {"images": [str(painting)]}},
                        retries={"max_attempts": 3, "backoff_seconds": 2.0, "max_wait_seconds": 60.0})
    return load_config(path, create_folders=True)


def job(attempts: int = 1, style_set: str = "starry") -> Job:
    return Job(content_sha="0" * 64, style_set=style_set, params_hash="p", source_path="/in/a.png",
               rel_path="a.png", output_path="/out/a.starry.jpg", id=7, state="running", attempts=attempts,
               error=None, created=0.0, updated=0.0, started=0.0, finished=None, next_attempt=0.0, worker="w0",
               heartbeat=None, progress_iteration=None, progress_total=None, progress_loss=None, progress_eta=None,
               seconds=None)


def painting(config: Config) -> Path:
    return config.styles["starry"].images[0].path


# -- outcomes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [StopRequested("stop asked"), LeaseLost("claim lapsed")])
def test_stop_and_lost_lease_requeue_without_delay(config, exc):
    verdict = classify(exc, job(attempts=3), config)
    assert verdict.outcome == "requeue" and verdict.delay == 0


def _style_faults(config: Config) -> list[BaseException]:
    path = painting(config)
    return [StyleUnavailable("starry", str(path), "is empty (0 bytes)"),
            FileNotFoundError(errno.ENOENT, "No such file or directory", str(path)),
            IsADirectoryError(errno.EISDIR, "Is a directory", str(path)),
            PermissionError(errno.EACCES, "Permission denied", str(path))]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("attempts", [1, 3, 10])
def test_a_style_image_fault_waits_naming_the_set_whatever_the_attempts(config, index, attempts):
    verdict = classify(_style_faults(config)[index], job(attempts), config)
    assert verdict.outcome == "wait" and verdict.key == "style:starry"
    assert verdict.reason.startswith("waiting: style set starry unavailable: ") and str(painting(config)) in \
        verdict.reason
    assert verdict.delay == 2.0


def _environment_faults(config: Config) -> list[BaseException]:
    out = str(config.output / "a.starry.jpg")
    faults: list[BaseException] = [OSError(code, os.strerror(code), out) for code in
                                   (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)]
    faults.append(OSError(errno.ENOSPC, "No space left on device"))  # no file named: the output, as writes go
    faults.append(OSError(errno.EIO, "I/O error", str(config.state / "journal.sqlite3")))
    faults.append(RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor"))
    faults.append(WeightsError("weights /w/vgg.h5 cannot be read; fetch them again"))
    return faults


@pytest.mark.parametrize("index", range(10))
@pytest.mark.parametrize("attempts", [1, 3, 10])
def test_the_environment_waits_without_using_attempts(config, index, attempts):
    verdict = classify(_environment_faults(config)[index], job(attempts), config)
    assert verdict.outcome == "wait" and verdict.key and verdict.reason.startswith("waiting: ")
    assert "resumes by itself" in verdict.reason


@pytest.mark.parametrize("exc", [
    BadInputError("a.png: not an image Pillow can read; check the file"),
    BadInputError("a.png: photo is too small (10x10 px); use a larger photo"),
    UnsafeInputError("a.png: is a symbolic link; it is never read"),
    ResourceError("the job does not fit in memory; lower engine.max_size"),
    ConfigError("output a.gif must end in .jpg, .png or .webp"),
])
@pytest.mark.parametrize("attempts", [1, 3])
def test_the_photos_fault_fails_at_once_with_its_own_line(config, exc, attempts):
    verdict = classify(exc, job(attempts), config)
    assert verdict == Verdict("failed", 0.0, str(exc))


def _retryable(config: Config) -> list[BaseException]:
    photo = str(config.input / "a.png")  # reading the photo failed: not one of our folders
    return [OSError(errno.EACCES, "Permission denied", photo), OSError(errno.EIO, "I/O error", photo),
            BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
            RuntimeError("something unexpected"), KeyError("x"), ZeroDivisionError("division by zero")]


@pytest.mark.parametrize("index", range(6))
def test_transient_and_unexpected_errors_retry_counting_attempts_then_fail(config, index):
    exc = _retryable(config)[index]
    delays = []
    for attempts in (1, 2):
        verdict = classify(exc, job(attempts), config)
        assert verdict.outcome == "retry" and verdict.key == ""
        delays.append(verdict.delay)
    assert delays == [2.0, 4.0]  # backoff_seconds * 2**(attempts-1)
    last = classify(exc, job(3), config)
    assert last.outcome == "failed" and last.delay == 0
    unexpected = not isinstance(exc, OSError)
    assert ("unexpected error" in last.reason) == unexpected, last.reason
    assert "\n" not in last.reason


def test_an_oserror_on_another_sets_style_image_is_not_this_sets_fault(config, tmp_path):
    other = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "elsewhere.jpg"))
    assert classify(other, job(1), config).outcome == "retry"
    assert classify(other, job(1, style_set="removed"), config).outcome == "retry"


def test_the_verdict_is_a_frozen_record(config):
    verdict = classify(StopRequested("stop"), job(), config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.outcome = "failed"  # type: ignore[misc]


# -- the backoff formula ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backoff, cap", [(0.5, 300.0), (2.0, 60.0), (30.0, 300.0), (1000.0, 10.0), (0.0, 5.0)])
def test_backoff_grows_from_backoff_seconds_and_never_passes_the_cap(backoff, cap):
    retries = Retries(backoff_seconds=backoff, max_wait_seconds=cap)
    delays = [backoff_delay(retries, n) for n in range(200)]
    assert delays[0] == min(cap, backoff)
    assert all(a <= b for a, b in zip(delays, delays[1:])), "not monotone"
    assert max(delays) <= cap and delays[-1] == (cap if backoff else 0.0)
    assert all(d == min(cap, backoff * 2 ** n) for n, d in enumerate(delays[:40]))
    assert backoff_delay(retries, -3) == delays[0]  # a count below 0 is the first try


def test_a_wait_never_spins_even_with_a_zero_backoff(config):
    retries = Retries(backoff_seconds=0.0, max_wait_seconds=60.0)
    assert backoff_delay(retries, 0, WAIT_FLOOR_SECONDS) == WAIT_FLOOR_SECONDS
    zero = config.model_copy(update={"retries": retries})
    waits = [classify(_style_faults(config)[0], job(), zero, waits=n).delay for n in range(12)]
    assert waits[0] == WAIT_FLOOR_SECONDS and waits[-1] == 60.0
    assert all(a <= b for a, b in zip(waits, waits[1:]))


def test_a_wait_grows_with_the_waits_in_a_row(config):
    delays = [classify(OSError(errno.ENOSPC, "full"), job(), config, waits=n).delay for n in range(10)]
    assert delays[:5] == [2.0, 4.0, 8.0, 16.0, 32.0] and delays[5:] == [60.0] * 5


# -- a style image, read as the configuration's file -------------------------------------------------------

BREAKS = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "garbage": (lambda p: p.write_bytes(b"not an image" * 100), "is not a readable image"),
    "truncated": (lambda p: p.write_bytes((STYLE / "starry_night.jpg").read_bytes()[:4000]),
                  "is not a readable image"),
    "deleted": (lambda p: p.unlink(), "is missing"),
    "folder": (lambda p: (p.unlink(), p.mkdir()), "is a folder"),
    "pipe": (lambda p: (p.unlink(), os.mkfifo(p)), "is not a regular file"),
}


@pytest.mark.parametrize("fault", list(BREAKS))
def test_every_broken_style_image_is_the_sets_fault_and_hashing_it_does_not_crash(config, fault):
    path = painting(config)
    good = style_fingerprints(config)["starry"]
    assert style_problem(path, "starry") is None
    breaks, words = BREAKS[fault]
    breaks(path)
    with pytest.raises(StyleUnavailable) as raised:
        load_style_image(path, "starry")
    message = str(raised.value)
    assert message.startswith(f"style set starry unavailable: style image {path} {words}"), message
    assert "restore the file" in message and "photo" not in message.split(";")[0] and "\n" not in message
    assert classify(raised.value, job(3), config).outcome == "wait"
    assert style_problem(path, None) is not None and "style set" not in str(style_problem(path, None))
    broken = style_fingerprints(config)  # a worker starting or reloading now: no crash, no stale fingerprint
    assert broken["starry"] == UNAVAILABLE and broken["starry"] == UNAVAILABLE
    if path.is_dir():
        path.rmdir()
    path.unlink(missing_ok=True)  # a pipe: copyfile would write into it
    shutil.copyfile(STYLE / "starry_night.jpg", path)  # restored: the same mapping now says the real one
    assert broken["starry"] == good and style_fingerprints(config)["starry"] == good
    with pytest.raises(KeyError):
        broken["no-such-set"]
