"""The service's folders are refused when they are `/`, a system folder or a whole top-level tree, for every
folder key, before anything is looked at or created; its own subfolders elsewhere are fine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from daemon.config import load_config
from daemon.errors import ConfigError
from tests.support.daemon import write_config

KEYS = ("input", "output", "state", "failed", "processed")
BAD = ("/", "/proc", "/sys/kernel", "/dev", "/dev/shm/photos", "/usr/share/photos", "/etc", "/boot", "/var",
       "/home", "/tmp", "/run")


def _config_with(tmp_path: Path, key: str, folder: str) -> Path:
    path = write_config(tmp_path, after_success="move")
    document = yaml.safe_load(path.read_text())
    document[key] = folder
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("folder", BAD)
def test_a_system_or_whole_folder_is_refused_naming_the_key_and_the_fix(tmp_path, key, folder):
    config = _config_with(tmp_path, key, folder)
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError) as refused:
        load_config(config, create_folders=True)
    message = str(refused.value)
    assert f": {key}: {Path(folder)} is " in message and "give the service a folder of its own" in message
    assert "\n" not in message
    assert sorted(p for p in tmp_path.rglob("*")) == before, "a refused config created something"


def test_a_link_that_leads_to_the_root_is_refused_as_the_root(tmp_path):
    (tmp_path / "everything").symlink_to("/")
    with pytest.raises(ConfigError, match=r"input: / is a whole top-level folder"):
        load_config(_config_with(tmp_path, "input", str(tmp_path / "everything")))


@pytest.mark.parametrize("key", KEYS)
def test_a_folder_of_its_own_under_a_top_level_tree_is_fine(tmp_path, key):
    (tmp_path / "own-input").mkdir()  # the input folder must exist; the service creates the others
    config = load_config(_config_with(tmp_path, key, str(tmp_path / f"own-{key}")), create_folders=True)
    assert getattr(config, key) == tmp_path / f"own-{key}"
