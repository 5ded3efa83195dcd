"""Move a one-machine SQLite job store into a shared PostgreSQL one (`style-daemon store migrate`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon.errors import ConfigError
from daemon.store.records import StoreTarget
from daemon.store.sqlite import SqliteStore


@dataclass(frozen=True)
class Migration:
    """What the move did."""

    found: int
    added: int
    files: int


def migrate_store(source: Path, target: StoreTarget) -> Migration:
    """Copy every job and file record of the SQLite job store at `source` into `target` (a PostgreSQL store).

    Jobs already there (same key or output) are kept as they are, so running it twice adds nothing.
    """
    if not target.shared:
        raise ConfigError(f"store migrate: --to must be a postgresql:// URL, got {target.location!r}")
    if not source.exists():
        raise ConfigError(f"store migrate: no SQLite job store at {source}; give it with --from")
    from daemon.store import open_store

    old = SqliteStore(source, readonly=True)
    new = open_store(target)
    try:
        jobs = old.jobs(limit=1 << 62)
        files = old.file_records()
        added = new.import_records(jobs, files)
    finally:
        old.close()
        new.close()
    return Migration(len(jobs), added, len(files))
