"""The README's first command: ``cfdi-connector demo`` builds a workspace and stamps it all."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from lxml import etree

from connector.demo.erp import INVALID_INVOICES, VALID_INVOICES
from connector.demo.workspace import run_demo

REPO = Path(__file__).resolve().parents[2]


def test_demo_stamps_every_valid_invoice_and_reports_the_bad_file(tmp_path: Path) -> None:
    base = tmp_path / "demo"
    out = io.StringIO()
    assert run_demo(base, out=out) == 0
    text = out.getvalue()
    valid = sum(VALID_INVOICES.values())
    xmls = sorted((base / "out" / "xml").glob("*.xml"))
    assert len(xmls) == valid
    for x in xmls:
        root = etree.fromstring(x.read_bytes())
        uuid = x.stem.split("_", 1)[1]
        assert uuid in text  # the summary names every UUID
        assert (base / "out" / "pdf" / f"{x.stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (base / "out" / "acuse" / f"{x.stem}_acuse.xml").is_file()
        assert root.get("Sello")
    archived = sorted(p.name for p in (base / "archive").rglob("*") if p.is_file())
    assert archived == sorted(VALID_INVOICES)
    (bad,) = INVALID_INVOICES
    assert (base / "failed" / bad).is_file()
    doc = json.loads((base / "failed" / f"{bad}.error.json").read_text(encoding="utf-8"))
    assert {e["invoice"] for e in doc["errors"] if e["invoice"]} and doc["delivered"] == []
    # every error names its invoice, also those of the one that could not be mapped; the bad
    # quantity is named by its own CONCEPTO line, not by a model index that skips the broken
    # CONCEPTO before it
    assert all(e["invoice"].startswith("ERR") for e in doc["errors"]), doc["errors"]
    (qty,) = [e for e in doc["errors"] if e["code"] == "CONN-MAP-NUMBER"]
    source_lines = (REPO / "connector" / "demo" / "erp" / bad).read_text(encoding="utf-8")
    line = next(i for i, x in enumerate(source_lines.splitlines(), 1) if "|uno|" in x)
    assert qty["location"] == f"{bad}:{line}:Cantidad" and qty["invoice"].endswith("2")
    assert f"Cantidad del registro CONCEPTO (línea {line})" in qty["message"]
    assert "Conceptos[0]" not in qty["message"]
    assert f"{bad}.error.txt" in text
    assert list((base / "inbox").iterdir()) == []
    # no secret in the configuration: passwords come from files
    assert "12345678a" not in (base / "connector.toml").read_text(encoding="utf-8")
    log = (base / "var" / "connector.log").read_text(encoding="utf-8")
    assert "12345678a" not in log
    lines = [json.loads(x) for x in log.splitlines() if x.strip()]
    stamped = [x for x in lines if x["event"] == "stamped"]
    assert len(stamped) == valid and all(x["file"] and x["invoice"] and x["uuid"] for x in stamped)

    # a second demo in the same folder stamps new invoices (new folios), nothing is overwritten
    assert run_demo(base, out=io.StringIO()) == 0
    assert len(list((base / "out" / "xml").glob("*.xml"))) == 2 * valid


def test_demo_keep_running_takes_new_files_until_interrupted(tmp_path: Path) -> None:
    import os
    import shutil
    import signal
    import subprocess
    import time

    from tests.daemon.conftest import dat_file

    exe = shutil.which("cfdi-connector")
    cmd = [exe] if exe else [sys.executable, "-m", "connector.cli"]
    base = tmp_path / "demo"
    proc = subprocess.Popen(
        [*cmd, "demo", "--dir", str(base), "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Sigo vigilando" in line:
                break
        assert any("Facturas timbradas: 8" in x for x in seen), "".join(seen)
        tmp = base / "inbox" / ".nuevo.dat.part"
        tmp.write_bytes(dat_file("NEW", [1]))
        os.replace(tmp, base / "inbox" / "nuevo.dat")
        for _ in range(600):
            if list((base / "out" / "xml").glob("NEW1_*.xml")) and list(
                (base / "archive").rglob("nuevo.dat")
            ):
                break
            time.sleep(0.1)
        assert list((base / "out" / "xml").glob("NEW1_*.xml"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list((base / "archive").rglob("nuevo.dat"))


def test_demo_in_an_impossible_folder_is_a_coded_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector.cli import main

    blocker = tmp_path / "archivo"
    blocker.write_text("no soy carpeta")
    assert main(["demo", "--dir", str(blocker / "demo")]) == 2
    assert "CONN-DEMO" in capsys.readouterr().out
