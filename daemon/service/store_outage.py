"""Waiting out the job store's own faults: a full or read-only disk, I/O errors, a lost database server.

Such a fault is nobody's job's: the process that meets it waits in the call that met it (a capped backoff),
says so once per cause, and goes on by itself when the store answers again, as if the call had just taken
long. A write that failed was rolled back whole (the store's transactions), so trying it again is safe.
PostgreSQL's connection already waits like this inside the store (pg_connection); here SQLite gets the same,
and both tell the service's waiting state to whoever shows it (STATUS=, `status`, the log).

    store = waiting_store(open_store(target, give_up=outage.give_up), outage)
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from daemon.errors import StopRequested, StoreUnreachable
from daemon.review.store_wait import StoreWait, write_wait
from daemon.store import JobStore
from daemon.store.faults import outage_cause

log = logging.getLogger(__name__)

# The pause before each try again: short at first (a blip), then capped (a disk someone must free).
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
_SLICE = 0.2  # the longest the waiting goes without looking at the stop flag and the hook

# A PostgreSQL store's connection waits for its server itself, and says so in the log (pg_connection).
SERVER_CAUSE = "the job store's database server is unreachable; check that it runs"


class StoppedWhileWaiting(StopRequested, StoreUnreachable):
    """A stop asked while the job store was down: the job in hand is re-queued by the next start; not a failure."""

    exit_code = 0


class StoreOutage:
    """One process's waiting for its job store: the cause, since when, and what to call while it waits.

    who: the process in the log ("the service", "worker 1"); give_up: True stops the wait (StoppedWhileWaiting);
    on_wait(cause): called about five times a second while waiting (the supervisor notices arrivals, tells
    systemd); on_change(cause or None): called when the waiting starts, changes cause, or ends.
    """

    def __init__(self, who: str, give_up: Callable[[], bool],
                 on_wait: Callable[[str], None] | None = None,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        self.who = who
        self._give_up = give_up
        self._on_wait = on_wait
        self._on_change = on_change
        self.cause: str | None = None
        self._since = 0.0
        self._tries = 0
        self._said: str | None = None  # the cause the log last named (one line per cause)
        self._inside = False  # the hook itself must never wait again (it never touches the store)

    @property
    def waiting(self) -> bool:
        """True while the store is down as far as this process knows."""
        return self.cause is not None

    def wait(self, cause: str, say: bool = True) -> None:
        """Wait before the next try (the backoff for this many tries in a row); StoppedWhileWaiting on a stop."""
        self._enter(cause, say)
        delay = RETRY_DELAYS[min(self._tries, len(RETRY_DELAYS) - 1)]
        self._tries += 1
        until = time.monotonic() + delay
        while True:
            self._tick()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(_SLICE, left))

    def opened(self, open_store: Callable[[], JobStore]) -> JobStore:
        """`open_store()`, waiting while the store's disk is at fault (a server that is away still raises:
        at start, systemd's restart policy handles that)."""
        while True:
            try:
                store = open_store()
            except Exception as exc:
                cause = outage_cause(exc)
                if cause is None or isinstance(exc, StoreUnreachable):
                    raise
                self.wait(cause)
                continue
            self.resumed()
            return store

    def stopping(self) -> bool:
        """True once a stop is asked (the waiting ends)."""
        return self._give_up()

    def give_up(self) -> bool:
        """For a PostgreSQL store's own wait (open_store's give_up): tell the waiting state, then the stop flag."""
        if not self._inside:
            self._enter(SERVER_CAUSE, say=False)  # the connection said it already, once
            self._tick(check_stop=False)
        return self._give_up()

    def resumed(self) -> None:
        """The store answered: end the waiting state (saying so if it was said)."""
        if self.cause is None:
            return
        if self._said is not None:
            log.warning("%s: the job store answers again after %.0fs; going on", self.who,
                        time.monotonic() - self._since)
        self.cause, self._said, self._tries = None, None, 0
        self._changed(None)

    def _enter(self, cause: str, say: bool) -> None:
        if cause == self.cause:
            return
        if self.cause is None:
            self._since = time.monotonic()
        self.cause = cause
        if say and cause != self._said:
            log.warning("%s waits for the job store: %s (nothing is lost: arrivals are noted and queued once it "
                        "answers; trying again every few seconds)", self.who, cause)
            self._said = cause
        self._changed(cause)

    def _tick(self, check_stop: bool = True) -> None:
        if check_stop and self._give_up():
            raise StoppedWhileWaiting(f"stopping while the job store is unavailable ({self.cause}); "
                                   "queued jobs and the files stay as they are")
        if self._on_wait is not None and not self._inside and self.cause is not None:
            self._inside = True
            try:
                self._on_wait(self.cause)
            finally:
                self._inside = False

    def _changed(self, cause: str | None) -> None:
        if self._on_change is not None and not self._inside:
            self._inside = True
            try:
                self._on_change(cause)
            except Exception:  # noqa: BLE001 - telling about the wait must never end the service
                log.debug("could not tell the job store's state", exc_info=True)
            finally:
                self._inside = False


class _WaitingStore:
    """The store, each public method waiting out the store's own faults (see the module docstring)."""

    def __init__(self, store: JobStore, outage: StoreOutage) -> None:
        self._store = store
        self._outage = outage

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value) or name in ("close", "exclusive"):
            return value
        return _waiting(value, self._outage)


def _waiting(method: Callable[..., Any], outage: StoreOutage) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                result = method(*args, **kwargs)
            except StoppedWhileWaiting:
                raise
            except Exception as exc:
                cause = outage_cause(exc)
                if cause is None:
                    raise
                if isinstance(exc, StoreUnreachable) and outage.stopping():  # the server's own wait gave up
                    raise StoppedWhileWaiting(str(exc)) from None
                outage.wait(cause)  # raises StoppedWhileWaiting once a stop is asked
                continue
            outage.resumed()
            return result

    return call


def worker_outage(state: Path, index: int, give_up: Callable[[], bool]) -> StoreOutage:
    """A worker's waiting, its word in STATE/store-wait.workerN.json for `status` and the service's watchdog
    (a worker blocked in a job's progress write is waiting, not hung); the file is padded now, while there is room."""
    who = f"worker{index}"
    write_wait(state, StoreWait(), who)

    def tell(cause: str | None) -> None:
        write_wait(state, StoreWait(cause is not None, cause or "", time.time(), os.getpid()), who)

    return StoreOutage(f"worker {index}", give_up, on_change=tell)


def waiting_store(store: JobStore, outage: StoreOutage) -> JobStore:
    """`store` whose every call waits while the store itself is down, instead of raising."""
    return _WaitingStore(store, outage)  # type: ignore[return-value]  # the same methods, by delegation
