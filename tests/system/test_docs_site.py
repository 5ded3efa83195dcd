"""The README is a short front door and docs/ a MkDocs site that builds with --strict: no broken link or
anchor, no page missing from the navigation, no stale path to a module, test or result file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250
# A Markdown link or image whose target is relative: not a URL, not an anchor in the same file.
RELATIVE_LINK = re.compile(r"!?\[[^\]]*\]\((?!https?://|mailto:|#)([^)\s]+)\)")
# A path into the repository written in backticks: `daemon/engine/plan.py`, `tests/unit/...`, `bench/results/...`.
REPO_PATH = re.compile(r"`((?:daemon|tests|bench|systemd|docs)/[\w./+-]+)`")


def nav_pages(nav: list) -> set[str]:
    """Every page file named in mkdocs.yml's nav, at any depth."""
    pages: set[str] = set()
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages |= nav_pages(value) if isinstance(value, list) else {value}
    return pages


def mkdocs_config() -> dict:
    """mkdocs.yml as data (it uses no YAML tags, so the safe loader reads it)."""
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not a problem of ours
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_strict_validation_covers_links_anchors_and_omitted_pages() -> None:
    """Without these settings mkdocs 1.6 only logs some broken links at INFO, and --strict passes them."""
    validation = mkdocs_config()["validation"]
    assert validation == {"omitted_files": "warn", "absolute_links": "warn",
                          "unrecognized_links": "warn", "anchors": "warn"}
    assert mkdocs_config()["docs_dir"] == "docs"


def test_every_docs_page_is_in_the_nav() -> None:
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    listed = nav_pages(mkdocs_config()["nav"])
    assert pages - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - pages == set(), "nav entries without a page"
    assert {"configuration.md", "dry-run.md", "architecture.md", "testing.md"} <= listed


def test_readme_is_a_short_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert sum(1 for line in lines if line.lstrip().startswith("![")) == 1, "one picture"


def heading_anchors(page: Path) -> set[str]:
    """The anchors mkdocs gives a page's headings (the toc extension's slugs), code blocks left out."""
    from markdown.extensions.toc import slugify  # installed with mkdocs

    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slugify(title.strip(), "-") for title in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_relative_links_point_at_files_and_headings() -> None:
    """mkdocs checks the links inside docs/; the README is outside it, so its links are checked here."""
    targets = RELATIVE_LINK.findall(README.read_text())
    assert len(targets) >= 10, targets  # the picture and the docs pages
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert missing == []
    anchored = [t.split("#", 1) for t in targets if "#" in t]
    assert anchored, "the README links to a section of a docs page"
    assert [f"{file}#{anchor}" for file, anchor in anchored if anchor not in heading_anchors(ROOT / file)] == []


def test_readme_keeps_the_ci_commands_first() -> None:
    """.ci/run runs the README's first two ```sh blocks: the set-up command, then the test command."""
    blocks = re.findall(r"^```sh\n(.*?)\n```$", README.read_text(), re.M | re.S)
    assert len(blocks) >= 2
    assert "pip install -e '.[test]'" in blocks[0] and "apt-get install" in blocks[0]
    # The whole suite with the arithmetic `auto` picks here, then the engine's tests forced to float32.
    assert blocks[1] == ('. .venv/bin/activate && python -m pytest -q -n 2 --dist loadfile && '
                         'STYLE_DAEMON_PRECISION=float32 python -m pytest -q -n 2 --dist loadfile -m "engine and not jax"')


def test_paths_named_in_the_docs_exist() -> None:
    """A module, test or result file renamed without updating the docs fails here."""
    stale = []
    for page in [README, *DOCS.rglob("*.md")]:
        for path in REPO_PATH.findall(page.read_text()):
            if not (ROOT / path.rstrip("/.")).exists():
                stale.append(f"{page.relative_to(ROOT)}: {path}")
    assert stale == []
