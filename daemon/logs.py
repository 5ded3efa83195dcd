"""Logging set-up: plain lines on stderr (no timestamps under journald, which adds its own).

Every handler uses SafeFormatter: file names can hold newlines, escape sequences and undecodable
bytes, and one of them must never forge a log line. A record's message is escaped onto one line;
the lines of a traceback are indented, so only a record's first line starts at the left margin.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from daemon.media.path_text import display

CONTINUATION = "  "  # the prefix of a record's second and later lines (traceback, stack)


class SafeFormatter(logging.Formatter):
    """A Formatter whose message is one printable line and whose traceback lines are indented and escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = display(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join(CONTINUATION + display(line) for line in text.splitlines())


def make_formatter(timestamps: bool = True) -> SafeFormatter:
    """The daemon's line format, with or without a leading timestamp."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else "%(levelname)s %(name)s: %(message)s"
    return SafeFormatter(fmt, datefmt="%Y-%m-%d %H:%M:%S")


def setup_logging(level: str = "INFO", plain: bool = False) -> None:
    """Configure the root logger once; plain (no timestamp) for workers, whose lines the service relays."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(timestamps=not (under_journald or plain)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Crashes and warnings go through the formatter too, never raw onto stderr.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if issubclass(args.exc_type, SystemExit):
        return  # a thread's normal way out, as in threading's own hook
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("daemon").critical("uncaught exception", exc_info=(kind, value, traceback))
