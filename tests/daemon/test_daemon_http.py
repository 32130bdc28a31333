"""``run --http``: /healthz, /readyz and /metrics of a real ``cfdi-connector run`` against the
sandbox PAC; the metrics parsed with prometheus_client's own parser equal what the journal and
``status --json`` say."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon.conftest import dat_file, dat_invoice, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run_http(config: Path, log: Path, port: int, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config),
         "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - closed with the process
        env={**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": "", **(env or {})},
    )  # fmt: skip


def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(what)


@pytest.mark.slow
def test_metrics_after_a_real_run_equal_the_journal_and_status(
    tmp_path: Path, workspace: Path
) -> None:
    from connector.journal import Journal, State

    ws = workspace.parent
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    errlog = tmp_path / "daemon.stderr"
    text = dat_file("M", [1, 2, 3]).decode() + dat_invoice("M", "4", tipo="Z")
    (ws / "inbox" / "m.dat").write_text(text, encoding="utf-8")
    proc = run_http(workspace, errlog, port)
    try:
        wait_until(lambda: b'"ready"' in (ws / "var" / "connector.log").read_bytes()
                   if (ws / "var" / "connector.log").exists() else False, 60, "not ready")  # fmt: skip
        wait_until(lambda: any((ws / "failed").glob("m*.dat")), 60, "m.dat not finished")
        wait_until(lambda: len(list((ws / "out" / "xml").glob("*.xml"))) == 3, 60, "not stamped")
        code, body = get(f"{base}/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        code, body = get(f"{base}/readyz")
        assert code == 200, body
        assert json.loads(body) == {"status": "listo", "pacs": {"sandbox": "closed"}}
        time.sleep(0.5)  # the last delivery's write-back is timed when it returns
        code, body = get(f"{base}/metrics")
        assert code == 200
        m = samples(body.decode())
        # the journal's own figures
        j = Journal(ws / "var" / "journal.sqlite")
        try:
            counts = j.counts()
            failed = j.in_state(State.FAILED)
        finally:
            j.close()
        stamped = counts[State.STAMPED] + counts[State.DELIVERED]
        assert stamped == 3 and len(failed) == 1
        key = "cfdi_connector_invoices_total"
        assert m[(key, (("outcome", "stamped"), ("source", "ventas")))] == stamped
        assert m[(key, (("outcome", "failed"), ("source", "ventas")))] == len(failed)
        code_key = (("code", failed[0].error_code), ("source", "ventas"))
        assert m[("cfdi_connector_invoices_failed_total", code_key)] == 1
        pac_ok = (("operation", "stamp"), ("pac", "sandbox"), ("result", "ok"))
        assert m[("cfdi_connector_pac_requests_total", pac_ok)] == stamped
        lat = (("operation", "stamp"), ("pac", "sandbox"))
        assert m[("cfdi_connector_pac_request_duration_seconds_count", lat)] == stamped
        for stage, n in (("parse_map", 1), ("validate_seal", 4), ("pac_call", 3),
                         ("write_back", 3)):  # fmt: skip
            got = m[("cfdi_connector_stage_duration_seconds_count", (("stage", stage),))]
            assert got == n, stage
        assert m[("cfdi_connector_pac_circuit_state", (("pac", "sandbox"), ("state", "closed")))]
        assert m[("cfdi_connector_pac_requests_in_flight", ())] == 0
        assert m[("cfdi_connector_inbox_files", (("source", "ventas"),))] == 0
        assert m[("cfdi_connector_retries_waiting", (("source", "ventas"),))] == 0
        assert m[("cfdi_connector_journal_size_bytes", ())] > 0
        names = {n for n, _ in m}
        assert all(n.startswith("cfdi_connector_") for n in names)
        # no unbounded label: no file name, folio or UUID anywhere in the exposition
        assert "m.dat" not in body.decode() and "M1" not in body.decode()
        # status --json carries the same figures
        out = subprocess.run(
            [sys.executable, "-m", "connector.cli", "status", "--config", str(workspace), "--json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        figs = json.loads(out.stdout)["figures"]["sources"]["ventas"]
        assert figs["stamped"] == stamped and figs["failed"] == 1
        assert figs["failed_by_code"] == {failed[0].error_code: 1}
        # a source's inbox gone (a share offline): not ready, with the reason
        (ws / "inbox").rename(ws / "inbox-offline")
        code, body = get(f"{base}/readyz")
        doc = json.loads(body)
        assert code == 503 and doc["status"] == "no_listo"
        assert any("'ventas'" in r and "entrada" in r for r in doc["reasons"])
        (ws / "inbox-offline").rename(ws / "inbox")
        assert get(f"{base}/readyz")[0] == 200
        assert get(f"{base}/nada")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_http_setting_is_checked_and_a_non_loopback_address_is_warned(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from connector.config import check_config
    from connector.service.http import HealthServer, is_loopback, parse_address

    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="HOST:PUERTO"):
            parse_address(bad)
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")
    config = write_config(tmp_path / "ws", timbrado_url="http://127.0.0.1:9/x")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[daemon]\n", '[daemon]\nhttp = "localhost"\n', 1), "utf-8")
    cfg, problems = check_config(config, deep=False)
    assert cfg is None and any("HOST:PUERTO" in p.message for p in problems)

    class Pipe:  # HealthServer reads only these when asked; nothing is asked here
        pass

    server = HealthServer("0.0.0.0:0", Pipe(), None, last_tick=time.monotonic, alive_within=5)
    with capture_logs() as logs:
        server.start()
    server.close()
    assert [e["event"] for e in logs][:1] == ["http_not_loopback"]
