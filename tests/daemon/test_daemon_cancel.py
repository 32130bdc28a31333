"""Cancelling a delivered invoice with ``cfdi-connector cancel --config``: the journal records
it first, the delivered PDF is replaced by one with the CANCELADO mark, the acuse de cancelación
lands in the acuse folder; a second run does no harm. Real folders, the sandbox PAC over HTTP."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pypdf
import pytest
from lxml import etree

from connector.cli import main
from connector.journal import Journal, State
from tests.daemon.conftest import dat_file, start_pipeline

NS = {"cfdi": "http://www.sat.gob.mx/cfd/4", "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital"}


def _text(pdf: Path) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages)


def _cancel_calls(sandbox: Any) -> int:
    """Cancellation requests the sandbox PAC received (any service)."""
    return sum("ancel" in r.operation for r in sandbox.store.requests_log)


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

    # again: refused before the PAC is called (CONN-CANCEL-YA); the record and files stay
    pdf_bytes, acuse_bytes = pdf.read_bytes(), acuse.read_bytes()
    sent = _cancel_calls(sandbox)
    assert main([*cancel, "--config", str(workspace)]) == 2
    assert "CONN-CANCEL-YA" in capsys.readouterr().err
    assert _cancel_calls(sandbox) == sent
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


def _stamp_one(workspace: Path, serie: str) -> tuple[Path, Any, str, str]:
    """One invoice stamped and delivered by the daemon: its XML, root, UUID, receptor RFC."""
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file(serie, [1]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    (xml,) = _files(ws / "out" / "xml")
    root = etree.fromstring(xml.read_bytes())
    uuid = root.find(".//tfd:TimbreFiscalDigital", NS).get("UUID")
    return xml, root, uuid, root.find("cfdi:Receptor", NS).get("Rfc")


def test_cancel_of_a_cfdi_cancelable_con_aceptacion_is_a_request_until_sat_says_cancelado(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13, first fix: the PAC's 201 for a CFDI "Cancelable con aceptación" only files
    the request. SAT shows Vigente / En proceso: the journal has a request, not a
    cancellation; no CANCELADO mark; `status` does not count it; the user is told the receptor
    must accept. When the receptor accepts, the same command finds SAT's Cancelado and marks
    the PDF. End to end over HTTP: the sandbox PAC and its SAT status service."""
    ws = workspace.parent
    xml, root, uuid, rr = _stamp_one(workspace, "Q")
    pdf = ws / "out" / "pdf" / f"{xml.stem}.pdf"
    sandbox.engine.con_aceptacion.add(uuid)  # the sandbox's documented test knob
    cancel = ["cancel", uuid, "--motivo", "02", "--rfc-receptor", rr, "--total", root.get("Total")]
    capsys.readouterr()

    assert main([*cancel, "--config", str(workspace)]) == 0
    said = capsys.readouterr().out
    assert "solicitud enviada, en espera de aceptación del receptor" in said
    assert "En proceso" in said and "tres días hábiles" in said
    assert "PDF con la marca CANCELADO" not in said
    assert "CANCELADO" not in _text(pdf)
    assert not list((ws / "out" / "acuse").glob("*_cancelacion.xml"))
    with Journal(ws / "var" / "journal.sqlite") as j:
        assert j.cancellation(uuid) is None and j.cancelled_count() == 0
        request = j.cancel_request(uuid)
        assert request is not None and request.state == "en_proceso" and request.motivo == "02"
        assert request.estatus_cancelacion == "En proceso"
        assert request.es_cancelable == "Cancelable con aceptación"
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cancelled"] == 0 and doc["cancel_requests"] == {"en_proceso": 1}
    assert main(["status", "--config", str(workspace)]) == 0
    text = capsys.readouterr().out
    assert "cancelaciones en proceso" in text

    # the receptor accepts: SAT says "Cancelado con aceptación"; asking again records it
    sandbox.engine.answer_cancellation(uuid, "aceptada")
    assert main([*cancel, "--config", str(workspace)]) == 0
    said = capsys.readouterr().out
    assert "el SAT muestra Cancelado (Cancelado con aceptación); cancelada" in said
    assert "PDF con la marca CANCELADO" in said and "CANCELADO" in _text(pdf)
    with Journal(ws / "var" / "journal.sqlite") as j:
        assert j.cancellation(uuid) is not None and j.cancelled_count() == 1
        assert j.cancel_request(uuid).state == "cancelada"
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cancelled"] == 1 and doc["cancel_requests"] == {"cancelada": 1}


def test_a_rejected_request_is_reported_and_the_cfdi_stays_vigente(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace.parent
    xml, root, uuid, rr = _stamp_one(workspace, "W")
    sandbox.engine.con_aceptacion.add(rr)  # every CFDI of this receptor needs its acceptance
    cancel = ["cancel", uuid, "--motivo", "03", "--rfc-receptor", rr, "--total", root.get("Total")]
    assert main([*cancel, "--config", str(workspace)]) == 0
    sandbox.engine.answer_cancellation(uuid, "rechazada")
    sat = ["--re", root.find("cfdi:Emisor", NS).get("Rfc"), "--rr", rr, "--tt", root.get("Total")]
    capsys.readouterr()
    assert main(["sat-status", uuid, *sat, "--sat-url", sandbox.sat_status_url]) == 0
    out = capsys.readouterr().out
    assert "Estado: Vigente" in out and "Estatus de cancelación: Solicitud rechazada" in out
    # a new request after the rejection: filed again, in process again, never "cancelled"
    assert main([*cancel, "--config", str(workspace)]) == 0
    assert "en espera de aceptación del receptor" in capsys.readouterr().out
    with Journal(ws / "var" / "journal.sqlite") as j:
        assert j.cancellation(uuid) is None and j.cancel_request(uuid).state == "en_proceso"
    assert "CANCELADO" not in _text(ws / "out" / "pdf" / f"{xml.stem}.pdf")
