"""What will compute, found cheaply (no Keras, TensorFlow or JAX import): for check-config."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

DEFAULT_BACKEND = "tensorflow"  # Keras 3's own default


def keras_backend() -> str:
    """The Keras backend that will be used: $KERAS_BACKEND, else Keras' default."""
    return os.environ.get("KERAS_BACKEND", "").strip() or DEFAULT_BACKEND


def device_guess() -> str:
    """'gpu (...)' when an NVIDIA GPU is visible to this process, else 'cpu'; a guess, the sidecar records the truth."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu (CUDA_VISIBLE_DEVICES hides every GPU)"
    names = _nvidia_smi_names()
    if names:
        return f"gpu ({names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}), " \
               "if the backend was installed with CUDA support"
    if glob.glob("/dev/nvidia[0-9]*"):
        return "gpu (an NVIDIA device is present), if the backend was installed with CUDA support"
    return "cpu"


def _nvidia_smi_names() -> list[str]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        done = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    # Lines read "GPU 0: NVIDIA H200 (UUID: GPU-...)"
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in done.stdout.splitlines()
            if done.returncode == 0 and line.startswith("GPU ") and ":" in line]
