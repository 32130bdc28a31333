"""The README's first command: ``cfdi-connector demo`` builds a workspace and stamps it all."""

from __future__ import annotations

import io
import json
from pathlib import Path

from lxml import etree

from connector.demo.erp import INVALID_INVOICES, VALID_INVOICES
from connector.demo.workspace import run_demo


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
