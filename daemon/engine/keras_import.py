"""Importing Keras (and TensorFlow under it) once, without TensorFlow's native start-up chatter."""

from __future__ import annotations

import contextlib
import os
import sys

_loaded = False


def load_keras():
    """Import and return keras; TF's C++ notices printed during import are discarded."""
    global _loaded
    if not _loaded:
        # Level 3 hides native errors such as 'failed call to cuInit' on machines without a GPU;
        # real problems still surface as Python exceptions.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _native_stderr_silenced():
            import keras  # noqa: F401

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")  # triggers the CUDA probe now, silenced
        _loaded = True
    import keras

    return keras


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the duration (Python's sys.stderr included)."""
    if os.environ.get("STYLE_DAEMON_DEBUG_IMPORT"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
