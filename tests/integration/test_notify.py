"""sd_notify over a real unix datagram socket, with the real daemon as a subprocess."""

from __future__ import annotations

import signal
import time


from daemon.service.notify import Notifier
from tests.support import CONTENT
from tests.support.daemon import Daemon, drop, store_rows, wait_until, write_config
from tests.support.notify import notify_env


def test_ready_status_watchdog_reload_and_stop(tmp_path, listener):
    config = write_config(tmp_path, engine={"iterations": 120, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=0.05, env=notify_env(tmp_path))
    wait_until(lambda: listener.times("READY=1"), what="READY=1")
    _, _, states = next(x for x in listener.messages if "READY=1" in x[1])
    assert states and all(s in ("ready", "busy") for s in states), "READY before the model was loaded"

    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    wait_until(lambda: any((r["progress_iteration"] or 0) >= 10 for r in store_rows(tmp_path)), what="running")
    window_start = time.monotonic()
    wait_until(lambda: time.monotonic() - window_start >= 4, interval=0.1)
    pings = [t for t in listener.times("WATCHDOG=1") if window_start <= t <= window_start + 4]
    assert 3 <= len(pings) <= 6, pings  # every 1 s (half of WATCHDOG_USEC)
    progress = {line for line in listener.having("STATUS=") if "iter" in line}
    assert len(progress) >= 2, progress
    assert any("chelsea.png [starry]" in line for line in progress)

    wait_until(lambda: [r for r in store_rows(tmp_path) if r["state"] == "done"], what="job done")
    before = len(listener.messages)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: any("RELOADING=1" in m for _, m, _ in listener.messages[before:]), what="RELOADING=1")
    reload_at = next(t for t, m, _ in listener.messages[before:] if "RELOADING=1" in m)
    wait_until(lambda: [t for t in listener.times("READY=1") if t >= reload_at], what="READY=1 after reload")

    assert daemon.stop() == 0
    wait_until(lambda: listener.times("STOPPING=1"), timeout=5, what="STOPPING=1")


def test_a_hung_optimisation_stops_the_watchdog_pings(tmp_path, listener):
    config = write_config(tmp_path, engine={"iterations": 500, "max_size": 64, "scales": 1, "backbone": "vgg16-hed"})
    daemon = Daemon(config, fake_delay=0.05, env=notify_env(tmp_path, STYLE_DAEMON_FAKE_HANG_AFTER="30"))
    wait_until(lambda: listener.times("READY=1"), what="READY=1")
    drop(CONTENT / "chelsea.png", tmp_path / "in" / "chelsea.png")
    wait_until(lambda: any((r["progress_iteration"] or 0) >= 20 for r in store_rows(tmp_path)), what="running")
    hung_at = time.monotonic()
    wait_until(lambda: "withholding the watchdog ping" in daemon.output(), timeout=10, what="health check")
    quiet_from = time.monotonic()
    wait_until(lambda: time.monotonic() - quiet_from > 3, interval=0.1)
    late = [t for t in listener.times("WATCHDOG=1") if t > quiet_from]
    assert late == [], f"pings continued {[round(t - hung_at, 1) for t in late]}s after the hang"
    assert listener.times("WATCHDOG=1"), "no pings at all before the hang"
    daemon.kill()


def test_nothing_is_sent_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.send("READY=1")  # a no-op, not an error
