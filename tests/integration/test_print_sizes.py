"""Issue 14, service side: the memory budget and tiling keys (config, stylize options, check-config), what a
tiled job tells the watchdog and the log, and what its sidecar records. The dry-run engine tiles on request
(STYLE_DAEMON_FAKE_TILES, or tiling: always); the daemon runs as a real subprocess.
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest
import yaml

from daemon.config import parse_config
from daemon.engine.params import Progress
from daemon.errors import ConfigError
from daemon.review.progress import ProgressReporter, describe
from tests.support import CONTENT, STYLE
from tests.support.daemon import Daemon, drop, store_rows, wait_until, write_config
from tests.support.notify import notify_env
from tests.support.engine_parts import stylize_params
from tests.support.cli import poison_ml, run_cli

GB = 1000**3
GIB = 1024**3


# --- config -------------------------------------------------------------------------------------------------


def _parse(tmp_path: Path, engine: dict | None = None, style: dict | None = None):
    config = {"input": "in", "output": "out", "state": "state",
              "styles": {"starry": {"images": [str(STYLE / "starry_night.jpg")], "params": style or {}}},
              "routing": {"default": ["starry"]}, "engine": engine or {}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    parsed = parse_config(path)
    return parsed.engine.transfer_params(parsed.styles["starry"].params)


@pytest.mark.parametrize("value, expected", [
    (0, 0), ("0", 0), (8 * GB, 8 * GB), ("8000000000", 8 * GB), ("8GB", 8 * GB), ("8 gb", 8 * GB),
    ("1.5GB", 1_500_000_000), ("512MiB", 512 * 1024**2), ("512MB", 512 * 1000**2), ("2G", 2 * GIB),
    ("2Gi", 2 * GIB), ("1TB", 1000**4), ("1TiB", 1024**4), ("65536K", 64 * 1024**2), (" 4 GiB ", 4 * GIB),
])
def test_memory_budget_takes_bytes_or_a_human_size(tmp_path, value, expected):
    assert _parse(tmp_path, engine={"memory_budget": value}).memory_budget == expected
    assert _parse(tmp_path, style={"memory_budget": value}).memory_budget == expected


def test_tiling_keys_reach_the_engine_parameters_and_a_style_set_overrides_them(tmp_path):
    params = _parse(tmp_path, engine={"memory_budget": "8GB", "tiling": "always", "tile_size": 256})
    assert (params.memory_budget, params.tiling, params.tile_size) == (8 * GB, "always", 256)
    params = _parse(tmp_path, engine={"memory_budget": "8GB", "tiling": "always", "tile_size": 256},
                    style={"memory_budget": "2GiB", "tiling": "never", "tile_size": 512})
    assert (params.memory_budget, params.tiling, params.tile_size) == (2 * GIB, "never", 512)
    params = _parse(tmp_path)
    assert (params.memory_budget, params.tiling, params.tile_size) == (0, "auto", 0)


@pytest.mark.parametrize("key, value, says", [
    ("memory_budget", "lots", "size such as 8GB"),
    ("memory_budget", "8", "write the unit"),  # a forgotten unit, not an 8-byte budget
    ("memory_budget", 8, "write the unit"),
    ("memory_budget", -1, "size such as 8GB"),
    ("memory_budget", "-2GB", "size such as 8GB"),
    ("memory_budget", 1.5, "size such as 8GB"),
    ("memory_budget", True, "size such as 8GB"),
    ("memory_budget", "8 XB", "size such as 8GB"),
    ("memory_budget", "GB", "size such as 8GB"),
    ("memory_budget", "", "size such as 8GB"),
    ("memory_budget", [8], "size such as 8GB"),
    ("memory_budget", "1e9", "size such as 8GB"),
    ("tiling", "sometimes", "'auto', 'always' or 'never'"),
    ("tiling", True, "'auto', 'always' or 'never'"),
    ("tile_size", 100, "multiple of 16"),
    ("tile_size", 16, "multiple of 16"),
    ("tile_size", -32, "greater than or equal to 0"),
    ("tile_size", "256", "without quotes"),
    ("tile_size", 256.0, "valid integer"),
])
@pytest.mark.parametrize("where", ["engine", "styles.starry.params"])
def test_a_bad_tiling_value_is_refused_with_its_dotted_key(tmp_path, key, value, says, where):
    place = {"engine": {key: value}} if where == "engine" else {"style": {key: value}}
    with pytest.raises(ConfigError) as refused:
        _parse(tmp_path, **place)
    message = str(refused.value)
    assert f"{where}.{key}: " in message and says in message, message
    assert "\n" not in message


# --- command line -------------------------------------------------------------------------------------------


def test_stylize_options_reach_the_engine_parameters():
    params = stylize_params("--memory-budget", "3GiB", "--tiling", "always", "--tile-size", "128", "--size", "6000")
    assert (params.memory_budget, params.tiling, params.tile_size, params.max_size) == (3 * GIB, "always", 128, 6000)
    params = stylize_params()
    assert (params.memory_budget, params.tiling, params.tile_size) == (0, "auto", 0)
    assert stylize_params("--memory-budget", "800000000").memory_budget == 800_000_000


@pytest.fixture
def no_ml(tmp_path) -> dict:
    """PYTHONPATH on which importing tensorflow, keras or jax kills the process (exit 97)."""
    return poison_ml(tmp_path).env()


@pytest.mark.parametrize("options, says", [
    (("--memory-budget", "lots"), "argument --memory-budget: expected a number of bytes"),
    (("--memory-budget", "8"), "argument --memory-budget: '8' is only 8 bytes"),
    (("--tiling", "sometimes"), "argument --tiling: invalid choice"),
    (("--tile-size", "100"), "--tile-size must be 0 (auto) or a multiple of 16"),
    (("--tile-size", "abc"), "argument --tile-size: invalid int value"),
])
def test_a_bad_tiling_option_is_a_usage_error_before_the_model_loads(tmp_path, no_ml, options, says):
    done = run_cli("stylize", str(CONTENT / "chelsea.png"), "-s", str(STYLE / "starry_night.jpg"),
                "-o", str(tmp_path / "out.jpg"), *options, env=no_ml)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr, done.stderr


def test_check_config_prints_the_memory_budget_without_loading_the_model(tmp_path, no_ml):
    no_ml = dict(no_ml, CUDA_VISIBLE_DEVICES="")  # the budget is RAM here, even on a machine with a GPU
    config = write_config(tmp_path, engine={"backbone": "vgg16-hed", "memory_budget": "200MB", "tiling": "always"},
                          styles={"starry": {"images": [str(STYLE / "starry_night.jpg")],
                                             "params": {"memory_budget": "512MiB"}},
                                  "scream": {"images": [str(STYLE / "the_scream.jpg")]}})
    done = run_cli("check-config", "-c", str(config), env=no_ml)
    assert done.returncode == 0, done.stderr
    assert "# memory budget: 200.0 MB, tiling always; style sets: starry 536.9 MB" in done.stdout, done.stdout
    yaml.safe_load(done.stdout)  # still a valid config

    config = write_config(tmp_path, engine={"backbone": "vgg16-hed"})
    done = run_cli("check-config", "-c", str(config), env=no_ml)
    lines = [line for line in done.stdout.splitlines() if line.startswith("# memory budget:")]
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith("# memory budget: the RAM free (now ") and lines[0].endswith(
        "B) when a job starts, tiling auto"), lines[0]

    config = write_config(tmp_path, engine={"backbone": "vgg16-hed", "memory_budget": "100TB"})
    done = run_cli("check-config", "-c", str(config), env=no_ml)
    assert "# memory budget: 100.0 TB (more than the " in done.stdout and " of RAM free now)" in done.stdout, \
        done.stdout


# --- progress lines -----------------------------------------------------------------------------------------


def _progress(iteration: int, tile: int = 0, tiles: int = 0) -> Progress:
    return Progress(iteration, 10, 1, 1, (6000, 4000), 1.0, 0.5, 0.5, 0.0, 60.0, 600.0, tile=tile, tiles=tiles)


def test_progress_line_names_the_tile():
    assert describe(_progress(3, 4, 12)).startswith("iter 3/10 tile 4/12 scale 1/1 6000x4000 ")
    assert describe(_progress(3)).startswith("iter 3/10 scale 1/1 6000x4000 ")


def test_tile_reports_do_not_flood_the_stylize_log(caplog):
    """Tiles report with the iteration unchanged (0 before the first is done): not one log line per tile."""
    reporter = ProgressReporter("photo.jpg", log_every=1)
    with caplog.at_level(logging.INFO, logger="daemon.review.progress"):
        for iteration in range(0, 3):
            for tile in range(1, 13):
                reporter(_progress(iteration, tile, 12))
            reporter(_progress(iteration + 1))
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" scale")[0] for line in lines] == [
        "photo.jpg: iter 0/10 tile 1/12", "photo.jpg: iter 1/10", "photo.jpg: iter 2/10", "photo.jpg: iter 3/10"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_the_tile_while_the_iteration_count_stands_still():
    terminal = _Terminal()
    reporter = ProgressReporter("photo.jpg", log_every=1, stream=terminal)
    reporter(_progress(0, 1, 4))
    reporter(_progress(0, 2, 4))
    assert terminal.getvalue().rstrip().endswith("tile 2/4 loss 1"), repr(terminal.getvalue())
    reporter(_progress(1))
    reporter.close()
    assert "tile" not in terminal.getvalue().rstrip().rsplit("\r", 1)[-1]


# --- the daemon: watchdog, log, sidecar ---------------------------------------------------------------------


# notify_env: WATCHDOG_USEC 2 s, so a job must report progress within 2 s; one iteration below takes 3 s.


def test_a_tiled_iteration_longer_than_the_watchdog_period_keeps_it_fed(tmp_path, listener):
    config = write_config(tmp_path, engine={"iterations": 3, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=3.0, env=notify_env(tmp_path, STYLE_DAEMON_FAKE_TILES="6"))
    wait_until(lambda: listener.times("READY=1"), what="READY=1")
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    wait_until(lambda: [r for r in store_rows(tmp_path) if r["state"] == "running"], what="running")
    started = time.monotonic()
    wait_until(lambda: [r for r in store_rows(tmp_path) if r["state"] == "done"], timeout=60, what="job done")
    finished = time.monotonic()
    assert finished - started >= 6, "the job ran too fast to prove anything"
    pings = [t for t in listener.times("WATCHDOG=1") if started <= t <= finished]
    gaps = [b - a for a, b in zip([started] + pings, pings + [finished])]
    assert max(gaps) < 2.0, f"the watchdog went {max(gaps):.1f}s without a ping during the tiled job"
    output = daemon.output()
    assert "withholding the watchdog ping" not in output, output
    # One line when tiling starts, then the iterations: not a line per tile.
    progress = [line.split("job 1: ")[1].split(" scale")[0] for line in output.splitlines() if "job 1: iter" in line]
    assert progress == ["iter 0/3 tile 1/6", "iter 1/3", "iter 2/3", "iter 3/3"], output
    assert daemon.stop() == 0


def test_a_tiled_job_that_stops_reporting_still_loses_the_watchdog(tmp_path, listener):
    config = write_config(tmp_path, engine={"iterations": 50, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=1.2, env=notify_env(tmp_path, STYLE_DAEMON_FAKE_TILES="6",
                                                       STYLE_DAEMON_FAKE_HANG_AFTER="2"))
    wait_until(lambda: listener.times("READY=1"), what="READY=1")
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    wait_until(lambda: "job 1: iter 0/50 tile 1/6" in daemon.output(), what="tile progress")
    wait_until(lambda: "withholding the watchdog ping" in daemon.output(), timeout=15, what="health check")
    assert "job 1 (chelsea.png) made no progress" in daemon.output()
    quiet_from = time.monotonic()
    wait_until(lambda: time.monotonic() - quiet_from > 3, interval=0.1)
    assert [t for t in listener.times("WATCHDOG=1") if t > quiet_from] == []
    daemon.kill()


def test_sidecar_records_the_tiling_settings_and_whether_it_tiled(tmp_path):
    config = write_config(
        tmp_path, engine={"iterations": 2, "max_size": 64, "scales": 1, "backbone": "vgg16-hed",
                          "memory_budget": "2GB", "tiling": "always", "tile_size": 64},
        styles={"starry": {"images": [str(STYLE / "starry_night.jpg")]},
                "scream": {"images": [str(STYLE / "the_scream.jpg")],
                           "params": {"memory_budget": "512MiB", "tiling": "never"}}},
        routing={"default": ["starry", "scream"]})
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    daemon = Daemon(config, command="once")
    assert daemon.proc.wait(timeout=120) == 0, daemon.output()
    starry = json.loads((tmp_path / "out" / "chelsea.starry.jpg.json").read_text())
    scream = json.loads((tmp_path / "out" / "chelsea.scream.jpg.json").read_text())
    assert {k: starry["parameters"][k] for k in ("memory_budget", "tiling", "tile_size")} == \
        {"memory_budget": 2 * GB, "tiling": "always", "tile_size": 64}
    assert {k: scream["parameters"][k] for k in ("memory_budget", "tiling", "tile_size")} == \
        {"memory_budget": 512 * 1024**2, "tiling": "never", "tile_size": 64}  # inherited
    assert starry["tiled"] is True and scream["tiled"] is False
