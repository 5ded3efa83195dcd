"""The loss's arithmetic (issue 16): auto picks bf16 only on a CPU that does it in hardware (AMX),
bf16 really changes the arithmetic and changes the result little, and the sidecar says which ran."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.engine import precision
from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.style_targets import whole_targets
from daemon.errors import ConfigError

AMX_LINE = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
PLAIN_LINE = "flags\t\t: fpu sse2 avx2 fma\n"


def _cpuinfo(tmp_path, flags_line: str):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: test\n" + flags_line + "\nprocessor\t: 1\n" + flags_line)
    return path


def test_cpu_flags_are_read_from_cpuinfo_and_missing_file_means_none(tmp_path):
    flags = precision.cpu_flags(_cpuinfo(tmp_path, AMX_LINE))
    assert {"amx_bf16", "avx2"} <= flags and precision.fast_bf16_cpu(flags)
    assert not precision.fast_bf16_cpu(precision.cpu_flags(_cpuinfo(tmp_path, PLAIN_LINE)))
    assert precision.cpu_flags(tmp_path / "absent") == frozenset()


@pytest.mark.parametrize("requested,backend,device,amx,expected", [
    ("auto", "tensorflow", "cpu", True, "bf16"),
    ("auto", "tensorflow", "cpu", False, "float32"),  # emulated bf16 would be slower
    ("auto", "jax", "cpu", True, "float32"),  # not measured under XLA
    ("auto", "tensorflow", "gpu:/device:GPU:0", True, "float32"),
    ("float32", "tensorflow", "cpu", True, "float32"),
    ("bf16", "jax", "cpu", False, "bf16"),  # asked for: honoured anywhere
])
def test_host_precision_resolves_auto_by_backend_device_and_cpu(requested, backend, device, amx, expected):
    flags = frozenset({"amx_bf16"}) if amx else frozenset({"avx2"})
    assert precision.host_precision(requested, backend, device, flags) == expected


def test_tf32_on_the_host_is_refused_with_what_to_set():
    with pytest.raises(ConfigError, match="tf32 needs the on-device loop.*precision: auto, float32 or bf16"):
        precision.host_precision("tf32", "tensorflow", "cpu", frozenset())


def test_bf16_changes_the_loss_of_one_image_a_little(hed_engine, tubingen, starry):
    if hed_engine.backend() != "tensorflow":
        pytest.skip("the host loop's bf16 is measured under TensorFlow")
    params = TransferParams(max_size=96, scales=1)
    size = (tubingen.shape[1], tubingen.shape[0])
    styled = np.clip(tubingen + np.random.default_rng(0).normal(0, 20, tubingen.shape), 0, 255).astype(np.float32)
    totals = {}
    for arithmetic in ("float32", "bf16"):
        model, spec = hed_engine.features.model_for(params, arithmetic)
        targets = whole_targets(hed_engine.features, model, spec, tubingen, [StyleImage(starry)], size, params)
        total, grad, _ = hed_engine.features.value_and_grad(model, spec, targets)(styled[None])
        assert grad.dtype == np.float32 and np.isfinite(grad).all()
        totals[arithmetic] = total
    difference = abs(totals["bf16"] - totals["float32"]) / totals["float32"]
    assert 0.0 < difference < 0.02, totals  # bf16 really ran, and the loss barely moved


def test_auto_follows_the_cpu_and_the_result_records_the_precision(hed_engine, tubingen, starry, tmp_path,
                                                                    monkeypatch):
    if hed_engine.backend() != "tensorflow" or hed_engine.device() != "cpu":
        pytest.skip("auto's bf16 is for TensorFlow on a CPU")
    params = TransferParams(max_size=96, min_scale_size=48, scales=2, iterations=12, stop_tolerance=0.0)
    results = {}
    for name, line in (("amx", AMX_LINE), ("plain", PLAIN_LINE)):
        monkeypatch.setattr(precision, "CPUINFO", _cpuinfo(tmp_path, line))
        results[name] = hed_engine.stylize(tubingen, [StyleImage(starry)], params)
    assert [r.precision for r in results["amx"].scale_reports] == ["bf16", "bf16"]
    assert [r.precision for r in results["plain"].scale_reports] == ["float32", "float32"]
    assert all(r.optimizer == "lbfgs-float32" for r in results["amx"].scale_reports)
    amx, plain = results["amx"], results["plain"]
    assert not np.array_equal(amx.rgb, plain.rgb)
    # the same picture, a little different: the loss within 10%, pixels a few levels apart on average
    assert abs(amx.losses.loss - plain.losses.loss) / plain.losses.loss < 0.10, (amx.losses, plain.losses)
    assert float(np.mean(np.abs(amx.rgb - plain.rgb))) < 8.0
