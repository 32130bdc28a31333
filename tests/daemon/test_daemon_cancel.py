"""Cancelling a delivered invoice with ``cfdi-connector cancel --config``: the journal records
it first, the delivered PDF is replaced by one with the CANCELADO mark, the acuse de cancelación
lands in the acuse folder; a second run does no harm. Real folders, the sandbox PAC over HTTP."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pypdf
import pytest
from lxml import etree

from connector.cli import main
from connector.journal import Journal, State
from tests.daemon.conftest import dat_file, start_pipeline

NS = {"cfdi": "http://www.sat.gob.mx/cfd/4", "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital"}


def _text(pdf: Path) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_cancel_with_config_records_journal_marks_pdf_and_writes_acuse(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("K", [1, 2]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    xml = next(p for p in _files(ws / "out" / "xml") if p.name.startswith("K1_"))
    root = etree.fromstring(xml.read_bytes())
    uuid = root.find(".//tfd:TimbreFiscalDigital", NS).get("UUID")
    rr = root.find("cfdi:Receptor", NS).get("Rfc")
    total = root.get("Total")
    pdf = ws / "out" / "pdf" / f"{xml.stem}.pdf"
    other_pdf = next(p for p in _files(ws / "out" / "pdf") if p.name.startswith("K2_"))
    assert "CANCELADO" not in _text(pdf)
    pdfs_before = [p.name for p in _files(ws / "out" / "pdf")]
    capsys.readouterr()

    cancel = ["cancel", uuid, "--motivo", "02", "--rfc-receptor", rr, "--total", total]
    assert main([*cancel, "--config", str(workspace)]) == 0
    said = capsys.readouterr().out
    assert "registrada en el diario" in said and "CANCELADO" in said

    with Journal(ws / "var" / "journal.sqlite") as j:
        e = j.find_uuid(uuid)
        c = j.cancellation(uuid)
        assert e is not None and e.state is State.DELIVERED  # still delivered, now cancelled
        assert c is not None and c.invoice_id == e.id and c.motivo == "02"
        assert c.folio_sustitucion is None and c.code in ("201", "202") and c.acuse
        assert j.cancelled_count() == 1
        assert "cancelled" in [to for _, to, _ in j.events(e.id)]
    # the same PDF file, now with the mark; the other invoice's PDF untouched
    assert [p.name for p in _files(ws / "out" / "pdf")] == pdfs_before
    assert "CANCELADO" in _text(pdf) and "CANCELADO" not in _text(other_pdf)
    acuse = ws / "out" / "acuse" / f"{xml.stem}_cancelacion.xml"
    assert acuse.exists() and etree.fromstring(acuse.read_bytes()) is not None
    sat = ["--re", root.find("cfdi:Emisor", NS).get("Rfc"), "--rr", rr, "--tt", total]
    assert main(["sat-status", uuid, *sat, "--sat-url", sandbox.sat_status_url]) == 0
    assert "Estado: Cancelado" in capsys.readouterr().out

    # again: harmless (the PAC says 202, the journal keeps the first record, same files)
    pdf_bytes, acuse_bytes = pdf.read_bytes(), acuse.read_bytes()
    assert main([*cancel, "--config", str(workspace)]) == 0
    with Journal(ws / "var" / "journal.sqlite") as j:
        again = j.cancellation(uuid)
        assert again == c and j.cancelled_count() == 1
    assert [p.name for p in _files(ws / "out" / "pdf")] == pdfs_before
    assert "CANCELADO" in _text(pdf) and len(pdf.read_bytes()) == len(pdf_bytes)
    assert acuse.read_bytes() == acuse_bytes
    assert len(list((ws / "out" / "acuse").glob("*_cancelacion.xml"))) == 1
    capsys.readouterr()

    # status counts it; `pdf --config` knows it, without --config no mark
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cancelled"] == 1 and doc["invoices"]["delivered"] == 2
    assert main(["pdf", str(xml), "-o", str(ws / "c.pdf"), "--config", str(workspace)]) == 0
    assert "CANCELADO" in _text(ws / "c.pdf")
    assert main(["pdf", str(xml), "-o", str(ws / "n.pdf")]) == 0
    assert "CANCELADO" not in _text(ws / "n.pdf")
    k2 = ws / "out" / "xml" / f"{other_pdf.stem}.xml"
    assert main(["pdf", str(k2), "-o", str(ws / "k2.pdf"), "--config", str(workspace)]) == 0
    assert "CANCELADO" not in _text(ws / "k2.pdf")


def test_a_redelivery_after_the_cancellation_keeps_the_mark(workspace: Path, sandbox) -> None:
    """The same export arriving again re-delivers the existing stamp: with the mark."""
    ws = workspace.parent
    data = dat_file("M", [1])
    (ws / "inbox" / "ventas.dat").write_bytes(data)
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        (xml,) = _files(ws / "out" / "xml")
        root = etree.fromstring(xml.read_bytes())
        uuid = root.find(".//tfd:TimbreFiscalDigital", NS).get("UUID")
        rr = root.find("cfdi:Receptor", NS).get("Rfc")
        cancel = ["cancel", uuid, "--motivo", "03", "--rfc-receptor", rr]
        assert main([*cancel, "--total", root.get("Total"), "--config", str(workspace)]) == 0
        (ws / "out" / "pdf" / f"{xml.stem}.pdf").unlink()
        (ws / "inbox" / "ventas-otra-vez.dat").write_bytes(data)
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert "CANCELADO" in _text(ws / "out" / "pdf" / f"{xml.stem}.pdf")
