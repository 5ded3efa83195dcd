"""The file system a config names: folders usable (without writing anything unless asked), style images readable."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from daemon.config.settings import Config
from daemon.errors import ConfigError
from daemon.media import folder_access
from daemon.media.folder_access import Need


def folder_needs(config: Config) -> list[Need]:
    """Every folder the service writes (and the files it rewrites there), and the input folder it reads."""
    edits_input = config.after_success != "keep" or config.on_failure == "move"
    needs = [Need("input", config.input, write=edits_input), Need("output", config.output),
             Need("state", config.state), Need("failed", config.failed_dir)]
    if config.after_success == "move":
        needs.append(Need("processed", config.processed_dir))
    if config.logging.file:
        needs += [Need("logging.file", config.logs_dir),
                  Need("logging.file", config.logs_dir / "style-daemon.log", folder=False)]
    store = config.store_path
    for name in (store.name, store.name + "-wal", store.name + "-shm", "daemon.lock"):
        needs.append(Need("state", config.state / name, folder=False))
    return needs


# The system's own trees: nothing of ours is read from or written into them.
SYSTEM_TREES = tuple(Path(p) for p in ("/proc", "/sys", "/dev", "/usr", "/etc", "/boot", "/bin", "/sbin", "/lib",
                                        "/lib32", "/lib64", "/libx32"))
# Top-level folders that hold everything else: one of their subfolders is fine, the folder itself is not
# (watching /home or /var would walk every user's files).
WHOLE_TREES = tuple(Path(p) for p in ("/", "/home", "/root", "/var", "/tmp", "/run", "/srv", "/opt", "/mnt",
                                       "/media"))


def check_places(config: Config, source: Path) -> None:
    """No folder of the service is `/`, a system folder or a whole top-level tree (checked before anything is
    looked at or created, so a reload with `input: /` is refused at once, not after a walk of the disk)."""
    folders = {"input": config.input, "output": config.output, "state": config.state,
               "failed": config.failed_dir, "processed": config.processed_dir}
    for key, folder in folders.items():
        folder = Path(folder).absolute()
        system = next((tree for tree in SYSTEM_TREES if folder == tree or tree in folder.parents), None)
        if system is not None or folder in WHOLE_TREES:
            what = f"inside the system folder {system}" if system is not None else "a whole top-level folder"
            raise ConfigError(f"{source}: {key}: {folder} is {what}; give the service a folder of its own, "
                              f"e.g. /srv/style-daemon/{key}")


def check_filesystem(config: Config, source: Path, create_folders: bool = False, styles: bool = True) -> None:
    """Folders usable and style images present, without writing anything unless `create_folders` (run).

    `styles=False` (a worker starting or reloading) leaves the style images to the jobs: one broken after the
    service started makes its style set unavailable (its jobs wait), it must not stop a worker from starting.

    ConfigError names the key, the path and the fix.
    """
    check_places(config, source)
    if not config.input.exists():
        raise ConfigError(f"{source}: input: folder {config.input} does not exist; create it (mkdir -p "
                          f"{config.input}) or fix the path")
    if not config.input.is_dir():
        raise ConfigError(f"{source}: input: {config.input} is not a folder; fix the path")
    needs = folder_needs(config)
    _refuse_problems(needs, source)
    if create_folders:
        try:
            folder_access.create(needs)
        except OSError as exc:
            raise ConfigError(f"{source}: cannot create {exc.filename} ({exc.strerror}); fix the path or its "
                              "permissions") from None
        _refuse_problems(needs, source)
    for name, style in config.styles.items() if styles else ():
        for index, image in enumerate(style.images):
            _check_style_image(image.path, f"{source}: styles.{name}.images.{index}")
    _check_nesting(config, source)


def _check_style_image(path: Path, where: str) -> None:
    """The style image exists, is a file and decodes: otherwise every photo would fail later."""
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a folder, not an image; name one image file in it")
    if not path.is_file():
        raise ConfigError(f"{where}: {path} not found; fix the path")
    try:
        with Image.open(path) as image:
            image.load()  # a full decode: a truncated or corrupt painting is caught here, not per photo
    except Image.DecompressionBombError:
        raise ConfigError(f"{where}: {path} is too large to decode safely; use a smaller copy") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"{where}: {path} is not a readable image ({exc}); replace it with a JPEG or PNG") from None


def _refuse_problems(needs: list[Need], source: Path) -> None:
    for need in needs:
        reason = folder_access.problem(need)
        if reason:
            raise ConfigError(f"{source}: {reason}")


def _check_nesting(config: Config, source: Path) -> None:
    inp = config.input.resolve()
    for key, folder in (("output", config.output), ("state", config.state)):
        folder = folder.resolve()
        if folder == inp:
            raise ConfigError(f"{source}: {key}: must not be the input folder itself; use a separate folder")
        if inp in folder.parents:
            # Allowed: the watcher excludes our own folders; said here so nobody is surprised.
            continue
        if folder in inp.parents:
            raise ConfigError(f"{source}: input: {inp} is inside the {key} folder {folder}; move it out")
