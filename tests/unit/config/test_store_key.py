"""One name for the job store: the config key is `store`; the old `journal:` still works, with one warning."""

from __future__ import annotations

import logging

import pytest
import yaml

from daemon.config import parse_config
from daemon.config import settings
from daemon.errors import ConfigError
from tests.support import STYLE

URL = "postgresql://style@db.example/jobs"


def _write(tmp_path, **keys):
    document = {"input": "in", "output": "out", "state": "state", "routing": {"default": ["starry"]},
                "styles": {"starry": {"images": [str(STYLE / "starry_night.jpg")]}}, **keys}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def fresh_warning(monkeypatch):
    """As in a new process: the deprecation not yet warned about."""
    monkeypatch.setattr(settings, "_warned", set())


def test_store_names_the_job_store(tmp_path):
    config = parse_config(_write(tmp_path, store=URL))
    assert config.store_shared and config.store_target.location == URL
    sqlite = parse_config(_write(tmp_path, store=str(tmp_path / "jobs.sqlite3")))
    assert not sqlite.store_shared and sqlite.store_path == tmp_path / "jobs.sqlite3"
    default = parse_config(_write(tmp_path))
    assert default.store_path == tmp_path / "state" / "journal.sqlite3"  # the file keeps its name


def test_journal_still_works_and_warns_once(tmp_path, caplog, fresh_warning):
    path = _write(tmp_path, journal=URL)
    before = path.read_text()
    with caplog.at_level(logging.WARNING, logger=settings.__name__):
        first, second = parse_config(path), parse_config(path)
    assert first.store == second.store == URL and first.store_shared
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["journal: is deprecated, rename it to store:"]
    assert path.read_text() == before  # said, never rewritten


def test_journal_and_store_together_is_an_error(tmp_path, fresh_warning):
    with pytest.raises(ConfigError, match="journal: is the old name of store:; keep only store:"):
        parse_config(_write(tmp_path, journal=URL, store=URL))
