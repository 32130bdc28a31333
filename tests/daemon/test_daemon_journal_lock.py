"""One process per journal: while `run` works, `submit` and a second `run` refuse
(CONN-DIARIO-EN-USO, with the pid) while `replay` works beside it; a daemon killed with
SIGKILL does not block its restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.cli import main
from tests.daemon.conftest import dat_file


def _start(workspace: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_archived(ws: Path, name: str) -> None:
    for _ in range(600):
        if list((ws / "archive").rglob(name)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} no llegó al archivo")


def test_submit_and_a_second_run_refuse_while_the_daemon_runs_replay_works_sigkill_frees(
    workspace: Path, sandbox, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "a.dat").write_bytes(dat_file("A", [1]))
    (ws / "inbox" / "bad.dat").write_bytes(dat_file("Z", [1], tipo="Z"))
    given = tmp_path / "given.dat"
    given.write_bytes(dat_file("B", [1]))
    first = _start(workspace)
    second = None
    try:
        _wait_archived(ws, "a.dat")
        assert main(["submit", str(given), "--config", str(workspace)]) == 2
        out = capsys.readouterr().out
        assert "CONN-DIARIO-EN-USO" in out and f"pid {first.pid}" in out
        # support staff replay a failed file while the service runs: the daemon takes it again
        error_file = ws / "failed" / "bad.dat.error.txt"
        for _ in range(600):
            if error_file.is_file():
                break
            time.sleep(0.1)
        first_error = error_file.stat().st_mtime_ns
        assert main(["replay", "--config", str(workspace), "--file", "bad.dat"]) == 0
        assert "CONN-DIARIO-EN-USO" not in capsys.readouterr().out
        for _ in range(600):
            if error_file.is_file() and error_file.stat().st_mtime_ns != first_error:
                break
            time.sleep(0.1)
        assert error_file.stat().st_mtime_ns != first_error  # processed again by the daemon
        assert not list((ws / "inbox").glob("*.dat"))
        second = _start(workspace)
        assert second.wait(60) == 2
        err = second.stderr.read().decode("utf-8")  # type: ignore[union-attr]
        assert "CONN-DIARIO-EN-USO" in err and f"pid {first.pid}" in err
        # nothing of the refused submit went through: B1 was never taken
        assert not list((ws / "out" / "xml").glob("B*.xml"))
        # killed without a chance to clean up: the next daemon starts all the same
        first.send_signal(signal.SIGKILL)
        first.wait(60)
        (ws / "inbox" / "c.dat").write_bytes(dat_file("C", [1]))
        second = _start(workspace)
        _wait_archived(ws, "c.dat")
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(60)
    # stopped: submit works again
    assert main(["submit", str(given), "--config", str(workspace)]) == 0
    assert "TIMBRADA B1" in capsys.readouterr().out
