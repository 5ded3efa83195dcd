"""The argument parser of every subcommand; the stylize options come from the engine schema (stylize_options),
added only when the stylize command is parsed or its help shown."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon import __version__
from collections.abc import Callable

from daemon.cli import check_config, commands

EXIT_CODES = (
    (0, "done (once: no job failed; reload: the new config is live)"),
    (1, "a job failed (once), or an unexpected error"),
    (2, "bad command line (unknown option, missing or invalid argument)"),
    (65, "an input image is missing, unreadable or not an image"),
    (69, "backbone weights unavailable (missing, offline, download failed)"),
    (75, "does not fit in memory, or the state folder is in use by another service"),
    (76, "the job store is corrupt"),
    (78, "invalid config file (reload: the new config was refused)"),
    (130, "interrupted (Ctrl-C)"),
    (141, "the reader of the output went away (e.g. `| head`)"),
)
PUBLIC_COMMANDS = ("stylize", "run", "once", "status", "check-config", "reload", "redo", "store", "doctor", "fetch-weights")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default; descriptions and the epilog keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.required or not action.option_strings:
            return text
        if action.default is argparse.SUPPRESS or action.default is None:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


class DeferredParser(argparse.ArgumentParser):
    """A parser whose arguments are added on first use (`fill`). The stylize options are built from the engine
    schema, whose import (pydantic) costs about 0.2 s: `style-daemon --help` and the other commands skip it."""

    def __init__(self, *args, fill: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fill = fill  # set last: argparse's own set-up reads _actions before there is anything to add

    @property
    def _actions(self) -> list[argparse.Action]:
        # argparse reads this list wherever it needs the arguments (parsing, help, usage): fill on first read.
        fill, self.__dict__["_fill"] = self.__dict__.get("_fill"), None
        if fill is not None:
            fill(self)
        return self.__dict__["_deferred_actions"]

    @_actions.setter
    def _actions(self, actions: list[argparse.Action]) -> None:
        self.__dict__["_deferred_actions"] = actions

    def parse_known_args(self, *args, **kwargs):
        """argparse's, with the arguments added first."""
        self._filled()
        return super().parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        """argparse's, with the arguments added first."""
        self._filled()
        return super().format_help()

    def _filled(self) -> None:
        assert self._actions is not None  # reading the property adds the deferred arguments


def _add_stylize(parser: argparse.ArgumentParser) -> None:
    from daemon.cli.stylize import cmd_stylize
    from daemon.cli.stylize_options import add_stylize

    add_stylize(parser, cmd_stylize)


def _epilog() -> str:
    lines = ["exit codes:"] + [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


class _Commands:
    """Adds subcommands that share the --log-level option, the help formatter and the exit-code epilog."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        # Also accepted after the subcommand; SUPPRESS keeps it from overriding the main option's value.
        self.common = argparse.ArgumentParser(add_help=False)
        self.common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS,
                                 help="how much to log on stderr (default: INFO)")
        self.sub = parser.add_subparsers(dest="command", required=True, title="commands", parser_class=DeferredParser,
                                         metavar="{" + ",".join(PUBLIC_COMMANDS) + "}")

    def add(self, name: str, summary: str, description: str = "", **more) -> argparse.ArgumentParser:
        """A listed subcommand: `summary` in the main help, `description` (or the summary) in its own."""
        return self.sub.add_parser(name, help=summary, description=description or summary[0].upper() + summary[1:] + ".",
                                   parents=[self.common], formatter_class=HelpFormatter, epilog=_epilog(), **more)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand; `worker` is internal and left out of the help."""
    parser = argparse.ArgumentParser(prog="style-daemon", formatter_class=HelpFormatter, epilog=_epilog(),
                                     description="Neural style transfer, one-shot or as a hot-folder service.")
    parser.add_argument("--version", action="version", version=f"style-daemon {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, help="how much to log on stderr")
    command = _Commands(parser)
    command.add("stylize", "stylise one photo now and write the result with its sidecar",
                "Stylise one photo now. All inputs are checked before the model loads; an existing "
                "result is never replaced:\nthe new one is written as OUT.2.EXT (then .3, ...).", fill=_add_stylize)
    _add_service_commands(command)
    _add_redo(command)
    _add_store_commands(command)
    _add_engine_commands(command)
    # Internal (started by the service): no help=, so it is not listed among the commands.
    w = command.sub.add_parser("worker", parents=[command.common], formatter_class=HelpFormatter,
                               description="A worker process, started by the service; not for use by hand.")
    w.add_argument("-c", "--config", type=Path, required=True, help="the service's config file")
    w.add_argument("--index", type=int, default=0, help="worker number")
    w.add_argument("--exit-when-idle", action="store_true", help="exit once the queue is empty")
    w.set_defaults(handler=commands.cmd_worker)
    return parser


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=Path("config.yaml"), metavar="FILE",
                   help="config file (default: ./config.yaml)")


def _add_service_commands(command: _Commands) -> None:
    """run, once, status, check-config and reload: the service and its config."""
    handlers = {"run": commands.cmd_run, "once": commands.cmd_once, "status": commands.cmd_status,
                "check-config": check_config.cmd_check_config}
    for name, text in (("run", "run the folder-watching service until stopped"),
                       ("once", "process everything waiting, then exit (1 if any job failed)"),
                       ("status", "show the queue, the running job and recent errors"),
                       ("check-config", "validate the config (writes nothing), print the effective settings, "
                                        "the backbone, Keras backend and device that will be used")):
        p = command.add(name, text)
        _add_config(p)
        if name == "status":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name in ("run", "once"):
            p.add_argument("--dry-run", action="store_true",
                           help="check folders, permissions, routing and the service in seconds: no model, "
                                "weights or GPU; results are tinted photos marked dry_run (docs/dry-run.md)")
        p.set_defaults(handler=handlers[name])
    r = command.add("reload", "make the running service re-read its config; waits until it is applied")
    _add_config(r)
    r.add_argument("--pid", type=int, required=True, help="the service's process id (systemd: $MAINPID)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the service's answer")
    r.set_defaults(handler=commands.cmd_reload)


def _add_redo(command: _Commands) -> None:
    r = command.add(
        "redo", "queue earlier photos again under the current settings; new results beside the old ones",
        "Queue photos again with the current style settings. The new results are written beside "
        "the old ones under new names (photo.starry.2.jpg, ...); earlier results are never touched. Works whether the service "
        "runs or not: a running service picks the jobs up, otherwise the next run or once does.")
    _add_config(r)
    r.add_argument("--style", metavar="SET", help="only this style set (default: the sets each photo's routing gives)")
    r.add_argument("--since", type=_parse_since, metavar="DATE",
                   help="only photos that first arrived on or after DATE, YYYY-MM-DD or YYYY-MM-DDTHH:MM "
                        "(default: all)")
    r.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="photos or folders under the input (or processed) folder (default: the whole input folder)")
    r.set_defaults(handler=commands.cmd_redo)


def _add_store_commands(command: _Commands) -> None:
    """`store migrate`, and `journal migrate`: its name before the job store had one name (warns, then runs)."""
    store = command.add("store", "manage the job store (upgrade its schema, move a SQLite job store into PostgreSQL)")
    _add_migrate(store, command.common, commands.cmd_store_migrate)
    # Not in the listing (PUBLIC_COMMANDS): scripts written before the rename keep working.
    old = command.sub.add_parser("journal", description="Deprecated name of `store`.", parents=[command.common],
                                 formatter_class=HelpFormatter)
    _add_migrate(old, command.common, commands.cmd_journal_migrate)


def _add_migrate(group: argparse.ArgumentParser, common: argparse.ArgumentParser,
                 handler: Callable[[argparse.Namespace], int]) -> None:
    """The `migrate` subcommand of `group`: upgrade the job store's schema, copy a SQLite one into PostgreSQL."""
    migrate = group.add_subparsers(dest="store_command", required=True, title="commands").add_parser(
        "migrate", help="upgrade the job store's schema; copy a SQLite job store into PostgreSQL (safe to repeat)",
        description="Bring the job store to this style-daemon's schema version (the service also does at start) "
                    "and say from which version to which. With a PostgreSQL store, also copy the SQLite job "
                    "store's jobs (running ones become queued) and file records into it. Running it again "
                    "changes and copies nothing new.",
        parents=[common], formatter_class=HelpFormatter, epilog=_epilog())
    _add_config(migrate)
    migrate.add_argument("--to", metavar="URL", help="postgresql:// URL (default: the config's store)")
    migrate.add_argument("--from", dest="source", type=Path, metavar="FILE",
                         help="the SQLite job store (default: journal.sqlite3 in the state folder)")
    migrate.set_defaults(handler=handler)


def _add_engine_commands(command: _Commands) -> None:
    """doctor and fetch-weights: what the engine will compute on, and its weights."""
    d = command.add("doctor", "show the Keras backend, the device and its memory, and which optimiser loop runs")
    d.set_defaults(handler=commands.cmd_doctor)
    f = command.add("fetch-weights", "download VGG19 weights once into the Keras cache, for offline use",
                    "Download VGG19 weights once into the Keras cache, for offline use. With STYLE_DAEMON_OFFLINE=1 "
                    "nothing is downloaded.")
    f.add_argument("--weights", type=Path, metavar="FILE",
                   help="check this file instead of downloading (default: the cached file, else a download)")
    f.set_defaults(handler=commands.cmd_fetch_weights)


def _parse_since(text: str):
    """DATE for --since: ISO date or date and time, local time."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
