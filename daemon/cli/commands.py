"""The service's subcommands (run, once, status, redo, reload, store migrate, the worker) and the engine's
(doctor, fetch-weights); each imports what it needs when it runs, so that --help stays fast."""

from __future__ import annotations

import argparse
import logging

from daemon.errors import ConfigError

log = logging.getLogger("style-daemon")  # the command line's own name in every message it logs


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    """Make VGG19 weights available offline (Keras cache)."""
    from daemon.engine.fetch import fetch_vgg19

    source = fetch_vgg19(args.weights)
    log.info("done: VGG19 weights from %s at %s (sha256 %s)", source.origin, source.path, source.sha256()[:16])
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print what the engine would compute on: backend, device, memory, compilation cache."""
    from daemon.engine.diagnostics import describe

    for key, value in describe().items():
        print(f"{key}: {value}")
    return 0


def _start_dry_run(args: argparse.Namespace) -> None:
    """Ask for the dry-run engine, refusing a config that would delete photos for a tinted copy."""
    from daemon.config import parse_config
    from daemon.job.engines import request_dry_run

    if parse_config(args.config).after_success == "delete":
        raise ConfigError(f"{args.config}: after_success: delete with --dry-run would delete each photo for a "
                          "tinted copy; use a test config with after_success: keep or move")
    request_dry_run()  # the workers inherit it


def cmd_run(args: argparse.Namespace) -> int:
    """The long-running service."""
    from daemon.service.supervisor import Supervisor

    if args.dry_run:
        _start_dry_run(args)
    return Supervisor(args.config).run()


def cmd_once(args: argparse.Namespace) -> int:
    """One batch: everything waiting, then exit."""
    from daemon.service.supervisor import Supervisor

    if args.dry_run:
        _start_dry_run(args)
    return Supervisor(args.config, once=True).run()


def cmd_status(args: argparse.Namespace) -> int:
    """Print the service's state from the job store."""
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
    store = open_store(config.store_target)
    try:
        queued = queue_redo(config, store, RedoRequest(tuple(args.paths), args.style, args.since))
    finally:
        store.close()
    for item in queued:
        print(f"queued job {item.job_id}: {item.photo} [{item.style_set}] -> {item.output}")
    print(f"{len(queued)} job(s) queued; a running service picks them up, otherwise the next run or once does")
    return 0


def cmd_journal_migrate(args: argparse.Namespace) -> int:
    """`journal migrate`, the old name of `store migrate`: says so once, then does the same."""
    log.warning("`style-daemon journal migrate` is deprecated; use `style-daemon store migrate`")
    return cmd_store_migrate(args)


def cmd_store_migrate(args: argparse.Namespace) -> int:
    """Bring the job store to this version's schema; copy a SQLite job store into a PostgreSQL one; say what it did."""
    from dataclasses import replace

    from daemon.config import load_config
    from daemon.store.migrate import store_migrate

    config = load_config(args.config)
    target = config.store_target if args.to is None else replace(config.store_target, location=args.to)
    done = store_migrate(target, args.source, config.store_path)
    print("\n".join(done.lines()))
    if done.copied:
        print(f"set `store: {target.location}` in the config of every machine")
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


def cmd_worker(args: argparse.Namespace) -> int:
    """A worker process (started by the service, not by hand)."""
    from daemon.errors import StoreCorrupt
    from daemon.service.worker_process import Worker, die_with_parent

    die_with_parent()
    try:
        worker = Worker(args.config, args.index, args.exit_when_idle)
        worker.install_signals()
        return worker.run()
    except StoreCorrupt as exc:
        return exc.exit_code  # the supervisor sees this code and says it, once, for the whole service
