"""render_pdf / qr_url / the pdf command, checked on the PDF itself: its text (pypdf), its
pages rendered to images (pdftoppm) and the QR decoded from them (zxing-cpp)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from connector.cfdi.cadena import cadena_tfd
from connector.cfdi.errors import CfdiError
from connector.cfdi.model import (
    CfdiRelacionados,
    Comprobante,
    Concepto,
    ImpuestosConcepto,
    InformacionGlobal,
    Retencion,
    Traslado,
)
from connector.cfdi.pdf import LEGEND, PdfStyle, qr_url, render_pdf, total_for_qr
from connector.cfdi.xmlio import from_xml
from connector.cli import main
from tests.conftest import SAMPLES

STAMPED = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
PAGOS = SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml"
PDFTOPPM = shutil.which("pdftoppm")


def _load(path: Path) -> Comprobante:
    return from_xml(path.read_bytes())


def _pages(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [page.extract_text() for page in reader.pages]


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _images(pdf: bytes, tmp_path: Path, dpi: int = 150) -> list[Image.Image]:
    assert PDFTOPPM, "pdftoppm (poppler-utils) is needed to look at the pages"
    src = tmp_path / "doc.pdf"
    src.write_bytes(pdf)
    subprocess.run([PDFTOPPM, "-r", str(dpi), "-png", str(src), str(tmp_path / "pg")], check=True)
    return [Image.open(p).convert("L") for p in sorted(tmp_path.glob("pg-*.png"))]


@pytest.fixture(scope="module")
def stamped() -> Comprobante:
    return _load(STAMPED)


@pytest.fixture(scope="module")
def stamped_pdf(stamped: Comprobante) -> bytes:
    return render_pdf(stamped)


# --- the shared stamped sample -------------------------------------------------------------------


def test_sample_shows_every_required_field(stamped: Comprobante, stamped_pdf: bytes) -> None:
    assert stamped_pdf.startswith(b"%PDF-")
    pages = _pages(stamped_pdf)
    assert len(pages) == 1
    text = pages[0]
    tfd = stamped.TimbreFiscalDigital
    assert tfd is not None
    for expected in [
        "ESCUELA KEMPER URGATE",
        "EKU9003173C9",
        "601 - General de Ley Personas Morales",
        "86000",  # lugar de expedición
        "MUNICIPIO DE CUAUTITLAN IZCALLI",
        "MCI7306249Y1",
        "603 - Personas Morales con Fines no Lucrativos",
        "54700",
        "G03 - Gastos en general",
        "I - Ingreso",
        "01 - No aplica",  # exportación
        "01 - Efectivo",
        "PUE - Pago en una sola exhibición",
        "MXN",
        "2025-02-19T08:32:29",
        "52161557",
        "H87 PIEZA",
        "Portable tetris gamepad pro++ ⏻",  # a symbol outside DejaVu: the Noto fallback
        "GAMEPAD007",
        "956.04",
        "3,824.15",
        "Traslado IVA (002) Tasa 16%",
        "Base 2,868.11",
        "458.90",
        "3,327.01",
        "TRES MIL TRESCIENTOS VEINTISIETE PESOS 01/100 M.N.",
        tfd.UUID,
        "2025-02-19T08:37:30",
        "CVD110412TF6",
        "30001000000500003416",
        "30001000000500003456",
        LEGEND,
        "Página 1 de 1",
    ]:
        assert expected in text, expected
    flat = _flat(text)
    assert _flat(stamped.Sello or "") in flat
    assert _flat(tfd.SelloSAT) in flat
    cadena = cadena_tfd(tfd)
    assert cadena.startswith("||1.1|6F35D3B5-3651-5370-BC2C-14CDBE384CD7|2025-02-19T08:37:30|")
    assert _flat(cadena) in flat
    assert "CANCELADO" not in text
    assert "SIN TIMBRAR" not in text


def test_qr_url_follows_anexo_20(stamped: Comprobante) -> None:
    assert qr_url(stamped) == (
        "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"
        "?id=6F35D3B5-3651-5370-BC2C-14CDBE384CD7&re=EKU9003173C9&rr=MCI7306249Y1"
        "&tt=3327.01&fe=KklI5Q=="
    )
    odd = stamped.model_copy(
        update={
            "Emisor": stamped.Emisor.model_copy(update={"Rfc": "A&B010101AAA"}),
            "Receptor": stamped.Receptor.model_copy(update={"Rfc": "ÑA&010101AB1"}),
            "Total": Decimal("1000"),
            "Sello": "abc+def/ghi+",
        }
    )
    url = qr_url(odd)
    assert "&re=A%26B010101AAA&" in url
    assert "&rr=%C3%91A%26010101AB1&" in url
    assert "&tt=1000.0&" in url
    assert url.endswith("&fe=def%2Fghi%2B".replace("%2F", "/"))
    assert url.count("&") == 4


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        ("3327.01", "3327.01"),
        ("1000", "1000.0"),
        ("1000.00", "1000.0"),
        ("0", "0.0"),
        ("0.1234567", "0.123457"),
        ("123456789012345678.123456", "123456789012345678.123456"),
        ("10.500000", "10.5"),
        ("1E+30", "1E+30"),
    ],
)
def test_total_for_qr(total: str, expected: str) -> None:
    assert total_for_qr(Decimal(total)) == expected


def test_qr_decodes_to_the_verification_url(
    stamped: Comprobante, stamped_pdf: bytes, tmp_path: Path
) -> None:
    page = _images(stamped_pdf, tmp_path, dpi=200)[0]
    found = [
        r.text for r in zxingcpp.read_barcodes(page) if r.format == zxingcpp.BarcodeFormat.QRCode
    ]
    assert found == [qr_url(stamped)]


def test_qr_is_at_least_2_75_cm_wide(stamped_pdf: bytes, tmp_path: Path) -> None:
    dpi = 200
    page = _images(stamped_pdf, tmp_path, dpi=dpi)[0]
    results = zxingcpp.read_barcodes(page)
    assert len(results) == 1
    pos = results[0].position
    width_px = max(pos.top_right.x, pos.bottom_right.x) - min(pos.top_left.x, pos.bottom_left.x)
    assert width_px / dpi * 25.4 >= 27.5
    assert results[0].ec_level in ("M", "Q", "H")


def test_nothing_is_drawn_in_the_side_margins(stamped_pdf: bytes, tmp_path: Path) -> None:
    _assert_margins_clear(stamped_pdf, tmp_path)


def _assert_margins_clear(pdf: bytes, tmp_path: Path) -> None:
    dpi = 60
    band = int(9 / 25.4 * dpi)  # content starts at 10 mm
    for image in _images(pdf, tmp_path, dpi=dpi):
        w, h = image.size
        left = image.crop((0, 0, band, h))
        right = image.crop((w - band, 0, w, h))
        assert left.getextrema()[0] > 200 and right.getextrema()[0] > 200


# --- a long invoice ----------------------------------------------------------------------------


def _concepto(i: int) -> Concepto:
    base = Decimal(i) * 10 + Decimal("0.5")
    return Concepto(
        ClaveProdServ="01010101",
        NoIdentificacion=f"ART-{i:03d}",
        Cantidad=Decimal("1"),
        ClaveUnidad="H87",
        Unidad="Pieza",
        Descripcion=f"Artículo número {i:03d} con acentos, ñandú y una descripción larga "
        * (3 if i % 7 == 0 else 1),
        ValorUnitario=base,
        Importe=base,
        ObjetoImp="02",
        Impuestos=ImpuestosConcepto(
            Traslados=[
                Traslado(
                    Base=base,
                    Impuesto="002",
                    TipoFactor="Tasa",
                    TasaOCuota=Decimal("0.160000"),
                    Importe=(base * Decimal("0.16")).quantize(Decimal("0.01")),
                )
            ],
            Retenciones=[
                Retencion(
                    Base=base,
                    Impuesto="001",
                    TipoFactor="Tasa",
                    TasaOCuota=Decimal("0.100000"),
                    Importe=(base * Decimal("0.10")).quantize(Decimal("0.01")),
                )
            ]
            if i % 10 == 0
            else [],
        ),
    )


@pytest.fixture(scope="module")
def long_invoice(stamped: Comprobante) -> Comprobante:
    return stamped.model_copy(
        update={
            "Serie": "F",
            "Folio": "60",
            "Conceptos": [_concepto(i) for i in range(1, 61)],
            "CfdiRelacionados": [
                CfdiRelacionados(TipoRelacion="04", UUIDs=["11111111-2222-3333-4444-555555555555"])
            ],
            "InformacionGlobal": InformacionGlobal(Periodicidad="04", Meses="01", Anio=2025),
        }
    )


def test_sixty_conceptos_flow_over_pages_with_headers_and_numbers(
    long_invoice: Comprobante, tmp_path: Path
) -> None:
    pdf = render_pdf(long_invoice)
    pages = _pages(pdf)
    n = len(pages)
    assert n >= 3
    for i, text in enumerate(pages, start=1):
        assert f"Página {i} de {n}" in text
        assert LEGEND in text
    everything = "\n".join(pages)
    for i in range(1, 61):
        assert f"Artículo número {i:03d}" in everything
        assert f"ART-{i:03d}" in everything
    # every concepto row sits on a page that shows the table header
    for text in pages:
        if "Artículo número" in text:
            assert "Clave SAT" in text and "Valor unitario" in text and "Importe" in text
    # rows are in order across pages
    positions = [everything.index(f"ART-{i:03d}") for i in range(1, 61)]
    assert positions == sorted(positions)
    assert "Retención ISR (001) Tasa 10%" in everything
    assert "04 - Sustitución de los CFDI previos" in everything
    assert "11111111-2222-3333-4444-555555555555" in everything
    assert "04 - Mensual" in everything and "01 - Enero" in everything and "2025" in everything
    assert "F 60" in pages[0]
    # the running header on the next pages names the invoice
    assert "FACTURA F-60" in pages[1]
    _assert_margins_clear(pdf, tmp_path)


def test_long_texts_wrap_inside_the_margins(stamped: Comprobante, tmp_path: Path) -> None:
    long_word = "X" * 300
    c = stamped.model_copy(
        update={
            "Emisor": stamped.Emisor.model_copy(
                update={"Nombre": "COMERCIALIZADORA INTERNACIONAL DE PRODUCTOS " * 4}
            ),
            "Receptor": stamped.Receptor.model_copy(update={"Nombre": "RECEPTOR " * 30}),
            "Conceptos": [
                stamped.Conceptos[0].model_copy(
                    update={"Descripcion": ("Descripción muy larga " * 45)[:990] + long_word[:10]}
                ),
                stamped.Conceptos[0].model_copy(update={"Descripcion": long_word}),
            ],
            "CondicionesDePago": "Y" * 200,
        }
    )
    pdf = render_pdf(c)
    text = _flat("".join(_pages(pdf)))
    assert long_word in text
    assert "RECEPTOR" * 30 in text
    _assert_margins_clear(pdf, tmp_path)


def test_unicode_accents_and_symbols_render(stamped: Comprobante) -> None:
    text = "Ñandú, pingüino, ¿qué? ¡sí! € ★ Ω ⏻ ∑ — “comillas” ½ ♻ 🡒"
    c = stamped.model_copy(
        update={
            "Conceptos": [stamped.Conceptos[0].model_copy(update={"Descripcion": text})],
            "Receptor": stamped.Receptor.model_copy(update={"Nombre": "JOSÉ MUÑOZ ÁLVAREZ"}),
        }
    )
    out = "".join(_pages(render_pdf(c)))
    assert text in out
    assert "JOSÉ MUÑOZ ÁLVAREZ" in out


def test_a_character_no_shipped_font_has_still_renders_the_rest(stamped: Comprobante) -> None:
    c = stamped.model_copy(
        update={
            "Conceptos": [
                stamped.Conceptos[0].model_copy(update={"Descripcion": "antes 漢字 después"})
            ]
        }
    )
    out = "".join(_pages(render_pdf(c)))
    assert "antes" in out and "después" in out


def test_control_characters_do_not_break_the_document(stamped: Comprobante) -> None:
    c = stamped.model_copy(
        update={
            "Conceptos": [
                stamped.Conceptos[0].model_copy(
                    update={"Descripcion": "línea uno\nlínea dos\x00\x07\tfin"}
                )
            ]
        }
    )
    text = "".join(_pages(render_pdf(c)))
    assert "línea uno" in text and "línea dos" in text and "fin" in text


# --- cancelled, unstamped, style ---------------------------------------------------------------


def test_cancelled_watermark_on_every_page(long_invoice: Comprobante, tmp_path: Path) -> None:
    pages = _pages(render_pdf(long_invoice, cancelled=True))
    assert len(pages) >= 3
    assert all("CANCELADO" in p for p in pages)
    # and it is drawn: reddish ink only when cancelled
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _images(render_pdf(long_invoice, cancelled=True), tmp_path / "a", dpi=30)
    _images(render_pdf(long_invoice), tmp_path / "b", dpi=30)

    def reddish(folder: Path) -> int:
        img = Image.open(sorted(folder.glob("pg-*.png"))[-1]).convert("RGB")
        return sum(
            n for n, (r, g, b) in img.getcolors(maxcolors=10**6) if r > g + 40 and r > b + 40
        )

    assert reddish(tmp_path / "a") > 500
    assert reddish(tmp_path / "b") == 0


def test_unstamped_cfdi_says_sin_timbrar() -> None:
    c = _load(PAGOS)
    assert c.TimbreFiscalDigital is None
    text = "".join(_pages(render_pdf(c)))
    assert "SIN TIMBRAR" in text
    assert "TIMBRE FISCAL DIGITAL" in text
    assert _flat(c.Sello or "") in _flat(text)
    assert "CADENA ORIGINAL DEL COMPLEMENTO" not in text
    with pytest.raises(CfdiError) as exc:
        qr_url(c)
    assert exc.value.code == "CONN-PDF-SIN-TIMBRE"


def test_pagos_complement_renders_payments_and_documents() -> None:
    c = _load(PAGOS)
    text = " ".join("".join(_pages(render_pdf(c))).split())  # wrapped values joined by a space
    for expected in [
        "RECIBO ELECTRÓNICO DE PAGO",
        "P - Pago",
        "CP01 - Pagos",
        "COMPLEMENTO DE PAGO (PAGOS 2.0)",
        "2023-06-12T17:18:19",
        "03 - Transferencia electrónica de fondos",
        "963852",
        "15,000.00",
        "QUINCE MIL PESOS 00/100 M.N.",
        "00000000-1111-2222-3333-00000000000A",
        "00000000-1111-2222-3333-00000000000B",
        "12,000.00",
        "3,000.00",
        "7,000.00",
        "10,000.00",
        "BMI9704113PA",
        "0198005000",
        "Traslado IVA Tasa 16% base 10,344.83 importe 1,655.17",
        "CARLOS CORTES SOTO",
        "COSC8001137NA",
    ]:
        assert expected in text, expected
    # the parcialidades 2 and 1 appear in the documents' rows
    assert re.search(r"00000000000A MXN / 1 2 12,000.00 12,000.00 0.00", text)
    assert re.search(r"00000000000B MXN / 1 1 10,000.00 3,000.00 7,000.00", text)


def test_style_logo_and_colour(stamped: Comprobante, tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGB", (300, 120), (0, 128, 0)).save(logo)
    pdf = render_pdf(stamped, style=PdfStyle(logo_path=logo, primary_color="#AA0000"))
    img = _images(pdf, tmp_path, dpi=50)[0].convert("L")
    rgb = Image.open(sorted(tmp_path.glob("pg-*.png"))[0]).convert("RGB")
    colours = {c for _, c in rgb.getcolors(maxcolors=100000)}
    assert (0, 128, 0) in colours  # the logo
    assert any(abs(r - 0xAA) < 8 and g < 10 and b < 10 for r, g, b in colours)  # the colour
    assert img.size[0] > 0


def test_bad_style_and_input_are_coded_errors(tmp_path: Path) -> None:
    with pytest.raises(CfdiError) as exc:
        PdfStyle(primary_color="red")
    assert exc.value.code == "CONN-PDF-COLOR"
    with pytest.raises(CfdiError) as exc:
        PdfStyle(logo_path=tmp_path / "missing.png")
    assert exc.value.code == "CONN-PDF-LOGO"
    notimage = tmp_path / "logo.png"
    notimage.write_text("not an image")
    with pytest.raises(CfdiError) as exc:
        render_pdf(_load(STAMPED), style=PdfStyle(logo_path=notimage))
    assert exc.value.code == "CONN-PDF-LOGO"
    with pytest.raises(CfdiError) as exc:
        render_pdf("<xml/>")  # type: ignore[arg-type]
    assert exc.value.code == "CONN-PDF-DATOS"


def test_concurrent_renders_give_the_same_document(stamped: Comprobante) -> None:
    expected = _pages(render_pdf(stamped))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(_pages(render_pdf(stamped)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12 and all(r == expected for r in results)


# --- the command ---------------------------------------------------------------------------------


def test_pdf_command_writes_the_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "factura.xml"
    src.write_bytes(STAMPED.read_bytes())
    assert main(["pdf", str(src), "--color", "#004400"]) == 0
    out = tmp_path / "factura.pdf"
    assert out.read_bytes().startswith(b"%PDF-")
    assert "6F35D3B5-3651-5370-BC2C-14CDBE384CD7" in "".join(_pages(out.read_bytes()))
    other = tmp_path / "otro.pdf"
    assert main(["pdf", str(src), "-o", str(other), "--cancelado"]) == 0
    assert "CANCELADO" in "".join(_pages(other.read_bytes()))
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"not xml at all", "CONN-XML"),
        (b"<html><body/></html>", "CONN-XML"),
        (None, "CONN-PDF-ARCHIVO"),
    ],
)
def test_pdf_command_bad_input_is_a_spanish_coded_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, code: str
) -> None:
    src = tmp_path / "malo.xml"
    if content is not None:
        src.write_bytes(content)
    assert main(["pdf", str(src)]) == 1
    err = capsys.readouterr().err
    assert code in err
    assert str(src) in err
    assert not (tmp_path / "malo.pdf").exists()


def test_pdf_command_bad_colour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pdf", str(STAMPED), "-o", str(tmp_path / "x.pdf"), "--color", "azul"]) == 1
    err = capsys.readouterr().err
    assert "CONN-PDF-COLOR" in err and "no es válido" in err


# --- the speed machinery must not change what is printed ----------------------------------------


def test_cached_font_subsets_print_the_same_pages_as_fpdf2s_own(
    stamped: Comprobante, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fpdf.output
    from fontTools import subset as real_subset

    c = stamped.model_copy(
        update={
            "Conceptos": [
                stamped.Conceptos[0].model_copy(
                    update={"Descripcion": "Ñandú ⏻ Ω ★ “x” ŁĘŻ ẞ – fin"}
                )
            ]
        }
    )
    cached = render_pdf(c)
    render_pdf(c)  # second time: every subset comes from the cache
    again = render_pdf(c)
    monkeypatch.setattr(fpdf.output, "ftsubset", real_subset)
    plain = render_pdf(c)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    img_a = _images(cached, tmp_path / "a", dpi=100)[0]
    img_b = _images(again, tmp_path / "b", dpi=100)[0]
    img_c = _images(plain, tmp_path / "c", dpi=100)[0]
    assert img_a.tobytes() == img_b.tobytes() == img_c.tobytes()
    assert _pages(cached) == _pages(plain)


def test_fallback_glyph_sets_are_kept_apart(stamped: Comprobante) -> None:
    one = stamped.model_copy(
        update={"Conceptos": [stamped.Conceptos[0].model_copy(update={"Descripcion": "uno Ω"})]}
    )
    two = stamped.model_copy(
        update={"Conceptos": [stamped.Conceptos[0].model_copy(update={"Descripcion": "dos ★ Ł"})]}
    )
    for _ in range(2):
        assert "uno Ω" in _pages(render_pdf(one))[0]
        assert "dos ★ Ł" in _pages(render_pdf(two))[0]


@settings(max_examples=50, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abcdefghijklmnñopqrstuvwxyzÁÉÍÓÚ0123456789/+=-.,⏻Ω ")),
        max_size=400,
    ),
    width=st.floats(min_value=8, max_value=190),
    bold=st.booleans(),
    by_char=st.booleans(),
)
def test_line_breaking_keeps_every_character_inside_the_width(
    text: str, width: float, bold: bool, by_char: bool
) -> None:
    renderer = _renderer_for_wrap()
    renderer.font(bold, 7)
    lines = renderer.wrap(text, width, by_char=by_char)
    for line in lines:
        assert renderer.width(line) <= width + 1e-9 or len(line) == 1
    if by_char:
        assert "".join(lines) == text
    else:
        # breaks only at spaces, or inside a word wider than the line
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        if all(renderer.width(word) <= width for word in text.split()):
            assert " ".join(lines).split() == text.split()


_RENDERER: list[Any] = []


def _renderer_for_wrap() -> Any:
    if not _RENDERER:
        from connector.cfdi.pdf import _Renderer

        base = _load(STAMPED)
        c = base.model_copy(
            update={"Conceptos": [base.Conceptos[0].model_copy(update={"Descripcion": "⏻ Ω"})]}
        )
        _RENDERER.append(_Renderer(c, PdfStyle(), False))
    return _RENDERER[0]


_ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FFFF), max_size=120
)
_ANY_AMOUNT = st.one_of(
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**40), max_value=10**40),
)


@settings(max_examples=25, deadline=None)
@given(
    nombre=_ANY_TEXT,
    descripcion=_ANY_TEXT,
    serie=st.one_of(st.none(), _ANY_TEXT),
    total=_ANY_AMOUNT,
    importe=_ANY_AMOUNT,
    moneda=st.sampled_from(["MXN", "USD", "EUR", "XXX", "", "ZZZ"]),
    forma=st.sampled_from([None, "01", "99", "ZZ", ""]),
    cancelled=st.booleans(),
)
def test_any_content_renders_without_crashing(
    nombre: str,
    descripcion: str,
    serie: str | None,
    total: Decimal | None,
    importe: Decimal | None,
    moneda: str,
    forma: str | None,
    cancelled: bool,
) -> None:
    base = _load(STAMPED)
    c = base.model_copy(
        update={
            "Serie": serie,
            "Total": total,
            "Moneda": moneda,
            "FormaPago": forma,
            "Receptor": base.Receptor.model_copy(update={"Nombre": nombre}),
            "Conceptos": [
                base.Conceptos[0].model_copy(
                    update={"Descripcion": descripcion, "Importe": importe}
                )
            ],
        }
    )
    pdf = render_pdf(c, cancelled=cancelled)
    pages = _pages(pdf)
    assert pages and LEGEND in pages[0]


def _text_baselines(pdf: bytes) -> list[tuple[float, float, str]]:
    """(x, y) in points of every text shown, from the PDF's own operators."""
    out: list[tuple[float, float, str]] = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:

        def visit(text: str, cm: list[float], tm: list[float], *_: Any) -> None:
            if text.strip():
                out.append((tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5], text))

        page.extract_text(visitor_text=visit)
    return out


def test_huge_values_flow_over_pages_and_stay_on_the_page(
    stamped: Comprobante, tmp_path: Path
) -> None:
    many = [f"{i:08d}-1111-2222-3333-444444444444" for i in range(300)]
    c = stamped.model_copy(
        update={
            "CfdiRelacionados": [CfdiRelacionados(TipoRelacion="07", UUIDs=many)],
            "Conceptos": [
                stamped.Conceptos[0].model_copy(
                    update={"Descripcion": "\n".join(f"renglón {i}" for i in range(120))}
                )
            ]
            * 3,
        }
    )
    pdf = render_pdf(c)
    pages = _pages(pdf)
    assert len(pages) >= 3
    text = "".join(pages)
    assert all(u in text for u in many)
    assert "renglón 119" in text
    letter_h = 279.4 / 25.4 * 72
    baselines = _text_baselines(pdf)
    assert len(baselines) > 300
    for x, y, shown in baselines:
        assert 10 <= y <= letter_h - 10, (y, shown)
        assert 20 <= x <= 612 - 20, (x, shown)
    _assert_margins_clear(pdf, tmp_path)


def test_other_complements_are_named(stamped: Comprobante) -> None:
    c = stamped.model_copy(
        update={
            "OtrosComplementos": [
                b'<implocal:ImpuestosLocales xmlns:implocal="http://www.sat.gob.mx/implocal"'
                b' version="1.0" TotaldeRetenciones="0" TotaldeTraslados="0"/>'
            ]
        }
    )
    text = " ".join("".join(_pages(render_pdf(c))).split())
    assert "OTROS COMPLEMENTOS ImpuestosLocales" in text
    assert "OTROS COMPLEMENTOS" not in "".join(_pages(render_pdf(stamped)))
