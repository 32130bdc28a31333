"""The PAC circuit breaker's open and close events go to the structured log, not to stderr as
plain text (issue 17, item 11). A real pipeline, the sandbox PAC failing with HTTP 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from connector.daemon import configure_logging
from connector.journal import State
from tests.daemon.conftest import RFC, dat_file, start_pipeline


def test_circuit_open_and_close_are_json_log_events(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    text = workspace.read_text(encoding="utf-8").replace(
        "failure_threshold = 50", "failure_threshold = 2"
    )
    workspace.write_text(text, encoding="utf-8")
    sandbox.faults.add("http500", times=6)  # stamp and recover by referencia alike
    log_file = ws / "var" / "breaker.log"
    configure_logging("info", "json", log_file)
    try:
        (ws / "inbox" / "b.dat").write_bytes(dat_file("K", [1]))
        pipe = start_pipeline(workspace)
        try:
            assert pipe.run_until_idle(60)
            assert pipe.journal.get((RFC, "K", "1")).state is State.DELIVERED
        finally:
            pipe.close()
    finally:
        structlog.reset_defaults()
    events = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    opened = [e for e in events if e["event"] == "pac_circuit_opened"]
    closed = [e for e in events if e["event"] == "pac_circuit_closed"]
    assert opened and opened[0]["pac"] == "sandbox" and opened[0]["level"] == "warning"
    assert opened[0]["failures"] >= 2 and opened[0]["last_error"]
    assert closed and closed[-1]["pac"] == "sandbox" and closed[-1]["level"] == "info"
    err = capsys.readouterr().err
    assert "circuito del PAC" not in err and "pac_circuit" not in err
