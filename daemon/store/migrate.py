"""`style-daemon store migrate`: bring a job store to this code's schema version, and move a one-machine SQLite
job store into a shared PostgreSQL one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon.errors import ConfigError
from daemon.store.records import StoreTarget
from daemon.store.schema_versions import SchemaChange
from daemon.store.sqlite import SqliteStore


@dataclass(frozen=True)
class Migration:
    """What the command did: the target's schema versions, and what it copied from a SQLite job store."""

    where: str  # the target, as the user knows it (the file, or the database without its password)
    schema: SchemaChange
    copied: bool = False
    found: int = 0
    added: int = 0
    files: int = 0

    def lines(self) -> list[str]:
        """What to print, one line per thing done."""
        if self.schema.changed:
            lines = [f"job store {self.where}: schema version {_version(self.schema.before)} -> {self.schema.after}"]
        else:
            lines = [f"job store {self.where}: schema version {self.schema.after}, the newest this style-daemon knows"]
        if self.copied:
            lines.append(f"{self.added} of {self.found} job(s) copied ({self.found - self.added} already there), "
                         f"{self.files} file record(s)")
        return lines


def store_migrate(target: StoreTarget, source: Path | None, default_source: Path) -> Migration:
    """What `store migrate` does: a SQLite target (`source`, else the target's file) is upgraded in place; a
    PostgreSQL one is upgraded and, when a SQLite job store is given or exists at `default_source`, filled from it.
    """
    if not target.shared:
        return upgrade_store(StoreTarget(str(source or target.location)))
    if source is None and not default_source.exists():
        return upgrade_store(target)
    return migrate_store(source or default_source, target)


def upgrade_store(target: StoreTarget) -> Migration:
    """Open the job store, which applies its pending numbered migrations; say from which version to which."""
    from daemon.store import open_store

    if not target.shared and not Path(target.location).exists():
        raise ConfigError(f"store migrate: no SQLite job store at {target.location}; give it with --from")
    store = open_store(target)
    try:
        return Migration(store.where, store.schema)
    finally:
        store.close()


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
    try:
        _refuse_open_intents(old)
        new = open_store(target)
        try:
            jobs = old.jobs(limit=1 << 62)
            files = old.file_records()
            added = new.import_records(jobs, files)
            return Migration(new.where, new.schema, True, len(jobs), added, len(files))
        finally:
            new.close()
    finally:
        old.close()


def _refuse_open_intents(old: SqliteStore) -> None:
    """Interrupted side effects are finished by the service that recorded them: their payloads name this
    machine's paths, and the jobs get new ids in the shared store. Copying without them would lose them."""
    interrupted = old.intents()
    if interrupted:
        raise ConfigError(f"store migrate: the SQLite job store {old.where} has {len(interrupted)} interrupted "
                          "file step(s) (a crash stopped them); start the service on it once (it finishes them "
                          "at start), stop it, then migrate")


def _version(version: int) -> str:
    return f"{version} (before numbered versions)" if version == 0 else str(version)
