"""Machines sharing one output folder rebuild its gallery one at a time: every rebuild, the service's own
(a file it will not take shows in the page) as well as a worker's, waits for the job store's "gallery" lock.

Real daemon (dry-run engine) on a real PostgreSQL job store; the test holds the lock as another machine would.
"""

from __future__ import annotations

import json
import zlib

import psycopg

from tests.support import wait_until
from tests.support.daemon import Daemon, write_config

GALLERY_KEY = zlib.crc32(b"gallery") - 2**31  # the store's key for exclusive("gallery") (pg_connection.py)


def test_the_services_gallery_rebuild_waits_for_the_shared_lock(folder, pg_cluster):
    url = pg_cluster.new_database()
    config = write_config(folder, store=url)
    daemon = Daemon(config)
    daemon.wait_ready()
    page, report = folder / "out" / "index.html", folder / "state" / "intake.json"
    with psycopg.connect(url, autocommit=True) as other_machine:
        other_machine.execute("SELECT pg_advisory_lock(2, %s)", (GALLERY_KEY,))
        (folder / "in" / "notes.txt").write_text("not a photo")
        # The intake's report is written first, then the page; the page must wait for the lock.
        wait_until(lambda: report.exists() and json.loads(report.read_text()).get("ignored_count") == 1,
                   what="the ignored file noticed")
        wait_until(lambda: _blocked(url), what="the rebuild waiting for the lock")
        assert "notes.txt" not in (page.read_text() if page.exists() else "")
        other_machine.execute("SELECT pg_advisory_unlock(2, %s)", (GALLERY_KEY,))
    wait_until(lambda: page.exists() and "notes.txt" in page.read_text(), what="the page rebuilt after the lock")
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.output()


def _blocked(url: str) -> bool:
    """True while a session of the daemon waits for an advisory lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT 1 FROM pg_locks WHERE locktype='advisory' AND NOT granted").fetchall()
    return bool(rows)
