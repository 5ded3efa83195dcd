"""A bound sd_notify datagram socket that records what the daemon tells systemd, and when."""

from __future__ import annotations

import socket
import threading
import time

from tests.support.daemon import store_rows


class NotifyListener:
    """Collects (time, message, worker states at that moment) from a bound datagram socket."""

    def __init__(self, path, folder) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.folder = folder
        self.messages: list[tuple[float, str, list[str]]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            states = []
            if "READY=1" in data:
                states = [r["state"] for r in store_rows(self.folder, "SELECT state FROM workers")]
            self.messages.append((time.monotonic(), data, states))

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()

    def times(self, field: str) -> list[float]:
        return [t for t, m, _ in self.messages if field in m.split("\n")]

    def having(self, prefix: str) -> list[str]:
        return [line for _, m, _ in self.messages for line in m.split("\n") if line.startswith(prefix)]


def notify_env(folder, **extra: str) -> dict[str, str]:
    """The environment systemd gives a Type=notify service with a 2 s watchdog, its socket in `folder`."""
    return {"NOTIFY_SOCKET": str(folder / "notify.sock"), "WATCHDOG_USEC": "2000000", **extra}
