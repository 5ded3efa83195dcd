"""A config key's type, allowed values and default in words, read from its pydantic field (for the docs)."""

from __future__ import annotations

import types
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.functional_validators import AfterValidator, BeforeValidator

from daemon.engine.param_types import check_strength, check_tile_size, parse_byte_size

# Values a validator accepts beyond its type: said in words (the validators live with the types they check).
_VALIDATED = {
    parse_byte_size: "bytes, or a size such as 8GB or 512MiB",
    check_strength: "a number from 0 to 1, or subtle, balanced, strong",
    check_tile_size: "0, or a multiple of 16 of at least 32",
}
_BOUNDS = ((annotated_types.Ge, "≥", "ge"), (annotated_types.Gt, ">", "gt"), (annotated_types.Le, "≤", "le"),
           (annotated_types.Lt, "<", "lt"))
_NAMES = {int: "integer", float: "number", bool: "true or false", str: "text", Path: "path",
          dtime: 'time of day, "HH:MM"'}


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model a key holds, directly or as X | None, list[X] or dict[str, X]; None for a value."""
    bare = _without_none(_unannotated(annotation))
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return bare
    if get_origin(bare) in (list, dict):
        return model_of(get_args(bare)[-1])
    return None


def type_text(annotation: Any, metadata: list) -> str:
    """'integer ≥ 32', 'one of `auto`, `always`, `never`', 'bytes, or a size such as 8GB or 512MiB', ..."""
    metadata = list(metadata) + _annotated_metadata(annotation)
    bare = _without_none(_unannotated(annotation))
    said = [_VALIDATED[m.func] for m in metadata
            if isinstance(m, (BeforeValidator, AfterValidator)) and m.func in _VALIDATED]
    if said:
        return said[0]
    if get_origin(bare) is Literal:
        text = "one of " + ", ".join(f"`{value}`" for value in get_args(bare))
    elif get_origin(bare) is list:
        text = "list of " + _plural(get_args(bare)[0])
    elif get_origin(bare) is dict:
        text = "mapping of name to " + type_text(get_args(bare)[1], [])
    elif get_origin(bare) in (Union, types.UnionType):
        text = " or ".join(type_text(arg, []) for arg in get_args(bare))
    elif isinstance(bare, type) and issubclass(bare, BaseModel):
        text = "section"
    else:
        text = _NAMES.get(bare, getattr(bare, "__name__", str(bare)))
    bounds = [f"{sign} {getattr(m, attr):g}" for m in metadata for kind, sign, attr in _BOUNDS if isinstance(m, kind)]
    if bounds:
        text += " " + " and ".join(bounds)
    return text


def default_text(info: Any) -> str:
    """The default as it is written in the file, 'unset', or 'required'."""
    if info.is_required():
        return "**required**"
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "default_text" in extra:
        return str(extra["default_text"])
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{yaml_value(value)}`"


def yaml_value(value: Any) -> str:
    """A value as YAML writes it inline: true, 0.02, [starry], {block1_conv1: 1.0}."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, str) and (value == "" or "{" in value or ":" in value):
        return f'"{value}"'
    return str(value)


def _unannotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _annotated_metadata(annotation: Any) -> list:
    """Constraints inside Annotated, also under X | None (the style-set overrides are written so)."""
    found = []
    for arg in (get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)):
        while get_origin(arg) is Annotated:
            found += list(arg.__metadata__)
            arg = get_args(arg)[0]
    return found


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _unannotated(rest[0])
    return annotation


def _plural(annotation: Any) -> str:
    model = model_of(annotation)
    return "entries" if model else type_text(annotation, []) + "s" if annotation is not str else "names"
