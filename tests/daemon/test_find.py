"""Issue 13, ``find``: what the journal knows of an invoice (by UUID, RFC, serie-folio, date)
and ``--redeliver`` after the ERP lost its outputs: they are back whole (the stamped XML as the
journal keeps it, the PDF with the CANCELADO mark for a cancelled one, the acuses)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pypdf
import pytest
from lxml import etree

from connector.cli import main
from connector.journal import Journal
from tests.daemon.conftest import dat_file, start_pipeline

NS = {"cfdi": "http://www.sat.gob.mx/cfd/4", "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital"}


def _text(pdf: Path) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages)


def test_find_and_redeliver_after_the_outputs_were_deleted(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("F", [1, 2]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    xml = next((ws / "out" / "xml").glob("F1_*.xml"))
    root = etree.fromstring(xml.read_bytes())
    uuid = root.find(".//tfd:TimbreFiscalDigital", NS).get("UUID")
    rr = root.find("cfdi:Receptor", NS).get("Rfc")
    cfg = ["--config", str(workspace)]
    assert main(["cancel", uuid, "--motivo", "02", *cfg]) == 0
    capsys.readouterr()

    assert main(["find", uuid, *cfg, "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["factura"] == "F1" and doc["estado"] == "delivered" and doc["uuid"] == uuid
    assert doc["receptor"] == rr and doc["intentos"] >= 1
    assert doc["cancelacion"]["estado"] == "cancelada" and doc["cancelacion"]["motivo"] == "02"
    assert all(o["existe"] for o in doc["salidas"].values())
    assert {"xml", "pdf", "acuse"} <= set(doc["salidas"])
    assert doc["origen"]["archivo"] == "ventas.dat"
    assert [h["a"] for h in doc["historial"]][-1].startswith("cancel")
    assert main(["find", *cfg, "--folio", "F-2", "--json"]) == 0
    assert [d["factura"] for d in json.loads(capsys.readouterr().out)] == ["F2"]
    assert main(["find", *cfg, "--rfc", rr, "--json"]) == 0
    assert sorted(d["factura"] for d in json.loads(capsys.readouterr().out)) == ["F1", "F2"]
    # by the date the connector received them (the journal's), not the CFDI's Fecha
    now = datetime.now()
    today, yesterday, tomorrow = (str((now + timedelta(days=d)).date()) for d in (0, -1, 1))
    assert main(["find", *cfg, "--from", today, "--to", today, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found) == 2 and all(d["recibida"].startswith(today) for d in found)
    assert main(["find", *cfg, "--from", today, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    for outside in (["--to", yesterday], ["--from", tomorrow]):
        assert main(["find", *cfg, *outside, "--json"]) == 1
        assert json.loads(capsys.readouterr().out) == []
    assert main(["find", *cfg, "--from", tomorrow, "--to", yesterday]) == 2
    assert "posterior" in capsys.readouterr().err
    assert main(["find", *cfg, "--folio", "Z-9"]) == 1
    assert "No se encontró" in capsys.readouterr().out
    assert main(["find", *cfg]) == 2

    # the ERP lost every output of F1: redelivered whole
    outputs = {k: Path(o["ruta"]) for k, o in doc["salidas"].items()}
    acuse_c = ws / "out" / "acuse" / f"{xml.stem}_cancelacion.xml"
    result = ws / "out" / "xml" / f"{xml.stem}_cancelacion.json"
    kept = {p: p.read_bytes() for p in [*outputs.values(), acuse_c, result]}
    for p in kept:
        p.unlink()
    assert main(["find", uuid, *cfg]) == 0
    assert "(NO ESTÁ)" in capsys.readouterr().out
    assert main(["find", uuid, *cfg, "--redeliver"]) == 0
    said = capsys.readouterr().out
    assert "escrito de nuevo" in said
    with Journal(ws / "var" / "journal.sqlite") as j:
        e = j.find_uuid(uuid)
        assert outputs["xml"].read_bytes() == e.stamped_xml
        assert outputs["acuse"].read_bytes() == e.acuse
    assert "CANCELADO" in _text(outputs["pdf"])
    assert acuse_c.read_bytes() == kept[acuse_c]
    assert json.loads(result.read_text("utf-8"))["estado"] == "cancelada"
    leftovers = [p for p in (ws / "out").rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no temporary file left behind
