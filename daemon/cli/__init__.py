"""The style-daemon command line: stylize (one-shot), the service (run, once, status, reload, redo), fetch-weights.

parser.py builds the parser (the stylize options are derived from the engine schema in stylize_options.py);
stylize.py, check_config.py and commands.py hold the subcommands. `main` is the console script.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Sequence

from daemon.cli.parser import EXIT_CODES, LOG_LEVELS, PUBLIC_COMMANDS, build_parser
from daemon.errors import StyleDaemonError

log = logging.getLogger("style-daemon")  # the command line's own name in every message it logs

# Imported on first use: they need the engine schema (pydantic), which --help does without.
_LAZY = {"params_from_args": "params_from_args", "_params_from_args": "params_from_args", "parse_style": "parse_style"}


def __getattr__(name: str) -> Any:
    """params_from_args and parse_style from stylize_options (also as _params_from_args, the name tests used)."""
    if name in _LAZY:
        from daemon.cli import stylize_options

        return getattr(stylize_options, _LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["EXIT_CODES", "LOG_LEVELS", "PUBLIC_COMMANDS", "build_parser", "main", "params_from_args", "parse_style"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from daemon.logs import setup_logging

    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help, --version, or a usage error (2)
            sys.stdout.flush()
            return done.code if isinstance(done.code, int) else 2
        setup_logging(args.log_level, plain=args.command == "worker")
        try:
            code = args.handler(args)
        except StyleDaemonError as exc:
            log.error("%s", exc)
            code = exc.exit_code
        sys.stdout.flush()  # a closed pipe shows up here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def _reader_gone() -> int:
    """The reader of stdout went away (`| head`): stop quietly, as a C program killed by SIGPIPE would."""
    # Python's own recipe: point stdout at /dev/null so the final flush at exit cannot raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141

