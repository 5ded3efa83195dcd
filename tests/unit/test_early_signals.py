"""daemon/__init__.py notes SIGHUP, SIGTERM and SIGINT from its first instruction in a service process
(run, once, worker) and hands them to the handlers installed later; other commands keep the defaults."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.support import ROOT

PROBE = """
import os, signal, sys
sys.argv = ["style-daemon", *{argv!r}]
import daemon
os.kill(os.getpid(), signal.{name})  # before any handler of the service's own
print("alive", flush=True)
seen = []
daemon.take_over_signals({{signal.SIGHUP: lambda: seen.append("hup"), signal.SIGTERM: lambda: seen.append("term"),
                          signal.SIGINT: lambda: seen.append("int")}})
print(seen)
"""


def _probe(argv: list[str], name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, name=name)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [["run"], ["once", "-c", "x.yaml"], ["--log-level", "DEBUG", "run"],
                                  ["worker", "-c", "x.yaml", "--index", "0"]])
@pytest.mark.parametrize("name, handled", [("SIGHUP", "hup"), ("SIGTERM", "term"), ("SIGINT", "int")])
def test_a_service_process_notes_an_early_signal_and_hands_it_over_once(argv, name, handled):
    done = _probe(argv, name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["alive", f"['{handled}']"], done.stdout


@pytest.mark.parametrize("argv", [["stylize", "run", "-s", "x.jpg", "-o", "o.jpg"], ["status"], []])
def test_other_commands_keep_the_default_actions(argv):
    done = _probe(argv, "SIGHUP")
    assert done.returncode == -signal.SIGHUP and "alive" not in done.stdout, (done.returncode, done.stdout)
