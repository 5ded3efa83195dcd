"""The shipped unit passes systemd-analyze verify with no warnings and scores at most 2.0 exposure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.daemon import ROOT

UNIT = ROOT / "systemd" / "style-daemon.service"


def _installed_copy(tmp_path: Path) -> Path:
    """The unit as installed by docs/service.md: ExecStart pointing at this environment's style-daemon."""
    venv = Path(sys.executable).parent.parent
    text = UNIT.read_text().replace("/opt/style-daemon/venv", str(venv))
    copy = tmp_path / "style-daemon.service"
    copy.write_text(text)
    return copy


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: install Debian's systemd package (.ci/run does)"
    return tool


def test_unit_verifies_without_warnings(tmp_path):
    unit = _installed_copy(tmp_path)
    done = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=120)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "style-daemon" in line]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr


def test_unit_exposure_score_at_most_2(tmp_path):
    unit = _installed_copy(tmp_path)
    done = subprocess.run([_analyze(), "security", "--offline=true", str(unit)], capture_output=True, text=True,
                          timeout=120)
    match = re.search(r"Overall exposure level for style-daemon.service: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout
    print(f"\nexposure {match.group(1)}")


def test_unit_has_the_service_contract():
    text = UNIT.read_text()
    for line in ("Type=notify", "ExecReload=/opt/style-daemon/venv/bin/style-daemon reload --pid $MAINPID -c ${STYLE_DAEMON_CONFIG}", "Restart=on-failure",
                 "RestartPreventExitStatus=78", "WatchdogSec=", "EnvironmentFile=-/etc/default/style-daemon",
                 "DevicePolicy=closed", "DeviceAllow=/dev/nvidiactl rw", "RestrictAddressFamilies=AF_UNIX"):
        assert line in text, line
    assert "PrivateDevices=yes" not in text
    assert "\nMemoryDenyWriteExecute=yes" not in text
    stop = int(re.search(r"TimeoutStopSec=(\d+)", text).group(1))
    from daemon.service.supervisor import STOP_GRACE_SECONDS

    assert stop > STOP_GRACE_SECONDS + 2
