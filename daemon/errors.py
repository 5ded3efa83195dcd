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


class StyleUnavailable(StyleDaemonError):
    """A style image cannot be used now (missing, unreadable, empty, not an image): the configuration's fault,
    not the photo's. The daemon keeps the style set's jobs waiting (no attempt used) until the file reads again."""

    exit_code = 65  # EX_DATAERR, as for a bad photo: `stylize --style broken.jpg` exits as it always did

    def __init__(self, style_set: str | None, path: object, problem: str) -> None:
        self.style_set = style_set  # None: a style given on the command line, not a configured set
        self.path = path
        self.problem = problem  # what is wrong, without the fix: "is empty (0 bytes)"
        if style_set is None:
            message = f"style image {path} {problem}; replace it with a readable JPEG or PNG"
        else:
            message = (f"style set {style_set} unavailable: style image {path} {problem}; restore the file or "
                       f"fix styles.{style_set}.images (its photos wait and run by themselves once it reads)")
        super().__init__(message)


_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "ResourceExhausted", "out of memory", "OOM when allocating")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a framework's accelerator/host out-of-memory error (TensorFlow, XLA, JAX word them alike)."""
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in _OOM_MARKERS)


class StoreTooNew(StyleDaemonError):
    """The job store was written by a newer style-daemon (a schema version this one does not know)."""

    exit_code = 78  # EX_CONFIG: restarting cannot fix it, only installing the newer style-daemon can


def store_too_new_message(where: object, version: int, latest: int) -> str:
    """The one line for a job store newer than this code: which store, both versions and the fix."""
    return (f"job store {where} has schema version {version}, this style-daemon knows up to {latest}: "
            "upgrade style-daemon")
