"""The loss's arithmetic (issues 16, 27): auto picks bf16 only on a CPU that does it in hardware (AMX or
AVX-512 BF16), STYLE_DAEMON_PRECISION forces what auto means, bf16 really changes the arithmetic and
changes the result little, and the sidecar says which ran."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.engine import precision
from daemon.engine.params import StyleImage, TransferParams
from daemon.engine.style_targets import whole_targets
from daemon.errors import ConfigError

AMX_LINE = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AVX512_BF16_LINE = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16\n"
AVX512_LINE = "flags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
PLAIN_LINE = "flags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture(autouse=True)
def auto_by_the_cpu(monkeypatch):
    """These tests state what auto means on each CPU: a forced arithmetic (the CI's float32 run) is lifted."""
    monkeypatch.delenv(precision.AUTO_ENV, raising=False)


def _cpuinfo(tmp_path, flags_line: str):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: test\n" + flags_line + "\nprocessor\t: 1\n" + flags_line)
    return path


def test_cpu_flags_are_read_from_cpuinfo_and_missing_file_means_none(tmp_path):
    flags = precision.cpu_flags(_cpuinfo(tmp_path, AMX_LINE))
    assert {"amx_bf16", "avx2"} <= flags and precision.fast_bf16_cpu(flags)
    assert not precision.fast_bf16_cpu(precision.cpu_flags(_cpuinfo(tmp_path, PLAIN_LINE)))
    assert precision.fast_bf16_cpu(precision.cpu_flags(_cpuinfo(tmp_path, AVX512_BF16_LINE)))
    assert not precision.fast_bf16_cpu(precision.cpu_flags(_cpuinfo(tmp_path, AVX512_LINE)))
    assert precision.cpu_flags(tmp_path / "absent") == frozenset()


CPUS = {"amx": frozenset({"avx512f", "avx512_bf16", "amx_bf16"}), "avx512_bf16": frozenset({"avx512f", "avx512_bf16"}),
        "avx512": frozenset({"avx512f"}), "avx2": frozenset({"avx2"})}


@pytest.mark.parametrize("requested,backend,device,cpu,expected", [
    ("auto", "tensorflow", "cpu", "amx", "bf16"),
    ("auto", "tensorflow", "cpu", "avx512_bf16", "bf16"),  # 1.56-1.7x measured without AMX (issue 27)
    ("auto", "tensorflow", "cpu", "avx512", "float32"),  # emulated bf16 is slower (0.42x)
    ("auto", "tensorflow", "cpu", "avx2", "float32"),  # oneDNN has no bf16 convolution for AVX2
    ("auto", "jax", "cpu", "amx", "float32"),  # not measured under XLA
    ("auto", "tensorflow", "gpu:/device:GPU:0", "amx", "float32"),
    ("float32", "tensorflow", "cpu", "amx", "float32"),
    ("bf16", "jax", "cpu", "avx2", "bf16"),  # asked for: honoured anywhere
])
def test_host_precision_resolves_auto_by_backend_device_and_cpu(requested, backend, device, cpu, expected):
    assert precision.host_precision(requested, backend, device, CPUS[cpu]) == expected


def test_the_bf16_speedup_is_the_one_measured_on_each_kind_of_cpu():
    assert precision.bf16_speedup(CPUS["amx"]) == precision.BF16_SPEEDUP_AMX == 3.5
    assert precision.bf16_speedup(CPUS["avx512_bf16"]) == precision.BF16_SPEEDUP_AVX512
    assert 1.0 < precision.BF16_SPEEDUP_AVX512 < precision.BF16_SPEEDUP_AMX
    assert precision.bf16_speedup(CPUS["avx2"]) == precision.BF16_SPEEDUP_EMULATED < 1.0
    assert precision.BF16_SPEEDUP == precision.bf16_speedup(precision.cpu_flags())  # this machine's kind


@pytest.mark.parametrize("forced", ["float32", "bf16", " BF16 "])
def test_the_environment_forces_what_auto_means_and_explicit_settings_win(monkeypatch, forced):
    monkeypatch.setenv(precision.AUTO_ENV, forced)
    want = forced.strip().lower()
    for cpu in CPUS.values():
        assert precision.host_precision("auto", "tensorflow", "cpu", cpu) == want
    assert precision.host_precision("auto", "jax", "gpu:0", CPUS["avx2"]) == want
    assert precision.device_precision("auto") == want
    assert precision.host_precision("float32", "tensorflow", "cpu", CPUS["amx"]) == "float32"
    assert precision.host_precision("bf16", "tensorflow", "cpu", CPUS["avx2"]) == "bf16"
    assert precision.device_precision("tf32") == "tf32"


@pytest.mark.parametrize("value", ["", "auto"])
def test_an_empty_or_auto_environment_leaves_auto_to_the_cpu(monkeypatch, value):
    monkeypatch.setenv(precision.AUTO_ENV, value)
    assert precision.host_precision("auto", "tensorflow", "cpu", CPUS["amx"]) == "bf16"
    assert precision.host_precision("auto", "tensorflow", "cpu", CPUS["avx2"]) == "float32"
    assert precision.device_precision("auto") == "float32"


def test_a_wrong_forced_precision_says_what_to_set(monkeypatch):
    monkeypatch.setenv(precision.AUTO_ENV, "fp16")
    with pytest.raises(ConfigError, match="STYLE_DAEMON_PRECISION='fp16'.*float32 or bf16"):
        precision.host_precision("auto", "tensorflow", "cpu", CPUS["amx"])


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
    for name, line in (("bf16 cpu", AVX512_BF16_LINE), ("plain", PLAIN_LINE)):
        monkeypatch.setattr(precision, "CPUINFO", _cpuinfo(tmp_path, line))
        results[name] = hed_engine.stylize(tubingen, [StyleImage(starry)], params)
    assert [r.precision for r in results["bf16 cpu"].scale_reports] == ["bf16", "bf16"]
    assert [r.precision for r in results["plain"].scale_reports] == ["float32", "float32"]
    assert all(r.optimizer == "lbfgs-float32" for r in results["bf16 cpu"].scale_reports)
    fast, plain = results["bf16 cpu"], results["plain"]
    assert not np.array_equal(fast.rgb, plain.rgb)
    # the same picture, a little different: the loss within 10%, pixels a few levels apart on average
    assert abs(fast.losses.loss - plain.losses.loss) / plain.losses.loss < 0.10, (fast.losses, plain.losses)
    assert float(np.mean(np.abs(fast.rgb - plain.rgb))) < 8.0
