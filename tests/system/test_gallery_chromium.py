"""The morning-after view: contact sheets, index.html rendered by headless Chromium, Prometheus metrics."""

from __future__ import annotations

import html
import shutil
import socket
import subprocess
import urllib.request

import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.support import CONTENT
from tests.support.daemon import Daemon, drop, store_rows, wait_until, write_config

TRICKY = ['a <b> & "c" \'d\'.png', "café ünïcode 写真.png", "space name.png"]
BAD = "bad <x> & y.jpg"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is missing: install Debian's chromium package (.ci/run does)"
    return path


def _chromium_run(tmp_path, *args) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A daemon run over three oddly named photos and one bad file, with metrics on."""
    folder = tmp_path_factory.mktemp("gallery")
    port = _free_port()
    config = write_config(folder, metrics={"listen": f"127.0.0.1:{port}", "textfile": "metrics/style.prom",
                                           "interval_seconds": 0.2})
    daemon = Daemon(config)
    daemon.wait_ready()
    for name, source in zip(TRICKY, ("chelsea.png", "coffee.png", "astronaut.png")):
        drop(CONTENT / source, folder / "in" / name)
    (folder / "in" / BAD).write_text("not an image")
    wait_until(lambda: len([r for r in store_rows(folder) if r["state"] in ("done", "failed")]) == 4,
               what="four jobs ended")
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    textfile = folder / "metrics" / "style.prom"
    wait_until(lambda: textfile.exists() and 'state="done"} 3.0' in textfile.read_text(), what="textfile")
    daemon.stop()
    return folder, scraped, textfile.read_text()


def test_contact_sheets_beside_each_result(batch):
    folder, _, _ = batch
    for name in TRICKY:
        stem = name.rsplit(".", 1)[0]
        sheet = folder / "out" / f"{stem}.starry.jpg.sheet.jpg"
        assert sheet.exists(), sheet
        image = Image.open(sheet)
        assert image.format == "JPEG" and image.height < 300 and image.width > 2 * image.height
        assert sheet.stat().st_size < 200_000


def test_gallery_renders_every_result_and_failure_with_names_shown_literally(batch, tmp_path):
    folder, _, _ = batch
    index = folder / "out" / "index.html"
    dom = _chromium_run(tmp_path, "--virtual-time-budget=5000", "--dump-dom", index.as_uri()).stdout
    assert 'data-images="3/3"' in dom, dom[-500:]
    text = html.unescape(dom)
    for name in TRICKY + [BAD]:
        assert name in text, name
    assert "not an image Pillow can read" in text
    assert "3 done" in text and "1 failed" in text
    assert "<b>" not in dom.replace("&lt;b&gt;", "")  # the name's <b> never became markup

    shot = tmp_path / "gallery.png"
    _chromium_run(tmp_path, "--window-size=1200,900", "--virtual-time-budget=5000", f"--screenshot={shot}",
                  index.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (900, 1200) and pixels.std() > 20, "blank screenshot"


def test_metrics_endpoint_and_textfile_parse_with_expected_values(batch):
    _, scraped, textfile = batch
    for text in (scraped, textfile):
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        assert samples[("style_daemon_jobs", (("state", "done"),))] == 3
        assert samples[("style_daemon_jobs", (("state", "failed"),))] == 1
        assert samples[("style_daemon_jobs", (("state", "queued"),))] == 0
        assert samples[("style_daemon_queue_length", ())] == 0
        assert samples[("style_daemon_job_duration_seconds_count", ())] == 3
        assert samples[("style_daemon_job_duration_seconds_bucket", (("le", "+Inf"),))] == 3
        assert 0 <= samples[("style_daemon_seconds_since_last_completed_job", ())] < 120
        assert samples[("style_daemon_backbone_info", (("backbone", "vgg16-hed"),))] == 1
        assert ("style_daemon_current_job_progress", ()) in samples
    assert "style_daemon_up 1.0" in scraped
    assert "style_daemon_up 0.0" in textfile  # written once more at shutdown
