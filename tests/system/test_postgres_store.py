"""Several machines on one shared folder and one PostgreSQL job store: each photo stylised exactly once.

One machine stands in for several: each daemon has its own state folder and its own bind mounts of the
same input and output folders, and a machine name of its own; all share one throwaway PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import CONTENT
from tests.support.daemon import ROOT, Daemon, drop, pg_rows, wait_until, write_config
from tests.support.fleet import FAST, Fleet, distinct_photos, move_in, slow

@pytest.fixture
def fleet(tmp_path, pg_cluster):
    fleet = Fleet(tmp_path, pg_cluster.new_database())
    yield fleet
    fleet.close()


def worker_pid(worker: str) -> int:
    return int(worker.partition(":")[2])


def assert_exactly_once(fleet: Fleet, count: int) -> None:
    rows = fleet.rows()
    assert len(rows) == count and {r["state"] for r in rows} == {"done"}, [r["state"] for r in rows]
    names = fleet.outputs()
    assert len(names) == count == len(set(names)), "a photo has no result or two of them"
    assert all("_" not in n.split(".")[0] and "(" not in n for n in names), names  # no numbered variant
    assert not fleet.temp_files(), fleet.temp_files()
    stored = {r["output_path"] for r in rows}
    assert all(s.startswith("output:") for s in stored), "paths are stored relative to the output root"


def test_three_daemons_four_workers_300_photos_each_done_exactly_once(fleet, tmp_path_factory):
    for workers in (2, 1, 1):
        fleet.add(workers)
    staging = tmp_path_factory.mktemp("staging")
    distinct_photos(staging, 300)
    daemons = fleet.start_all()
    move_in(staging, fleet.shared_in)
    wait_until(lambda: fleet.done() == 300, timeout=240, interval=0.3, what="300 jobs done")
    page = fleet.shared_out / "index.html"  # rebuilt by whichever machine finished last, never a stale one
    wait_until(lambda: page.exists() and "300 done &middot; 0 failed &middot; 0 queued &middot; 0 running"
               in page.read_text(), timeout=20, what="the shared gallery counts every machine's results")
    machines = {r["machine"] for r in fleet.rows()}
    for daemon in daemons:
        assert daemon.stop() == 0
    assert_exactly_once(fleet, 300)
    assert {r["attempts"] for r in fleet.rows()} == {1}, "a job ran twice"
    assert machines == {"m0", "m1", "m2"}, f"every machine took a share: {machines}"


def test_killed_worker_and_killed_daemon_jobs_are_taken_over_once(fleet):
    for _ in range(3):
        fleet.add(1, slow(40))
    daemons = fleet.start_all(delay=0.1)
    staging = fleet.root / "staging"
    staging.mkdir()
    distinct_photos(staging, 6)
    move_in(staging, fleet.shared_in)
    running = "SELECT * FROM jobs WHERE state='running' AND progress_iteration >= 2"
    busy = wait_until(lambda: (lambda rows: rows if len(rows) == 3 else None)({r["machine"]: r for r in fleet.rows(running)}),
                      timeout=60, what="three jobs running")
    os.kill(worker_pid(busy["m0"]["worker"]), signal.SIGKILL)  # one worker of m0
    daemons[1].kill()  # the whole of m1, mid-job
    killed = {busy["m0"]["id"], busy["m1"]["id"]}
    wait_until(lambda: fleet.done() == 6, timeout=120, interval=0.3, what="every job done")
    assert daemons[0].proc.poll() is None and daemons[2].proc.poll() is None, "another daemon stopped"
    rows = {r["id"]: r for r in fleet.rows()}
    assert all(rows[j]["attempts"] == 2 for j in killed), [rows[j] for j in killed]
    assert rows[busy["m1"]["id"]]["machine"] in ("m0", "m2"), "m1's job was taken over by a living machine"
    for daemon in (daemons[0], daemons[2]):
        assert daemon.stop() == 0
    assert_exactly_once(fleet, 6)


def test_frozen_worker_past_its_lease_writes_nothing_and_marks_nothing(fleet):
    fleet.add(1, slow(40))
    fleet.add(1, slow(40))
    daemons = fleet.start_all(delay=0.1)
    drop(CONTENT / "astronaut.png", fleet.shared_in / "astronaut.png")
    job = wait_until(lambda: next(iter(fleet.rows("SELECT * FROM jobs WHERE progress_iteration >= 2")), None),
                     what="job running")
    frozen = worker_pid(job["worker"])
    os.kill(frozen, signal.SIGSTOP)
    try:
        wait_until(lambda: fleet.done() == 1, timeout=60, interval=0.2, what="job done elsewhere")
    finally:
        os.kill(frozen, signal.SIGCONT)
    winner = fleet.rows()[0]
    assert winner["machine"] != job["machine"]
    loser = daemons[0 if job["machine"] == "m0" else 1]
    wait_until(lambda: "another worker took the job; abandoned here, nothing written" in loser.output(),
               timeout=20, what="the frozen worker gave the job up")
    after = fleet.rows()[0]
    assert (after["state"], after["machine"], after["finished"]) == ("done", winner["machine"], winner["finished"])
    for daemon in daemons:
        assert daemon.stop() == 0
    assert_exactly_once(fleet, 1)
    assert sorted(p.name for p in fleet.shared_out.glob("astronaut*")) == [
        "astronaut.starry.jpg", "astronaut.starry.jpg.json", "astronaut.starry.jpg.sheet.jpg"]


def test_restarting_one_daemon_does_not_requeue_the_others_jobs(fleet):
    fleet.add(1, slow(30))
    fleet.add(2, slow(30))
    daemons = fleet.start_all(delay=0.1)
    staging = fleet.root / "staging"
    staging.mkdir()
    distinct_photos(staging, 6)
    move_in(staging, fleet.shared_in)
    wait_until(lambda: len(fleet.rows("SELECT id FROM jobs WHERE state='running' AND machine='m1' "
                                      "AND progress_iteration >= 2")) == 2, what="m1 busy with two jobs")
    theirs = {r["id"]: r["lease_token"] for r in fleet.rows("SELECT * FROM jobs WHERE state='running' AND machine='m1'")}
    status = subprocess.run([sys.executable, "-m", "daemon", "status", "--json", "-c", str(fleet.configs[0])],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    report = json.loads(status.stdout)  # read on m0: shows m1's workers and jobs with their lease age
    assert {(w["machine"], w["state"]) for w in report["workers"]} >= {("m0", "busy"), ("m1", "busy")}, report
    on_m1 = [j for j in report["running_jobs"] if j["machine"] == "m1"]
    assert len(on_m1) == 2 and all(0 <= j["lease_age_seconds"] < 2 for j in on_m1), report
    assert daemons[0].stop() == 0
    daemons[0] = fleet.start(0, delay=0.1)
    daemons[0].wait_ready()
    now = {r["id"]: r for r in fleet.rows()}
    for job_id, token in theirs.items():  # still m1's, under the same lease
        assert (now[job_id]["state"], now[job_id]["machine"], now[job_id]["lease_token"]) in {
            ("running", "m1", token), ("done", "m1", token)}, now[job_id]
    wait_until(lambda: fleet.done() == 6, timeout=90, interval=0.3, what="all done")
    assert "abandoned here" not in daemons[1].output()
    for daemon in daemons:
        assert daemon.stop() == 0
    assert_exactly_once(fleet, 6)


def test_database_restart_under_the_daemons_loses_nothing_and_says_so_once(fleet, pg_cluster):
    fleet.add(1, slow(5))
    fleet.add(1, slow(5))
    daemons = fleet.start_all(delay=0.05)
    staging = fleet.root / "staging"
    staging.mkdir()
    distinct_photos(staging, 24)
    move_in(staging, fleet.shared_in)
    wait_until(lambda: fleet.done() >= 4, timeout=60, what="some jobs done")
    pg_cluster.restart()
    wait_until(lambda: fleet.done() == 24, timeout=120, interval=0.3, what="every job done after the restart")
    for daemon in daemons:
        assert daemon.proc.poll() is None, daemon.output()[-3000:]
        text = daemon.output()
        lost = text.count("is unreachable; waiting and reconnecting")
        assert 1 <= lost <= 2, text[-3000:]  # once per process (supervisor, worker) that met it: no storm
        assert text.count("reachable again after") == lost
    for daemon in daemons:
        assert daemon.stop() == 0
    assert_exactly_once(fleet, 24)


def test_a_second_service_under_a_machine_name_in_use_is_refused(fleet):
    fleet.add(1)
    fleet.add(1, name="m0")  # a copied config: the same machine name on another state folder
    first = fleet.start(0)
    first.wait_ready()
    second = fleet.start(1)
    assert second.proc.wait(timeout=60) == 78, second.output()
    assert "another service already runs as machine 'm0'" in second.output()
    assert first.proc.poll() is None and first.stop() == 0


def check_config(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", "check-config", "-c", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_check_config_says_what_is_wrong_with_the_database(tmp_path, pg_cluster):
    url = pg_cluster.new_database()
    cases = {
        "server": url.replace(f"host={pg_cluster.socket}", f"host={tmp_path}"),
        "database": pg_cluster.url("nosuchdb"),
        "permissions": url.replace("postgres@", "lowly@"),
    }
    pg_cluster.sql(url, "CREATE ROLE lowly LOGIN")
    pg_cluster.sql(url, "REVOKE ALL ON SCHEMA public FROM PUBLIC")
    expected = {"server": "cannot reach the PostgreSQL server", "database": "the database does not exist",
                "permissions": "permission denied"}
    for case, bad in cases.items():
        folder = tmp_path / case
        config = write_config(folder, store=bad)
        result = check_config(config)
        assert result.returncode == (75 if case == "server" else 78), (case, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if " INFO " not in line and line.strip()]
        assert len(lines) == 1 and expected[case] in lines[0], (case, result.stderr)
    good = check_config(write_config(tmp_path / "good", store=url))
    assert good.returncode == 0, good.stderr


def test_store_migrate_moves_a_sqlite_store_and_nothing_is_done_twice(tmp_path, pg_cluster):
    config = write_config(tmp_path, engine=FAST)
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        drop(CONTENT / name, tmp_path / "in" / name)
    assert Daemon(config, command="once", fake_delay=0.0).proc.wait(timeout=120) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.jpg")}
    url = pg_cluster.new_database()
    migrate = [sys.executable, "-m", "daemon", "store", "migrate", "-c", str(config), "--to", url]
    first = subprocess.run(migrate, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "3 of 3 job(s) copied" in first.stdout, first.stderr
    # The command's name before the job store had one name still works, and says it is deprecated.
    old_name = [sys.executable, "-m", "daemon", "journal", "migrate", *migrate[5:]]
    again = subprocess.run(old_name, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "0 of 3 job(s) copied" in again.stdout, again.stderr
    assert "`style-daemon journal migrate` is deprecated; use `style-daemon store migrate`" in again.stderr
    rows = pg_rows(url, "SELECT * FROM jobs")
    assert {r["state"] for r in rows} == {"done"} and all(r["source_path"].startswith("input:") for r in rows)
    config = write_config(tmp_path, engine=FAST, store=url)
    daemon = Daemon(config, command="once", fake_delay=0.0)
    assert daemon.proc.wait(timeout=120) == 0, daemon.output()
    assert len(pg_rows(url, "SELECT * FROM jobs")) == 3, "a photo was queued again after the move"
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.jpg")} == before


def test_a_service_asked_to_stop_while_the_database_is_away_stops(fleet, pg_cluster):
    fleet.add(1)
    daemon = fleet.start(0)
    daemon.wait_ready()
    pg_cluster.pause()
    try:
        wait_until(lambda: "is unreachable; waiting and reconnecting" in daemon.output(), timeout=30,
                   what="the outage noticed")
        began = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(timeout=20)
    finally:
        pg_cluster.resume()
    assert time.monotonic() - began < 15
    assert code == 0 and "still unreachable; stopping without waiting" in daemon.output(), daemon.output()


def test_a_job_whose_machine_dies_on_every_attempt_fails_instead_of_going_round(fleet):
    for _ in range(2):
        config = fleet.add(1, slow(40), lease=1.0)
        text = config.read_text().replace("max_attempts: 3", "max_attempts: 1")
        config.write_text(text)
    daemons = fleet.start_all(delay=0.1)
    drop(CONTENT / "rocket.jpg", fleet.shared_in / "rocket.jpg")
    job = wait_until(lambda: next(iter(fleet.rows("SELECT * FROM jobs WHERE progress_iteration >= 2")), None),
                     what="job running")
    victim = int(job["machine"][1:])
    daemons[victim].kill()
    row = wait_until(lambda: next(iter(fleet.rows("SELECT * FROM jobs WHERE state='failed'")), None), timeout=30,
                     what="job failed")
    assert f"the machine running this photo ({job['machine']}) stopped answering on each of 1 attempts" in row["error"]
    assert fleet.outputs() == []
    assert daemons[1 - victim].stop() == 0
