"""A private MariaDB server of the test's own (``mariadb-install-db`` into a temporary data
directory, ``mariadbd`` on a free port of 127.0.0.1), which the test may stop and start again:
the shared servers on 5432/3306 are never stopped (other tests use them at the same time)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pyodbc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateMariaDB:
    """``start()``/``stop()`` as often as the test likes; ``close()`` removes everything."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cfdi-mariadb-"))  # short: socket path limit
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = f"DRIVER={{MariaDB Unicode}};SERVER=127.0.0.1;PORT={self.port};UID=root"
        done = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.dir / 'data'}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"],
            capture_output=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stdout.decode() + done.stderr.decode())

    def start(self, timeout: float = 60) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.dir / 'data'}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.dir / 'sock'}", f"--pid-file={self.dir / 'pid'}",
             f"--log-error={self.dir / 'error.log'}", "--user=root", "--skip-log-bin",
             "--innodb-buffer-pool-size=16M", "--performance-schema=OFF"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                pyodbc.connect(self.admin, autocommit=True, timeout=2).close()
                return
            except pyodbc.Error:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.error_log()) from None
                time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """The server stopped as ``systemctl stop`` does (SIGTERM: connections cut, then it
        exits)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "error.log").read_text(errors="replace")[-3000:]
        return ""

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
