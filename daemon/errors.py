"""One hierarchy for failures a user can act on; each message says what is wrong and what to do."""


class StyleDaemonError(Exception):
    """Base of every user-facing failure; str() is one actionable line."""

    exit_code = 1


class BadInputError(StyleDaemonError):
    """An input image cannot be used (corrupt, not an image, too large)."""

    exit_code = 65  # EX_DATAERR


class UnsafeInputError(BadInputError):
    """An input path is a symbolic link, passes through one, or is not a regular file: it is never read."""


class ConfigError(StyleDaemonError):
    """The configuration or the command line is invalid."""

    exit_code = 78  # EX_CONFIG


class WeightsError(StyleDaemonError):
    """Backbone weights cannot be found, fetched or read."""

    exit_code = 69  # EX_UNAVAILABLE


class ResourceError(StyleDaemonError):
    """The job does not fit in the memory available."""

    exit_code = 75  # EX_TEMPFAIL


class StoreCorrupt(StyleDaemonError):
    """The job store (SQLite file) is corrupt or not a database; restarting cannot fix it."""

    exit_code = 76  # EX_PROTOCOL: ours, so systemd's RestartPreventExitStatus can tell it apart


def store_corrupt_message(path: object, detail: str) -> str:
    """The one line every command prints for a corrupt job store: the file, the cause and the fix."""
    return (f"job store {path} is corrupt ({detail}); stop the service, move it aside "
            f"(mv {path} {path}.corrupt) and start again: the daemon rebuilds it from the output sidecars")


class StoreUnreachable(StyleDaemonError):
    """The shared job store's server cannot be reached at start; systemd may try again later."""

    exit_code = 75  # EX_TEMPFAIL


class StateLockedError(StyleDaemonError):
    """Another service (or one of its workers) still holds the state folder's lock."""

    exit_code = 75  # EX_TEMPFAIL: systemd may try again once the old processes are gone


class LeaseLost(StyleDaemonError):
    """This worker no longer holds the job (its lease expired and another worker took it): abort, write nothing."""


class StopRequested(StyleDaemonError):
    """The optimisation was asked to stop (shutdown); the job should be re-queued."""


_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "ResourceExhausted", "out of memory", "OOM when allocating")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a framework's accelerator/host out-of-memory error (TensorFlow, XLA, JAX word them alike)."""
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in _OOM_MARKERS)
