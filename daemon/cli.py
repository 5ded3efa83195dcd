"""The style-daemon command line: stylize (one-shot), the service (run, once, status, reload, redo), fetch-weights."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from daemon import __version__
from daemon.errors import ConfigError, StyleDaemonError

if TYPE_CHECKING:
    from daemon.media.stylize import StyleRef

log = logging.getLogger("style-daemon")


def parse_style(text: str) -> StyleRef:
    """IMAGE or IMAGE:WEIGHT -> StyleRef (a colon followed by a number is the weight)."""
    from daemon.media.stylize import StyleRef

    path, sep, weight = text.rpartition(":")
    if sep:
        try:
            value = float(weight)
        except ValueError:
            return StyleRef(Path(text))
        if value <= 0:
            raise argparse.ArgumentTypeError(f"style weight must be positive in {text!r}")
        return StyleRef(Path(path), value)
    return StyleRef(Path(text))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="style-daemon", description="Neural style transfer, one-shot or as a hot-folder service.")
    parser.add_argument("--version", action="version", version=f"style-daemon {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stylize", help="stylise one photo now")
    s.add_argument("content", type=Path, help="the photo")
    s.add_argument("--style", "-s", action="append", type=parse_style, required=True,
                   metavar="IMAGE[:WEIGHT]", help="style image, repeat to blend several")
    s.add_argument("-o", "--output", type=Path, required=True, help="result (.jpg, .png or .webp)")
    s.add_argument("--size", type=int, help="long side of the result in pixels (default 512)")
    s.add_argument("--iterations", type=int, help="optimiser iterations per scale (default 100)")
    s.add_argument("--scales", type=int, help="coarse-to-fine scales (default 3)")
    s.add_argument("--style-weight", type=float)
    s.add_argument("--content-weight", type=float)
    s.add_argument("--tv-weight", type=float)
    s.add_argument("--style-scale", type=float, help="style image size relative to the result")
    s.add_argument("--preserve-colors", nargs="?", const="luminance", choices=["none", "luminance", "histogram"],
                   help="keep the photo's colours (luminance transfer, or histogram matching)")
    s.add_argument("--init", choices=["content", "noise", "style"])
    s.add_argument("--optimizer", choices=["lbfgs", "adam"])
    s.add_argument("--seed", type=int)
    s.add_argument("--backbone", choices=["auto", "vgg19", "vgg16-hed"], default="auto")
    s.add_argument("--weights", type=Path, help="a Keras VGG19 notop weights file (offline servers)")
    s.add_argument("--quality", type=int, default=92, help="JPEG/WebP quality (default 92)")
    s.add_argument("--save-every", type=int, metavar="N", help="also write OUT.iterNNNN.EXT every N iterations")
    s.add_argument("--downsize", action="store_true", help="shrink an image that would not fit in memory instead of refusing it")
    s.set_defaults(handler=cmd_stylize)

    for name, text in (("run", "run the folder-watching service"),
                       ("once", "process everything waiting, then exit (1 if any job failed)"),
                       ("status", "show the queue, the running job and recent errors"),
                       ("check-config", "validate the config and print the effective settings")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", type=Path, default=Path("config.yaml"), help="config file (default ./config.yaml)")
        if name == "status":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler={"run": cmd_run, "once": cmd_once, "status": cmd_status,
                                "check-config": cmd_check_config}[name])

    r = sub.add_parser("reload", help="make the running service re-read its config; waits until it is applied")
    r.add_argument("-c", "--config", type=Path, default=Path("config.yaml"), help="config file (default ./config.yaml)")
    r.add_argument("--pid", type=int, required=True, help="the service's process id (systemd: $MAINPID)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the service's answer (default 60)")
    r.set_defaults(handler=cmd_reload)

    r = sub.add_parser(
        "redo", help="queue earlier photos again under the current settings; new results beside the old ones",
        description="Queue photos again with the current style settings. The new results are written beside "
                    "the old ones under new names (photo.starry.2.jpg, ...); earlier results are never touched. Works whether the service "
                    "runs or not: a running service picks the jobs up, otherwise the next run or once does.")
    r.add_argument("-c", "--config", type=Path, default=Path("config.yaml"), help="config file (default ./config.yaml)")
    r.add_argument("--style", metavar="SET", help="only this style set (default: the sets each photo's routing gives)")
    r.add_argument("--since", type=_parse_since, metavar="DATE",
                   help="only photos that first arrived on or after DATE, YYYY-MM-DD or YYYY-MM-DDTHH:MM "
                        "(default: all)")
    r.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="photos or folders under the input (or processed) folder (default: the whole input folder)")
    r.set_defaults(handler=cmd_redo)

    j = sub.add_parser("journal", help="manage the job store (move a SQLite journal into PostgreSQL)")
    jm = j.add_subparsers(dest="journal_command", required=True).add_parser(
        "migrate", help="copy the SQLite journal's jobs into a shared PostgreSQL job store (safe to repeat)")
    jm.add_argument("-c", "--config", type=Path, default=Path("config.yaml"), help="config file (default ./config.yaml)")
    jm.add_argument("--to", metavar="URL", help="postgresql:// URL (default: the config's journal)")
    jm.add_argument("--from", dest="source", type=Path, metavar="FILE",
                    help="the SQLite journal (default: journal.sqlite3 in the state folder)")
    jm.set_defaults(handler=cmd_journal_migrate)

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("-c", "--config", type=Path, required=True)
    w.add_argument("--index", type=int, default=0)
    w.add_argument("--exit-when-idle", action="store_true")
    w.set_defaults(handler=cmd_worker)

    f = sub.add_parser("fetch-weights", help="download VGG19 weights once, for offline use")
    f.add_argument("--weights", type=Path, help="check this file instead of downloading")
    f.set_defaults(handler=cmd_fetch_weights)
    return parser


def _parse_since(text: str):
    """DATE for --since: ISO date or date and time, local time."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def _params_from_args(args: argparse.Namespace):
    from daemon.engine.params import TransferParams

    mapping = {
        "max_size": args.size, "iterations": args.iterations, "scales": args.scales,
        "style_weight": args.style_weight, "content_weight": args.content_weight,
        "tv_weight": args.tv_weight, "style_scale": args.style_scale,
        "preserve_colors": args.preserve_colors, "init": args.init,
        "optimizer": args.optimizer, "seed": args.seed,
        "on_too_large": "downsize" if args.downsize else None,
        "save_every": args.save_every,
    }
    return TransferParams(**{k: v for k, v in mapping.items() if v is not None})


def cmd_stylize(args: argparse.Namespace) -> int:
    """Stylise one photo and write the result with its sidecar."""
    from daemon.engine.backbones import resolve_backbone
    from daemon.review.progress import ProgressReporter
    from daemon.media.stylize import StylizeRequest, check_output_path, run_stylize

    check_output_path(args.output)
    for path in [args.content, *(s.path for s in args.style)]:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file; check the path")
    params = _params_from_args(args)
    source = resolve_backbone(args.backbone, args.weights)
    from daemon.engine.transfer import StyleTransfer

    log.info("loading backbone %s (%s weights from %s)", source.backbone, source.origin, source.path)
    engine = StyleTransfer(source)
    request = StylizeRequest(args.content, tuple(args.style), args.output, params, args.quality)
    reporter = ProgressReporter(args.content.name, params.log_every, sys.stderr)
    outcome = run_stylize(engine, request, reporter)
    log.info("wrote %s and %s in %.1fs (%d iterations, backbone %s)", outcome.output,
             outcome.sidecar.name, outcome.seconds, outcome.iterations, outcome.backbone)
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    """Make VGG19 weights available offline (Keras cache)."""
    from daemon.engine.fetch import fetch_vgg19

    source = fetch_vgg19(args.weights)
    log.info("done: VGG19 weights from %s at %s (sha256 %s)", source.origin, source.path, source.sha256()[:16])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The long-running service."""
    from daemon.service.supervisor import Supervisor

    return Supervisor(args.config).run()


def cmd_once(args: argparse.Namespace) -> int:
    """One batch: everything waiting, then exit."""
    from daemon.service.supervisor import Supervisor

    return Supervisor(args.config, once=True).run()


def cmd_status(args: argparse.Namespace) -> int:
    """Print the service's state from the journal."""
    from daemon.config import parse_config
    from daemon.review.status import collect, render_json, render_text

    # Read-only: status must work exactly when folders are full, read-only or unwritable.
    report = collect(parse_config(args.config))
    print(render_json(report) if args.json else render_text(report))
    return 0


def cmd_redo(args: argparse.Namespace) -> int:
    """Queue photos again into the store; print what was queued."""
    from daemon.config import load_config
    from daemon.service.redo import RedoRequest, queue_redo
    from daemon.store import open_store

    config = load_config(args.config)
    journal = open_store(config.store_target)
    try:
        queued = queue_redo(config, journal, RedoRequest(tuple(args.paths), args.style, args.since))
    finally:
        journal.close()
    for item in queued:
        print(f"queued job {item.job_id}: {item.photo} [{item.style_set}] -> {item.output}")
    print(f"{len(queued)} job(s) queued; a running service picks them up, otherwise the next run or once does")
    return 0


def cmd_journal_migrate(args: argparse.Namespace) -> int:
    """Copy the SQLite journal into the PostgreSQL job store; print what was copied."""
    from dataclasses import replace

    from daemon.config import load_config
    from daemon.store.migrate import migrate_journal

    config = load_config(args.config)
    target = config.store_target if args.to is None else replace(config.store_target, location=args.to)
    source = args.source or config.state / "journal.sqlite3"
    done = migrate_journal(source, target)
    print(f"{done.added} of {done.found} job(s) copied ({done.found - done.added} already there), "
          f"{done.files} file record(s); set `journal: {target.location}` in the config of every machine")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate and print the effective configuration."""
    import yaml

    from daemon.config import check_filesystem, folder_needs, parse_config
    from daemon.media.folder_access import will_create

    config = parse_config(args.config)
    for need in will_create(folder_needs(config)):  # said even when a later check fails
        log.info("%s: %s does not exist yet; it will be created by run", need.key, need.path)
    check_filesystem(config, args.config)  # writes nothing: as root it must not create root-owned folders
    _check_journal(config)
    effective = config.model_dump(mode="json", exclude_none=True)
    effective.update(failed=str(config.failed_dir), processed=str(config.processed_dir))
    print(yaml.safe_dump(effective, sort_keys=False), end="")
    log.info("%s is valid", args.config)
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP the service and wait for its answer: 0 once the new config is live, 78 if it was refused."""
    from daemon.config import state_folder
    from daemon.service.reload_ack import request_reload

    try:
        state = state_folder(args.config)
    except ConfigError as exc:
        raise ConfigError(f"reload refused, the old config is kept: {exc}") from None
    ack = request_reload(args.pid, state, args.timeout)
    if ack.error:
        raise ConfigError(f"reload refused, the old config is kept: {ack.error}")
    log.info("reloaded %s (style-daemon pid %d)", args.config, args.pid)
    return 0


def _check_journal(config) -> None:
    """JournalError (one line) if an existing journal is corrupt or a shared one unreachable; writes nothing."""
    from daemon.store import open_store

    path = config.journal_path
    if config.journal_shared:
        open_store(config.store_target, readonly=True).close()  # says: server, database or permissions
        return
    if path.exists() and path.stat().st_size > 0:  # an empty file is a journal not yet started
        open_store(path, readonly=True).close()


def cmd_worker(args: argparse.Namespace) -> int:
    """A worker process (started by the service, not by hand)."""
    from daemon.errors import JournalError
    from daemon.service.worker_process import Worker, die_with_parent

    die_with_parent()
    try:
        worker = Worker(args.config, args.index, args.exit_when_idle)
        worker.install_signals()
        return worker.run()
    except JournalError as exc:
        return exc.exit_code  # the supervisor sees this code and says it, once, for the whole service


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from daemon.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, plain=args.command == "worker")
    try:
        return args.handler(args)
    except StyleDaemonError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
