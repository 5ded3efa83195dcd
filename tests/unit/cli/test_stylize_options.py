"""The stylize options come from the engine schema: names, choices and defaults are the schema's, and a value
the schema refuses is a usage error (exit 2) that names the option, in one line."""

from __future__ import annotations

import pytest

from daemon.cli import params_from_args
from daemon.engine.params import TransferParams
from daemon.engine.param_types import STRENGTH_PRESETS
from tests.support.engine_parts import stylize_args



@pytest.mark.parametrize("options, says", [
    (("--size", "3"), "--size should be greater than or equal to 32"),
    (("--scales", "0"), "--scales should be greater than or equal to 1"),
    (("--scales", "7"), "--scales should be less than or equal to 6"),
    (("--tile-size", "100"), "--tile-size must be 0 (auto) or a multiple of 16 of at least 32, e.g. 96; got 100"),
    (("--stop-tolerance", "1"), "--stop-tolerance should be less than 1"),
    (("--style-layers", "block1_conv1=-1"), "--style-layers"),
    (("--content-layer", ""), "--content-layer should have at least 1 character"),
])
def test_a_value_the_schema_refuses_names_the_option(capsys, options, says):
    with pytest.raises(SystemExit) as stopped:
        params_from_args(stylize_args(*options))
    assert stopped.value.code == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert says in line, line


@pytest.mark.parametrize("options, says", [
    (("--memory-budget", "lots"), "argument --memory-budget: expected a number of bytes"),
    (("--strength", "loud"), "argument --strength: 'loud' is not a strength; use a number from 0 to 1"),
    (("--style-layers", "block1_conv1=x"), "argument --style-layers: 'block1_conv1=x': write LAYER=WEIGHT"),
    (("--precision", "fp8"), "argument --precision: invalid choice: 'fp8'"),
])
def test_a_value_that_does_not_parse_is_refused_by_the_parser(capsys, options, says):
    with pytest.raises(SystemExit) as stopped:
        stylize_args(*options)
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err


def test_shortcuts_and_switches():
    assert params_from_args(stylize_args("--downsize")).on_too_large == "downsize"
    assert params_from_args(stylize_args("--on-too-large", "downsize")).on_too_large == "downsize"
    assert params_from_args(stylize_args("--preserve-colors")).preserve_colors == "luminance"
    assert params_from_args(stylize_args("--preserve-colors", "histogram")).preserve_colors == "histogram"
    assert params_from_args(stylize_args("--no-adapt-strength")).adapt_strength is False
    assert params_from_args(stylize_args("--style-layers", "block1_conv1,block3_conv1=0.5")).style_layers == {
        "block1_conv1": 1.0, "block3_conv1": 0.5}


def test_strength_and_a_raw_style_weight():
    default = params_from_args(stylize_args())
    assert default == TransferParams()
    strong = params_from_args(stylize_args("--strength", "strong"))
    assert strong.style_weight > default.style_weight
    assert params_from_args(stylize_args("--strength", str(STRENGTH_PRESETS["strong"]))) == strong
    assert params_from_args(stylize_args("--strength", "strong", "--style-weight", "4")).style_weight == 4.0
