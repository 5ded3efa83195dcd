"""Whether this process can use the service's folders, checked without writing; creating them is for `run` only.

A folder made by someone else (root running a command by hand, another service) is the usual reason a
service cannot start, so a refusal names the path, the missing permission, the owner and the fix.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_READ, _WRITE, _SEARCH = "read", "write", "search (x)"
_MODES = {_READ: os.R_OK, _WRITE: os.W_OK, _SEARCH: os.X_OK}
_CHMOD = {_READ: "r", _WRITE: "w", _SEARCH: "x"}


@dataclass(frozen=True)
class Need:
    """A path the service uses: `key` is its config key, `folder` False for a file the service rewrites."""

    key: str
    path: Path
    write: bool = True
    folder: bool = True


def problem(need: Need) -> str | None:
    """Why this process cannot use `need.path` (one line: path, missing permission, owner, fix), or None.

    A missing path is fine when its nearest existing parent lets this process create it; nothing is written.
    """
    path = need.path
    if not os.path.lexists(path):
        if not need.folder:
            return None  # a file the service creates in a folder that is checked on its own
        parent = _nearest_existing(path)
        if not parent.is_dir():
            return f"{need.key}: cannot create {path}: {parent} is not a folder; fix the path"
        missing = _missing(parent, (_WRITE, _SEARCH))
        return _denied(need.key, parent, missing, f"cannot create {path}: ") if missing else None
    if need.folder and not path.is_dir():
        return f"{need.key}: {path} is not a folder; fix the path"
    missing = _missing(path, _wanted(need))
    return _denied(need.key, path, missing) if missing else None


def _wanted(need: Need) -> tuple[str, ...]:
    """A folder is listed (read) and entered (search); a file is read; writing is wanted when `need.write`."""
    base = (_READ, _SEARCH) if need.folder else (_READ,)
    return (*base, _WRITE) if need.write else base


def will_create(needs: list[Need]) -> list[Need]:
    """The folders among `needs` that do not exist yet (run creates them)."""
    return [n for n in needs if n.folder and not os.path.lexists(n.path)]


def create(needs: list[Need]) -> None:
    """Create the missing folders among `needs`, saying so once each in the log."""
    for need in will_create(needs):
        need.path.mkdir(parents=True, exist_ok=True)
        log.info("created the %s folder %s", need.key, need.path)


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if os.path.lexists(parent):
            return parent
    return Path("/")


def _missing(path: Path, wanted: tuple[str, ...]) -> list[str]:
    return [name for name in wanted if not os.access(path, _MODES[name])]


def _denied(key: str, path: Path, missing: list[str], prefix: str = "") -> str:
    info = path.stat()
    owner = f"{_user_name(info.st_uid)}:{_group_name(info.st_gid)}"
    mode = stat.filemode(info.st_mode)
    what = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
    return (f"{key}: {prefix}{path}: no {what} permission for {_whoami()}; it is owned by {owner} with mode "
            f"{mode}; fix: {_fix(path, missing, info)}")


def _fix(path: Path, missing: list[str], info: os.stat_result) -> str:
    if _WRITE in missing and _read_only_mount(path):
        return (f"{path} is on a file system that is read-only to this process: under systemd add it to "
                "ReadWritePaths= in the unit (a drop-in), else remount it read-write")
    bits = "".join(_CHMOD[m] for m in missing)
    groups = [g for g in os.getgroups() if g != os.getgid()] or [os.getgid()]
    if info.st_gid in groups:
        return f"chmod g+{bits} {path}"
    group = _group_name(groups[0])
    return (f"chgrp {group} {path} && chmod g+{bits} {path} (a group this process is in), or chown "
            f"{_user_name(os.getuid())} {path}")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _whoami() -> str:
    uid = os.getuid()
    groups = ", ".join(_group_name(g) for g in sorted({os.getgid(), *os.getgroups()}))
    return f"user {_user_name(uid)} (uid {uid}, groups {groups})"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
