"""The PAC's credits: polled on a slow tick; under ``credits_warning`` a warning in the log, in
``status``, in ``/readyz`` (degraded, still 200), in systemd's ``STATUS=`` and in /metrics; at
zero the PAC's refusal (FEL 905) pauses the PAC and the invoices wait, resumable."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.journal import State
from tests.daemon.conftest import dat_file, stamps_by_key, start_pipeline, write_config
from tests.daemon.test_daemon_http import free_port, get, samples, wait_until
from tests.daemon.test_daemon_notify import Listener, _run


def with_credits_warning(config: Path, threshold: int) -> Path:
    text = config.read_text(encoding="utf-8")
    text = text.replace(
        "timeout_seconds = 10\n", f"timeout_seconds = 10\ncredits_warning = {threshold}\n", 1
    )
    text = text.replace("[daemon]\n", "[daemon]\ncredits_seconds = 0.3\n", 1)
    config.write_text(text, encoding="utf-8")
    return config


@pytest.mark.slow
def test_low_credits_warn_in_log_status_readyz_metrics_and_systemd_status(
    tmp_path: Path, sandbox: object
) -> None:
    sandbox.set_credits("demo", 120)  # type: ignore[attr-defined]
    config = with_credits_warning(
        write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url),
        500,  # type: ignore[attr-defined]
    )
    ws = config.parent
    port = free_port()
    lst = Listener(f"@cfdi-credits-{time.monotonic_ns()}")
    proc = _run(config, tmp_path / "daemon.stderr", {"NOTIFY_SOCKET": lst.address},
                "--http", f"127.0.0.1:{port}")  # fmt: skip
    log = ws / "var" / "connector.log"
    try:
        lst.wait_for("READY=1")
        wait_until(lambda: b'"credits_low"' in log.read_bytes(), 30, "no credits_low warning")
        event = next(json.loads(line) for line in log.read_text("utf-8").splitlines()
                     if '"credits_low"' in line)  # fmt: skip
        assert event["level"] == "warning" and event["credits"] == 120
        assert event["threshold"] == 500 and "le quedan 120 timbres" in event["message"]
        code, body = get(f"http://127.0.0.1:{port}/readyz")
        doc = json.loads(body)
        assert code == 200 and doc["status"] == "degradado"
        assert "le quedan 120 timbres" in doc["warnings"][0]
        m = samples(get(f"http://127.0.0.1:{port}/metrics")[1].decode())
        assert m[("cfdi_connector_pac_credits", (("pac", "sandbox"),))] == 120
        wait_until(lambda: any("120 timbres (POCOS)" in m for _, m in lst.messages), 15,
                   f"STATUS= without the credits: {lst.messages}")  # fmt: skip
        wait_until(lambda: ws.joinpath("var/journal.sqlite.status.json").exists()
                   and "credits" in ws.joinpath("var/journal.sqlite.status.json").read_text(),
                   15, "no credits in the status file")  # fmt: skip
        (ws / "inbox" / "c.dat").write_bytes(dat_file("C", [1]))  # the journal exists
        wait_until(lambda: any((ws / "out" / "xml").glob("C1_*.xml")), 30, "C1 not stamped")
        time.sleep(2.5)  # the status file is rewritten every 2 s
        out = subprocess.run(
            [sys.executable, "-m", "connector.cli", "status", "--config", str(config)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert re.search(r"timbres restantes: 1(19|20) \(por debajo del aviso", out), out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        lst.close()
        if proc.poll() is None:
            proc.kill()


def test_no_credits_left_pauses_the_pac_and_the_invoices_wait_then_go_once(
    tmp_path: Path, sandbox: object
) -> None:
    """At zero the PAC refuses (FEL 905, a coded account error): the PAC is paused, the
    invoices wait in retry_wait (none fails); once credits are bought each is stamped once."""
    sandbox.set_credits("demo", 2)  # type: ignore[attr-defined]
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, workers=1)  # type: ignore[attr-defined]
    (config.parent / "inbox" / "z.dat").write_bytes(dat_file("Z", [1, 2, 3, 4]))
    pipe = start_pipeline(config)
    try:

        def until(check: Callable[[], bool], what: str) -> None:
            def step() -> bool:
                pipe.poll_once()
                return check()

            wait_until(step, 30, what)

        until(lambda: pipe.journal.counts()["retry_wait"] == 2, "two waiting")
        counts = pipe.journal.counts()
        assert counts["failed"] == 0
        assert counts[State.STAMPED] + counts[State.DELIVERED] == 2
        paused = pipe.pacs["sandbox"].state()["paused"]
        assert paused["code"] == "905"
        sandbox.set_credits("demo", 10)  # type: ignore[attr-defined]
        until(lambda: pipe.journal.counts()[State.DELIVERED] == 4, "all delivered")
    finally:
        pipe.close()
    keys = stamps_by_key(sandbox.store)  # type: ignore[attr-defined]
    assert {k: len(v) for k, v in keys.items()} == {("Z", str(f)): 1 for f in (1, 2, 3, 4)}
