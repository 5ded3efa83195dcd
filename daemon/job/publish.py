"""Publishing a result as one unit: the image and its sidecar, the intent to publish recorded before either.

The protocol (docs/reliability.md, "How a result is published"):
1. the intent is handed to `before_link` (the daemon records it in its job store) before any name is taken;
2. the image is written to a hidden temp file, fsynced and linked under the first free name (never replacing);
3. the sidecar is written atomically beside it: the sidecar is the unit's commit mark, so a reader counts an
   image as a result only with its sidecar;
4. the caller records the job done, then clears the intent.
A crash anywhere leaves an intent that `reconcile_publish` completes (the image is there: the sidecar is
written from the intent) or rolls back (no image with the intent's sha256: the job runs again) - never a
second result.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from daemon.job.sidecar import read_sidecar_key, sidecar_path, write_sidecar
from daemon.media.atomic import publish_exclusive
from daemon.media.derived_names import DERIVED_ROOM, variants
from daemon.media.hashing import sha256_file
from daemon.media.path_text import display, from_text, to_text
from daemon.review.contact_sheet import sheet_path

log = logging.getLogger(__name__)

# How far past the folder's entry count reconciliation looks among numbered variants: names held by other
# jobs are skipped when a result is named, so a variant's number can exceed the entries in its folder.
_VARIANT_SLACK = 1000

# The errors that mean a name is not there (or its folder is not): any other OSError is no answer at all.
_ABSENT = (errno.ENOENT, errno.ENOTDIR)


# The sidecar's JSON document (job/sidecar.py build_sidecar) as JSON values: the intent stores it verbatim and
# reconciliation writes it back unchanged, so it is kept as the JSON object it is, not re-modelled here.
SidecarDocument = dict[str, object]


@dataclass(frozen=True)
class PublishPayload:
    """What the publish intent records: the name asked for, the image's bytes' identity and the sidecar."""

    requested: str  # the output path asked for, in the store's text form (media/path_text.py)
    image_sha256: str  # of the encoded bytes that get linked
    image_size: int
    sidecar: SidecarDocument  # the sidecar document; its "output" is filled once the name is known

    def to_json(self) -> str:
        """The payload as the JSON text an intent holds."""
        return json.dumps({"requested": self.requested, "image_sha256": self.image_sha256,
                           "image_size": self.image_size, "sidecar": self.sidecar})

    @classmethod
    def from_json(cls, text: str) -> PublishPayload:
        """The payload back from an intent's text; ValueError when it is not one (every field's type checked:
        a malformed payload is dropped with one line, never acted on half-read)."""
        data = json.loads(text)  # json.JSONDecodeError is a ValueError
        if not isinstance(data, dict):
            raise ValueError("not a publish intent: not a JSON object")
        requested, sha, size, sidecar = (data.get(key) for key in ("requested", "image_sha256", "image_size",
                                                                    "sidecar"))
        if not isinstance(requested, str) or not requested:
            raise ValueError("not a publish intent: no requested name")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ValueError("not a publish intent: no image sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("not a publish intent: no image size")
        if not isinstance(sidecar, dict):
            raise ValueError("not a publish intent: no sidecar document")
        return cls(requested, sha, size, sidecar)

    @property
    def requested_path(self) -> Path:
        """The output path asked for."""
        return from_text(self.requested)

    def document_for(self, output: Path) -> SidecarDocument:
        """The sidecar document for the image published as `output`."""
        document = copy.deepcopy(self.sidecar)
        document["output"] = to_text(output.absolute())
        return document


@dataclass(frozen=True)
class Published:
    """Where a result ended up: the image and its sidecar."""

    output: Path
    sidecar: Path


def make_payload(requested: Path, data: bytes, document: SidecarDocument) -> PublishPayload:
    """The intent's payload for publishing `data` as `requested` (or its first free variant) with `document`."""
    return PublishPayload(to_text(requested), hashlib.sha256(data).hexdigest(), len(data), document)


def occupied(path: Path) -> bool:
    """True if a result, its sidecar or its contact sheet already exists under this name."""
    return path.exists() or sidecar_path(path).exists() or sheet_path(path).exists()


def free_names(path: Path, taken: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """`path` and its numbered variants, skipping names whose sidecar or sheet exists or that `taken` holds.

    The result's own name is not checked here: publishing it fails rather than replace a file.
    """
    for candidate in variants(path, DERIVED_ROOM):
        if not (sidecar_path(candidate).exists() or sheet_path(candidate).exists()) and \
                not (taken and taken(candidate)):
            yield candidate


def publish_unit(data: bytes, payload: PublishPayload, names: Iterable[Path],
                 before_link: Callable[[str], None] | None = None) -> Published:
    """Publish the image `data` under the first free of `names`, then its sidecar; one unit (module docstring).

    `before_link` gets the payload's JSON before anything is linked; it raises to abort (nothing written).
    """
    if before_link is not None:
        before_link(payload.to_json())
    output = publish_exclusive(names, lambda handle: handle.write(data))
    return Published(output, write_sidecar(output, payload.document_for(output)))


def reconcile_publish(payload: PublishPayload, taken: Callable[[Path], bool] | None = None) -> Path | None:
    """Finish an interrupted publish: the result's path once complete, or None when nothing was published.

    Looks for the intent's image (its sha256) under the requested name and its numbered variants: found with
    its sidecar, the unit is complete; found without, the sidecar is written from the intent; not found, the
    publish is rolled back (nothing of it is left under a real name; the caller runs the job again).
    `taken` names results of other jobs, never adopted here. Idempotent: safe to run again after a crash.
    """
    output = find_published(payload, taken)
    if output is None:
        log.info("%s: the interrupted publish left no result; rolled back", display(payload.requested_path.name))
        return None
    if not sidecar_path(output).exists():
        write_sidecar(output, payload.document_for(output))
        log.info("%s: completed an interrupted publish (its sidecar written from the job store)",
                 display(output.name))
    return output


def find_published(payload: PublishPayload, taken: Callable[[Path], bool] | None = None) -> Path | None:
    """The image the intent published (its sha256, this job's sidecar or none), or None."""
    for candidate in _existing_variants(payload.requested_path):
        if taken is not None and taken(candidate):
            continue
        if _holds_image(candidate, payload) and _sidecar_is_ours(candidate, payload):
            return candidate
    return None


def _existing_variants(requested: Path) -> Iterator[Path]:
    """The requested name and its numbered variants that exist in its folder, in naming order."""
    try:
        present = set(os.listdir(requested.parent))
    except OSError as exc:
        if exc.errno in _ABSENT:
            return
        raise  # an I/O error is not "nothing published": the intent stays open, tried again later
    for number, candidate in enumerate(variants(requested, DERIVED_ROOM), start=1):
        if number > len(present) + _VARIANT_SLACK:
            return
        if candidate.name in present:
            yield candidate


def _holds_image(path: Path, payload: PublishPayload) -> bool:
    """True if `path` is a regular file (not a link) with the intent's image bytes.

    Only a name that is gone is "not it": any other error (EIO, a stale NFS handle) propagates, since taking
    it for "not published" would roll back a result that exists and make a second one.
    """
    try:
        info = os.lstat(path)
        return (stat.S_ISREG(info.st_mode) and info.st_size == payload.image_size
                and sha256_file(path) == payload.image_sha256)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return False
        raise


def _sidecar_is_ours(image: Path, payload: PublishPayload) -> bool:
    """True when the image has no sidecar yet, or one written for this job (another job's is not ours)."""
    sidecar = sidecar_path(image)
    if not os.path.lexists(sidecar):
        return True
    key = read_sidecar_key(sidecar)
    document = payload.sidecar
    content = document.get("content") if isinstance(document.get("content"), dict) else {}
    return key is not None and (key.content_sha, key.style_set, key.params_hash, key.generation) == (
        content.get("sha256"), document.get("style_set"), document.get("params_hash"),
        document.get("generation") or 0)
