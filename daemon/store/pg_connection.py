"""One process's connection to the PostgreSQL job store: reaching it, riding out outages, and its session locks.

Every query goes through `_call`: when the server goes away, it says so once, waits, reconnects (taking
this machine's name again if it held it) and runs the query again, so the callers never see an outage
unless they asked to stop (give_up).
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from typing import Any, Callable, Iterator

import psycopg
from psycopg.rows import dict_row

from daemon.errors import ConfigError, StoreUnreachable
from daemon.store.pg_errors import connect_error
from daemon.store.pg_migrations import check_version, upgrade
from daemon.store.records import Job, StoreTarget
from daemon.store.roots import RootMap
from daemon.store.schema_versions import SchemaChange

log = logging.getLogger(__name__)

_RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


class PgConnection:
    """The connection and what the intake, lease and reading parts share: settings, roots, retries, row mapping."""

    def __init__(self, target: StoreTarget, readonly: bool = False,
                 give_up: Callable[[], bool] | None = None) -> None:
        self._give_up = give_up or (lambda: False)
        self.url = target.location
        self.machine = target.machine
        self.lease_seconds = float(target.lease_seconds)
        self.max_attempts = target.max_attempts
        self.roots = RootMap(target.roots)
        self._leases: dict[int, str] = {}  # job id -> the token of this object's claim
        self._machine_held = False
        self._conn = self._connect()
        self.schema = self._check_access() if readonly else self._create_schema()  # versions before and after

    @property
    def where(self) -> str:
        """The database as logs and messages name it: host and database, never the password."""
        return _where(self.url)

    def close(self) -> None:
        """Close the connection (a held machine name is released with it)."""
        self._conn.close()

    # -- connecting ---------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)
        except psycopg.Error as exc:
            raise connect_error(self.url, exc) from None

    def _create_schema(self) -> SchemaChange:
        """Apply the pending numbered migrations (pg_migrations); refuse a database newer than this code."""
        try:
            return upgrade(self._conn, _where(self.url))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise connect_error(self.url, exc) from None

    def _check_access(self) -> SchemaChange:
        """Writing nothing, make sure this user could run the service (check-config, status)."""
        row = self._conn.execute(
            "SELECT CASE WHEN to_regclass('jobs') IS NULL THEN has_schema_privilege('public', 'CREATE') "
            "ELSE has_table_privilege('jobs', 'SELECT,INSERT,UPDATE,DELETE') END AS ok").fetchone()
        if not row["ok"]:
            raise connect_error(self.url, psycopg.errors.InsufficientPrivilege("permission denied for the job tables"))
        if self._conn.execute("SELECT to_regclass('jobs') AS t").fetchone()["t"] is None:
            return self._create_schema()  # empty tables, so that status can read before any service started
        return check_version(self._conn, _where(self.url))

    # -- running queries through outages ------------------------------------------------

    def _call(self, work: Callable[[psycopg.Connection], Any]) -> Any:
        """Run `work`; when the server goes away, wait (saying so once), reconnect and run it again."""
        try:
            return work(self._conn)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            if not (self._conn.closed or self._conn.broken):
                raise
        began = time.monotonic()
        log.warning("job store database %s is unreachable; waiting and reconnecting (jobs stay as they are)",
                    _where(self.url))
        for attempt in _attempts():
            time.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])
            if self._give_up():  # asked to stop: running jobs keep their lease, which lapses for others
                raise StoreUnreachable(f"job store database {_where(self.url)} still unreachable; stopping "
                                         "without waiting for it (this machine's running jobs are taken over "
                                         "once their lease lapses)")
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)
                if self._machine_held:
                    self._take_machine()
                result = work(self._conn)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                continue
            log.info("job store database %s reachable again after %.1fs; going on", _where(self.url),
                     time.monotonic() - began)
            return result
        raise AssertionError("unreachable")

    def _one(self, sql: str, params: tuple = ()) -> dict | None:
        return self._call(lambda c: c.execute(sql, params).fetchone())

    def _all(self, sql: str, params: tuple = ()) -> list[dict]:
        return self._call(lambda c: c.execute(sql, params).fetchall())

    def _job(self, row: dict | None) -> Job | None:
        if row is None:
            return None
        row = dict(row)
        row["source_path"] = self.roots.absolute(row["source_path"])
        row["output_path"] = self.roots.absolute(row["output_path"])
        return Job(**row)

    def _jobs(self, rows: list[dict]) -> list[Job]:
        return [self._job(r) for r in rows]

    # -- session locks: this machine's name, and locks every machine respects ----------

    def claim_machine(self) -> None:
        """Hold this machine's name for the service's lifetime (a session advisory lock)."""
        self._machine_held = True
        self._call(lambda c: self._take_machine())

    def _take_machine(self) -> None:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok",
                                 (1, _key(self.machine))).fetchone()
        if not row["ok"]:
            self._machine_held = False
            raise ConfigError(f"another service already runs as machine {self.machine!r} on {_where(self.url)}; "
                              "give each service its own `machine:` name in its config")

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A lock every machine respects (a session advisory lock on its own short connection)."""
        with self._side_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (2, _key(name)))
            yield

    def _side_connection(self) -> psycopg.Connection:
        """A second connection (for a session lock); while the server is away, wait like every other call."""
        for attempt in range(20):
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError:
                self._call(lambda c: c.execute("SELECT 1"))  # notices the outage, says so once, waits it out
                time.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])
        raise StoreUnreachable(f"job store database {_where(self.url)}: cannot open another connection "
                                 "(max_connections reached?); raise the server's max_connections")


def _attempts() -> Iterator[int]:
    attempt = 0
    while True:
        yield attempt
        attempt += 1


def _key(name: str) -> int:
    """A stable signed 32-bit key for an advisory lock."""
    return zlib.crc32(name.encode("utf-8")) - 2**31


def _where(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable URL)"
    host = info.get("host") or "localhost"
    return f"{host}/{info.get('dbname', '')}"
