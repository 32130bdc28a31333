"""The Carta Porte 3.1 section of the PDF: every value of the complement, read back from the
sealed XML, is on the page (what a highway inspector needs), with the section's labels, and a
stamped document carries SAT's Carta Porte verification QR (IdCCP, FechaOrig, FechaTimb) beside
the CFDI's own."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pypdf
import zxingcpp

from connector.cfdi.model import Comprobante, TimbreFiscalDigital
from connector.cfdi.pdf import qr_url, render_pdf
from connector.cfdi.pdf_cp31 import verification_url
from connector.cfdi.seal import seal_invoice
from connector.cfdi.xmlio import from_xml
from tests.cfdi.strategies import shared_test_csd
from tests.cfdi.test_cp31 import _invoice, full_data
from tests.pdf.test_pdf import _images
from tests.pdf.test_pdf_cce20 import _flat, _values


def _parsed() -> Comprobante:
    c = _invoice(full_data())
    parsed = from_xml(seal_invoice(c, shared_test_csd()))  # what the pipeline renders from
    assert parsed.CartaPorte == c.CartaPorte
    return parsed


def _stamped() -> Comprobante:
    c = _parsed()
    tfd = TimbreFiscalDigital(
        UUID="6F1C1A52-3C2E-4D0E-9A51-436172746131", FechaTimbrado="2025-01-15T10:05:00",
        RfcProvCertif="SPR190613I52", SelloCFD=c.Sello or "", NoCertificadoSAT="30001000000500003456",
        SelloSAT="c2VsbG8gZGVsIFNBVA==",
    )  # fmt: skip
    return c.model_copy(update={"TimbreFiscalDigital": tfd})


def _text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return _flat("".join(page.extract_text() for page in reader.pages))


def test_every_value_of_the_complement_is_on_the_pdf() -> None:
    parsed = _parsed()
    text = _text(render_pdf(parsed))
    assert "COMPLEMENTOCARTAPORTE3.1" in text.upper()
    values = _values(parsed.CartaPorte.model_dump())
    assert len(values) > 80
    missing = [v for v in values if _flat(v) not in text]
    assert missing == []
    for label in ("IdCCP", "Distanciatotal(km)", "Bienestransportados", "PermisoSCT",
                  "Configuraciónvehicular", "Placa", "Licencia", "Partesdetransporte"):  # fmt: skip
        assert label.upper() in text.upper(), label


def test_stamped_carta_porte_has_sats_verification_qr(tmp_path: Path) -> None:
    c = _stamped()
    url = verification_url(c.CartaPorte, c.TimbreFiscalDigital.FechaTimbrado)
    assert url == (
        "https://verificacfdi.facturaelectronica.sat.gob.mx/verificaccp/default.aspx"
        f"?IdCCP={c.CartaPorte.IdCCP}&FechaOrig=2025-01-15T11:00:00"
        "&FechaTimb=2025-01-15T10:05:00"
    )
    pages = _images(render_pdf(c), tmp_path, dpi=200)
    found = {
        r.text
        for page in pages
        for r in zxingcpp.read_barcodes(page)
        if r.format == zxingcpp.BarcodeFormat.QRCode
    }
    assert found == {url, qr_url(c)}


def test_an_unstamped_carta_porte_has_no_verification_qr(tmp_path: Path) -> None:
    pages = _images(render_pdf(_parsed()), tmp_path, dpi=150)
    assert not [r for page in pages for r in zxingcpp.read_barcodes(page)]
    assert re.search("SINTIMBRAR", _text(render_pdf(_parsed())).upper())
