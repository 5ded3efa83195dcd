"""Telling a damaged SQLite job store file from other database errors, and saying so in one line."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any, Callable, TypeVar

from daemon.errors import StoreCorrupt, store_corrupt_message

# "no such table": every open creates the tables, so a table missing later means the file was damaged.
CORRUPT_MARKERS = ("malformed", "not a database", "disk image", "corrupt", "no such table")

_Class = TypeVar("_Class", bound=type)


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """Raise the one-line corruption error unless SQLite's quick check of the open file passes."""
    # A corrupt file must stop us at open with one clear line, not later in the middle of a job.
    result = db.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise StoreCorrupt(store_corrupt_message(path, f"quick_check: {result}"))


def corruption_guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SQLite's corruption errors into one StoreCorrupt line; other errors pass unchanged."""

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not any(marker in str(exc) for marker in CORRUPT_MARKERS):
                raise
            raise StoreCorrupt(store_corrupt_message(self.path, str(exc))) from None

    return guarded


def guard_public_methods(cls: _Class) -> _Class:
    """Guard `cls.__init__` and every public method, its own and those of the classes it is built from."""
    names = {name for klass in cls.__mro__[:-1] for name in vars(klass)}
    for name in sorted(names):
        value = getattr(cls, name)
        if callable(value) and not isinstance(value, type) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, corruption_guarded(value))
    return cls
