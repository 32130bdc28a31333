"""Issue 17.10: a wrong or expired PAC password is about the account, not the invoices. The
PAC is paused (coded error in ``status``, logged at error level), the invoices wait resumable
(never failed, no ``replay`` needed) and go out, each stamped once, when the configuration is
fixed and the daemon restarted, or when the PAC accepts the account again by itself.

A real daemon process on real folders, the sandbox PAC over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.cli import main
from connector.journal import State
from tests.daemon.conftest import dat_file, stamps_by_key, start_pipeline, write_config


def _status(config: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main(["status", "--config", str(config), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout} s: {what}")


def _daemon(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_wrong_pac_password_pauses_the_pac_and_a_restart_with_the_right_one_stamps_each_once(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    (ws / "pac.pw").write_text("contraseña-vieja", encoding="utf-8")  # rotated at the PAC
    (ws / "inbox" / "cuenta.dat").write_bytes(dat_file("K", [1, 2, 3]))
    proc = _daemon(workspace)
    try:

        def settled() -> bool:
            if not (ws / "var" / "journal.sqlite").exists():
                return False
            doc = _status(workspace, capsys)
            inv = doc["invoices"]
            pacs = (doc.get("daemon") or {}).get("pacs") or {}
            paused = (pacs.get("sandbox") or {}).get("paused")
            return inv["failed"] > 0 or (inv["retry_wait"] == 3 and paused is not None)

        _until(settled, 60, "three invoices waiting and the PAC paused")
        doc = _status(workspace, capsys)
        assert doc["invoices"]["failed"] == 0, doc["recent_failures"]
        assert doc["invoices"]["retry_wait"] == 3
        paused = doc["daemon"]["pacs"]["sandbox"]["paused"]
        assert paused["code"] == "203" and "contraseña" in paused["message"]
        waiting = doc["recent_failures"]
        # refused by the PAC (203), not sent again while the PAC is paused for it, or (a
        # retry asks by referencia first) its recover refused with 203
        assert {(f["invoice"], f["state"]) for f in waiting} == {
            (f"K{n}", "retry_wait") for n in (1, 2, 3)
        }
        assert {f["code"] for f in waiting} <= {"203", "CONN-PAC-CUENTA", "CONN-PAC-RECUPERACION"}
        assert all("203" in f["message"] for f in waiting)
        assert all("se da por fallida" in f["message"] for f in waiting)
        assert main(["status", "--config", str(workspace)]) == 0
        text = capsys.readouterr().out
        assert "EN PAUSA: el PAC rechazó la cuenta: 203" in text
        assert list((ws / "failed").iterdir()) == [] and not list((ws / "archive").rglob("*.dat"))
    finally:
        _stop(proc)
    log = [json.loads(x) for x in (ws / "var" / "connector.log").read_text().splitlines() if x]
    refused = [x for x in log if x["event"] == "pac_account_refused"]
    assert refused and all(x["level"] == "error" and x["code"] == "203" for x in refused)
    assert not [x for x in log if x["event"] == "pac_rejected"]
    assert stamps_by_key(sandbox.store) == {}

    (ws / "pac.pw").write_text("demo", encoding="utf-8")  # the operator fixes the password
    proc = _daemon(workspace)
    try:
        _until(lambda: bool(list((ws / "archive").rglob("cuenta.dat"))), 60, "cuenta.dat archived")
    finally:
        _stop(proc)
    doc = _status(workspace, capsys)
    assert doc["invoices"]["delivered"] == 3 and doc["invoices"]["retry_wait"] == 0
    assert len(list((ws / "out" / "xml").glob("K*.xml"))) == 3
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("K", "1"): 1,
        ("K", "2"): 1,
        ("K", "3"): 1,
    }


def test_paused_pac_is_probed_and_resumes_by_itself_when_the_account_works_again(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, retry_wait=0.2)
    ws = config.parent
    (ws / "pac.pw").write_text("nueva", encoding="utf-8")  # set before the PAC's portal change
    (ws / "inbox" / "sola.dat").write_bytes(dat_file("R", [1, 2]))
    pipe = start_pipeline(config)
    try:

        def poll_until(check: Callable[[], bool], what: str) -> None:
            def step() -> bool:
                pipe.poll_once()
                return check()

            _until(step, 30, what)

        poll_until(lambda: pipe.journal.counts()["retry_wait"] == 2, "both waiting")
        breaker = pipe.pacs["sandbox"].state()
        assert breaker["state"] in ("open", "half_open") and breaker["paused"]["code"] == "203"
        assert pipe.journal.counts()["failed"] == 0
        probes = len(sandbox.store.requests(operation="TimbrarCFDI"))
        time.sleep(1.5)
        for _ in range(10):
            pipe.poll_once()
        # paused: a slow probe, not a request per invoice per retry
        assert len(sandbox.store.requests(operation="TimbrarCFDI")) - probes <= 3
        sandbox.engine.store.set_password("demo", "nueva")  # the account works again
        poll_until(lambda: pipe.journal.counts()[State.DELIVERED.value] == 2, "both delivered")
        assert "paused" not in pipe.pacs["sandbox"].state()
    finally:
        pipe.close()
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("R", "1"): 1,
        ("R", "2"): 1,
    }
