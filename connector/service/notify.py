"""systemd's notify protocol (``sd_notify``): one datagram to ``$NOTIFY_SOCKET`` per message.

``Notifier`` speaks the protocol (abstract sockets ``@name`` included) and does nothing when
``NOTIFY_SOCKET`` is unset, so the same daemon runs under a terminal, NSSM/WinSW or systemd.
``Heartbeat`` is what the daemon's main loop calls on every turn (``tick``): the watchdog
ping at half of ``WATCHDOG_USEC`` (only when ``WATCHDOG_PID`` is unset or this process), a
current ``STATUS=`` line, and ``EXTEND_TIMEOUT_USEC=`` while a long start-up recovery or the
stop's drain still makes progress. Being called by the loop itself (never by a thread of its
own) is the point: a loop that hangs stops pinging, and systemd restarts the service.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("connector.service")


class Notifier:
    """Sends ``KEY=value`` lines to systemd; a no-op without ``NOTIFY_SOCKET``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if addr.startswith("@"):  # abstract namespace (Linux)
            self.address = "\0" + addr[1:]
        elif addr.startswith("/"):
            self.address = addr
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_seconds: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """One datagram with ``lines``; False when not sent (no socket, or it failed)."""
        if self.address is None or not hasattr(socket, "AF_UNIX"):
            return False
        data = "\n".join(lines).encode("utf-8")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                self._sock.sendto(data, self.address)
            except OSError as exc:  # systemd gone, socket full: never stops the daemon
                log.debug("notify_failed", error=str(exc))
                return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()
                self._sock = None


class Heartbeat:
    """The daemon's side of the protocol, driven by the main loop's ``tick()``.

    ``status`` returns the one-line ``STATUS=`` text (called at most every
    ``status_seconds``); ``extend_seconds`` is how much more time systemd is asked for at each
    sign of progress while starting or stopping.
    """

    def __init__(
        self,
        notifier: Notifier | None = None,
        *,
        status: Callable[[], str] | None = None,
        status_seconds: float = 5.0,
        extend_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier or Notifier()
        self.status = status
        self.status_seconds = status_seconds
        self.extend_seconds = extend_seconds
        self._clock = clock
        self.phase = "starting"  # starting → ready → stopping
        self.last_tick = clock()
        self._last_ping = float("-inf")
        self._last_status = float("-inf")
        self._last_extend = float("-inf")
        self._status_text = ""

    @property
    def watchdog_interval(self) -> float | None:
        """How often the loop must tick: half of systemd's watchdog timeout."""
        w = self.notifier.watchdog_seconds
        return None if w is None else w / 2

    def tick(self) -> None:
        """One turn of the main loop (or one step of recovery or of the drain)."""
        now = self._clock()
        self.last_tick = now
        lines: list[str] = []
        interval = self.watchdog_interval
        if interval is not None and now - self._last_ping >= interval:
            self._last_ping = now
            lines.append("WATCHDOG=1")
        if self.phase != "ready" and now - self._last_extend >= min(5.0, self.extend_seconds / 3):
            self._last_extend = now  # still making progress: ask for more time
            lines.append(f"EXTEND_TIMEOUT_USEC={int(self.extend_seconds * 1_000_000)}")
        if self.status is not None and now - self._last_status >= self.status_seconds:
            self._last_status = now
            with contextlib.suppress(Exception):  # a status line never stops the loop
                text = self.status()
                if text != self._status_text:
                    self._status_text = text
                    lines.append(f"STATUS={text}")
        if lines:
            self.notifier.send(*lines)

    def ready(self) -> None:
        """Configuration checked, journal open, recovery done, every source watched."""
        self.phase = "ready"
        self._last_status = float("-inf")
        self.tick()
        self.notifier.send("READY=1", f"MAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.phase = "stopping"
        self._last_extend = float("-inf")
        self.notifier.send("STOPPING=1", "STATUS=Deteniendo: se terminan los envíos en curso")

    def alive(self, within: float) -> bool:
        """The loop ticked in the last ``within`` seconds (``/healthz``)."""
        return self._clock() - self.last_tick <= within
