"""A contact sheet is only a view of a complete result: whatever goes wrong writing it (an OSError or any other
exception), the result stands and the run succeeds - never retried, never copied to failed/."""

from __future__ import annotations

import pytest
from PIL import Image

from daemon.engine.dry_run import DryRunEngine
from daemon.engine.params import TransferParams
from daemon.job.pipeline import StyleRef, StylizeRequest, run_stylize
from daemon.job.sidecar import sidecar_path
from tests.support import CONTENT, STYLE

SMALL = TransferParams(max_size=64, iterations=1, scales=1, log_every=1)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), ValueError("bad image mode"),
                                   MemoryError()])
def test_a_sheet_that_cannot_be_made_leaves_the_result(tmp_path, monkeypatch, error):
    photo = tmp_path / "a.png"
    Image.open(CONTENT / "chelsea.png").convert("RGB").resize((64, 48)).save(photo)

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("daemon.job.pipeline.write_contact_sheet", broken)
    request = StylizeRequest(photo, (StyleRef(STYLE / "starry_night.jpg"),), tmp_path / "out" / "a.jpg", SMALL,
                             contact_sheet=True)
    (tmp_path / "out").mkdir()
    outcome = run_stylize(DryRunEngine(0.0), request)
    assert outcome.output.is_file() and sidecar_path(outcome.output).is_file()
