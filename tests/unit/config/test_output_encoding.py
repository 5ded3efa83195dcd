"""naming.depth and naming.color_space: validated with the format, and in the style sets' fingerprints only
when set (a config without them keeps the fingerprints it had, so upgrading queues no new generation)."""

from __future__ import annotations

import shutil

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError
from daemon.service.fingerprint import style_fingerprints
from tests.support import STYLE
from tests.support.daemon import write_config


def _config(tmp_path, **naming):
    painting = tmp_path / "starry.jpg"
    if not painting.exists():
        shutil.copyfile(STYLE / "starry_night.jpg", painting)
    path = write_config(tmp_path, styles={"starry": {"images": [str(painting)]}}, naming=naming)
    return load_config(path, create_folders=True)


def test_encodings_that_change_the_result_change_the_fingerprint(tmp_path):
    plain = style_fingerprints(_config(tmp_path, format="png"))["starry"]
    deep = style_fingerprints(_config(tmp_path, format="png", depth=16))["starry"]
    original = style_fingerprints(_config(tmp_path, format="png", color_space="original"))["starry"]
    assert len({plain, deep, original}) == 3
    # The defaults written out are the defaults left out: same fingerprint.
    assert style_fingerprints(_config(tmp_path, format="png", color_space="srgb"))["starry"] == plain


@pytest.mark.parametrize("naming,problem", [
    ({"format": "jpg", "depth": 16}, "depth 16 needs format png or tif"),
    ({"format": "webp", "depth": 16}, "depth 16 needs format png or tif"),
    ({"format": "tif", "depth": 12}, "depth"),
    ({"color_space": "p3"}, "color_space"),
    ({"format": "tiff"}, "format"),
])
def test_impossible_encodings_are_refused_naming_the_key(tmp_path, naming, problem):
    with pytest.raises(ConfigError, match=problem):
        _config(tmp_path, **naming)


def test_tif_is_16_bit_unless_told(tmp_path):
    from daemon.media.images import default_depth

    config = _config(tmp_path, format="tif")
    assert config.naming.depth is None and default_depth(config.naming.format) == 16
    assert _config(tmp_path, format="tif", depth=8).naming.depth == 8
