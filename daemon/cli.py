"""The style-daemon command line: stylize (one-shot) and fetch-weights."""

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
    s.add_argument("--lbfgs-impl", choices=["auto", "optax", "scipy"],
                   help="L-BFGS on the device (optax, JAX only) or on the host (scipy); default auto: optax on a JAX GPU")
    s.add_argument("--precision", choices=["float32", "tf32", "bf16"],
                   help="matrix precision of the on-device loop (JAX; default float32)")
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

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("-c", "--config", type=Path, required=True)
    w.add_argument("--index", type=int, default=0)
    w.add_argument("--exit-when-idle", action="store_true")
    w.set_defaults(handler=cmd_worker)

    d = sub.add_parser("doctor", help="show the Keras backend, the device and its memory")
    d.set_defaults(handler=cmd_doctor)

    f = sub.add_parser("fetch-weights", help="download VGG19 weights once, for offline use")
    f.add_argument("--weights", type=Path, help="check this file instead of downloading")
    f.set_defaults(handler=cmd_fetch_weights)
    return parser


def _params_from_args(args: argparse.Namespace):
    from daemon.engine.params import TransferParams

    mapping = {
        "max_size": args.size, "iterations": args.iterations, "scales": args.scales,
        "style_weight": args.style_weight, "content_weight": args.content_weight,
        "tv_weight": args.tv_weight, "style_scale": args.style_scale,
        "preserve_colors": args.preserve_colors, "init": args.init,
        "optimizer": args.optimizer, "seed": args.seed,
        "lbfgs_impl": args.lbfgs_impl, "precision": args.precision,
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


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print what the engine would compute on: backend, device, memory, compilation cache."""
    from daemon.engine.doctor import describe

    for key, value in describe().items():
        print(f"{key}: {value}")
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
    from daemon.config import load_config
    from daemon.review.status import collect, render_json, render_text

    report = collect(load_config(args.config))
    print(render_json(report) if args.json else render_text(report))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate and print the effective configuration."""
    import yaml

    from daemon.config import load_config

    config = load_config(args.config)
    effective = config.model_dump(mode="json", exclude_none=True)
    effective.update(failed=str(config.failed_dir), processed=str(config.processed_dir))
    print(yaml.safe_dump(effective, sort_keys=False), end="")
    log.info("%s is valid", args.config)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A worker process (started by the service, not by hand)."""
    from daemon.service.worker_process import Worker, die_with_parent

    die_with_parent()
    worker = Worker(args.config, args.index, args.exit_when_idle)
    worker.install_signals()
    return worker.run()


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
