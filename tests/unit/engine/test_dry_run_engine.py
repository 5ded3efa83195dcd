"""The dry-run engine in-process: the Engine protocol, the real engine's scale plan, progress and stop, the
result it marks, and its testing hooks (environment only)."""

from __future__ import annotations

import errno
import inspect

import numpy as np
import pytest

from daemon.engine.dry_run import DryRunEngine
from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.protocol import DRY_RUN_BACKEND, Engine
from daemon.engine.schedule import scale_sizes
from daemon.errors import StopRequested

PHOTO = np.full((120, 200, 3), 100.0, np.float32)
STYLE = (StyleImage(np.full((40, 40, 3), 200.0, np.float32)),)
HOOKS = ("STYLE_DAEMON_FAKE_HANG_AFTER", "STYLE_DAEMON_FAKE_DISK_FULL", "STYLE_DAEMON_FAKE_FAULT",
         "STYLE_DAEMON_FAKE_FAULT_TIMES", "STYLE_DAEMON_FAKE_FAULT_WHILE", "STYLE_DAEMON_FAKE_CRASH",
         "STYLE_DAEMON_FAKE_TILES")


@pytest.fixture(autouse=True)
def no_hooks(monkeypatch):
    for name in HOOKS:
        monkeypatch.delenv(name, raising=False)


def test_it_is_an_engine_like_the_keras_one() -> None:
    from daemon.engine.transfer import StyleTransfer

    assert isinstance(DryRunEngine(0), Engine)
    for name in ("backend", "device", "stylize"):  # same calls, same parameters: the worker cannot tell
        assert inspect.signature(getattr(StyleTransfer, name)).parameters.keys() == \
            inspect.signature(getattr(DryRunEngine, name)).parameters.keys() == \
            inspect.signature(getattr(Engine, name)).parameters.keys(), name


def test_the_result_is_marked_and_follows_the_real_scale_plan() -> None:
    engine = DryRunEngine(0)
    params = TransferParams(iterations=6, max_size=160, scales=2, min_scale_size=32)
    reports = []
    result = engine.stylize(PHOTO, STYLE, params, on_progress=reports.append)
    assert engine.backend() == DRY_RUN_BACKEND == "dry-run"
    assert list(result.scale_sizes) == scale_sizes(200, 120, params) == [(80, 48), (160, 96)]
    assert result.rgb.shape == (96, 160, 3)
    assert np.allclose(result.rgb, 150.0)  # half-way from the photo (100) to the style's mean colour (200)
    assert [r.iteration for r in reports] == [1, 2, 3, 4, 5, 6]
    assert [s.iterations for s in result.scale_reports] == [3, 3]
    assert all("dry run" in s.stop_detail and s.optimizer.startswith("dry-run-") for s in result.scale_reports)


def test_a_stop_request_ends_the_run() -> None:
    with pytest.raises(StopRequested):
        DryRunEngine(0).stylize(PHOTO, STYLE, TransferParams(iterations=50, max_size=64), should_stop=lambda: True)


def test_the_delay_is_seconds_per_iteration() -> None:
    result = DryRunEngine(0.05).stylize(PHOTO, STYLE, TransferParams(iterations=6, max_size=64))
    assert result.seconds >= 0.3


def test_an_injected_fault_fails_the_first_jobs_only(monkeypatch) -> None:
    monkeypatch.setenv("STYLE_DAEMON_FAKE_FAULT", "EDQUOT")
    monkeypatch.setenv("STYLE_DAEMON_FAKE_FAULT_TIMES", "2")
    engine = DryRunEngine(0)
    params = TransferParams(iterations=2, max_size=64)
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            engine.stylize(PHOTO, STYLE, params)
        assert raised.value.errno == errno.EDQUOT
    assert engine.stylize(PHOTO, STYLE, params).iterations == 2


def test_a_fault_lasts_while_its_cause_exists(monkeypatch, tmp_path) -> None:
    cause = tmp_path / "cause"
    cause.touch()
    monkeypatch.setenv("STYLE_DAEMON_FAKE_FAULT", "OOM")
    monkeypatch.setenv("STYLE_DAEMON_FAKE_FAULT_WHILE", str(cause))
    engine = DryRunEngine(0)
    params = TransferParams(iterations=2, max_size=64)
    with pytest.raises(RuntimeError, match="RESOURCE_EXHAUSTED"):
        engine.stylize(PHOTO, STYLE, params)
    cause.unlink()
    assert engine.stylize(PHOTO, STYLE, params).iterations == 2


def test_disk_full_fails_the_first_jobs_with_enospc(monkeypatch) -> None:
    monkeypatch.setenv("STYLE_DAEMON_FAKE_DISK_FULL", "1")
    engine = DryRunEngine(0)
    params = TransferParams(iterations=2, max_size=64)
    with pytest.raises(OSError) as raised:
        engine.stylize(PHOTO, STYLE, params)
    assert raised.value.errno == errno.ENOSPC
    assert engine.stylize(PHOTO, STYLE, params).iterations == 2


@pytest.mark.parametrize("tiling, asked, tiles", [("auto", "6", 6), ("always", "", 4), ("never", "6", 0),
                                                  ("auto", "", 0)])
def test_tiles_report_progress_per_tile(monkeypatch, tiling: str, asked: str, tiles: int) -> None:
    monkeypatch.setenv("STYLE_DAEMON_FAKE_TILES", asked)
    reports = []
    result = DryRunEngine(0).stylize(PHOTO, STYLE, TransferParams(iterations=2, max_size=64, tiling=tiling),
                                     on_progress=reports.append)
    assert {s.tiles for s in result.scale_reports} == {tiles}
    assert sum(1 for r in reports if r.tiles) == 2 * tiles
