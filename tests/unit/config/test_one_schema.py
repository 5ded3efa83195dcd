"""Adding an engine parameter is one edit: every field of TransferParams reaches the config's engine section, a
style set's params, the stylize options, check-config's output, docs/configuration.md and config.yaml, with the
schema's default, constraints and description; the copies cannot drift because there are none to keep."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
import yaml

from daemon.cli import build_parser, params_from_args
from daemon.cli.check_config import effective_settings
from daemon.config import Config, EngineSettings, StyleOverrides, parse_config
from daemon.config.reference import DOC, engine_example_entries
from daemon.engine.params import TransferParams, engine_fields, flag_of, transfer_fields
from tests.support import ROOT, STYLE
from tests.support.schema_values import as_options, other_value
from tests.support.engine_parts import stylize_args

PARAMETERS = list(transfer_fields())



def _config(tmp_path, engine: dict | None = None, params: dict | None = None) -> Config:
    document = {"input": "in", "output": "out", "state": "state", "routing": {"default": ["starry"]},
                "styles": {"starry": {"images": [str(STYLE / "starry_night.jpg")], "params": params or {}}},
                "engine": engine or {}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return parse_config(path)


def test_every_parameter_is_everywhere_with_one_description():
    stylize = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["stylize"]
    options: dict[str, list[str]] = {}
    for action in stylize._actions:
        options.setdefault(action.dest, []).extend(action.option_strings)
    documented = DOC.read_text(encoding="utf-8")
    for name, info in engine_fields().items():
        assert info.description and "\n" not in info.description, f"{name}: one line of description"
        assert name in EngineSettings.model_fields, f"{name} missing from the config's engine section"
        assert EngineSettings.model_fields[name].description == info.description, name
        assert flag_of(name) in options.get(name, ()), f"{name}: no stylize option"
        assert f"| `{name}` |" in documented, f"{name} missing from {DOC}"
    for name in PARAMETERS:
        field = StyleOverrides.model_fields.get(name)
        assert field is not None and field.default is None, f"a style set cannot set {name}"


def test_the_config_and_the_command_line_default_to_the_schema(tmp_path):
    assert EngineSettings().transfer_params() == TransferParams()
    assert _config(tmp_path).engine.transfer_params() == TransferParams()
    assert params_from_args(stylize_args()) == TransferParams()


@pytest.mark.parametrize("name", PARAMETERS)
def test_each_parameter_reaches_the_engine_from_engine_a_style_set_and_the_command_line(tmp_path, name):
    value = other_value(name)
    expected = dataclasses.replace(TransferParams(), **{name: value})
    from_engine = _config(tmp_path, engine={name: value})
    assert from_engine.engine.transfer_params(from_engine.styles["starry"].params) == expected
    from_set = _config(tmp_path, params={name: value})
    assert from_set.engine.transfer_params(from_set.styles["starry"].params) == expected
    assert from_set.engine.transfer_params() == TransferParams()  # the set's value stays the set's
    assert params_from_args(stylize_args(*as_options(name, value))) == expected


@pytest.mark.parametrize("name", PARAMETERS)
def test_check_config_prints_every_parameter_with_the_value_a_job_gets(tmp_path, name):
    value = other_value(name)
    config = _config(tmp_path, engine={name: value})
    engine = effective_settings(config)["engine"]
    assert list(engine)[-len(PARAMETERS):] == PARAMETERS
    assert engine[name] == value


def test_check_config_output_reads_back_as_the_same_settings(tmp_path):
    config = _config(tmp_path, engine={"strength": "strong", "tile_size": 64}, params={"strength": 0.1})
    printed = tmp_path / "printed.yaml"
    printed.write_text(yaml.safe_dump(effective_settings(config)))
    again = parse_config(printed)
    for one in (config, again):
        assert one.engine.transfer_params(one.styles["starry"].params).style_weight == pytest.approx(
            config.engine.transfer_params(config.styles["starry"].params).style_weight)
    assert again.engine.transfer_params() == config.engine.transfer_params()


def test_config_yaml_states_every_parameter_with_the_schemas_default_and_description():
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    section = re.search(r"^engine:\n(.*?)(?=^[A-Za-z])", text, re.M | re.S)
    assert section, "config.yaml has no engine: section"
    for name, stated in engine_example_entries().items():
        assert stated in section.group(1), (
            f"config.yaml's engine section must state {name} with the schema's description and default:\n"
            f"{stated}(rewrite it with: python -m daemon.config.reference)")
    assert parse_config(ROOT / "config.yaml").engine.transfer_params() == TransferParams()  # a working example
