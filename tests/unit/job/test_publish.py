"""The publish unit (job/publish.py): its intent's payload, publishing, and reconciling every state a crash
can leave the files in - nothing, the image alone, the image with its sidecar, another result under the
name - each run twice (reconciling is itself a crash point)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from daemon.job.publish import PublishPayload, find_published, make_payload, publish_unit, reconcile_publish
from daemon.job.sidecar import read_sidecar_key, sidecar_path

IMAGE = b"\xff\xd8 the encoded result \xff\xd9"


def _document(generation: int = 0, sha: str = "c" * 64) -> dict:
    return {"output": "", "content": {"path": "/in/a.png", "sha256": sha}, "style_set": "starry",
            "params_hash": "p" * 16, "generation": generation, "result": {"seconds": 1.5}}


def _payload(folder: Path, data: bytes = IMAGE, **document) -> PublishPayload:
    return make_payload(folder / "a.starry.jpg", data, _document(**document))


def _write_sidecar(image: Path, document: dict) -> None:
    sidecar_path(image).write_text(json.dumps(dict(document, output=str(image))))


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_the_payload_goes_through_json_unchanged(tmp_path):
    payload = _payload(tmp_path)
    assert PublishPayload.from_json(payload.to_json()) == payload
    assert payload.image_size == len(IMAGE)


_SHA = "a" * 64


@pytest.mark.parametrize("text", [
    "{}", "[]", "null", '"text"', "not json",
    '{"requested": "x", "image_sha256": "short", "image_size": 1, "sidecar": {}}',
    '{"requested": 1, "image_sha256": "%s", "image_size": 1, "sidecar": {}}' % _SHA,
    '{"requested": "x", "image_sha256": "%s", "image_size": "12", "sidecar": {}}' % _SHA,
    '{"requested": "x", "image_sha256": "%s", "image_size": true, "sidecar": {}}' % _SHA,
    '{"requested": "x", "image_sha256": "%s", "image_size": 1.5, "sidecar": {}}' % _SHA,
    '{"requested": "x", "image_sha256": "%s", "image_size": 1, "sidecar": [["a", 1]]}' % _SHA,
    '{"requested": "x", "image_sha256": "%s", "image_size": 1, "sidecar": null}' % _SHA,
])
def test_a_payload_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        PublishPayload.from_json(text)


def test_publish_records_the_intent_before_anything_is_linked(tmp_path):
    payload = _payload(tmp_path)
    seen = []

    def before_link(text: str) -> None:
        seen.append((text, _visible(tmp_path)))

    published = publish_unit(IMAGE, payload, [tmp_path / "a.starry.jpg"], before_link)
    assert seen == [(payload.to_json(), [])]
    assert published.output.read_bytes() == IMAGE
    assert json.loads(published.sidecar.read_text())["output"] == str(published.output)


def test_a_refused_intent_publishes_nothing(tmp_path):
    def refuse(text: str) -> None:
        raise RuntimeError("claim lapsed")

    with pytest.raises(RuntimeError):
        publish_unit(IMAGE, _payload(tmp_path), [tmp_path / "a.starry.jpg"], refuse)
    assert os.listdir(tmp_path) == []


def test_nothing_published_rolls_back(tmp_path):
    payload = _payload(tmp_path)
    for _ in range(2):
        assert reconcile_publish(payload) is None
    assert _visible(tmp_path) == []


def test_image_without_sidecar_gets_its_sidecar_from_the_intent(tmp_path):
    payload = _payload(tmp_path)
    image = tmp_path / "a.starry.jpg"
    image.write_bytes(IMAGE)
    for _ in range(2):
        assert reconcile_publish(payload) == image
    document = json.loads(sidecar_path(image).read_text())
    assert document == dict(payload.sidecar, output=str(image))
    assert _visible(tmp_path) == ["a.starry.jpg", "a.starry.jpg.json"]


def test_image_with_its_sidecar_is_complete_and_left_alone(tmp_path):
    payload = _payload(tmp_path)
    image = tmp_path / "a.starry.jpg"
    image.write_bytes(IMAGE)
    _write_sidecar(image, payload.sidecar)
    before = sidecar_path(image).stat().st_mtime_ns
    assert reconcile_publish(payload) == image
    assert sidecar_path(image).stat().st_mtime_ns == before


def test_another_image_under_the_name_is_not_adopted_the_variant_is(tmp_path):
    payload = _payload(tmp_path)
    other = tmp_path / "a.starry.jpg"
    other.write_bytes(b"someone else's photo")  # a person's file, or another job's result
    ours = tmp_path / "a.starry.2.jpg"
    ours.write_bytes(IMAGE)
    assert reconcile_publish(payload) == ours
    assert not sidecar_path(other).exists()
    assert sidecar_path(ours).exists()


def test_another_image_under_the_name_and_ours_missing_rolls_back(tmp_path):
    payload = _payload(tmp_path)
    (tmp_path / "a.starry.jpg").write_bytes(IMAGE + b"!")  # same size class, other bytes
    (tmp_path / "a.starry.2.jpg").write_bytes(IMAGE[:-1] + b"?")  # same size, other bytes
    assert reconcile_publish(payload) is None
    assert _visible(tmp_path) == ["a.starry.2.jpg", "a.starry.jpg"]


def test_the_same_bytes_with_another_jobs_sidecar_are_not_ours(tmp_path):
    """A redo of a deterministic engine makes the same bytes: the earlier generation's result is its own."""
    payload = _payload(tmp_path, generation=1)
    earlier = tmp_path / "a.starry.jpg"
    earlier.write_bytes(IMAGE)
    _write_sidecar(earlier, _document(generation=0))
    assert reconcile_publish(payload) is None
    assert read_sidecar_key(sidecar_path(earlier)).generation == 0


def test_a_name_held_by_another_job_is_not_looked_at(tmp_path):
    payload = _payload(tmp_path)
    held = tmp_path / "a.starry.jpg"
    held.write_bytes(IMAGE)
    assert find_published(payload, taken=lambda path: path == held) is None
    assert not sidecar_path(held).exists()


def test_a_link_with_the_bytes_is_not_a_result(tmp_path):
    payload = _payload(tmp_path)
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(IMAGE)
    (tmp_path / "a.starry.jpg").symlink_to(target)
    assert reconcile_publish(payload) is None
    assert not sidecar_path(tmp_path / "a.starry.jpg").exists()


@pytest.mark.parametrize("where", ["daemon.job.publish.os.listdir", "daemon.job.publish.sha256_file"])
def test_an_io_error_is_not_taken_for_nothing_published(tmp_path, monkeypatch, where):
    """EIO or a stale NFS handle while looking: no answer, so no rollback (that would make a second result)."""
    payload = _payload(tmp_path)
    (tmp_path / "a.starry.jpg").write_bytes(IMAGE)

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(where, broken)
    with pytest.raises(OSError):
        reconcile_publish(payload)
    assert not sidecar_path(tmp_path / "a.starry.jpg").exists()


def test_a_missing_output_folder_is_nothing_published(tmp_path):
    assert reconcile_publish(_payload(tmp_path / "gone")) is None
