"""One line for each way reaching the PostgreSQL job store can fail: the server, the database, the permissions."""

from __future__ import annotations

import psycopg

from daemon.errors import ConfigError, StoreUnreachable, StyleDaemonError

_PASSWORD = ("password authentication failed", "no password supplied", "role", "pg_hba.conf", "peer authentication")


def describe_connect_error(url: str, exc: psycopg.Error) -> str:
    """What is wrong with the job store's URL and what to do, from psycopg's error."""
    where = _safe(url)
    detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    text = str(exc)
    if isinstance(exc, psycopg.ProgrammingError) and not isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"job store: the URL is malformed ({detail}); write it as postgresql://user@host:port/database"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege) or "permission denied" in text:
        return (f"job store {where}: permission denied ({detail}); grant the user CREATE and USAGE on the "
                "database's public schema (GRANT ALL ON SCHEMA public TO <user>)")
    if "database" in text and "does not exist" in text:
        return f"job store {where}: the database does not exist ({detail}); create it (createdb) or fix the URL"
    if any(marker in text for marker in _PASSWORD):
        return f"job store {where}: the server refused the user ({detail}); check the user, password and pg_hba.conf"
    return (f"job store {where}: cannot reach the PostgreSQL server ({detail}); check that it runs and that "
            "host and port in the URL are right")


def connect_error(url: str, exc: psycopg.Error) -> StyleDaemonError:
    """The error to raise: the server unreachable is temporary (75, systemd retries); the rest need a fix (78)."""
    message = describe_connect_error(url, exc)
    return StoreUnreachable(message) if "cannot reach the PostgreSQL server" in message else ConfigError(message)


def _safe(url: str) -> str:
    """The URL without its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable URL)"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())
