"""The logs of full runs (debug level, invoices stamped and refused, a PAC refusing a wrong
password) hold no configured password, and every line is one JSON event."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.daemon.conftest import dat_file, dat_invoice, write_config
from tests.daemon.test_daemon_http import free_port, wait_until
from tests.daemon.test_daemon_notify import _run

CSD_PASSWORD = "12345678a"  # the test CSD's
PAC_PASSWORD = "Pac-Secreto-7731"
WRONG_PASSWORD = "Mal-Escrita-5590"


def _run_until(config: Path, errlog: Path, done: object, port: int) -> None:
    proc = _run(config, errlog, {"NOTIFY_SOCKET": ""}, "--http", f"127.0.0.1:{port}")
    try:
        wait_until(done, 60, "the run did not get there")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_no_password_in_any_log_line_and_one_event_per_line(
    tmp_path: Path, sandbox: object
) -> None:
    sandbox.engine.store.set_password("demo", PAC_PASSWORD)  # type: ignore[attr-defined]
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)  # type: ignore[attr-defined]
    ws = config.parent
    config.write_text(config.read_text("utf-8").replace("[daemon]\n", '[daemon]\nlog_level = "debug"\n', 1)
                      .replace('log_format = "json"\n', "", 1), "utf-8")  # fmt: skip
    log = ws / "var" / "connector.log"
    errlog = tmp_path / "daemon.stderr"
    # 1. the wrong password: the PAC refuses the account, the invoice waits
    (ws / "pac.pw").write_text(WRONG_PASSWORD, encoding="utf-8")
    (ws / "inbox" / "a.dat").write_bytes(dat_file("L", [1]))
    _run_until(config, errlog, lambda: log.exists() and b'"pac_account' in log.read_bytes()
               or b"203" in (log.read_bytes() if log.exists() else b""), free_port())  # fmt: skip
    # 2. the right one: everything goes, a refused invoice too
    (ws / "pac.pw").write_text(PAC_PASSWORD, encoding="utf-8")
    (ws / "inbox" / "b.dat").write_text(
        dat_file("L", [2, 3]).decode() + dat_invoice("L", "4", tipo="Z"), encoding="utf-8"
    )
    _run_until(config, errlog,
               lambda: len(list((ws / "out" / "xml").glob("*.xml"))) == 3, free_port())  # fmt: skip
    time.sleep(0.2)
    lines = log.read_text(encoding="utf-8").splitlines()
    lines += [x for x in errlog.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(lines) > 20
    events = set()
    for line in lines:
        for secret in (CSD_PASSWORD, PAC_PASSWORD, WRONG_PASSWORD):
            assert secret not in line, line
        doc = json.loads(line)  # one whole JSON event per line
        events.add(doc["event"])
    assert {"ready", "stamped", "stopped"} <= events
