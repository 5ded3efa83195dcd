"""A valid non-default value of any engine parameter, found from its schema field alone: tests that every
parameter travels from the config or the command line to the engine need no table that a new parameter
would have to be added to."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args, get_origin

from daemon.engine.param_types import layer_weights_text
from daemon.engine.params import ParamError, TransferParams, flag_of, transfer_fields


def other_value(name: str) -> Any:
    """A value of parameter `name` that TransferParams accepts and that differs from its default."""
    info = transfer_fields()[name]
    default = getattr(TransferParams(), name)
    for candidate in _candidates(info.annotation, default):
        if candidate == default:
            continue
        try:
            dataclasses.replace(TransferParams(), **{name: candidate})
        except ParamError:
            continue
        return candidate
    raise AssertionError(f"no valid non-default value found for {name}; add a candidate kind to schema_values.py")


def as_options(name: str, value: Any) -> list[str]:
    """The stylize options that set parameter `name` to `value`: --flag VALUE, or --flag / --no-flag."""
    flag = flag_of(name)
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag.removeprefix("--")]
    return [flag, layer_weights_text(value) if isinstance(value, dict) else str(value)]


def _candidates(annotation: Any, default: Any) -> list:
    if annotation is bool:
        return [not default]
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if annotation is int:
        return [default + 1, default - 1, default * 2, 32, 64, 1, 2**30]
    if annotation is float:
        return [default * 0.5, default + 0.5, 0.5, 0.25]
    if annotation is str:
        return [default + "x" if default else "x", "block5_conv2"]
    if isinstance(default, dict):
        return [{**default, next(iter(default)): 0.5}, {"block1_conv1": 1.0}]
    return []
