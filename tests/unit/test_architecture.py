"""The package order, read from the imports themselves (ast), a proof that its checker catches a forbidden
import, and the CLI's fast start (no ML framework, no numpy for --help)."""

from __future__ import annotations

import ast
import graphlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "daemon"
# Bottom to top: each package (or top-level module) imports only those before it in this list.
ORDER = ("errors", "media", "logs", "engine", "store", "config", "review", "job", "service", "cli")
ENTRY = "__main__"  # `python -m daemon`: above everything, it only starts the CLI
ROOT_INIT = "__init__"  # daemon/__init__.py (the version, the early signals): below everything, imports nothing of ours
ML = ("keras", "tensorflow", "jax", "jaxlib", "torch")


@dataclass(frozen=True, order=True)
class Arrow:
    """One import that breaks the order: `importer` (a package of ORDER) imports `imported`."""

    importer: str
    imported: str
    file: str
    module: str

    def __str__(self) -> str:
        return f"{self.file}: {self.importer} -> {self.imported} ({self.module})"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "daemon":  # a name the root defines (`__version__`) imports the root only
                names.update(f"daemon.{a.name}" if _is_submodule(path, a.name) else "daemon" for a in node.names)
            else:
                names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute daemon.* imports")
    return names


def _is_submodule(path: Path, name: str) -> bool:
    """True when `name` is a module or package of the daemon/ tree that `path` belongs to."""
    tree = next(p for p in path.parents if p.name == "daemon")
    return (tree / f"{name}.py").is_file() or (tree / name / "__init__.py").is_file()


def unit_of(path: Path, root: Path) -> str:
    """The package (or top-level module) of ORDER a file under `root` (a daemon/ tree) belongs to."""
    first = path.relative_to(root).parts[0]
    return first.removesuffix(".py")


def rank(unit: str) -> int:
    """Position in the order; the root __init__ is below everything, __main__ above, strangers nowhere (-2)."""
    if unit == ROOT_INIT:
        return -1
    if unit == ENTRY:
        return len(ORDER)
    return ORDER.index(unit) if unit in ORDER else -2


def arrows(root: Path) -> list[Arrow]:
    """Every import under `root` that goes up or sideways in the order, reaches an unknown package, or
    reaches the tests."""
    found = []
    for path in sorted(root.rglob("*.py")):
        unit = unit_of(path, root)
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] == "tests":
                found.append(Arrow(unit, "tests", path.relative_to(root.parent).as_posix(), name))
                continue
            if parts[0] != "daemon" or len(parts) == 1 or parts[1] == unit:
                continue
            target = parts[1]
            if rank(unit) == -2 or target not in ORDER or rank(target) >= rank(unit):
                found.append(Arrow(unit, target, path.relative_to(root.parent).as_posix(), name))
    return sorted(found)


def package_graph(root: Path) -> dict[str, set[str]]:
    """Which package imports which (whatever the order says), for the cycle check."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        unit = unit_of(path, root)
        edges = graph.setdefault(unit, set())
        edges.update(n.split(".")[1] for n in imports_of(path) if n.startswith("daemon.") and
                     n.split(".")[1] != unit)
    return graph


def ml_outside_the_engine(root: Path) -> list[str]:
    """Imports of an ML framework anywhere but the engine package."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if unit_of(path, root) == "engine":
            continue
        found += [f"{path.relative_to(root.parent)} imports {n}" for n in imports_of(path) if n.split(".")[0] in ML]
    return found


def eager_ml_in_the_engine(root: Path) -> list[str]:
    """ML imports at module level in the engine (they belong inside functions: loading them takes seconds)."""
    found = []
    for path in sorted((root / "engine").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{path.name}: {m}" for m in mods if m.split(".")[0] in ML]
    return found


def module_file(root: Path, unit: str) -> Path:
    """The file that defines `unit` under `root`: its package's __init__.py or the module itself."""
    folder = root / unit
    return folder / "__init__.py" if folder.is_dir() else root / f"{unit}.py"


# -- the rules, on the real tree -------------------------------------------------------------------------


def test_the_package_tree_exists() -> None:
    for sub in ("engine", "media", "store", "review", "job", "service"):
        assert (PACKAGE / sub / "__init__.py").is_file(), sub
    assert not (PACKAGE / "testsupport").exists(), "test support belongs in tests/support"
    units = {unit_of(p, PACKAGE) for p in PACKAGE.rglob("*.py")} - {ROOT_INIT, ENTRY}
    assert units == set(ORDER), "every package of daemon/ has its place in ORDER"


def test_each_package_imports_only_those_below_it() -> None:
    assert [str(a) for a in arrows(PACKAGE)] == []


def test_nothing_in_the_product_imports_the_tests() -> None:
    assert [str(a) for a in arrows(PACKAGE) if a.imported == "tests"] == []
    assert not any(n.split(".")[0] == "tests" for p in PACKAGE.rglob("*.py") for n in imports_of(p))


def test_no_package_cycles() -> None:
    graph = package_graph(PACKAGE)
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_the_root_package_imports_nothing_of_ours() -> None:
    # Everything imports `daemon` (its __init__) first: one import in it would run before any order.
    assert {n for n in imports_of(PACKAGE / "__init__.py") if n.split(".")[0] == "daemon"} == set()


def test_only_the_engine_imports_ml_frameworks() -> None:
    assert ml_outside_the_engine(PACKAGE) == []


def test_engine_imports_ml_frameworks_only_inside_functions() -> None:
    assert eager_ml_in_the_engine(PACKAGE) == []


# -- the checker fails when a forbidden import is added (on a copy of the tree) ----------------------------

LAZY = "\n\ndef _added_for_the_test():\n    {line}\n"


@pytest.mark.parametrize("importer, line, imported", [
    ("store", "from daemon.config import Config", "config"),
    ("store", "from daemon.service.supervisor import Supervisor", "service"),
    ("errors", "import daemon.config", "config"),
    ("errors", "from daemon.service.supervisor import Supervisor", "service"),
    ("engine", "from daemon.job.pipeline import run_stylize", "job"),
    ("media", "from daemon.engine.params import TransferParams", "engine"),
    ("media", "from daemon.review.gallery import write_gallery", "review"),
    ("config", "from daemon.review.status import collect", "review"),
    ("job", "from daemon.service.routing import output_path_for", "service"),
    ("service", "from daemon.cli import main", "cli"),
    ("review", "from daemon.job import pipeline", "job"),
    ("logs", "from daemon.store import open_store", "store"),
    ("service", "from tests.support import ROOT", "tests"),
    ("job", "from daemon.testsupport.stand_in_engine import FakeTransfer", "testsupport"),
])
@pytest.mark.parametrize("lazy", [False, True], ids=["module-level", "inside-a-function"])
def test_the_checker_reports_exactly_an_added_forbidden_import(tmp_path: Path, importer: str, line: str,
                                                                imported: str, lazy: bool) -> None:
    copy = tmp_path / "daemon"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = set(arrows(copy))
    target = module_file(copy, importer)
    target.write_text(target.read_text() + (LAZY.format(line=line) if lazy else f"\n{line}\n"))
    added = set(arrows(copy)) - before
    assert {(a.importer, a.imported, a.file) for a in added} == \
        {(importer, imported, target.relative_to(tmp_path).as_posix())}


def test_the_checker_sees_a_cycle(tmp_path: Path) -> None:
    copy = tmp_path / "daemon"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    graphlib.TopologicalSorter(package_graph(copy)).prepare()  # none yet
    for unit, line in (("media", "from daemon.engine.params import TransferParams"),
                       ("engine", "from daemon.media.images import load_image")):
        target = module_file(copy, unit)
        target.write_text(target.read_text() + LAZY.format(line=line))
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(package_graph(copy)).prepare()


def test_the_ml_checks_see_an_added_framework_import(tmp_path: Path) -> None:
    copy = tmp_path / "daemon"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    outside, eager = set(ml_outside_the_engine(copy)), set(eager_ml_in_the_engine(copy))
    job = module_file(copy, "job")
    job.write_text(job.read_text() + LAZY.format(line="import keras"))
    engine = module_file(copy, "engine")
    engine.write_text(engine.read_text() + "\nimport tensorflow as tf\n")
    assert set(ml_outside_the_engine(copy)) - outside == {f"daemon/{job.relative_to(copy)} imports keras"}
    assert set(eager_ml_in_the_engine(copy)) - eager == {"__init__.py: tensorflow"}


# -- the CLI starts fast ------------------------------------------------------------------------------


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
