"""`style-daemon stylize`: one photo now, every input checked before the model loads."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from daemon.errors import ConfigError

if TYPE_CHECKING:
    from daemon.job.pipeline import StyleRef

log = logging.getLogger("style-daemon")  # the command line's own name in every message it logs


def cmd_stylize(args: argparse.Namespace) -> int:
    """Stylise one photo and write the result with its sidecar; every input is checked before the model loads."""
    from daemon.cli.stylize_options import params_from_args
    from daemon.engine.backbones import CLI_WEIGHTS_HINT, resolve_backbone
    from daemon.job.pipeline import StylizeRequest, check_output_path, load_inputs, run_stylize
    from daemon.review.progress import ProgressReporter

    try:
        check_output_path(args.output)
    except ConfigError as exc:
        args.parser.error(str(exc))
    if not 1 <= args.quality <= 100:
        args.parser.error(f"--quality must be between 1 and 100, not {args.quality}")
    _check_depth(args)
    _check_output_folder(args)
    params = params_from_args(args)
    request = StylizeRequest(args.content.absolute(), tuple(_absolute(s) for s in args.style),
                             args.output.absolute(), params, args.quality, metadata=args.metadata,
                             command_line=_command_line())
    inputs = load_inputs(request)  # a bad image is reported now, not after 7 s of model loading
    from daemon.job.engines import dry_run_seconds, make_engine

    if dry_run_seconds() is not None:  # STYLE_DAEMON_FAKE_ENGINE, as for the service: no model (docs/dry-run.md)
        engine = make_engine(args.backbone, args.weights)
    else:
        source = resolve_backbone(args.backbone, args.weights, weights_hint=CLI_WEIGHTS_HINT)
        from daemon.engine.transfer import StyleTransfer

        log.info("loading backbone %s (%s weights from %s)", source.backbone, source.origin, source.path)
        engine = StyleTransfer(source)
    reporter = ProgressReporter(args.content.name, params.log_every, sys.stderr)
    outcome = run_stylize(engine, request, reporter, inputs=inputs)
    log.info("wrote %s and %s in %.1fs (%d iterations, backbone %s)", outcome.output,
             outcome.sidecar.name, outcome.seconds, outcome.iterations, outcome.backbone)
    return 0


def _check_depth(args: argparse.Namespace) -> None:
    """Usage error for --depth 16 with a format that holds 8 bits (jpg, webp)."""
    from daemon.media.images import DEPTHS, output_key

    key = output_key(args.output.suffix)
    if args.depth is not None and key is not None and args.depth not in DEPTHS[key]:
        args.parser.error(f"--depth {args.depth} needs a .png or .tif output, not .{key}")


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
