"""The `style-daemon` command line as a user runs it: `python -m daemon ...` in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120,
            as_nobody: bool = False, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess:
    """Run `style-daemon ARGS` with this checkout first on PYTHONPATH (after any PYTHONPATH in `env`, so a
    test can put poisoned modules ahead of it); `as_nobody` drops root, as a user without rights runs it."""
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (environment.pop("PYTHONPATH", ""), str(ROOT)) if p)
    return subprocess.run([*(_nobody() if as_nobody else []), sys.executable, "-m", "daemon", *args], cwd=cwd,
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout, env=environment)


def _nobody() -> list[str]:
    assert os.geteuid() == 0, "run the suite as root (as CI does): these cases run the CLI as nobody via setpriv"
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv is missing: install Debian's util-linux"
    return [setpriv, "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


POISON_EXIT = 97


@dataclass(frozen=True)
class MlPoison:
    """Modules named tensorflow, keras and jax that note their import in `marker` and kill the process with
    exit 97: on PYTHONPATH they prove a command never loads the deep-learning stack."""

    folder: Path
    marker: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment that puts the poisoned modules first, plus `extra`."""
        return {"PYTHONPATH": str(self.folder), **extra}


def poison_ml(where: Path) -> MlPoison:
    """Write the poisoned modules under `where`."""
    poison = MlPoison(where / "poison", where / "imported")
    for name in ("tensorflow", "keras", "jax"):
        (poison.folder / name).mkdir(parents=True)
        (poison.folder / name / "__init__.py").write_text(
            f"import os\nopen({str(poison.marker)!r}, 'a').write({name!r} + '\\n')\nos._exit({POISON_EXIT})\n")
    return poison


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """The ERROR lines a command wrote on stderr."""
    return [line for line in done.stderr.splitlines() if "ERROR" in line]
