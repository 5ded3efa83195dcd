"""Which style sets a photo gets, and where each result goes."""

from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath
from typing import Iterator

from daemon.config import Config
from daemon.media.path_text import to_text
from daemon.media.derived_names import DERIVED_ROOM, fit_path, variants
from daemon.job.publish import occupied


def style_sets_for(rel_path: PurePosixPath, config: Config) -> list[str]:
    """Style sets for a file at `rel_path` under the input folder: glob rules, subfolder, default."""
    chosen: list[str] = []
    for rule in config.routing.rules:
        if fnmatch.fnmatch(str(rel_path), rule.glob) or fnmatch.fnmatch(rel_path.name, rule.glob):
            chosen.extend(s for s in rule.styles if s not in chosen)
    if chosen:
        return chosen
    if config.routing.subfolders and len(rel_path.parts) > 1 and rel_path.parts[0] in config.styles:
        return [rel_path.parts[0]]
    return list(config.routing.default)


def output_path_for(rel_path: PurePosixPath, style_set: str, config: Config) -> Path:
    """Result path: the input's subfolders mirrored under the output folder, named by the template.

    A name too long for the filesystem is shortened (prefix + hash) with room left for .json and .sheet.jpg.
    """
    naming = config.naming
    name = naming.template.format(
        stem=rel_path.stem, style=style_set, ext=naming.format, name=rel_path.name,
        suffix=rel_path.suffix.lstrip("."),
    )
    return fit_path(config.output.joinpath(*rel_path.parts[:-1], name), DERIVED_ROOM)


def free_output_names(base: Path) -> Iterator[str]:
    """`base`, holiday.starry.2.jpg, .3 ... skipping names a result, sidecar or sheet occupies on disk."""
    for path in variants(base, DERIVED_ROOM):
        if not occupied(path):
            yield to_text(path)  # the store's form of a name (media/path_text.py)
