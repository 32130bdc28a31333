"""The daemon's commands through ``connector.cli.main`` (and the console script for one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.cli import main
from connector.journal import Journal, State
from tests.daemon.conftest import dat_file, dat_invoice, stamps_by_key, start_pipeline


def test_check_config_ok_and_every_error(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check-config", "--config", str(workspace)]) == 0
    assert "Configuración correcta" in capsys.readouterr().out
    broken = workspace.read_text(encoding="utf-8")
    broken = broken.replace('inbox = "inbox"', 'inbox = "no-existe"', 1)
    broken = broken.replace('adapter = "xml"', 'adapter = "excel"')
    broken = broken.replace('password_file = "csd.pw"', 'password_file = "pac.pw"')  # wrong pw
    bad = workspace.with_name("malo.toml")
    bad.write_text(broken, encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "connector.cli", "check-config", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    out = r.stdout
    assert "3 error(es)" in out
    lines = broken.splitlines()
    inbox_line = lines.index('inbox = "no-existe"') + 1
    assert f"CONN-CFG-CARPETA [{bad}:{inbox_line} (sources[0].inbox)]" in out
    assert "CONN-CFG-ADAPTADOR" in out and "'excel'" in out
    assert "emisores[0].key" in out  # the CSD does not open with that password
    assert "demo" not in out.replace("demo/", "")  # no password echoed


def test_submit_prints_results_and_keeps_the_given_file(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    given = tmp_path / "hoy.dat"
    content = dat_file("S", [1, 2])
    given.write_bytes(content)
    assert main(["submit", str(given), "--config", str(workspace)]) == 0
    out = capsys.readouterr().out
    uuids = {k: v for k, v in stamps_by_key(sandbox.store).items()}
    assert set(uuids) == {("S", "1"), ("S", "2")}
    for (serie, folio), (uuid,) in uuids.items():
        assert f"TIMBRADA {serie}{folio} UUID {uuid}" in out
    assert given.read_bytes() == content
    bad = tmp_path / "mal.dat"
    bad.write_bytes(dat_invoice("S", "9", tipo="Z").encode())
    assert main(["submit", str(bad), "--config", str(workspace), "--source", "ventas"]) == 1
    out = capsys.readouterr().out
    assert "ERROR S9 CFDI40" in out and "failed" in out
    assert main(["submit", str(tmp_path / "nada.dat"), "--config", str(workspace)]) == 2


def test_status_replay_and_reprocessing_skip_delivered(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "lote.dat").write_bytes(
        (dat_invoice("P", "1") + dat_invoice("P", "2", tipo="Z")).encode()
    )
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert main(["status", "--config", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "entregadas" in out and "P2" in out and "CFDI40" in out
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["invoices"]["delivered"] == 1 and doc["invoices"]["failed"] == 1
    assert doc["recent_failures"][0]["invoice"] == "P2"

    # dry run: nothing moves
    assert main(["replay", "--config", str(workspace), "--all-failed", "--dry-run"]) == 0
    assert "[simulación]" in capsys.readouterr().out
    assert (ws / "failed" / "lote.dat").is_file()
    # replay the file: back in the inbox; the failed invoice is reset, the delivered one is not
    assert main(["replay", "--config", str(workspace), "--file", "lote.dat"]) == 0
    assert (ws / "inbox" / "lote.dat").is_file() and not (ws / "failed" / "lote.dat").exists()
    with Journal(ws / "var" / "journal.sqlite") as j:
        assert j.get(("EKU9003173C9", "P", "1")).state is State.DELIVERED
        assert j.get(("EKU9003173C9", "P", "2")).state is State.RECEIVED
    # the ERP fixes nothing: the re-run skips P1 (no second stamp) and P2 fails again
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("P", "1"): 1}
    assert (ws / "failed" / "lote.dat").is_file()
    # replay one item by key
    assert main(["replay", "--config", str(workspace), "--item", "P/2"]) == 0
    assert (ws / "inbox" / "lote.dat").is_file()
    assert main(["replay", "--config", str(workspace), "--item", "P/1"]) == 0
    assert "ya está timbrada" in capsys.readouterr().out
    assert main(["replay", "--config", str(workspace), "--item", "Q/7"]) == 2


def test_run_daemon_subprocess_stops_cleanly_on_sigterm(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "h.dat").write_bytes(dat_file("H", [1, 2, 3]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for _ in range(600):
            if list((ws / "archive").rglob("h.dat")):
                break
            time.sleep(0.1)
        for _ in range(100):  # the daemon publishes its PAC circuit state for `status`
            if (ws / "var" / "journal.sqlite.status.json").exists():
                break
            time.sleep(0.1)
        assert main(["status", "--config", str(workspace)]) == 0
        out = capsys.readouterr().out
        assert f"Daemon en marcha (pid {proc.pid}" in out
        assert "PAC sandbox: circuito cerrado (normal)" in out and "archivados" in out
        # Spanish labels only: no journal or circuit state names in English
        english = ("claimed", "archiving", "failing", "archived", "replayed", "closed", "half_open")
        assert not [w for w in english if w in out]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list((ws / "archive").rglob("h.dat"))
    assert len(list((ws / "out" / "xml").glob("H*.xml"))) == 3
    log = (ws / "var" / "connector.log").read_text(encoding="utf-8")
    events = [json.loads(x)["event"] for x in log.splitlines() if x.strip()]
    assert "shutdown_requested" in events and events[-1] == "stopped"


def test_unusable_journal_is_a_coded_error_not_a_traceback(
    workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    journal = workspace.parent / "var" / "journal.sqlite"
    journal.write_bytes(b"esto no es una base de datos SQLite" * 100)
    assert main(["submit", str(journal), "--config", str(workspace), "--source", "ventas"]) == 2
    out = capsys.readouterr().out
    assert "CONN-DIARIO" in out and "journal.sqlite" in out
    assert main(["status", "--config", str(workspace)]) == 2
    assert main(["replay", "--config", str(workspace), "--all-failed"]) == 2
    assert capsys.readouterr().out.count("CONN-DIARIO") == 2


def test_submit_writes_the_configured_log_file(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """submit ignored [daemon] log_file: what it stamped was in no log."""
    import structlog

    given = tmp_path / "uno.dat"
    given.write_bytes(dat_file("G", [1]))
    try:
        assert main(["submit", str(given), "--config", str(workspace)]) == 0
    finally:
        structlog.reset_defaults()
    capsys.readouterr()
    log_file = workspace.parent / "var" / "connector.log"  # log_file of the configuration
    events = [json.loads(x) for x in log_file.read_text(encoding="utf-8").splitlines()]
    stamped = [e for e in events if e["event"] == "stamped"]
    assert [e["invoice"] for e in stamped] == ["G1"] and stamped[0]["uuid"]



def test_status_json_before_the_first_run_is_json(
    workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    """A monitoring script calling ``status --json`` before the daemon ever ran reads JSON."""
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["journal"] is None and doc["recent_failures"] == []
    assert "Aún no hay diario" in doc["message"]
