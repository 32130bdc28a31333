"""SIGHUP reloads the configuration of a real ``cfdi-connector run``: checked first (with errors
the running one stays and every error is logged); without errors sources are added, removed or
changed while invoices are in flight, and nothing is lost or stamped twice."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.daemon.conftest import RFC, dat_file, stamps_by_key, write_config
from tests.daemon.test_daemon_http import wait_until
from tests.daemon.test_daemon_notify import Listener, _run

NEW_SOURCE = f"""
[[sources]]
name = "nuevas"
inbox = "inbox2"
adapter = "dat"
include = ["*.dat"]
emisor = "{RFC}"
pac = "sandbox"
stable_seconds = 0.2
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
"""


def events(log: Path, name: str) -> list[dict]:
    if not log.exists():
        return []
    return [d for d in map(json.loads, log.read_text("utf-8").splitlines()) if d["event"] == name]


@pytest.mark.slow
def test_sighup_with_errors_keeps_the_running_configuration(
    tmp_path: Path, sandbox: object
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)  # type: ignore[attr-defined]
    ws = config.parent
    log = ws / "var" / "connector.log"
    good = config.read_text("utf-8")
    lst = Listener(f"@cfdi-reload-{time.monotonic_ns()}")
    proc = _run(config, tmp_path / "daemon.stderr", {"NOTIFY_SOCKET": lst.address})
    try:
        lst.wait_for("READY=1")
        # a new source with an unknown adapter and a missing inbox: two errors
        broken = NEW_SOURCE.replace('adapter = "dat"', 'adapter = "sap"')
        config.write_text(good + broken, encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: events(log, "reload_failed"), 30, "no reload_failed")
        errors = events(log, "reload_error")
        assert sorted(e["code"] for e in errors) == ["CONN-CFG-ADAPTADOR", "CONN-CFG-CARPETA"]
        assert all(e["message"] and "sources[2]" in e["location"] for e in errors)
        assert events(log, "reload_failed")[0]["errors"] == 2
        assert any(m == "RELOADING=1" for _, m in lst.messages)
        assert proc.poll() is None  # still running, on the old configuration
        (ws / "inbox" / "r.dat").write_bytes(dat_file("RB", [1]))
        wait_until(lambda: any((ws / "out" / "xml").glob("RB1_*.xml")), 30, "RB1 not stamped")
        assert events(log, "reloaded") == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        lst.close()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_sighup_adds_changes_and_removes_sources_with_invoices_in_flight(tmp_path: Path) -> None:
    from connector.pac.sandbox import SandboxPac

    pac = SandboxPac.demo(tmp_path / "pac.db", latency=0.5)
    pac.start()
    try:
        config = write_config(tmp_path / "ws", timbrado_url=pac.fel_timbrado_url, workers=2)
        ws = config.parent
        (ws / "inbox2").mkdir()
        log = ws / "var" / "connector.log"
        proc = _run(config, tmp_path / "daemon.stderr", {"NOTIFY_SOCKET": ""})
        try:
            wait_until(lambda: events(log, "ready"), 60, "not ready")
            (ws / "inbox" / "f.dat").write_bytes(dat_file("RF", [1, 2, 3, 4, 5, 6]))
            wait_until(lambda: events(log, "file_taken"), 30, "f.dat not taken")
            # in flight: 2 workers, 0.5 s per request, 6 invoices. The new configuration adds
            # "nuevas", changes "ventas" (its stable time) and removes "xml".
            text = config.read_text("utf-8")
            head, _, xml_and_rest = text.partition('[[sources]]\nname = "xml"')
            text = head.replace("stable_seconds = 0.2", "stable_seconds = 0.3", 1) + NEW_SOURCE
            config.write_text(text, encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            wait_until(lambda: events(log, "reloaded"), 30, "not reloaded")
            done = events(log, "reloaded")[0]
            assert done["added"] == ["nuevas"] and done["changed"] == ["ventas"]
            assert done["removed"] == ["xml"] and done["restart"] == []
            (ws / "inbox2" / "n.dat").write_bytes(dat_file("RN", [1, 2]))
            (ws / "inbox" / "g.dat").write_bytes(dat_file("RG", [1]))
            wait_until(lambda: len(list((ws / "out" / "xml").glob("*.xml"))) == 9, 60,
                       "not everything stamped")  # fmt: skip
            wait_until(lambda: len(list((ws / "archive").rglob("*.dat"))) == 3, 30, "not archived")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        keys = stamps_by_key(pac.store)
        expected = {("RF", str(f)) for f in range(1, 7)} | {("RN", "1"), ("RN", "2"), ("RG", "1")}
        assert set(keys) == expected
        assert {k: v for k, v in keys.items() if len(v) != 1} == {}
        assert not any(p.is_file() for p in (ws / "work").rglob("*"))
    finally:
        pac.close()
