"""The PostgreSQL job store's numbered migrations (a schema_version table) and its intents, on a real server:
a database from before versions upgrades in place, machines starting together upgrade it once, a newer
database is refused, and each machine lists its own intents."""

from __future__ import annotations

import threading

import psycopg
import pytest

from daemon.errors import ConfigError, LeaseLost, StoreTooNew
from daemon.store import JobSpec, StoreTarget, open_store
from daemon.store import pg_migrations
from daemon.store.migrate import store_migrate
from daemon.store.pg_migrations import LATEST
from daemon.store.pg_schema import SCHEMA
from daemon.store.schema_versions import SchemaChange

ROOTS = {"input": "/in", "output": "/out"}


def _target(url: str, machine: str = "m1") -> StoreTarget:
    return StoreTarget(url, ROOTS, machine)


def _spec(sha: str) -> JobSpec:
    return JobSpec(sha * 64, "starry", "p", f"/in/{sha}.jpg", f"{sha}.jpg", f"/out/{sha}.jpg")


def _tables(pg_cluster, url: str) -> dict[str, list[tuple]]:
    """Every table's columns, with types and defaults: what an upgraded database must share with a new one."""
    rows = pg_cluster.sql(url, "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                               "WHERE table_schema='public' ORDER BY table_name, ordinal_position")
    tables: dict[str, list[tuple]] = {}
    for r in rows:
        tables.setdefault(r["table_name"], []).append((r["column_name"], r["data_type"], r["is_nullable"]))
    indexes = pg_cluster.sql(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname='public' ORDER BY 1")
    tables["indexes"] = [(i["indexname"], i["indexdef"]) for i in indexes]
    return tables


def test_a_database_from_before_schema_versions_upgrades_in_place_and_keeps_its_jobs(pg_cluster):
    fresh = pg_cluster.new_database()
    open_store(_target(fresh)).close()
    url = pg_cluster.new_database()
    pg_cluster.sql(url, SCHEMA)  # what every earlier style-daemon created: the tables, no schema_version
    pg_cluster.sql(url, "INSERT INTO jobs (content_sha, style_set, params_hash, source_path, rel_path, output_path, "
                        "state, created, updated) VALUES ('ab', 'starry', 'p', 'input:a.png', 'a.png', "
                        "'output:a.jpg', 'done', 1, 1)")
    first = store_migrate(_target(url), None, pg_cluster.root / "no-such.sqlite3")
    assert first.schema == SchemaChange(0, LATEST) and not first.copied
    assert first.lines()[0].endswith(f"schema version 0 (before numbered versions) -> {LATEST}")
    assert [r["version"] for r in pg_cluster.sql(url, "SELECT version FROM schema_version ORDER BY 1")] == \
        list(range(1, LATEST + 1))
    store = open_store(_target(url))
    try:
        assert store.schema == SchemaChange(LATEST, LATEST)
        assert [(j.content_sha, j.state, j.output_path) for j in store.jobs()] == [("ab", "done", "/out/a.jpg")]
        store.record_intent(store.jobs()[0].id, "release", "{}")
    finally:
        store.close()
    again = store_migrate(_target(url), None, pg_cluster.root / "no-such.sqlite3")
    assert again.lines()[0].endswith(f"schema version {LATEST}, the newest this style-daemon knows")
    assert _tables(pg_cluster, url) == _tables(pg_cluster, fresh), "an upgraded database differs from a new one"


@pytest.mark.parametrize("start", ["empty", "before versions"])
def test_machines_opening_one_database_together_each_succeed_and_each_step_runs_once(pg_cluster, start):
    url = pg_cluster.new_database()
    if start == "before versions":
        pg_cluster.sql(url, SCHEMA)
    gate, changes, errors = threading.Barrier(6), [], []

    def open_it(machine: str) -> None:
        gate.wait()
        try:
            store = open_store(_target(url, machine))
            changes.append(store.schema)
            store.close()
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(f"m{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(c.before for c in changes) == [0] + [LATEST] * 5 and {c.after for c in changes} == {LATEST}
    rows = pg_cluster.sql(url, "SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, LATEST + 1))


@pytest.mark.parametrize("readonly", [False, True])
def test_a_database_newer_than_this_code_is_refused_with_one_line(pg_cluster, readonly):
    url = pg_cluster.new_database()
    open_store(_target(url)).close()
    pg_cluster.sql(url, "INSERT INTO schema_version (version) VALUES (%s)", (LATEST + 1,))
    with pytest.raises(StoreTooNew) as caught:
        open_store(_target(url), readonly=readonly)
    message = str(caught.value)
    assert message.endswith(f"has schema version {LATEST + 1}, this style-daemon knows up to {LATEST}: "
                            "upgrade style-daemon") and "\n" not in message
    assert pg_cluster.sql(url, "SELECT MAX(version) AS v FROM schema_version")[0]["v"] == LATEST + 1


def test_a_migration_that_fails_half_way_leaves_the_database_as_it_was(pg_cluster, monkeypatch):
    url = pg_cluster.new_database()
    pg_cluster.sql(url, SCHEMA)
    before = _tables(pg_cluster, url)
    broken = "CREATE TABLE half_made (a int); SELECT 1/0"
    monkeypatch.setattr(pg_migrations, "MIGRATIONS", (*pg_migrations.MIGRATIONS, broken))
    with pytest.raises(psycopg.errors.DivisionByZero):
        open_store(_target(url))
    assert _tables(pg_cluster, url) == before, "a step of the failed upgrade stayed"


def test_each_machine_lists_its_own_intents_and_any_machine_a_jobs(pg_cluster):
    url = pg_cluster.new_database()
    one, two = open_store(_target(url, "m1")), open_store(_target(url, "m2"))
    try:
        a, b = one.enqueue(_spec("a")), one.enqueue(_spec("b"))
        first = one.record_intent(a.id, "publish", '{"n": 1}')
        second = two.record_intent(a.id, "release", '{"n": 2}')
        third = two.record_intent(b.id, "fail", '{"n": 3}')
        assert [(i.id, i.machine, i.step, i.payload) for i in one.intents()] == [(first, "m1", "publish", '{"n": 1}')]
        assert [i.id for i in two.intents()] == [second, third]
        assert [i.id for i in one.intents(a.id)] == [first, second]  # a job taken over: every machine's intents
        two.clear_intent(first)  # the machine that reconciled it clears it, whoever recorded it
        two.clear_intent(first)
        assert one.intents() == [] and [i.id for i in one.intents(a.id)] == [second]
    finally:
        one.close()
        two.close()
    again = open_store(_target(url, "m2"))
    try:
        assert [i.id for i in again.intents()] == [second, third], "intents did not survive closing the store"
    finally:
        again.close()


def test_dropping_a_job_removes_its_intents_and_a_dropped_job_takes_none(pg_cluster):
    url = pg_cluster.new_database()
    store = open_store(_target(url))
    try:
        a, b = store.enqueue(_spec("a")), store.enqueue(_spec("b"))
        store.record_intent(a.id, "release", "a")
        kept = store.record_intent(b.id, "release", "b")
        store.drop(a.id)
        assert [i.id for i in store.intents()] == [kept] and store.intents(a.id) == []
        with pytest.raises(LeaseLost, match=f"job {a.id} is no longer in the job store"):
            store.record_intent(a.id, "publish", "late")
    finally:
        store.close()


def test_intents_are_recorded_and_read_across_a_database_restart(pg_cluster):
    url = pg_cluster.new_database()
    store = open_store(_target(url))
    try:
        job = store.enqueue(_spec("a"))
        before = store.record_intent(job.id, "publish", "before")
        pg_cluster.restart()  # every connection is cut: the next calls reconnect and run once
        after = store.record_intent(job.id, "release", "after")
        assert [(i.id, i.payload) for i in store.intents()] == [(before, "before"), (after, "after")]
        store.clear_intent(before)
        assert [i.id for i in store.intents(job.id)] == [after]
    finally:
        store.close()


def test_copying_a_sqlite_store_with_interrupted_steps_is_refused_until_the_service_finished_them(pg_cluster,
                                                                                                   tmp_path):
    from daemon.store import SqliteStore

    source = tmp_path / "journal.sqlite3"
    old = SqliteStore(source)
    job = old.enqueue(_spec("a"))
    intent = old.record_intent(job.id, "release", "{}")
    url = pg_cluster.new_database()
    with pytest.raises(ConfigError, match="has 1 interrupted file step"):
        store_migrate(_target(url), source, source)
    assert pg_cluster.sql(url, "SELECT to_regclass('jobs') AS t")[0]["t"] is None, "copied in part"
    old.clear_intent(intent)
    old.close()
    done = store_migrate(_target(url), source, source)
    assert done.copied and done.added == 1
