"""A private PostgreSQL server of the test's own (``initdb`` into a temporary data directory,
``postgres`` on a free port of 127.0.0.1, trust authentication), which the test may stop and
start again while connectors use it as their shared journal. The shared server on 5432 is never
stopped (other tests use it at the same time). As root (CI, this machine) the server runs as
the ``postgres`` system user, as PostgreSQL refuses to run as root.

``PrivatePostgres(stat_statements=True)`` also loads ``pg_stat_statements`` (the benchmark
counts the journal's statements with it)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout), else ``PATH``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(
        Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)  # fmt: skip
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, postgres) are not installed")
    return Path(on_path).parent


class PrivatePostgres:
    """``start()``/``stop()`` as often as the test likes; ``close()`` removes everything.
    ``url(db)`` is the address of a database on it (``postgres`` user, no password)."""

    def __init__(self, *, stat_statements: bool = False, fsync: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cfdi-pg-"))  # short: socket path limit
        self.data = self.dir / "data"
        self.port = _free_port()
        self.bin = _bin_dir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            capture_output=True, timeout=180, cwd=self.dir, **self._user,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stdout.decode() + done.stderr.decode())
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.dir}'",
            "max_connections = 200",
            "shared_buffers = 32MB",
            f"fsync = {'on' if fsync else 'off'}",  # a test's server: its data dies with it
            "logging_collector = off",
        ]
        if stat_statements:
            settings += [
                "shared_preload_libraries = 'pg_stat_statements'",
                "pg_stat_statements.track = all",
                "pg_stat_statements.max = 5000",
                "track_io_timing = off",
            ]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(settings) + "\n")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def start(self, timeout: float = 60) -> None:
        assert self.proc is None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data)],
                stdout=log, stderr=log, cwd=self.dir, **self._user,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.Error:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log()) from None
                time.sleep(0.2)

    def stop(self, timeout: float = 60, *, mode: str = "fast") -> None:
        """The server stopped as ``pg_ctl stop`` does: ``fast`` (SIGINT: every connection
        cut, then a clean exit, as ``systemctl stop``), or ``immediate`` (SIGQUIT: a crash,
        recovered from the WAL at the next start)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def server_cpu_seconds(self) -> float:
        """CPU seconds of the server so far, from ``/proc``: the postmaster's own, that of its
        live children (backends, checkpointer, WAL writer...) and that of those that have
        exited (backends of closed connections: the postmaster reaps them)."""
        assert self.proc is not None
        pid = self.proc.pid
        fields = _stat(pid)
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            with contextlib.suppress(OSError):  # exited meanwhile: counted in cutime
                ticks += sum(int(f) for f in _stat(int(child))[11:13])
        return ticks / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # SIGKILL to the postmaster: its backends exit on their own
            self.proc.wait(10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command's name (field 3 on)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
