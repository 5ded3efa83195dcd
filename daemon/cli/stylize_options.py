"""The stylize options, derived from the engine schema: one option per engine parameter, with its flag, type,
choices, default and help taken from the parameter's field (daemon/engine/params.py); nothing is typed again.

A value the schema refuses is a usage error (exit 2) naming the option, before any model loads.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic.functional_validators import BeforeValidator

from daemon.engine.params import (ParamError, TransferParams, chosen_style_weight, engine_fields, flag_of,
                                  option_of, shown_default, transfer_fields)

if TYPE_CHECKING:
    from daemon.job.pipeline import StyleRef


def parse_style(text: str) -> StyleRef:
    """IMAGE or IMAGE:WEIGHT -> StyleRef (a colon followed by a number is the weight)."""
    from daemon.job.pipeline import StyleRef

    path, sep, weight = text.rpartition(":")
    if sep:
        try:
            value = float(weight)
        except ValueError:
            return StyleRef(Path(text))
        if value <= 0:
            raise argparse.ArgumentTypeError(f"style weight must be positive in {text!r}")
        return StyleRef(Path(path), value)
    return StyleRef(Path(text))


def add_stylize(s: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int]) -> None:
    """The stylize command's arguments: the photo, the paintings, the result, and every engine parameter."""
    s.add_argument("content", type=Path, help="the photo")
    s.add_argument("--style", "-s", action="append", type=parse_style, required=True,
                   metavar="IMAGE[:WEIGHT]", help="style image, repeat to blend several")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="result (.jpg, .png, .webp or .tif, a 16-bit TIFF); if it exists, OUT.2.EXT (then .3, ...) "
                        "is written instead")
    for name, info in engine_fields().items():
        s.add_argument(flag_of(name), dest=name, **_engine_option(name, info))
    s.add_argument("--downsize", dest="on_too_large", action="store_const", const="downsize",
                   default=argparse.SUPPRESS, help="the same as --on-too-large downsize (default: off)")
    s.add_argument("--quality", type=int, default=92, metavar="Q", help="JPEG/WebP quality")
    s.add_argument("--metadata", choices=("keep", "private", "none"), default="private", help=(
        "the photo's EXIF and XMP in the result: private drops GPS, place, serial numbers and maker note; "
        "keep keeps them; none writes only the software and style (docs/metadata.md)"))
    _add_encoding_options(s)
    s.set_defaults(handler=handler, parser=s)


def _add_encoding_options(s: argparse.ArgumentParser) -> None:
    """--depth and --color-space, their values and help from the config's naming section (one schema)."""
    from daemon.config.sections import OutputSettings

    for name, flag in (("depth", "--depth"), ("color_space", "--color-space")):
        info = OutputSettings.model_fields[name]
        choices = [v for v in get_args(_value_type(info.annotation))]
        default = info.get_default()
        s.add_argument(flag, dest=name, type=type(choices[0]), choices=choices, default=default,
                       help=f"{info.description} (default: {'unset' if default is None else default})")


def _engine_option(name: str, info: Any) -> dict[str, Any]:
    """add_argument's keywords for one engine parameter, from its field in the schema."""
    option = option_of(info)
    default = shown_default(name, info)
    text = info.description.replace("%", "%%") + (" (default: unset)" if default is None else "")
    kind = _value_type(info.annotation)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction, "default": default, "help": text}
    if get_origin(kind) is Literal:
        keywords = {"choices": get_args(kind), "default": default, "help": text}
        if option.const is not None:
            keywords.update(nargs="?", const=option.const, help=f"{text}; given without a value: {option.const}")
        return keywords
    return {"type": _converter(info, option, kind), "default": default, "metavar": option.metavar, "help": text}


def _value_type(annotation: Any) -> Any:
    """The annotation without None (X | None -> X)."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _converter(info: Any, option: Any, kind: Any) -> Callable[[str], Any]:
    """Text -> value: the option's own parser, the schema's pre-parser (e.g. 8GB), or the plain type."""
    parse = option.parse or next((m.func for m in info.metadata if isinstance(m, BeforeValidator)), None)
    if parse is None:
        return kind if kind in (int, float, str, Path) else str

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:  # argparse shows an ArgumentTypeError's own words
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def params_from_args(args: argparse.Namespace) -> TransferParams:
    """TransferParams from the stylize options; a value the engine refuses is a usage error (exit 2)."""
    values = {name: getattr(args, name) for name in transfer_fields()}
    values["style_weight"] = chosen_style_weight([(args.strength, args.style_weight)])  # a raw weight wins
    try:
        return TransferParams(**values)
    except ParamError as exc:
        args.parser.error(f"{flag_of(exc.field)} {exc.problem}")
