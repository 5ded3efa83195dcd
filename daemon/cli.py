"""The style-daemon command line: stylize (one-shot), the service (run, once, status, reload, redo), fetch-weights."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from daemon import __version__
from daemon.errors import ConfigError, StyleDaemonError

if TYPE_CHECKING:
    from daemon.job.pipeline import StyleRef

log = logging.getLogger("style-daemon")


def parse_style(text: str) -> StyleRef:
    """IMAGE or IMAGE:WEIGHT -> StyleRef (a colon followed by a number is the weight)."""
    from daemon.job.pipeline import StyleRef

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


EXIT_CODES = (
    (0, "done (once: no job failed; reload: the new config is live)"),
    (1, "a job failed (once), or an unexpected error"),
    (2, "bad command line (unknown option, missing or invalid argument)"),
    (65, "an input image is missing, unreadable or not an image"),
    (69, "backbone weights unavailable (missing, offline, download failed)"),
    (75, "does not fit in memory, or the state folder is in use by another service"),
    (76, "the job journal is corrupt"),
    (78, "invalid config file (reload: the new config was refused)"),
    (130, "interrupted (Ctrl-C)"),
    (141, "the reader of the output went away (e.g. `| head`)"),
)
PUBLIC_COMMANDS = ("stylize", "run", "once", "status", "check-config", "reload", "redo", "journal", "doctor", "fetch-weights")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
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


def _epilog() -> str:
    lines = ["exit codes:"] + [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand; `worker` is internal and left out of the help."""
    parser = argparse.ArgumentParser(prog="style-daemon", formatter_class=_HelpFormatter, epilog=_epilog(),
                                     description="Neural style transfer, one-shot or as a hot-folder service.")
    parser.add_argument("--version", action="version", version=f"style-daemon {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, help="how much to log on stderr")
    # Also accepted after the subcommand; SUPPRESS keeps it from overriding the main option's value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS,
                        help="how much to log on stderr (default: INFO)")
    sub = parser.add_subparsers(dest="command", required=True, title="commands",
                                metavar="{" + ",".join(PUBLIC_COMMANDS) + "}")

    def command(name: str, summary: str, description: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description or summary[0].upper() + summary[1:] + ".",
                              parents=[common], formatter_class=_HelpFormatter, epilog=_epilog())

    _add_stylize(command("stylize", "stylise one photo now and write the result with its sidecar",
                         "Stylise one photo now. All inputs are checked before the model loads; an existing "
                         "result is never replaced:\nthe new one is written as OUT.2.EXT (then .3, ...)."))
    for name, text in (("run", "run the folder-watching service until stopped"),
                       ("once", "process everything waiting, then exit (1 if any job failed)"),
                       ("status", "show the queue, the running job and recent errors"),
                       ("check-config", "validate the config (writes nothing), print the effective settings, "
                                        "the backbone, Keras backend and device that will be used")):
        p = command(name, text)
        _add_config(p)
        if name == "status":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name in ("run", "once"):
            p.add_argument("--dry-run", action="store_true",
                           help="check folders, permissions, routing and the service in seconds: no model, "
                                "weights or GPU; results are tinted photos marked dry_run (docs/dry-run.md)")
        p.set_defaults(handler={"run": cmd_run, "once": cmd_once, "status": cmd_status,
                                "check-config": cmd_check_config}[name])

    r = command("reload", "make the running service re-read its config; waits until it is applied")
    _add_config(r)
    r.add_argument("--pid", type=int, required=True, help="the service's process id (systemd: $MAINPID)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the service's answer")
    r.set_defaults(handler=cmd_reload)

    r = command(
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
    r.set_defaults(handler=cmd_redo)

    j = command("journal", "manage the job store (move a SQLite journal into PostgreSQL)")
    jm = j.add_subparsers(dest="journal_command", required=True, title="journal commands").add_parser(
        "migrate", help="copy the SQLite journal's jobs into a shared PostgreSQL job store (safe to repeat)",
        description="Copy the SQLite journal's jobs (running ones become queued) and file records into the "
                    "shared PostgreSQL job store. Running it again copies nothing new.",
        parents=[common], formatter_class=_HelpFormatter, epilog=_epilog())
    _add_config(jm)
    jm.add_argument("--to", metavar="URL", help="postgresql:// URL (default: the config's journal)")
    jm.add_argument("--from", dest="source", type=Path, metavar="FILE",
                    help="the SQLite journal (default: journal.sqlite3 in the state folder)")
    jm.set_defaults(handler=cmd_journal_migrate)

    d = command("doctor", "show the Keras backend, the device and its memory, and which optimiser loop runs")
    d.set_defaults(handler=cmd_doctor)

    f = command("fetch-weights", "download VGG19 weights once into the Keras cache, for offline use",
                "Download VGG19 weights once into the Keras cache, for offline use. With STYLE_DAEMON_OFFLINE=1 "
                "nothing is downloaded.")
    f.add_argument("--weights", type=Path, metavar="FILE",
                   help="check this file instead of downloading (default: the cached file, else a download)")
    f.set_defaults(handler=cmd_fetch_weights)

    # Internal (started by the service): no help=, so it is not listed among the commands.
    w = sub.add_parser("worker", parents=[common], formatter_class=_HelpFormatter,
                       description="A worker process, started by the service; not for use by hand.")
    w.add_argument("-c", "--config", type=Path, required=True, help="the service's config file")
    w.add_argument("--index", type=int, default=0, help="worker number")
    w.add_argument("--exit-when-idle", action="store_true", help="exit once the queue is empty")
    w.set_defaults(handler=cmd_worker)
    return parser


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=Path("config.yaml"), metavar="FILE",
                   help="config file (default: ./config.yaml)")


def _add_stylize(s: argparse.ArgumentParser) -> None:
    from daemon.engine.params import TransferParams

    d = TransferParams()
    s.add_argument("content", type=Path, help="the photo")
    s.add_argument("--style", "-s", action="append", type=parse_style, required=True,
                   metavar="IMAGE[:WEIGHT]", help="style image, repeat to blend several")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="result (.jpg, .png or .webp); if it exists, OUT.2.EXT (then .3, ...) is written instead")
    s.add_argument("--size", type=int, default=d.max_size, metavar="N",
                   help="long side of the result in pixels; a smaller photo is not upscaled")
    s.add_argument("--iterations", type=int, default=d.iterations, metavar="N",
                   help="most optimiser iterations per scale (see --budget, --stop-tolerance)")
    s.add_argument("--scales", type=int, default=d.scales, metavar="N",
                   help="coarse-to-fine scales (fewer run when the photo is small)")
    s.add_argument("--strength", type=_parse_strength, default="balanced", metavar="S",
                   help="how much style: a number from 0 (a hint) to 1 (style everywhere) or subtle, "
                        "balanced, strong (0.15, 0.3, 0.5); damped for a photo far from the painting "
                        "(see --no-adapt-strength)")
    s.add_argument("--style-weight", type=float, default=None, metavar="W",
                   help="raw weight of the style loss, instead of --strength: higher gives more paint "
                        "(default: from --strength)")
    s.add_argument("--no-adapt-strength", dest="adapt_strength", action="store_false",
                   help="use the style weight as given for every photo (by default it is damped for a photo "
                        "whose own style statistics are far from the painting's, where it drowned the subject)")
    s.add_argument("--content-weight", type=float, default=d.content_weight, metavar="W",
                   help="weight of the content loss: higher keeps more of the photo")
    s.add_argument("--tv-weight", type=float, default=d.tv_weight, metavar="W",
                   help="weight of the total-variation loss: higher smooths pixel noise")
    s.add_argument("--stop-tolerance", type=float, default=d.stop_tolerance, metavar="F",
                   help="a scale stops once the loss fell by less than this fraction over --stop-window "
                        "iterations; 0 runs every scale to its cap")
    s.add_argument("--stop-window", type=int, default=d.stop_window, metavar="N",
                   help="iterations over which --stop-tolerance is measured")
    s.add_argument("--budget", choices=["even", "coarse"], default=d.budget,
                   help="iteration caps per scale: even gives each --iterations, coarse halves it at each finer scale")
    s.add_argument("--style-scale", type=float, default=d.style_scale, metavar="S",
                   help="style image size relative to the result: smaller gives finer brush strokes")
    s.add_argument("--preserve-colors", nargs="?", const="luminance", default=d.preserve_colors,
                   choices=["none", "luminance", "histogram"],
                   help="keep the photo's colours: luminance transfer (also without a value) or histogram matching")
    s.add_argument("--init", choices=["content", "noise", "style"], default=d.init,
                   help="start from the photo, from seeded noise or from the style image")
    s.add_argument("--optimizer", choices=["lbfgs", "adam"], default=d.optimizer,
                   help="L-BFGS needs far fewer iterations; adam is there for comparison")
    s.add_argument("--lbfgs-impl", choices=["auto", "optax", "numpy", "scipy"], default=d.lbfgs_impl,
                   help="L-BFGS on the device (optax, JAX only) or on the host (numpy: float32, scipy: "
                        "L-BFGS-B); auto: optax on a JAX GPU, else numpy")
    s.add_argument("--precision", choices=["auto", "float32", "tf32", "bf16"], default=d.precision,
                   help="arithmetic of the loss (auto: bf16 on a CPU with AMX, else float32; tf32: "
                        "on-device loop only)")
    s.add_argument("--seed", type=int, default=d.seed, metavar="N",
                   help="random seed: identical input and seed give identical output on CPU")
    s.add_argument("--backbone", choices=["auto", "vgg19", "vgg16-hed"], default="auto",
                   help="feature network: auto is VGG19 if its weights are at hand or can be fetched, else vgg16-hed")
    s.add_argument("--weights", type=Path, metavar="FILE",
                   help="a Keras VGG19 notop weights file, for offline servers (default: the Keras cache)")
    s.add_argument("--quality", type=int, default=92, metavar="Q", help="JPEG/WebP quality")
    s.add_argument("--save-every", type=int, default=d.save_every, metavar="N",
                   help="also write OUT.iterNNNN.EXT every N iterations; 0 is off")
    s.add_argument("--downsize", action="store_true",
                   help="shrink an image that would not fit in memory instead of refusing it")
    s.add_argument("--memory-budget", type=_byte_size, default=d.memory_budget, metavar="SIZE",
                   help="memory the job may use beyond the loaded model, e.g. 8GB or 512MiB; above it the loss is "
                        "computed tile by tile (exact); 0: 90%% of what is free when a job starts")
    s.add_argument("--tiling", choices=["auto", "always", "never"], default=d.tiling,
                   help="auto: tile only when the image would not fit in the memory budget")
    s.add_argument("--tile-size", type=int, default=d.tile_size, metavar="N",
                   help="pixels of a tile's core, a multiple of 16 of at least 32; 0: the largest that fits")
    s.set_defaults(handler=cmd_stylize, parser=s)


def _byte_size(text: str) -> int:
    """SIZE for --memory-budget: bytes, or a size such as 8GB or 512MiB."""
    from daemon.config import parse_byte_size

    try:
        return parse_byte_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_since(text: str):
    """DATE for --since: ISO date or date and time, local time."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def _parse_strength(text: str) -> float:
    """--strength: a number 0..1 or a preset name."""
    from daemon.engine.params import STRENGTH_PRESETS, strength_value

    try:
        value = strength_value(text)
    except ConfigError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a strength; use a number from 0 to 1 or one of {', '.join(STRENGTH_PRESETS)}")
    return value


def _params_from_args(args: argparse.Namespace):
    """TransferParams from the stylize options; a value the engine refuses is a usage error (exit 2)."""
    from daemon.engine.params import TransferParams, strength_value, style_weight_for

    style_weight = args.style_weight
    if style_weight is None:  # a raw --style-weight wins over --strength
        style_weight = style_weight_for(strength_value(args.strength))
    try:
        return TransferParams(
            max_size=args.size, iterations=args.iterations, scales=args.scales, style_weight=style_weight,
            stop_tolerance=args.stop_tolerance, stop_window=args.stop_window, budget=args.budget,
            content_weight=args.content_weight, tv_weight=args.tv_weight, style_scale=args.style_scale,
            preserve_colors=args.preserve_colors, init=args.init, optimizer=args.optimizer, seed=args.seed,
            lbfgs_impl=args.lbfgs_impl, precision=args.precision, on_too_large="downsize" if args.downsize else "refuse", save_every=args.save_every,
            memory_budget=args.memory_budget, tiling=args.tiling, tile_size=args.tile_size,
            adapt_strength=args.adapt_strength)
    except ConfigError as exc:
        args.parser.error(_option_wording(str(exc).removeprefix("invalid engine parameter: ")))


# Engine parameter names as the stylize options spell them.
_OPTION_OF = {"max_size": "--size", "iterations": "--iterations", "scales": "--scales",
              "stop_tolerance": "--stop-tolerance", "stop_window": "--stop-window",
              "style_scale": "--style-scale", "save_every": "--save-every", "memory_budget": "--memory-budget",
              "tile_size": "--tile-size"}


def _option_wording(message: str) -> str:
    import re

    return re.sub(r"\b(" + "|".join(_OPTION_OF) + r")\b", lambda m: _OPTION_OF[m.group(1)], message)


def cmd_stylize(args: argparse.Namespace) -> int:
    """Stylise one photo and write the result with its sidecar; every input is checked before the model loads."""
    from daemon.engine.backbones import CLI_WEIGHTS_HINT, resolve_backbone
    from daemon.job.pipeline import StylizeRequest, check_output_path, load_inputs, run_stylize
    from daemon.review.progress import ProgressReporter

    try:
        check_output_path(args.output)
    except ConfigError as exc:
        args.parser.error(str(exc))
    if not 1 <= args.quality <= 100:
        args.parser.error(f"--quality must be between 1 and 100, not {args.quality}")
    _check_output_folder(args)
    params = _params_from_args(args)
    request = StylizeRequest(args.content.absolute(), tuple(_absolute(s) for s in args.style),
                             args.output.absolute(), params, args.quality, command_line=_command_line())
    inputs = load_inputs(request)  # a bad image is reported now, not after 7 s of model loading
    source = resolve_backbone(args.backbone, args.weights, weights_hint=CLI_WEIGHTS_HINT)
    from daemon.engine.transfer import StyleTransfer

    log.info("loading backbone %s (%s weights from %s)", source.backbone, source.origin, source.path)
    engine = StyleTransfer(source)
    reporter = ProgressReporter(args.content.name, params.log_every, sys.stderr)
    outcome = run_stylize(engine, request, reporter, inputs=inputs)
    log.info("wrote %s and %s in %.1fs (%d iterations, backbone %s)", outcome.output,
             outcome.sidecar.name, outcome.seconds, outcome.iterations, outcome.backbone)
    return 0


def _check_output_folder(args: argparse.Namespace) -> None:
    """Usage error now, not after the model has loaded, if the result cannot be written where asked."""
    if args.output.is_dir():
        args.parser.error(f"output {args.output} is a folder; give a file name such as {args.output / 'result.jpg'}")
    folder = args.output.absolute().parent
    if not folder.is_dir():
        args.parser.error(f"output folder {folder} does not exist; create it or choose another")
    if not os.access(folder, os.W_OK | os.X_OK):
        args.parser.error(f"output folder {folder} is not writable; choose another or fix its permissions")


def _command_line() -> str:
    """The stylize command as typed, for the sidecar (python -m daemon spelled so, not as __main__.py)."""
    import shlex

    program = [sys.executable, "-m", "daemon"] if sys.argv[0].endswith("__main__.py") else sys.argv[:1]
    return shlex.join(program + sys.argv[1:])


def _absolute(style: StyleRef) -> StyleRef:
    from dataclasses import replace

    return replace(style, path=style.path.absolute())


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


def cmd_run(args: argparse.Namespace) -> int:
    """The long-running service."""
    from daemon.service.supervisor import Supervisor

    if args.dry_run:
        from daemon.job.engines import request_dry_run

        request_dry_run()  # the workers inherit it
    return Supervisor(args.config).run()


def cmd_once(args: argparse.Namespace) -> int:
    """One batch: everything waiting, then exit."""
    from daemon.service.supervisor import Supervisor

    if args.dry_run:
        from daemon.job.engines import request_dry_run

        request_dry_run()  # the workers inherit it
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
    from daemon.store.migrate import migrate_store

    config = load_config(args.config)
    target = config.store_target if args.to is None else replace(config.store_target, location=args.to)
    source = args.source or config.state / "journal.sqlite3"
    done = migrate_store(source, target)
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
    for line in _compute_lines(config):  # YAML comments: the output stays a valid config
        print(f"# {line}")
    log.info("%s is valid", args.config)
    return 0


def _compute_lines(config) -> list[str]:
    """Which backbone (and weights), Keras backend and device will compute; nothing is loaded or fetched."""
    from daemon.engine.backbones import plan_backbone
    from daemon.engine.device_guess import device_guess, keras_backend
    from daemon.errors import WeightsError

    engine = config.engine
    try:
        plan = plan_backbone(engine.backbone, engine.weights)
    except WeightsError as exc:
        raise ConfigError(f"engine.backbone {engine.backbone}: {exc}") from None
    where = ("weights to be downloaded into the Keras cache on first use (or run 'style-daemon fetch-weights')"
             if plan.path is None else f"weights {plan.path} ({plan.origin})")
    device = device_guess()
    return [f"backbone: {engine.backbone} -> {plan.backbone}, {where}",
            f"keras backend: {keras_backend()}",
            f"device: {device}",
            _memory_line(config, device.startswith("gpu"))]


def _memory_line(config, gpu: bool) -> str:
    """The memory budget each style set's jobs get; 0 is read when a job starts, so say what is free now."""
    from daemon.engine.memory import available_bytes

    budgets = {name: style.params.memory_budget for name, style in config.styles.items()
               if style.params.memory_budget is not None}
    budget = config.engine.memory_budget
    if budget:
        free = available_bytes()
        more = f" (more than the {_human_bytes(free)} of RAM free now)" if not gpu and budget > free else ""
        line = f"memory budget: {_human_bytes(budget)}{more}, tiling {config.engine.tiling}"
    else:
        where = "GPU memory free" if gpu else f"RAM free (now {_human_bytes(available_bytes())})"
        line = f"memory budget: the {where} when a job starts, tiling {config.engine.tiling}"
    others = ", ".join(f"{name} {_human_bytes(value) if value else 'what is free'}" for name, value in budgets.items())
    return line + (f"; style sets: {others}" if others else "")


def _human_bytes(size: int) -> str:
    """12345678901 -> '12.3 GB' (decimal units, as the config accepts them)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


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


if __name__ == "__main__":
    sys.exit(main())
