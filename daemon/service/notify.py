"""systemd's sd_notify protocol: a few datagrams to $NOTIFY_SOCKET; silent when it is unset."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends READY=1, STATUS=..., WATCHDOG=1, RELOADING=1, STOPPING=1 to the service manager."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return self._sock is not None

    def send(self, *fields: str) -> None:
        """Send one message of newline-separated fields; errors are logged, never raised."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)

    def watchdog_interval(self) -> float | None:
        """Half of WATCHDOG_USEC in seconds (how often to ping), if the watchdog is on for us."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 1e6 / 2
        except ValueError:
            return None
