"""Every crash point of one photo's job: the real daemon under strace, SIGKILLed at each call that changes state.

No hook in the product: crash_site/sitecustomize.py (on PYTHONPATH for these runs only) puts the chosen
process, the worker (`python -m daemon worker`) or the supervisor (`once`), under `strace -p` from its first
instruction, so its pid stays its own. A counting run lists that process's calls; each call that changes the
file system or commits the store is a crash point. One run per crash point then kills the process on entering
that call (`-e inject=SYSCALL:signal=SIGKILL:when=N`; strace counts per syscall and per thread, so N is the
call's number among the same syscall of the same thread), the daemon is started again normally (`once`), and
`check` judges the folders and the store. Role restart tries the reconciliation: the worker is first stopped
just after the call that opens a publish or release step (SIGSTOP injected) and killed with its supervisor,
then the supervisor that starts next is the process killed at each of its calls.

A crash point is, in the traced process: a successful open for writing or creating, the first write to a file
after anything else was done to it (a second write in a row adds no new state: the file is already partial),
rename/link/symlink/unlink/mkdir/rmdir/truncate/fallocate/sendfile/copy_file_range that succeeded, every
fsync/fdatasync (SQLite commits end in one: killed on it, the commit is in the page cache, so the state after
the commit is tried), and, with PostgreSQL, every message sent to the server (each statement may commit).
Writes to the log file and to pipes are not crash points; neither is anything under the project or /proc.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from tests.support import CONTENT, ROOT
from tests.support.daemon import write_config

SITE = Path(__file__).parent / "crash_site"
STRACE_HINT = ("strace is not installed: the crash-point tests kill the daemon at each system call with it "
               "(apt-get install strace; the README's set-up command installs it)")
TRACED = ("open,openat,creat,write,pwrite64,writev,pwritev,pwritev2,rename,renameat,renameat2,link,linkat,"
          "symlink,symlinkat,unlink,unlinkat,mkdir,mkdirat,rmdir,fsync,fdatasync,ftruncate,truncate,fallocate,"
          "sendfile,copy_file_range,sendto,sendmsg")
_CHANGES = {"rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
            "mkdir", "mkdirat", "rmdir", "ftruncate", "truncate", "fallocate", "sendfile", "copy_file_range"}
_WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2"}
_SYNCS = {"fsync", "fdatasync"}
_SENDS = {"sendto", "sendmsg"}
_OPENS = {"open", "openat", "creat"}
_IGNORED_PREFIXES = (str(ROOT) + "/", "/proc/", "/dev/", "/sys/", "/usr/", "/etc/", "/tmp/pymp")
_LINE = re.compile(r"^(\d+)\s+(.*)$")
# A message to PostgreSQL that may change or commit something (a SELECT alone commits nothing).
# A message to PostgreSQL whose visible text is a plain SELECT commits nothing; any other may (a prepared
# statement's Bind shows no SQL, so it counts).
_PG_READ = re.compile(r', "[QP][^"]{0,12}?(SELECT|SHOW)\b(?![^"]*FOR UPDATE)')
_PG_CHANGE = re.compile(r"(?<![A-Za-z])(INSERT|UPDATE|DELETE|COMMIT|CREATE|ALTER|pg_advisory_\w+)\b[^\"]{0,40}", re.I)
_SOCKET = re.compile(r"^\d+<(UNIX-STREAM|TCP|TCPv6):")
_RESULT = re.compile(r"^(.*)\)\s+=\s+(.*)$")
_ANNOTATED = re.compile(r"<(/[^>]*)>")
_QUOTED = re.compile(r'"(/[^"]*)"')
PHOTO = CONTENT / "chelsea.png"
RUN_TIMEOUT = 90.0


def require_strace() -> str:
    """strace's path; raises AssertionError (a failure, never a skip) when it is missing."""
    found = shutil.which("strace")
    assert found, STRACE_HINT
    return found


@dataclass(frozen=True)
class Setting:
    """One combination the harness runs: what happens to the input, where processed/ lives, the store, who dies."""

    after_success: str = "delete"  # keep | delete | move
    processed: str = "same"  # same | other (file system of processed/, with move)
    store: str = "sqlite"  # sqlite | postgres
    role: str = "worker"  # worker | supervisor | restart: the process killed (restart: see `stage`)
    # With role restart: the worker and its supervisor are first killed together at the worker's first
    # crash point of this stage (publish: the result linked by name; release: the input quarantined), so
    # an intent is left open; the supervisor that starts next, and reconciles it, is the one killed.
    stage: str = ""

    @property
    def name(self) -> str:
        """delete-sqlite-worker, move-other-fs-postgres-supervisor, delete-sqlite-restart-after-release ..."""
        action = self.after_success + ("-other-fs" if self.after_success == "move" and self.processed == "other"
                                       else "")
        return f"{action}-{self.store}-{self.role}" + (f"-after-{self.stage}" if self.stage else "")

    @property
    def traced(self) -> str:
        """The role sitecustomize puts under strace for the crash."""
        return "supervisor" if self.role == "restart" else self.role


SETTINGS = [Setting(action, fs, store, role)
            for role in ("worker", "supervisor")
            for store in ("sqlite", "postgres")
            for action, fs in (("keep", "same"), ("delete", "same"), ("move", "same"), ("move", "other"))] + [
    Setting(action, fs, store, "restart", stage)
    for store in ("sqlite", "postgres")
    for action, fs, stage in (("delete", "same", "publish"), ("delete", "same", "release"),
                              ("move", "other", "release"))]


@dataclass(frozen=True)
class Call:
    """One traced system call of a thread."""

    tid: int
    syscall: str
    args: str
    result: str

    def paths(self) -> list[str]:
        """The file paths the call names (quoted) or reaches through a descriptor (strace -yy)."""
        return _QUOTED.findall(self.args) + _ANNOTATED.findall(self.args)


@dataclass(frozen=True)
class CrashPoint:
    """Kill the process on entering the `occurrence`-th `syscall` call of its thread; `label` says what it is."""

    syscall: str
    occurrence: int
    label: str
    main_thread: bool = True


@dataclass
class Outcome:
    """What one crash-point run found."""

    point: CrashPoint
    hit: str
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No invariant broken."""
        return not self.violations


def parse_trace(path: Path) -> list[Call]:
    """The calls in an `strace -f -o` file, the interrupted ones joined again, in the order they started."""
    calls: list[Call] = []
    pending: dict[int, tuple[int, str, str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        tid, body = int(match.group(1)), match.group(2)
        if body.startswith(("+++", "---")):
            continue
        if body.startswith("<..."):
            if tid not in pending:
                continue
            index, name, head = pending.pop(tid)
            rest = body.split("resumed>", 1)[-1]
            args, result = _split_result(head + rest)
            calls[index] = Call(tid, name, args, result)
            continue
        name, _, rest = body.partition("(")
        if not name.isidentifier():
            continue
        if rest.endswith("<unfinished ...>"):
            pending[tid] = (len(calls), name, rest.removesuffix("<unfinished ...>"))
            calls.append(Call(tid, name, rest, "?"))
            continue
        args, result = _split_result(rest)
        calls.append(Call(tid, name, args, result))
    return calls


def _split_result(text: str) -> tuple[str, str]:
    """'args) = result' as (args, result); a call killed on entry has the result '?'."""
    match = _RESULT.match(text)
    return (match.group(1), match.group(2).strip()) if match else (text, "?")


def label(call: Call, folder: Path) -> str:
    """A call as a stable one-liner: the run's folder as <run> (processed/ on the other file system as
    <other>), temporary names' random parts as *."""
    paths = call.paths()
    statement = _PG_CHANGE.search(call.args) if _SOCKET.search(call.args) else None
    if _SOCKET.search(call.args):
        shown = statement.group(0)[:60] if statement else re.sub(r"\\[0-7]+|\\[a-z]", "", call.args.split(", ")[1])[:40]
        return f"{call.syscall}(PostgreSQL: {re.sub(r'[0-9]+', 'N', shown)})"  # database names, ids
    text = f"{call.syscall}({paths[0]})" if call.syscall in _WRITES and paths else f"{call.syscall}({call.args})"
    text = text.replace(str(folder) + "/", "<run>/").replace(str(folder), "<run>")
    text = re.sub(r"/[^\"<>]*/crash-other-fs/[^/\"<>]+", "<other>", text)
    text = re.sub(r"\b\d+<", "<", text)  # descriptor numbers
    text = re.sub(r"\.[a-z0-9_]{8}\.tmp", ".*.tmp", text)  # tempfile's random part
    text = re.sub(r"(\.style-daemon-[a-z]+\.)[^.\"]+\.", r"\1*.", text)  # an intent's hidden name
    text = re.sub(r"\[\d+\]|:\[\d+(->\d+)?", "", text)  # pipe and socket inode numbers
    text = re.sub(r'"(?:[^"\\]|\\.)*"\.\.\.', '""', text)  # the bytes a send carries
    text = re.sub(r'""\.\.\.,? ?\d*', "", text)
    return text[:200]


def _ours(path: str) -> bool:
    return not path.startswith(_IGNORED_PREFIXES) and not path.endswith(".log")


def crash_points(calls: list[Call], folder: Path, postgres: bool = False) -> list[CrashPoint]:
    """Each call of the traced process that changes the file system or commits the store, in order.

    A write right after a write to the same file by the same thread is left out: the file is already
    partial there, so killing again would try no new state (it keeps the sweep affordable).
    """
    main = calls[0].tid if calls else 0
    seen: dict[tuple[int, str], int] = {}
    last: dict[int, str] = {}
    points = []
    for call in calls:
        key = (call.tid, call.syscall)
        seen[key] = seen.get(key, 0) + 1
        if not _is_change(call, postgres):
            continue
        target = f"write:{call.paths()[0]}" if call.syscall in _WRITES and call.paths() else ""
        repeated = bool(target) and last.get(call.tid) == target
        last[call.tid] = target
        if not repeated:
            points.append(CrashPoint(call.syscall, seen[key], label(call, folder), call.tid == main))
    return points


def _is_change(call: Call, postgres: bool) -> bool:
    """Whether `call` changes the file system or (PostgreSQL) may commit the store."""
    paths = call.paths()
    failed = call.result.startswith("-1")
    if call.syscall in _SENDS or (call.syscall in _WRITES and _SOCKET.search(call.args)):
        return postgres and bool(_SOCKET.search(call.args)) and not _PG_READ.search(call.args)
    if call.syscall in _WRITES:
        target = paths[0] if paths else ""
        return bool(target) and _ours(target) and not failed
    if failed or not paths or not all(_ours(p) for p in paths[:2]):
        return False
    if call.syscall in _OPENS:
        return bool(re.search(r"O_CREAT|O_TRUNC|O_WRONLY|O_RDWR", call.args))
    return call.syscall in _CHANGES or call.syscall in _SYNCS


def strace_args(setting: Setting, out: Path, inject: CrashPoint | None = None) -> list[str]:
    """The strace options for a counting run (inject None) or a crash run."""
    # PostgreSQL's messages are kept long enough to tell a statement that changes something from a SELECT.
    size = "160" if setting.store == "postgres" else "0"
    args = ["-f", "-qq", "-s", size, "-yy", "-e", "signal=none", "-e", f"trace={TRACED}", "-o", str(out)]
    if setting.traced == "supervisor":
        args += ["-b", "execve"]  # its workers go their own way once they exec: only the supervisor dies
    if inject is not None:
        args += ["-e", f"inject={inject.syscall}:signal=SIGKILL:when={inject.occurrence}"]
    return args


def daemon_env(trace: dict | None = None) -> dict[str, str]:
    """The environment of a harness run: dry-run engine, no bytecode written (it would move the counts)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", STYLE_DAEMON_FAKE_ENGINE="0.01")
    env.pop("STYLE_DAEMON_CRASH_TRACE", None)
    if trace is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(SITE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["STYLE_DAEMON_CRASH_TRACE"] = json.dumps(trace)
    return env


def run_daemon(config: Path, trace: dict | None = None, timeout: float = RUN_TIMEOUT) -> tuple[int | None, str]:
    """`style-daemon once` to the end (its exit code, None when it hung and was killed) and its output."""
    log = config.parent / f"once-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "once", "-c", str(config)], cwd=ROOT,
                                env=daemon_env(trace), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    wait_gone(config)
    return code, log.read_text(errors="replace")


def wait_gone(config: Path, timeout: float = 20) -> None:
    """Until no process of this config runs (a killed supervisor's worker dies with it, a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _processes_of(config):
            return
        time.sleep(0.05)
    for pid in _processes_of(config):
        os.kill(pid, signal.SIGKILL)


def _processes_of(config: Path) -> list[int]:
    wanted = str(config).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if wanted in command and b"strace" not in command.split(b"\0")[0] and state != "Z":
            found.append(int(entry.name))
    return found


@contextmanager
def tmpfs(path: Path, size: str = "32m") -> Iterator[Path]:
    """A tmpfs mounted at `path` (another file system than the test's folder); unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class Scenario:
    """One run's folder: config, one photo in in/, processed/ where the setting says, the store it names."""

    def __init__(self, folder: Path, setting: Setting, store_url: str | None = None,
                 other_fs: Path | None = None, photos: tuple[Path, ...] = (PHOTO,)) -> None:
        self.folder = folder
        self.setting = setting
        self.store_url = store_url
        self.prepare_at: CrashPoint | None = None  # role restart: where the first run is stopped and killed
        folder.mkdir(parents=True, exist_ok=True)
        overrides: dict = {"after_success": setting.after_success}
        if setting.after_success == "move":
            # One folder per run on the shared mount: runs of other settings use the same p0, p1 ... names.
            self.processed = (other_fs / f"{folder.parent.name}-{folder.name}" if setting.processed == "other"
                              and other_fs
                              else folder / "out" / "processed")
            overrides["processed"] = str(self.processed)
        else:
            self.processed = folder / "out" / "processed"
        if store_url:
            overrides["store"] = store_url
        self.config = write_config(folder, **overrides)
        self.photos: dict[str, str] = {}
        for photo in photos:
            data = photo.read_bytes()
            (folder / "in" / photo.name).write_bytes(data)
            self.photos[photo.name] = hashlib.sha256(data).hexdigest()

    def trace_spec(self, out: Path, inject: CrashPoint | None = None) -> dict:
        """What sitecustomize needs to put the setting's process under strace."""
        return {"role": self.setting.traced, "strace": strace_args(self.setting, out, inject)}

    def check(self) -> list[str]:
        """The invariants; each broken one as a line (see check)."""
        return check(self.folder, self.setting, self.photos, self.processed, self.store_url)


def count(scenario: Scenario) -> tuple[list[CrashPoint], str]:
    """The counting run: the crash points of the setting's process for one job, and the daemon's output."""
    require_strace()
    prepare(scenario)
    out = scenario.folder / "count.strace"
    code, output = run_daemon(scenario.config, scenario.trace_spec(out))
    assert code == 0, f"the counting run failed (exit {code}):\n{output[-3000:]}"
    calls = parse_trace(out)
    points = crash_points(calls, scenario.folder, scenario.store_url is not None)
    return points, output


def crash_at(scenario: Scenario, point: CrashPoint) -> Outcome:
    """Run the job killing the process at `point`, restart it normally, and check the invariants."""
    require_strace()
    started = time.monotonic()
    prepare(scenario)
    out = scenario.folder / "crash.strace"
    code, output = run_daemon(scenario.config, scenario.trace_spec(out, point))
    killed = [c for c in parse_trace(out) if c.result == "?" and c.syscall == point.syscall]
    hit = label(killed[-1], scenario.folder) if killed else ""
    again, restart_output = run_daemon(scenario.config)
    violations = scenario.check()
    if again != 0:
        violations.append(f"the restart exited {again}: {_tail(restart_output)}")
    if code is None:
        violations.append(f"the crashed run hung: {_tail(output)}")
    return Outcome(point, hit, violations, time.monotonic() - started)


def prepare(scenario: Scenario) -> None:
    """For role restart: the worker stopped just after `scenario.prepare_at`, then it and its supervisor
    killed together (SIGKILL to the supervisor; the worker dies with it), leaving the step's intent open."""
    point = scenario.prepare_at
    if point is None:
        return
    out = scenario.folder / "prepare.strace"
    spec = {"role": "worker", "strace": strace_args(Setting(role="worker"), out)
            + ["-e", f"inject={point.syscall}:signal=SIGSTOP:when={point.occurrence}"]}
    log = scenario.folder / "prepare.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "once", "-c", str(scenario.config)], cwd=ROOT,
                                env=daemon_env(spec), stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + RUN_TIMEOUT
        stopped = False
        while proc.poll() is None and time.monotonic() < deadline and not stopped:
            stopped = _stopped_worker(proc.pid)
            time.sleep(0.02)
        proc.kill()
        proc.wait()
    wait_gone(scenario.config)
    assert stopped, f"the worker never reached {point.label} to be stopped there:\n{log.read_text()[-2000:]}"


def _stopped_worker(parent: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] in ("t", "T"):
            return True
    return False


def _tail(output: str) -> str:
    lines = [line for line in output.splitlines() if "ERROR" in line or "CRITICAL" in line or "Error" in line]
    return " | ".join((lines or output.splitlines() or [""])[-3:])[-600:]


# The invariants ---------------------------------------------------------------------------------------------

_DERIVED = (".json", ".sheet.jpg", ".error.txt")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _complete_image(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - any decoding failure means a partial or foreign file
        return False


def _visible(folder: Path) -> list[Path]:
    """Regular files under `folder` whose names and folders are not hidden (a reader's view)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def results(out: Path, skip: tuple[Path, ...]) -> list[Path]:
    """Result images in the output folder: not a sidecar, sheet, page, log, nor under failed/ or processed/."""
    found = []
    for path in _visible(out):
        if any(path.is_relative_to(s) for s in skip) or path.name.endswith(_DERIVED) or path.suffix == ".html":
            continue
        if path.relative_to(out).parts[0] == "logs":
            continue
        found.append(path)
    return found


def _complete_file(path: Path, photos: set[str]) -> bool:
    """A file a reader may see: whole (decodes, parses) or, for an input copy, a photo's exact bytes."""
    name = path.name
    if name.endswith(".json"):
        try:
            json.loads(path.read_text())
            return True
        except (ValueError, OSError):
            return False
    if name.endswith(".html"):
        return path.read_text(errors="replace").rstrip().endswith("</html>")
    if name.endswith((".txt", ".log")):
        return path.stat().st_size > 0
    return _sha(path) in photos or _complete_image(path)


def check(folder: Path, setting: Setting, photos: dict[str, str], processed: Path,
          store_url: str | None = None) -> list[str]:
    """Every invariant of issue 24 after a crash and a restart; the broken ones, one line each.

    - each photo has exactly one complete result: image + sidecar, the sidecar's content sha256 the photo's;
    - no partial file under a real name in in/, out/, processed/, failed/;
    - the input: kept as it was (keep), gone (delete) or whole in processed/ exactly once (move), and never
      gone without its result; nothing hidden left in in/ (a quarantined input is a lost one for its owner);
    - nothing in failed/ (a crash is not the photo's fault);
    - the store: one done job per photo whose output is that result, none queued or running, no open intent.
    """
    out, inbox, failed = folder / "out", folder / "in", folder / "out" / "failed"
    shas = set(photos.values())
    problems: list[str] = []
    images = results(out, (failed, processed))
    by_photo: dict[str, list[Path]] = {sha: [] for sha in shas}
    for image in images:
        sidecar = image.with_name(image.name + ".json")
        if not sidecar.is_file():
            problems.append(f"result without sidecar: {image.name}")
            continue
        try:
            content = json.loads(sidecar.read_text())["content"]["sha256"]
        except (ValueError, KeyError, TypeError, OSError):
            problems.append(f"unreadable sidecar: {sidecar.name}")
            continue
        by_photo.setdefault(content, []).append(image)
    for name, sha in photos.items():
        found = by_photo.get(sha, [])
        if len(found) != 1:
            problems.append(f"{name}: {len(found)} complete results ({', '.join(p.name for p in found)})")
    for root in (inbox, out, processed):
        for path in _visible(root):
            if path.is_relative_to(out / "logs"):
                continue
            if not _complete_file(path, shas):
                problems.append(f"partial file under a real name: {_shown(path, folder)}")
    hidden_inputs = [p.name for p in inbox.iterdir() if p.name.startswith(".")] if inbox.is_dir() else []
    if hidden_inputs:
        problems.append(f"hidden files left in the input folder: {hidden_inputs}")
    problems += _input_problems(setting, photos, inbox, processed, by_photo)
    failed_entries = _visible(failed)
    if failed_entries:
        problems.append(f"photo blamed for a crash: {[p.name for p in failed_entries]} in failed/")
    problems += _store_problems(folder, photos, by_photo, store_url)
    return problems


def _shown(path: Path, folder: Path) -> str:
    """`path` relative to the run's folder when inside it (processed/ on another file system stays whole)."""
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def _input_problems(setting: Setting, photos: dict[str, str], inbox: Path, processed: Path,
                    by_photo: dict[str, list[Path]]) -> list[str]:
    problems = []
    moved = [p for p in _visible(processed)] if processed.is_dir() else []
    for name, sha in photos.items():
        here = inbox / name
        present = here.is_file() and _sha(here) == sha
        copies = [p for p in moved if _sha(p) == sha]
        if not present and not copies and not by_photo.get(sha):
            problems.append(f"input lost: {name} is gone and has no result")
        if setting.after_success == "keep" and not present:
            problems.append(f"input lost: {name} was to be kept")
        elif setting.after_success == "delete" and present:
            problems.append(f"input not released: {name} still in the input folder (delete)")
        elif setting.after_success == "move":
            if len(copies) != 1:
                problems.append(f"{name}: {len(copies)} copies in processed/ (move)")
            if present:
                problems.append(f"input not released: {name} still in the input folder (move)")
    return problems


def _store_rows(folder: Path, store_url: str | None, query: str) -> list[dict]:
    if store_url:
        from tests.support.daemon import pg_rows

        return pg_rows(store_url, query)
    path = folder / "state" / "journal.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(query).fetchall()]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _stored_path(folder: Path, text: str | None) -> Path | None:
    if not text:
        return None
    name, sep, rest = text.partition(":")
    if sep and not text.startswith("/"):
        return folder / "out" / rest if name == "output" else None
    return Path(text)


def _store_problems(folder: Path, photos: dict[str, str], by_photo: dict[str, list[Path]],
                    store_url: str | None) -> list[str]:
    problems = []
    jobs = _store_rows(folder, store_url, "SELECT * FROM jobs ORDER BY id")
    for name, sha in photos.items():
        mine = [j for j in jobs if j.get("content_sha") == sha]
        done = [j for j in mine if j["state"] == "done"]
        if len(done) != 1:
            problems.append(f"store: {name} has {len(done)} done jobs ({[j['state'] for j in mine]})")
            continue
        stored = _stored_path(folder, done[0].get("output_path"))
        if by_photo.get(sha) and stored not in by_photo[sha]:
            problems.append(f"store: {name}'s done job names {done[0].get('output_path')}, "
                            f"not its result {[p.name for p in by_photo[sha]]}")
    busy = [j["id"] for j in jobs if j["state"] in ("queued", "running")]
    if busy:
        problems.append(f"store: jobs still queued or running after the restart: {busy}")
    intents = _store_rows(folder, store_url, "SELECT * FROM intents")
    if intents:
        problems.append(f"store: {len(intents)} open intents after the restart")
    return problems


# Sweeps ------------------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """A setting's crash points and the outcome of each one tried."""

    setting: Setting
    points: list[CrashPoint]
    outcomes: list[Outcome]
    count_seconds: float

    def failures(self) -> list[Outcome]:
        """The runs that broke an invariant."""
        return [o for o in self.outcomes if not o.ok]

    def missed(self) -> list[Outcome]:
        """Runs whose kill landed on another call than the one counted (the counts moved between runs)."""
        return [o for o in self.outcomes if o.hit != o.point.label]

    def report(self) -> str:
        """One line per broken run: the crash point and what broke."""
        return "\n".join(f"{self.setting.name} at {o.point.syscall}#{o.point.occurrence} {o.point.label}: "
                         f"{'; '.join(o.violations)}" for o in self.failures())

    def to_json(self) -> dict:
        """For bench/results/crash-points.json."""
        seconds = [o.seconds for o in self.outcomes]
        return {"setting": self.setting.name, "crash_points": len(self.points), "tried": len(self.outcomes),
                "kill_landed_elsewhere": len(self.missed()), "failures": len(self.failures()),
                "seconds_per_crash_point": round(sum(seconds) / len(seconds), 2) if seconds else None,
                "count_run_seconds": round(self.count_seconds, 2),
                "broken": [{"crash_point": f"{o.point.syscall}#{o.point.occurrence}", "call": o.point.label,
                            "violations": o.violations} for o in self.failures()]}


def touches_input(point: CrashPoint) -> bool:
    """Whether the call names the input folder (by path, or by its descriptor with *at calls)."""
    return bool(re.search(r"<run>/in[/>]", point.label))


def spread(points: list[CrashPoint], others: int = 2) -> list[int]:
    """A deterministic sample: every point that touches the input or processed/ (where settings differ), the
    ones that publish into out/ by name (link, rename), and `others` more evenly spaced."""
    chosen = {i for i, p in enumerate(points)
              if touches_input(p) or "processed" in p.label or "<other>" in p.label
              or (p.syscall in ("link", "linkat", "rename", "renameat", "renameat2") and "<run>/out/" in p.label)}
    rest = [i for i in range(len(points)) if i not in chosen]
    if rest and others:
        step = max(1, len(rest) // others)
        chosen |= set(rest[step // 2::step][:others])
    return sorted(chosen)


def sweep(setting: Setting, root: Path, pick: str = "all", new_store: Callable[[], str] | None = None,
          other_fs: Path | None = None, parallel: int = 2) -> Sweep:
    """Count the setting's crash points, then crash at each picked one ('all' or 'spread') and check."""
    started = time.monotonic()
    prepare_at = stage_point(setting, root, new_store, other_fs) if setting.role == "restart" else None

    def scenario(name: str) -> Scenario:
        made = Scenario(root / name, setting, new_store() if new_store else None, other_fs)
        made.prepare_at = prepare_at
        return made

    points, _ = count(scenario("count"))
    count_seconds = time.monotonic() - started
    assert points, f"{setting.name}: the counting run found no crash point"
    indices = range(len(points)) if pick == "all" else spread(points)
    scenarios = [(scenario(f"p{i}"), points[i]) for i in indices]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        outcomes = list(pool.map(lambda item: crash_at(*item), scenarios))
    return Sweep(setting, points, outcomes, count_seconds)


STAGES = {"publish": re.compile(r"^link(at)?\(.*<run>/out/chelsea"),
          "release": re.compile(r"^rename(at2?)?\(.*style-daemon-release")}


def stage_point(setting: Setting, root: Path, new_store: Callable[[], str] | None,
                other_fs: Path | None) -> CrashPoint:
    """The worker's first crash point of the setting's stage (counted in a worker run of the same setting)."""
    worker = Setting(setting.after_success, setting.processed, setting.store, "worker")
    points, _ = count(Scenario(root / "stage", worker, new_store() if new_store else None, other_fs))
    found = [p for p in points if STAGES[setting.stage].search(p.label)]
    assert found, f"{setting.name}: no worker call of the {setting.stage} stage among {[p.label for p in points]}"
    return found[0]
