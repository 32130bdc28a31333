"""Issue 5 acceptance on invoices really stamped by the sandbox PAC (not only the shared
sample): a 60-concepto invoice spans pages with numbers and its QR decodes to SAT's URL for
*its* UUID; a stamped Pagos 2.0 receipt shows its payments and its QR says tt=0.0; the
``pdf`` command writes FILE.pdf beside the XML; the emisor's logo and colour from the
configuration reach the daemon's PDF (``rendering.PdfRenderer``)."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pypdf
import pytest
import zxingcpp
from PIL import Image

from connector.cfdi.amounts import complete
from connector.cfdi.csd import Csd
from connector.cfdi.model import Comprobante
from connector.cfdi.pdf import LEGEND, qr_url
from connector.cfdi.seal import seal_invoice
from connector.cfdi.xmlio import from_xml
from connector.cli import main
from connector.pac.base import Timeouts
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac
from tests.cfdi.strategies import shared_test_csd
from tests.conftest import SAMPLES
from tests.pac.drivers_support import EMISOR, invoice

PDFTOPPM = shutil.which("pdftoppm")
SAT_URL = "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"


@pytest.fixture(scope="module")
def csd() -> Csd:
    return shared_test_csd()


@pytest.fixture(scope="module")
def fel(tmp_path_factory: pytest.TempPathFactory, csd: Csd) -> Iterator[FelDriver]:
    db = tmp_path_factory.mktemp("issue5") / "pac.db"
    with SandboxPac(db, accounts=[SandboxAccount("u", "p", "C", 100, csds={EMISOR: csd})]) as pac:
        d = FelDriver(
            "u", "p", cuenta="C", timbrado_url=pac.fel_timbrado_url,
            remote_url=pac.fel_remote_url, timeouts=Timeouts(2, 20),
        )  # fmt: skip
        yield d
        d.close()


def _pages(pdf: bytes) -> list[str]:
    return [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def _qr_codes(pdf: bytes, tmp_path: Path) -> list[str]:
    assert PDFTOPPM, "pdftoppm (poppler-utils) is needed to look at the pages"
    src = tmp_path / "doc.pdf"
    src.write_bytes(pdf)
    subprocess.run([PDFTOPPM, "-r", "200", "-png", str(src), str(tmp_path / "pg")], check=True)
    found = []
    for png in sorted(tmp_path.glob("pg-*.png")):
        for r in zxingcpp.read_barcodes(Image.open(png).convert("L")):
            if r.format == zxingcpp.BarcodeFormat.QRCode:
                found.append(r.text)
    return found


def _sixty(folio: str) -> Comprobante:
    c = invoice(folio)
    first = c.Conceptos[0]
    conceptos = [
        first.model_copy(
            update={
                "NoIdentificacion": f"ART-{i:02d}",
                "Descripcion": f"Artículo {i:02d} — año, ñandú, acentos: áéíóú ÁÉÍÓÚ Ü",
            }
        )
        for i in range(1, 61)
    ]
    derived = {"Conceptos": conceptos, "SubTotal": None, "Total": None, "Impuestos": None}
    return complete(c.model_copy(update=derived))


def test_sixty_conceptos_stamped_pdf_pages_and_qr(fel: FelDriver, csd: Csd, tmp_path: Path) -> None:
    c = _sixty("P60")
    assert c.Total == Decimal("20880.00")  # 60 × 300 + 16 % IVA
    res = fel.stamp(seal_invoice(c, csd), "PDF-60")
    stamped = from_xml(res.xml)
    xml = tmp_path / "P60.xml"
    xml.write_bytes(res.xml)

    assert main(["pdf", str(xml)]) == 0  # no -o: FILE.pdf beside the XML
    pdf = (tmp_path / "P60.pdf").read_bytes()
    pages = _pages(pdf)
    n = len(pages)
    assert n >= 2
    for i, text in enumerate(pages, start=1):
        assert f"Página {i} de {n}" in text
    everything = "\n".join(pages)
    for i in range(1, 61):
        assert f"ART-{i:02d}" in everything
    assert "ñandú" in everything and "ÁÉÍÓÚ" in everything
    assert "VEINTE MIL OCHOCIENTOS OCHENTA PESOS 00/100 M.N." in everything
    assert res.uuid in everything and LEGEND in everything

    sello = stamped.Sello or ""
    expected = (
        f"{SAT_URL}?id={res.uuid}&re={EMISOR}&rr={stamped.Receptor.Rfc}&tt=20880.0"
        f"&fe={sello[-8:].replace('+', '%2B')}"
    )
    assert qr_url(stamped) == expected
    assert _qr_codes(pdf, tmp_path) == [expected]  # one QR in the whole document


def test_stamped_pagos_receipt_pdf(fel: FelDriver, csd: Csd, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from connector.cfdi.xmlio import parse_xml_bytes, serialize

    root = parse_xml_bytes((SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml").read_bytes())
    fecha = (datetime.now() - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    root.set("Fecha", fecha)
    c = from_xml(serialize(root))
    res = fel.stamp(seal_invoice(c, csd), "PDF-PAGO")
    stamped = from_xml(res.xml)
    xml = tmp_path / "pago.xml"
    xml.write_bytes(res.xml)
    out = tmp_path / "recibo.pdf"
    assert main(["pdf", str(xml), "-o", str(out)]) == 0
    pdf = out.read_bytes()
    text = " ".join("".join(_pages(pdf)).split())
    for expected in (
        "RECIBO ELECTRÓNICO DE PAGO",
        "COMPLEMENTO DE PAGO (PAGOS 2.0)",
        "00000000-1111-2222-3333-00000000000A",
        "15,000.00",
        res.uuid,
    ):
        assert expected in text, expected
    assert "SIN TIMBRAR" not in text
    [qr] = _qr_codes(pdf, tmp_path)
    assert qr == qr_url(stamped) and f"id={res.uuid}&" in qr and "&tt=0.0&" in qr


def test_cancelado_mark_from_the_command(fel: FelDriver, csd: Csd, tmp_path: Path) -> None:
    res = fel.stamp(seal_invoice(invoice("CAN1"), csd), "PDF-CAN1")
    xml = tmp_path / "c.xml"
    xml.write_bytes(res.xml)
    assert main(["pdf", str(xml), "--cancelado"]) == 0
    assert all("CANCELADO" in t for t in _pages((tmp_path / "c.pdf").read_bytes()))


@pytest.mark.parametrize("processes", [0, 1], ids=["this-thread", "worker-process"])
def test_emisor_logo_and_colour_from_configuration_reach_the_daemons_pdf(
    fel: FelDriver, csd: Csd, tmp_path: Path, processes: int
) -> None:
    from connector.config import EmisorConfig, PdfStyleConfig
    from connector.rendering import PdfRenderer

    logo = tmp_path / "logo.png"
    Image.new("RGB", (240, 96), (0, 128, 0)).save(logo)
    emisor = EmisorConfig(
        rfc=EMISOR,
        cer=tmp_path / "x.cer",
        key=tmp_path / "x.key",
        password_env="QA_UNUSED",
        pdf=PdfStyleConfig(logo=logo, primary_color="#AA0000"),
    )
    res = fel.stamp(seal_invoice(invoice("LOGO1"), csd), "PDF-LOGO1")
    renderer = PdfRenderer(processes)
    try:
        pdf = renderer.render(res.xml, emisor)
    finally:
        renderer.close()
    assert pdf is not None and pdf.startswith(b"%PDF-")
    src = tmp_path / "l.pdf"
    src.write_bytes(pdf)
    assert PDFTOPPM
    subprocess.run([PDFTOPPM, "-r", "50", "-png", "-f", "1", "-l", "1", str(src), str(tmp_path / "l")], check=True)  # fmt: skip
    [png] = tmp_path.glob("l-*.png")
    colours = {c for _, c in Image.open(png).convert("RGB").getcolors(maxcolors=1 << 20)}
    assert (0, 128, 0) in colours  # the logo
    assert any(abs(r - 0xAA) < 8 and g < 10 and b < 10 for r, g, b in colours)  # the colour


def test_pdf_command_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = str(SAMPLES / "cfdi40-valid_CfdiUtils.xml")
    not_image = tmp_path / "logo.png"
    not_image.write_text("no soy una imagen")
    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(b'<!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>')
    cases = [
        ([str(tmp_path / "no.xml")], "CONN-PDF-ARCHIVO"),
        ([str(tmp_path)], "CONN-PDF-ARCHIVO"),
        ([str(bomb)], "CONN-XML-DTD"),
        ([str(SAMPLES / "sat_test_pac_cert_30001000000500003456.cer")], "CONN-XML"),
        ([sample, "-o", str(tmp_path / "no" / "x.pdf")], "CONN-PDF-SALIDA"),
        ([sample, "-o", str(tmp_path / "x.pdf"), "--color", "rojo"], "CONN-PDF-COLOR"),
        ([sample, "-o", str(tmp_path / "x.pdf"), "--logo", str(tmp_path / "no.png")], "CONN-PDF-LOGO"),
        ([sample, "-o", str(tmp_path / "x.pdf"), "--logo", str(not_image)], "CONN-PDF-LOGO"),
    ]  # fmt: skip
    for argv, code in cases:
        assert main(["pdf", *argv]) == 1, argv
        cap = capsys.readouterr()
        text = cap.out + cap.err
        assert code in text, (argv, text)
        assert "object at 0x" not in text  # no Python internals in a person's message
    assert not (tmp_path / "x.pdf").exists()


def test_usd_with_tipo_cambio_and_discount(fel: FelDriver, csd: Csd, tmp_path: Path) -> None:
    """Moneda, TipoCambio, Descuento (per line and in the totals) and the total in words of a
    foreign currency, on a stamped invoice (the shared sample is MXN)."""
    from connector.cfdi.model import ImpuestosConcepto, Traslado

    c = invoice("USD1")
    iva = Traslado(Impuesto="002", TipoFactor="Tasa", TasaOCuota=Decimal("0.160000"))
    concepto = c.Conceptos[0].model_copy(
        update={"Descuento": Decimal("50.00"), "Impuestos": ImpuestosConcepto(Traslados=[iva])}
    )
    derived = {"SubTotal": None, "Descuento": None, "Total": None, "Impuestos": None}
    c = complete(
        c.model_copy(
            update={"Moneda": "USD", "TipoCambio": Decimal("17.2345"), "Conceptos": [concepto]}
            | derived
        )
    )
    assert (c.SubTotal, c.Descuento, c.Total) == (
        Decimal("300.00"),
        Decimal("50.00"),
        Decimal("290.00"),
    )
    res = fel.stamp(seal_invoice(c, csd), "PDF-USD1")
    xml = tmp_path / "usd.xml"
    xml.write_bytes(res.xml)
    assert main(["pdf", str(xml)]) == 0
    pdf = (tmp_path / "usd.pdf").read_bytes()
    text = " ".join("".join(_pages(pdf)).split())
    for expected in (
        "USD",
        "17.2345",
        "Descuento",
        "50.00",
        "250.00",  # the tax base after the discount
        "290.00",
        "DOSCIENTOS NOVENTA DÓLARES 00/100 USD",
    ):
        assert expected in text, expected
    assert "M.N." not in text
    [qr] = _qr_codes(pdf, tmp_path)
    assert "&tt=290.0&" in qr and f"id={res.uuid}&" in qr
