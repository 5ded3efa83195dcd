"""The stylize options are built from the engine schema only when stylize is parsed or its help is shown: the
main help and the other commands start without pydantic (about 0.2 s) as well as without numpy."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT

_PROBE = ("import sys\nfrom daemon.cli import main\nsys.argv = ['style-daemon', *sys.argv[1:]]\n"
          "try:\n    main()\nexcept SystemExit:\n    pass\n"
          "print(sorted(m for m in ('pydantic', 'numpy') if m in sys.modules))")


def _loaded(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return done.stdout.strip().splitlines()[-1]


def test_the_main_help_needs_no_schema():
    assert _loaded("--help") == "[]"
    assert _loaded("doctor", "--help") == "[]"


def test_the_stylize_help_lists_every_engine_parameter():
    assert _loaded("stylize", "--help") == "['pydantic']"
