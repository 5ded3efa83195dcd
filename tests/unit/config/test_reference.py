"""docs/configuration.md is generated from the schema and the config models: a description changed in the code
without regenerating the page fails here, and every key of every section is on the page."""

from __future__ import annotations

from daemon.config import Config
from daemon.config.describe import model_of
from daemon.config.reference import DOC, REGENERATE, main, render


def test_the_committed_reference_is_what_the_generator_writes():
    assert DOC.is_file(), f"{DOC} is missing; write it with: {REGENERATE}"
    assert DOC.read_text(encoding="utf-8") == render(), f"{DOC} is out of date; regenerate it with: {REGENERATE}"


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


def test_the_check_mode_says_when_the_file_is_stale(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n")
    assert main(["--check", "--output", str(stale)]) == 1
    assert REGENERATE in capsys.readouterr().out
    assert main(["--output", str(stale)]) == 0
    assert main(["--check", "--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == render()
