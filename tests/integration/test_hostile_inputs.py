"""Hostile inputs: links that lead out of the input folder, names of any bytes, names that try to forge output.

The daemon runs as a real subprocess with the dry-run engine; links, renames and odd names are made
on real folders while it runs.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.support import CONTENT
from tests.support.daemon import ROOT, Daemon, done_jobs, store_rows, wait_until, write_config

PASSWD = Path("/etc/passwd")


def variant(n: int, source: str = "chelsea.png") -> bytes:
    """A real photo with one pixel changed: a distinct content (and so a distinct job) per n."""
    image = Image.open(CONTENT / source).convert("RGB")
    image.putpixel((0, 0), (n % 256, (n * 7) % 256, (n * 13) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def put(path: Path | bytes, data: bytes) -> None:
    """Write a file the careful way (aside, then rename in); `path` may be bytes (any name the kernel allows)."""
    path = os.fsencode(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, b"." + name + b".part")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def files_table(folder: Path) -> list[str]:
    """Paths the intake hashed (the journal's files table)."""
    return [r["path"] for r in store_rows(folder, "SELECT path FROM files ORDER BY path")]


def all_bytes_under(top: Path) -> list[bytes]:
    """The content of every regular file under `top` (links not followed)."""
    found = []
    for here, _, names in os.walk(os.fsencode(top)):
        for name in names:
            path = os.path.join(here, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found.append(handle.read())
    return found


def flip(path: Path, makers: list, seconds: float = 2.5) -> None:
    """Replace `path` by an atomic rename with each maker's entry in turn, for `seconds`; ends on the last."""
    deadline = time.monotonic() + seconds
    turn = 0
    while True:
        last = time.monotonic() > deadline and turn % len(makers) == len(makers) - 1
        tmp = path.with_name(f".{path.name}.{turn}")
        makers[turn % len(makers)](tmp)
        os.replace(tmp, path)
        if last:
            return
        turn += 1
        time.sleep(0.03)  # the attack's own pace, not a synchronisation


def window(hours_from_now: int) -> dict:
    """A one-hour schedule window starting `hours_from_now` hours from now (closed now)."""
    hour = time.localtime().tm_hour
    return {"start": f"{(hour + hours_from_now) % 24:02d}:00", "end": f"{(hour + hours_from_now + 1) % 24:02d}:00"}


def open_schedule(config: Path, daemon: Daemon) -> None:
    """Drop the schedule and reload: held jobs may start now."""
    data = yaml.safe_load(config.read_text())
    del data["schedule"]
    config.write_text(yaml.safe_dump(data))
    daemon.signal(signal.SIGHUP)


def settle_sentinel(folder: Path, n: int) -> None:
    """Drop a fresh photo and wait until it is done: everything the daemon saw before it has been handled."""
    name = f"sentinel-{n}.png"
    put(folder / "in" / name, variant(1000 + n))
    wait_until(lambda: [r for r in done_jobs(folder) if r["rel_path"] == name], what=name)


def status_text(config: Path, *extra: str) -> str:
    result = subprocess.run([sys.executable, "-m", "daemon", "status", "-c", str(config), *extra], cwd=ROOT,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode("utf-8")  # strict: the status text is always valid UTF-8


# -- safe_open, unit ------------------------------------------------------------------------------


def test_safe_open_reads_regular_files_and_refuses_links_and_special_files(tmp_path):
    from daemon.errors import StyleDaemonError, UnsafeInputError
    from daemon.media.safe_open import open_input

    root, outside = tmp_path / "in", tmp_path / "outside"
    (root / "sub" / "deeper").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"outside")
    (root / "sub" / "deeper" / "photo.jpg").write_bytes(b"inside")
    (root / "sub" / "real.jpg").write_bytes(b"inside too")
    with open_input(root, root / "sub" / "deeper" / "photo.jpg") as handle:
        assert handle.read() == b"inside"

    os.symlink(outside / "secret.jpg", root / "abs-link.jpg")
    os.symlink("../outside/secret.jpg", root / "rel-link.jpg")
    os.symlink(root / "sub" / "real.jpg", root / "inside-link.jpg")  # even links that stay inside
    os.symlink(outside, root / "dir-link")
    os.symlink(root / "sub", root / "inside-dir-link")
    os.symlink(root / "sub", root / "sub" / "loop")
    os.symlink(root / "missing.jpg", root / "dangling.jpg")
    os.mkfifo(root / "pipe.jpg")
    refused = ["abs-link.jpg", "rel-link.jpg", "inside-link.jpg", "dir-link/secret.jpg",
               "inside-dir-link/real.jpg", "sub/loop/real.jpg", "sub/loop/loop/real.jpg", "dangling.jpg",
               "pipe.jpg", "sub", "sub/real.jpg/x"]
    for name in refused:
        with pytest.raises(UnsafeInputError) as caught:
            open_input(root, root / name)
        assert isinstance(caught.value, StyleDaemonError) and "\n" not in str(caught.value)
    for path in (outside / "secret.jpg", root / ".." / "outside" / "secret.jpg", root):
        with pytest.raises(UnsafeInputError):
            open_input(root, path)
    assert "symbolic link" in _message(root, "dir-link/secret.jpg")
    assert "links are never followed" in _message(root, "abs-link.jpg")


def _message(root: Path, name: str) -> str:
    from daemon.errors import UnsafeInputError
    from daemon.media.safe_open import open_input

    try:
        open_input(root, root / name)
    except UnsafeInputError as exc:
        return str(exc)
    raise AssertionError(f"{name} was opened")


def test_safe_open_descriptor_keeps_the_checked_file_when_the_name_is_swapped(tmp_path):
    from daemon.media.hashing import sha256_handle
    from daemon.media.images import load_image
    from daemon.media.safe_open import open_input

    root = tmp_path / "in"
    root.mkdir()
    photo = root / "photo.png"
    photo.write_bytes((CONTENT / "coffee.png").read_bytes())
    with open_input(root, photo) as handle:
        first = sha256_handle(handle)
        os.symlink(PASSWD, root / ".swap")
        os.replace(root / ".swap", photo)  # the name now leads to /etc/passwd; the descriptor does not
        assert sha256_handle(handle) == first
        assert load_image(handle).size == Image.open(CONTENT / "coffee.png").size


def test_safe_open_does_not_block_on_a_fifo(tmp_path):
    from daemon.errors import UnsafeInputError
    from daemon.media.safe_open import open_input

    root = tmp_path / "in"
    root.mkdir()
    os.mkfifo(root / "pipe.png")
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_try_open(open_input, root / "pipe.png", root)),
                              daemon=True)
    thread.start()
    thread.join(10)
    assert outcome and isinstance(outcome[0], UnsafeInputError), "opening a FIFO blocked or succeeded"


def _try_open(open_input, path, root):
    try:
        open_input(root, path).close()
    except Exception as exc:  # noqa: BLE001 - the test looks at which one
        return exc
    return None


# -- names, unit ----------------------------------------------------------------------------------

_NAMES = [b"caf\xe9.jpg", b"\xff\xfe.png", b"mix-\xc3\xa9t\xe9-\xe2\x82.jpg", b"\xef\x9e\x80pua.jpg",
          b"\xed\xb3\xa9.jpg", b"plain.jpg", "日本語.png".encode(), b"new\nline.jpg", b"\x1b[31mred.jpg",
          b"\xc2\x85nel.jpg", "ls\u2028sep.png".encode(), bytes(range(1, 47)) + bytes(range(48, 256))]


@pytest.mark.parametrize("raw", _NAMES)
def test_names_to_text_is_storable_and_reversible(raw, tmp_path):
    from daemon.media.path_text import display, from_text, to_text

    path = Path(os.fsdecode(b"/photos/" + raw))
    text = to_text(path)
    text.encode("utf-8")  # no lone surrogates: SQLite, JSON and UTF-8 files take it
    assert os.fsencode(from_text(text)) == b"/photos/" + raw
    assert to_text(from_text(text)) == text and to_text(os.fsencode(path)) == text
    db = sqlite3.connect(tmp_path / "t.sqlite3")
    db.execute("CREATE TABLE t (p TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (text,))
    assert os.fsencode(from_text(db.execute("SELECT p FROM t").fetchone()[0])) == b"/photos/" + raw
    json.loads(json.dumps(text, ensure_ascii=False))
    for shown in (display(path), display(text)):
        assert shown.isprintable() and len(shown.splitlines()) == 1, repr(shown)
        shown.encode("utf-8")


def test_names_display_escapes_bytes_and_controls():
    from daemon.media.path_text import display, to_text

    assert display(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg" == display(to_text(os.fsdecode(b"caf\xe9.jpg")))
    assert display("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert display("\x1b[31m\x00\x7f") == "\\x1b[31m\\x00\\x7f"
    assert display("nel\x85 ls\u2028 rlo\u202e") == "nel\\u0085 ls\\u2028 rlo\\u202e"
    assert display("café 日本 <ok> & 'q'") == "café 日本 <ok> & 'q'"


def test_log_records_are_one_line_whatever_the_message_and_traceback_hold():
    from daemon.logs import make_formatter

    forged = "photo\nERROR daemon.service.worker_process: job 1: failed\r\x1b[2K" + os.fsdecode(b"\xe9")
    formatter = make_formatter(timestamps=False)
    record = logging.LogRecord("daemon.x", logging.INFO, __file__, 1, "queued %s", (forged,), None)
    line = formatter.format(record)
    assert line == "INFO daemon.x: queued photo\\nERROR daemon.service.worker_process: job 1: failed\\r\\x1b[2K\\xe9"
    try:
        raise ValueError(forged)
    except ValueError:
        record = logging.LogRecord("daemon.x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    lines = formatter.format(record).split("\n")
    assert lines[0] == "ERROR daemon.x: boom"
    assert all(line.startswith("  ") and line.isprintable() for line in lines[1:]), lines


def test_status_and_health_lines_escape_names(tmp_path):
    from daemon.review.status import FailedJob, RunningJob, StatusReport, render_text
    from daemon.service.health import HealthReporter
    from daemon.store import JobSpec, open_store

    name = "evil\nfailed   #9 fake.jpg [starry]: \x1b[31mforged" + os.fsdecode(b"\xff")
    report = StatusReport(0, 1, 0, 1, [RunningJob(2, name, "starry", 1, 5, 0.5, 1.0, 1.0, "w0")],
                          [FailedJob(1, name, "starry", "error about " + name, 0.0)])
    text = render_text(report)
    assert len(text.splitlines()) == 3 and "\x1b" not in text
    assert "evil\\nfailed   #9 fake.jpg [starry]: \\x1b[31mforged\\xff" in text
    journal = open_store(tmp_path / "journal.sqlite3")
    from daemon.media.path_text import to_text

    journal.enqueue(JobSpec("0" * 64, "starry", "p", to_text(name), to_text(name), "/out/x.jpg"))
    journal.claim("w0:1")
    line = HealthReporter.status_line(journal)  # sent to systemd as STATUS=...: a newline would forge a field
    assert "\n" not in line and "evil\\nfailed" in line
    journal.close()


# -- links: the daemon ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_link_to_a_folder_created_at_runtime_is_never_followed(folder, mode):
    outside = folder / "outside"
    (outside / "deep").mkdir(parents=True)
    put(outside / "there.png", variant(1))
    put(outside / "deep" / "deeper.png", variant(2))
    inside_real = folder / "in" / "real"
    inside_real.mkdir(parents=True)
    config = write_config(folder, watch={"mode": mode, "poll_interval": 0.3, "settle_seconds": 0.5})
    daemon = Daemon(config)
    daemon.wait_ready()
    os.symlink(outside, folder / "in" / "linked")
    os.symlink(inside_real, folder / "in" / "alias")  # a link that stays inside is not followed either
    put(outside / "later.png", variant(3))
    put(inside_real / "real.png", variant(4))
    settle_sentinel(folder, 1)
    daemon.signal(signal.SIGHUP)  # a reload rescans everything: it must not descend into the links either
    wait_until(lambda: "reloaded" in daemon.output(), what="reloaded")
    settle_sentinel(folder, 2)
    daemon.stop()
    assert sorted(r["rel_path"] for r in store_rows(folder)) == ["real/real.png", "sentinel-1.png",
                                                                  "sentinel-2.png"]
    assert all("linked" not in p and "alias" not in p for p in files_table(folder)), files_table(folder)
    assert not (folder / "out" / "linked").exists() and not (folder / "out" / "alias").exists()
    outside_bytes = {variant(1), variant(2), variant(3)}
    assert not outside_bytes & set(all_bytes_under(folder / "out"))


def test_links_to_files_are_never_followed_at_start_or_at_runtime(folder):
    outside = folder / "outside"
    outside.mkdir()
    put(outside / "photo.png", variant(10))
    inp = folder / "in"
    inp.mkdir()
    put(inp / "real.png", variant(11))
    os.symlink(outside / "photo.png", inp / "start-out.png")
    os.symlink("real.png", inp / "start-in.png")
    os.symlink(PASSWD, inp / "start-passwd.jpg")
    config = write_config(folder)
    daemon = Daemon(config)
    daemon.wait_ready()
    os.symlink(outside / "photo.png", inp / "run-out.png")
    os.symlink(inp / "real.png", inp / "run-in.png")
    os.symlink(PASSWD, inp / "run-passwd.jpg")
    os.link(inp / "real.png", inp / "hard.png")  # a hard link is the same file, inside: fine, same job
    settle_sentinel(folder, 1)
    daemon.stop()
    hashed = files_table(folder)
    assert not [p for p in hashed if "start-" in p or "run-" in p], hashed
    assert {r["rel_path"] for r in store_rows(folder)} <= {"real.png", "hard.png", "sentinel-1.png"}
    assert not [r for r in store_rows(folder) if r["state"] == "failed"]
    assert variant(10) not in all_bytes_under(folder / "out")
    assert PASSWD.read_bytes() not in all_bytes_under(folder / "out")


@pytest.mark.parametrize("target", ["passwd", "outside-photo"])
def test_link_swapped_by_rename_during_settle_is_never_read(folder, target):
    outside = folder / "outside"
    outside.mkdir()
    put(outside / "photo.png", variant(20))
    secret = PASSWD if target == "passwd" else outside / "photo.png"
    inp = folder / "in"
    inp.mkdir()
    put(inp / "real.png", variant(21))
    config = write_config(folder, watch={"settle_seconds": 1.5, "rescan_seconds": 300})
    daemon = Daemon(config)
    daemon.wait_ready()
    # A link that points inside, and a regular file, each swapped (atomic rename, during the settle
    # time) back and forth with a link to the secret, ending on the secret: whenever the daemon
    # looks, it must never read it.
    regular = variant(22)
    flip(inp / "link.jpg", [lambda p: os.symlink("real.png", p), lambda p: os.symlink(secret, p)])
    flip(inp / "regular.jpg", [lambda p: p.write_bytes(regular), lambda p: os.symlink(secret, p)])
    settle_sentinel(folder, 1)
    settle_sentinel(folder, 2)
    daemon.stop()
    assert secret.read_bytes() not in all_bytes_under(folder / "out"), f"{secret} copied into the output folder"
    assert not (folder / "out" / "failed").exists() or not any((folder / "out" / "failed").iterdir())
    rows = store_rows(folder)
    assert not [r for r in rows if r["rel_path"] in ("link.jpg", "regular.jpg")], rows
    assert not [p for p in files_table(folder) if "link.jpg" in p or "regular.jpg" in p]  # never even hashed


@pytest.mark.parametrize("swap", ["file", "folder"])
def test_input_replaced_by_a_link_while_queued_is_refused_by_the_worker(folder, swap):
    outside = folder / "outside"
    outside.mkdir()
    inp = folder / "in"
    (inp / "sub").mkdir(parents=True)
    data = variant(30)
    config = write_config(folder, schedule=window(hours_from_now=2))
    daemon = Daemon(config)
    daemon.wait_ready()
    put(inp / "sub" / "photo.png", data)
    wait_until(lambda: store_rows(folder), what="queued while the schedule is closed")
    if swap == "file":
        # The same bytes, outside: only the name now leads there, through a link.
        put(outside / "photo.png", data)
        os.symlink(outside / "photo.png", inp / "sub" / ".swap")
        os.replace(inp / "sub" / ".swap", inp / "sub" / "photo.png")
    else:
        os.rename(inp / "sub", outside / "sub")  # the folder leaves the input folder...
        os.symlink(outside / "sub", inp / "sub")  # ...and a link takes its place
    open_schedule(config, daemon)
    wait_until(lambda: not [r for r in store_rows(folder) if r["state"] in ("queued", "running")], what="job ended")
    settle_sentinel(folder, 1)
    daemon.stop()
    assert not (folder / "out" / "sub").exists(), "a result was made from a file outside the input folder"
    assert [r["rel_path"] for r in store_rows(folder)] == ["sentinel-1.png"]  # dropped, not failed
    assert data not in all_bytes_under(folder / "out")
    assert "links are never followed" in daemon.output()
    assert "Traceback" not in daemon.output()


# -- names: the daemon ----------------------------------------------------------------------------

_BYTE_NAMES = [b"caf\xe9.jpg", b"\xff\xfe.png", b"mix-\xc3\xa9t\xe9-\xe2\x82.jpg", b"\xef\x9e\x80pua.png",
               "日本語.png".encode()]


def test_names_that_are_not_utf8_work_and_survive_a_restart(folder):
    config = write_config(folder)
    inp = os.fsencode(folder / "in")
    out = os.fsencode(folder / "out")
    daemon = Daemon(config)
    daemon.wait_ready()
    (folder / "in" / "sub").mkdir()
    names = _BYTE_NAMES + [b"sub/\xe9t\xe9/inner.png"]
    for n, name in enumerate(names):
        os.makedirs(os.path.dirname(os.path.join(inp, name)), exist_ok=True)
        put(os.path.join(inp, name), variant(40 + n))
    put(os.path.join(inp, b"bad\xe9.jpg"), b"not an image at all")
    wait_until(lambda: len(done_jobs(folder)) == len(names), timeout=120, what="every name done")
    wait_until(lambda: [r for r in store_rows(folder) if r["state"] == "failed"], timeout=120, what="bad file failed")
    for name in names:
        stem = os.path.splitext(name)[0]
        result = os.path.join(out, stem + b".starry.jpg")
        assert os.path.isfile(result), result  # named from the real bytes
        sidecar = json.loads(open(result + b".json", "rb").read().decode("utf-8"))
        from daemon.media.path_text import from_text

        assert os.fsencode(from_text(sidecar["content"]["path"])) == os.path.join(inp, name)
        assert os.fsencode(from_text(sidecar["output"])) == result
    assert os.path.isfile(os.path.join(out, b"failed", b"bad\xe9.jpg"))
    assert open(os.path.join(out, b"failed", b"bad\xe9.jpg"), "rb").read() == b"not an image at all"
    assert os.path.isfile(os.path.join(out, b"failed", b"bad\xe9.jpg.error.txt"))
    # The worker records the failure in the store first and rebuilds the gallery after it: wait for the
    # page itself to show the failed file, not for the store row (on a loaded machine they are seconds apart).
    index = folder / "out" / "index.html"

    def gallery_listing_the_failure() -> str:
        text = index.read_bytes().decode("utf-8") if index.is_file() else ""
        return text if "bad\\xe9.jpg" in text else ""

    gallery = wait_until(gallery_listing_the_failure, timeout=120, what="the gallery listing the failed file")
    for shown in ("caf\\xe9.jpg", "\\xff\\xfe.png", "mix-ét\\xe9-\\xe2\\x82.jpg", "\\xef\\x9e\\x80pua.png",
                  "日本語.png", "bad\\xe9.jpg"):
        assert shown in gallery, shown
    assert "caf%E9.starry.jpg" in gallery  # the link leads to the real bytes
    text = status_text(config)
    assert "bad\\xe9.jpg" in text
    daemon.stop()
    restarted = Daemon(config)
    restarted.wait_ready()
    put(os.path.join(inp, b"after-\xfc.png"), variant(60))
    wait_until(lambda: len(done_jobs(folder)) == len(names) + 1, timeout=120, what="a job after the restart")
    assert restarted.proc.poll() is None
    assert restarted.stop() == 0
    logs = daemon.output() + restarted.output() + (folder / "out" / "logs" / "style-daemon.log").read_text()
    assert "Traceback" not in logs and "Logging error" not in logs and "exited with code" not in logs
    assert "caf\\xe9.jpg" in logs and "after-\\xfc.png" in logs
    assert len(done_jobs(folder)) == len(names) + 1  # nothing processed twice after the restart


_CONTROL_NAMES = ["new\nline.png", "cr\rname.png", "tab\tname.png", "esc\x1b[31mred.png", "del\x7fname.png",
                  "nel\x85name.png", "ls\u2028name.png", "rlo\u202egnp.png",
                  "x\nERROR daemon.service.worker_process: job 1: failed.png",
                  "y\n2026-01-01 00:00:00 INFO daemon.service.intake: queued forged.png"]
_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d )?(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_control_characters_in_names_are_escaped_everywhere(folder):
    config = write_config(folder)
    daemon = Daemon(config)
    daemon.wait_ready()
    inp = folder / "in"
    for n, name in enumerate(_CONTROL_NAMES):
        put(inp / name, variant(70 + n))
    put(inp / "bad\nname\x1b.jpg", b"not an image")
    wait_until(lambda: len(done_jobs(folder)) == len(_CONTROL_NAMES), what="every name done")
    wait_until(lambda: [r for r in store_rows(folder) if r["state"] == "failed"], what="bad file failed")
    rows = store_rows(folder)
    assert [r["rel_path"] for r in rows if r["state"] == "failed"] == ["bad\nname\x1b.jpg"]
    for name in _CONTROL_NAMES:
        stem = name[: -len(".png")]
        result = folder / "out" / f"{stem}.starry.jpg"
        assert result.is_file() and Path(str(result) + ".sheet.jpg").is_file(), name
    gallery = (folder / "out" / "index.html").read_text()
    assert "<span class=name>new\\nline.png</span>" in gallery
    assert "x\\nERROR daemon.service.worker_process: job 1: failed.png" in gallery
    assert "esc\\x1b[31mred.png" in gallery and "\x1b" not in gallery
    assert "<span class=name>bad\\nname\\x1b.jpg</span>" in gallery
    text = status_text(config)
    assert "bad\\nname\\x1b.jpg" in text and "\x1b" not in text
    assert len([line for line in text.splitlines() if line.startswith("failed")]) == 1
    daemon.stop()
    for log_text in (daemon.output(), (folder / "out" / "logs" / "style-daemon.log").read_text()):
        for raw in ("\r", "\x1b", "\x85", "\u2028", "\u202e", "\x7f"):
            assert raw not in log_text, repr(raw)
        for line in log_text.split("\n"):
            assert not line or _RECORD.match(line) or line.startswith(" "), repr(line)
            assert "job 1: failed" not in line or "\\nERROR" in line, repr(line)
            assert "queued forged" not in line or "\\n2026" in line, repr(line)
        assert "new\\nline.png" in log_text


def test_moved_inputs_keep_their_name_bytes_and_content(folder):
    config = write_config(folder, after_success="move", on_failure="move")
    inp, out = os.fsencode(folder / "in"), os.fsencode(folder / "out")
    daemon = Daemon(config)
    daemon.wait_ready()
    good, bad = variant(90), b"\x00 not an image"
    put(os.path.join(inp, b"good-\xe9\n.png"), good)
    put(os.path.join(inp, b"bad-\xe9.jpg"), bad)
    wait_until(lambda: not os.listdir(inp), what="both inputs moved out of the input folder")
    wait_until(lambda: os.path.exists(os.path.join(out, b"failed", b"bad-\xe9.jpg.error.txt")), what="report")
    daemon.stop()
    assert open(os.path.join(out, b"processed", b"good-\xe9\n.png"), "rb").read() == good
    assert open(os.path.join(out, b"failed", b"bad-\xe9.jpg"), "rb").read() == bad
    report = open(os.path.join(out, b"failed", b"bad-\xe9.jpg.error.txt"), "rb").read().decode("utf-8")
    assert "bad-\\xe9.jpg" in report
    assert not [p for p in files_table(folder) if "good-" in p]  # forgotten once moved (by its stored name)
    assert "Traceback" not in daemon.output()
