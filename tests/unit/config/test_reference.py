"""docs/configuration.md and config.yaml's engine section are generated from the schema and the config models: a
description changed in the code without regenerating them fails here, and every key of every section is on the page."""

from __future__ import annotations

from daemon.config import Config
from daemon.config.describe import model_of
from daemon.config.reference import DOC, EXAMPLE, REGENERATE, engine_example, main, render, with_engine_example


def test_the_committed_reference_is_what_the_generator_writes():
    assert DOC.is_file(), f"{DOC} is missing; write it with: {REGENERATE}"
    assert DOC.read_text(encoding="utf-8") == render(), f"{DOC} is out of date; regenerate it with: {REGENERATE}"


def test_the_committed_config_yaml_has_the_generated_engine_section():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert with_engine_example(text) == text, f"config.yaml's engine section is out of date; run {REGENERATE}"


def test_regenerating_replaces_only_the_engine_section():
    old = "input: in\n# the engine\nengine:\n  max_size: 3\n\n  # gone\n  iterations: 1\n\nretries:\n  max_attempts: 2\n"
    assert with_engine_example(old) == "input: in\n# the engine\n" + engine_example() + "\nretries:\n  max_attempts: 2\n"


def test_every_key_of_every_section_has_a_description_and_a_row():
    text = render()
    pending, seen = [Config], set()
    while pending:
        model = pending.pop()
        seen.add(model)
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description="
            assert f"`{name}`" in text, f"{model.__name__}.{name} is not in the reference"
            inner = model_of(info.annotation)
            if inner is not None and inner not in seen:
                pending.append(inner)
    assert len(seen) >= 12  # the top level and its sections: styles, images, params, routing, rules, naming, ...


def test_the_check_mode_says_when_a_file_is_stale(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n")
    example = tmp_path / "config.yaml"
    example.write_text("input: in\nengine:\n  max_size: 3\n")
    files = ["--output", str(stale), "--example", str(example)]
    assert main(["--check", *files]) == 1
    assert REGENERATE in capsys.readouterr().out
    assert main(files) == 0
    assert main(["--check", *files]) == 0
    assert stale.read_text(encoding="utf-8") == render()
    assert example.read_text(encoding="utf-8") == "input: in\n" + engine_example()
