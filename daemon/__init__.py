"""style-daemon: a hot-folder service for neural style transfer.

A service process (`run`, `once`, the internal `worker`) notes SIGHUP, SIGTERM and SIGINT from the
first instruction of the package, before any import that takes time: until its own handlers are in
place, SIGHUP's default action would kill it silently (and systemd counts death by SIGHUP as a clean
exit, so it would not restart it). The supervisor and the worker take over with `take_over_signals`,
which also acts on what arrived meanwhile: a reload asked during start-up is applied once ready, a stop
stops. Other commands (stylize, status, ...) keep the default actions: a terminal hang-up ends them.
"""

from __future__ import annotations

import signal
import sys
from typing import Callable

__version__ = "0.1.0"

_SERVICE_COMMANDS = frozenset({"run", "once", "worker"})
_EARLY = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
_noted: list[int] = []


def _command(argv: list[str]) -> str | None:
    """The subcommand of a style-daemon command line: the first word that is not an option or its value."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _note(signum: int, _frame: object) -> None:
    _noted.append(signum)


def take_over_signals(handlers: dict[int, Callable[[], None]]) -> None:
    """Install the process's own handlers, then call each for a signal that arrived before them (once)."""
    for signum, handler in handlers.items():
        signal.signal(signum, lambda *_, act=handler: act())
    early, _noted[:] = list(dict.fromkeys(_noted)), []
    for signum in early:
        if signum in handlers:
            handlers[signum]()


if _command(sys.argv[1:]) in _SERVICE_COMMANDS:
    for _signum in _EARLY:
        signal.signal(_signum, _note)
