"""A lost PostgreSQL job store waits, never crashes (#24): the throwaway server is stopped under the running
service while photos arrive, and started again; every photo is done afterwards and the service never exits.
"""

from __future__ import annotations

from tests.support import wait_until
from tests.support.cli import run_cli
from tests.support.daemon import Daemon, done_jobs, write_config
from tests.support.fleet import distinct_photos, move_in
from tests.support.notify import NotifyListener, notify_env

PHOTOS = 4
SERVER_GONE = "database server is unreachable"


def test_database_server_stopped_under_the_service_waits_then_every_arrival_is_done(tmp_path, pg_cluster):
    url = pg_cluster.new_database()
    listener = NotifyListener(tmp_path / "notify.sock", tmp_path)
    config = write_config(tmp_path, store=url, workers=2)
    daemon = Daemon(config, env=notify_env(tmp_path))
    paused = False
    try:
        daemon.wait_ready()
        pg_cluster.pause()
        paused = True
        staging = tmp_path / "staging"
        staging.mkdir()
        distinct_photos(staging, PHOTOS)
        move_in(staging, tmp_path / "in")

        wait_until(lambda: "is unreachable; waiting and reconnecting" in daemon.output(), timeout=30,
                   what="the service to say it waits for the database")
        wait_until(lambda: any(SERVER_GONE in s for s in listener.having("STATUS=waiting for the job store: ")),
                   timeout=15, what="STATUS= to say it")
        status = run_cli("status", "-c", str(config))
        assert status.returncode == 0 and SERVER_GONE in status.stdout, status.stdout + status.stderr
        assert daemon.proc.poll() is None, daemon.output()

        pg_cluster.resume()
        paused = False
        wait_until(lambda: len(done_jobs(tmp_path)) == PHOTOS, timeout=90, what="every photo dropped meanwhile done")
        wait_until(lambda: SERVER_GONE not in run_cli("status", "-c", str(config)).stdout, timeout=15,
                   what="status to stop saying it")
        output = daemon.output()
        assert output.count("is unreachable; waiting and reconnecting") <= 3, output  # once per process at most
        assert "Traceback" not in output, output
        assert daemon.stop() == 0
        assert sorted(p.name for p in (tmp_path / "out").glob("p*.starry.jpg")) == \
            [f"p{i:03d}.starry.jpg" for i in range(PHOTOS)]
    finally:
        if paused:
            pg_cluster.resume()  # the session's server serves the next tests
        if daemon.proc.poll() is None:
            daemon.kill()
        listener.close()
