"""The rotating log file in OUTPUT/logs, which degrades quietly to stderr when it cannot be written."""

from __future__ import annotations

import logging
import logging.handlers
import sys


class QuietRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """On a full or read-only disk: one line on stderr (which still reaches the journal), no tracebacks."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._failing = False
        self._ok = True

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record; say once when the file starts failing and once when it works again."""
        self._ok = True
        super().emit(record)
        if self._ok and self._failing:
            self._failing = False
            sys.stderr.write(f"style-daemon: the log file {self.baseFilename} can be written again\n")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Instead of logging's '--- Logging error ---' block for every line."""
        self._ok = False
        if self._failing:
            return
        self._failing = True
        error = sys.exc_info()[1]
        sys.stderr.write(f"style-daemon: cannot write the log file {self.baseFilename} ({error}); "
                         "logging to stderr only until it works again\n")
        # A failed write may leave the stream broken; reopen at the next record.
        try:
            if self.stream is not None:
                self.stream.close()
        except OSError:
            pass
        self.stream = None
