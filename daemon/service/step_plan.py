"""The shared shape of a step's intent payload (a release, a failed/ entry): JSON in and out, checked field by
field on the way in, so a malformed payload is refused with one clear error instead of failing later."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from daemon.media.derived_names import fit_name
from daemon.media.path_text import from_text

Plan = TypeVar("Plan", bound="StepPlan")


class StepPlan:
    """Base of the frozen dataclasses ReleasePlan and FailPlan: each has `source` (path_text) and `token`
    ("<job id>-<random>") fields and a PREFIX naming its hidden files."""

    PREFIX: ClassVar[str] = ""
    source: str
    token: str

    def to_json(self) -> str:
        """The payload's JSON text."""
        return json.dumps(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[Plan], text: str) -> Plan:
        """The plan an intent recorded; ValueError when it is not one (not an object, a field missing,
        unknown or of the wrong type, no absolute source path, no token)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the payload is not a JSON object")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        for name, field in known.items():
            if name not in data:
                if field.default is field.default_factory:  # both MISSING: a required field
                    raise ValueError(f"field {name} missing")
                continue
            if not _fits(data[name], hints[name]):
                raise ValueError(f"field {name} is {data[name]!r}, not {hints[name]}")
        if not data["source"].startswith("/") or not data["token"]:
            raise ValueError("no absolute source path or no token")
        return cls(**data)

    @property
    def path(self) -> Path:
        """The input's path."""
        return from_text(self.source)

    @property
    def quarantine(self) -> str:
        """The hidden name the input has (in its own folder) while it is checked before it is removed."""
        return fit_name(f"{self.PREFIX}{self.token}.{self.path.name}")


def _fits(value: object, hint: object) -> bool:
    """True when a JSON value is of the annotated type (Literal, X | None, str, int; a bool is not an int)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)  # type: ignore[arg-type]
