"""The package tree's dependency rules, read from the imports themselves (ast), and the CLI's fast start."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT
PACKAGE = ROOT / "daemon"
ML = ("keras", "tensorflow", "jax", "jaxlib", "torch")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute daemon.* imports")
    return names


def files_of(subpackage: str) -> list[Path]:
    folder = PACKAGE / subpackage
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]


def offenders(subpackage: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in files_of(subpackage):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_the_package_tree_exists() -> None:
    for sub in ("engine", "media", "store", "service", "review", "testsupport"):
        assert (PACKAGE / sub / "__init__.py").is_file(), sub
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py", "config.py", "errors.py", "logs.py"]


@pytest.mark.parametrize("package, forbidden", [
    ("engine", ("daemon.service", "daemon.store", "daemon.review", "daemon.config", "daemon.testsupport")),
    ("store", ("daemon.service", "daemon.engine", "daemon.review", "daemon.media")),
    ("media", ("daemon.service", "daemon.store", "daemon.config")),
    ("review", ("daemon.service",)),
])
def test_layer_rules(package: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(package, forbidden) == []


def test_only_the_engine_imports_ml_frameworks() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "engine") in path.parents:
            continue
        found += [f"{path.relative_to(ROOT)} imports {n}" for n in imports_of(path) if n.split(".")[0] in ML]
    assert found == []


def test_engine_imports_ml_frameworks_only_inside_functions() -> None:
    found = []
    for path in files_of("engine"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{path.name}: {m}" for m in mods if m.split(".")[0] in ML]
    assert found == []


def test_the_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from daemon.service.supervisor import Supervisor\n")
    assert "daemon.service.supervisor" in imports_of(bad)


def test_cli_help_starts_without_ml_frameworks() -> None:
    probe = ("import sys\nfrom daemon.cli import main\nsys.argv = ['style-daemon', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (ML,))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.stdout.strip().splitlines()[-1] == "[]"
    for argv in (["check-config", "--help"], ["status", "--help"], ["run", "--help"]):
        probe2 = probe.replace("['style-daemon', '--help']", repr(["style-daemon", *argv]))
        out = subprocess.run([sys.executable, "-c", probe2], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert out.stdout.strip().splitlines()[-1] == "[]", argv


def test_help_does_not_import_numpy() -> None:
    # numpy alone costs about 70 ms at start; --help needs none of it.
    probe = ("import sys\nfrom daemon.cli import main\nsys.argv = ['style-daemon', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\nprint('numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.stdout.strip().splitlines()[-1] == "False"
