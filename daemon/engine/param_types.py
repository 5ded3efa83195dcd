"""Value types of the engine parameters: how each is written by a person (config or command line) and checked.

Shared by the one schema (params.py) and everything derived from it: a value's parser and its one-line
refusal are defined here once, so the config, the stylize options and the engine read a value alike.
No numpy here: `style-daemon --help` builds the stylize options from these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

# Memory sizes: decimal units (kB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB, and the bare
# K, M, G, T as systemd reads them) powers of 1024. A bare number is bytes.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(?:([KMGT])(I)?)?(B)?\s*$", re.IGNORECASE)
_SIZE_HINT = "a number of bytes or a size such as 8GB or 512MiB (0: what is free)"
_SMALLEST_BUDGET = 64 * 1024**2  # below this a number is a forgotten unit ("8" meant 8GB), not a budget

# Strength 0..1 -> style weight on a log scale (params.style_weight_for); the presets by name.
STRENGTH_PRESETS = {"subtle": 0.15, "balanced": 0.3, "strong": 0.5}


@dataclass(frozen=True)
class Option:
    """How a parameter is spelled on the stylize command line; rides in the field's metadata.

    Unset parts follow from the field: the flag is --name-with-dashes, the value is parsed by its type."""

    flag: str | None = None
    metavar: str | None = None
    const: object = None  # the value when the flag is given without one (nargs="?")
    parse: Callable[[str], object] | None = None  # text -> value, for values that are not int, float or a choice


def parse_byte_size(value: object) -> int:
    """Bytes from an int or a text such as '8GB', '512MiB', '2G' or '1.5 GB'; ValueError (one line) if not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {_SIZE_HINT}, got {value!r}")
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"expected {_SIZE_HINT}, got {value!r}")
        number, prefix, binary, unit = match.groups()
        power = " KMGT".index(prefix.upper()) if prefix else 0
        base = 1024 if binary or (prefix and not unit) else 1000
        size = float(number) * base**power
    elif math.isfinite(value) and value >= 0 and float(value).is_integer():
        size = float(value)
    else:
        raise ValueError(f"expected {_SIZE_HINT}, got {value!r}")
    if 0 < size < _SMALLEST_BUDGET:
        raise ValueError(f"{value!r} is only {int(size)} bytes; write the unit, e.g. 8GB or 512MiB (at least 64MiB)")
    return int(size)


def check_tile_size(value: int) -> int:
    """0 (auto) or a multiple of 16 of at least 32: tiles align with VGG's pooling grid."""
    if value and (value < 32 or value % 16):
        raise ValueError(f"must be 0 (auto) or a multiple of 16 of at least 32, e.g. {max(32, value // 16 * 16)}; "
                         f"got {value}")
    return value


def check_strength(value: object) -> object:
    """A number 0..1 or a preset name; one message for both forms ("0.5" as text and true are refused)."""
    if value is None:
        return None
    names = ", ".join(STRENGTH_PRESETS)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
            isinstance(value, str) and value not in STRENGTH_PRESETS):
        raise ValueError(f"must be a number from 0 to 1 or one of {names}; got {value!r}")
    if not isinstance(value, str) and not 0.0 <= value <= 1.0:
        raise ValueError(f"must be from 0 (a hint of style) to 1 (style everywhere); got {value}")
    return value


def parse_strength(text: str) -> float | str:
    """--strength: a number 0..1 or a preset name (ValueError, one line, if neither)."""
    if text in STRENGTH_PRESETS:
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text!r} is not a strength; use a number from 0 to 1 or one of "
                         f"{', '.join(STRENGTH_PRESETS)}")
    return value


def parse_layer_weights(text: str) -> dict[str, float]:
    """'block1_conv1=1,block2_conv1=0.5' -> {layer: weight}; a layer without '=W' weighs 1."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, weight = item.partition("=")
        try:
            weights[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"{item!r}: write LAYER=WEIGHT, e.g. block1_conv1=1.0") from None
    return weights


def layer_weights_text(weights: dict[str, float]) -> str:
    """{layer: weight} as the command line writes it (the inverse of parse_layer_weights)."""
    return ",".join(f"{name}={weight:g}" for name, weight in weights.items())


# Memory in bytes; the config and the command line also take 8GB, 512MiB, 2G.
ByteSize = Annotated[int, BeforeValidator(parse_byte_size), Field(ge=0)]
TileSize = Annotated[int, Field(ge=0), AfterValidator(check_tile_size)]
Strength = Annotated[float | str, BeforeValidator(check_strength)]
LayerWeights = Annotated[dict[str, Annotated[float, Field(ge=0)]], Field(min_length=1)]
