"""Numbered schema migrations, shared by both job stores: what an upgrade did, and refusing a newer store."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.errors import StoreTooNew, store_too_new_message


@dataclass(frozen=True)
class SchemaChange:
    """A store's schema version when it was opened (0: never versioned) and after the pending steps ran."""

    before: int
    after: int

    @property
    def changed(self) -> bool:
        """True when this open applied at least one migration."""
        return self.after != self.before


def refuse_newer(where: object, version: int, latest: int) -> None:
    """Raise StoreTooNew for a store a newer style-daemon wrote: this code could misread or damage it."""
    if version > latest:
        raise StoreTooNew(store_too_new_message(where, version, latest))


def statements(script: str) -> list[str]:
    """The statements of an SQL script (none of ours has a ';' inside a literal), to run one by one."""
    return [s.strip() for s in script.split(";") if s.strip()]
