"""At start: inputs hidden by a release or an on_failure: move whose intent is lost (a lost or replaced store)
go back under their names, and such steps' temp files leave processed/ and failed/."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterator

from daemon.config import Config
from daemon.errors import UnsafeInputError
from daemon.media.path_text import display
from daemon.media.safe_move import open_folder, restore
from daemon.service.step_plan import FAIL_PREFIX, PREFIXES, QUARANTINE_PREFIX, TEMP_SUFFIX
from daemon.store import JobStore

log = logging.getLogger(__name__)


def put_back_strays(config: Config, store: JobStore, stop: Callable[[], bool] = lambda: False) -> int:
    """After reconciliation: put back under its own name every input hidden by a release (or an on_failure:
    move) that no open intent explains, and remove such steps' temp files from processed/ and failed/;
    returns how many inputs came back. `stop`: asked once per folder walked, so a shutdown does not wait
    for a huge input tree; the rest waits for the next start."""
    back = 0
    for folder, name in _strays(config.input, config.excluded_dirs(), stop):
        step, token, original = _parse(name)
        if token is None or _intended(store, step, token):
            continue
        try:
            fd = open_folder(config.input, folder)
        except (UnsafeInputError, FileNotFoundError):
            continue
        try:
            got = restore(fd, name, original or name)
        except FileNotFoundError:
            continue  # finished meanwhile by the machine that hid it (a shared store): nothing to put back
        finally:
            os.close(fd)
        back += 1
        log.warning("put back %s: a %s was interrupted and its record is lost", display(folder / got),
                    "release" if step == "release" else "move into the failed folder")
    for root in (config.processed_dir, config.failed_dir):
        for folder, name in _strays(root, [], stop):
            step, token, _ = _parse(name)
            if token is not None and name.endswith(TEMP_SUFFIX) and not _intended(store, step, token):
                (folder / name).unlink(missing_ok=True)
    return back


def _strays(root: Path, skip: list[Path], stop: Callable[[], bool]) -> Iterator[tuple[Path, str]]:
    """(folder, name) of every entry under `root` with a step's hidden prefix; links not followed, `skip` not
    walked; the walk ends when `stop()` says so."""
    if not root.is_dir():
        return
    for here, dirs, files in os.walk(root):
        if stop():
            return
        folder = Path(here)
        dirs[:] = [d for d in dirs if folder / d not in skip and not (folder / d).is_symlink()]
        for name in files + dirs:
            if name.startswith(PREFIXES):
                yield folder, name


def _parse(name: str) -> tuple[str, str | None, str | None]:
    """(step, token, original name) of a hidden step name; token None for any other name."""
    for step, prefix in (("release", QUARANTINE_PREFIX), ("fail", FAIL_PREFIX)):
        if name.startswith(prefix):
            token, dot, original = name[len(prefix):].partition(".")
            if dot and "-" in token:
                return step, token, original or None
    return "", None, None


def _intended(store: JobStore, step: str, token: str) -> bool:
    """True when an open intent of the token's job (the step's own) names that token."""
    job = token.split("-", 1)[0]
    if not job.isdigit():
        return False
    for intent in store.intents(int(job)):
        try:
            if intent.step == step and json.loads(intent.payload).get("token") == token:
                return True
        except (ValueError, AttributeError):
            continue
    return False
