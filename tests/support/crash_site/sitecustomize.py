"""Put the daemon process this test picked under strace from its first instruction (test-only, not the product).

The crash-point harness (tests/support/crash_points.py) puts this folder on PYTHONPATH with
STYLE_DAEMON_CRASH_TRACE set to JSON {"role": "worker"|"supervisor", "strace": [args...]}. The process whose
command line names that role forks a grandchild that runs `strace -p <this pid> ARGS` and waits until it is
traced, so pids stay the product's own (the job store names workers by pid) and nothing in daemon/ changes.
"""

import json
import os
import sys
import time


def _role() -> str:
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if "-m" in argv and argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["daemon"]:
        rest = argv[argv.index("-m") + 2:]
        if rest and rest[0] == "worker":
            return "worker"
        if rest and rest[0] in ("once", "run"):
            return "supervisor"
    return ""


def _traced() -> bool:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("TracerPid:"):
                return line.split()[1] != "0"
    return False


def _attach(args: list) -> None:
    me = os.getpid()
    child = os.fork()
    if child == 0:
        if os.fork() == 0:  # the grandchild: orphaned at once, so the daemon never waits for it
            os.setsid()
            os.execvp("strace", ["strace", *args, "-p", str(me)])
        os._exit(0)
    os.waitpid(child, 0)
    deadline = time.monotonic() + 20
    while not _traced():
        if time.monotonic() > deadline:
            sys.stderr.write("crash harness: strace did not attach\n")
            os._exit(97)
        time.sleep(0.002)


_spec = os.environ.get("STYLE_DAEMON_CRASH_TRACE")
if _spec:
    _wanted = json.loads(_spec)
    if _role() == _wanted["role"]:
        _attach(_wanted["strace"])
