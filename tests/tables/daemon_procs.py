"""The daemon as a real process (``python -m connector.cli run``) on table sources: started,
killed, waited for; and what the tables and the sandbox PAC hold at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .daemon_support import REPO, rows


def start(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``run --config`` in its own process; stderr appended to ``var/daemon.stderr``."""
    err = config.parent / "var" / "daemon.stderr"
    with open(err, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "run", "--config", str(config), *extra],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def log_text(config: Path) -> str:
    try:
        return (config.parent / "var" / "connector.log").read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def stderr_text(config: Path) -> str:
    try:
        return (config.parent / "var" / "daemon.stderr").read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def until(cond: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM (a clean stop) and its exit code; killed when it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


def final_states(conn: Any) -> dict[int, tuple[Any, ...]]:
    """id → (estado, uuid, error_codigo, error_mensaje, xml) of every invoice row."""
    return rows(conn, "estado", "uuid", "error_codigo", "error_mensaje", "xml")


def all_final(conn: Any, expected: int) -> bool:
    got = rows(conn, "estado")
    return len(got) == expected and all(v[0] in ("TIMBRADO", "ERROR") for v in got.values())


def check_stamped_once(conn: Any, pac: Any, expected: int) -> None:
    """The end of a run over the tables (rows ``A``) and a folder (lot ``F1``–``F10``): every
    row ``TIMBRADO`` with its own UUID, the one the PAC gave; nothing stamped twice at the
    PAC; the lot stamped."""
    from tests.daemon.conftest import stamps_by_key

    got = final_states(conn)
    assert {v[0] for v in got.values()} == {"TIMBRADO"}, {
        i: v[:4] for i, v in got.items() if v[0] != "TIMBRADO"
    }
    assert len({v[1] for v in got.values()}) == expected
    stamps = stamps_by_key(pac.store)
    assert not {k: v for k, v in stamps.items() if len(v) != 1}  # nothing stamped twice
    assert {k: v[0] for k, v in stamps.items() if k[0] == "A"} == {
        ("A", str(i)): got[i][1] for i in got
    }
    assert {k for k in stamps if k[0] == "F"} == {("F", str(i)) for i in range(1, 11)}


def status_json(config: Path, limit: int = 50) -> dict[str, Any]:
    """What ``status --json`` says (the journal's counts and failures, the daemon's state)."""
    r = subprocess.run(
        [sys.executable, "-m", "connector.cli", "status", "--config", str(config), "--json",
         "--limit", str(limit)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]
