"""Representación impresa (PDF) of a CFDI 4.0, stamped or not, ours or another software's.

``render_pdf(c)`` draws one Letter-size document with fpdf2: emisor and receptor, the
comprobante data (with the descriptions of SAT's codes), the conceptos table flowing over as
many pages as needed (headers repeated, "Página N de M"), the tax summary and totals with the
total in words, the Pagos 2.0 complement, and the stamp (UUID, certificates, seals, the cadena
original del complemento de certificación and SAT's verification QR). ``cancelled=True`` adds a
"CANCELADO" watermark on every page; an unstamped CFDI gets a "SIN TIMBRAR" note instead of the
stamp section.

Fonts are shipped in ``fonts/`` (DejaVu Sans, plus Noto Sans Symbols 2 as fallback), never taken
from the system. For speed the text is set in a Latin subset of DejaVu Sans (see
``fonts/README.md``); the full DejaVu Sans and Noto Sans Symbols 2 are added as fallbacks only
when the invoice has characters outside that subset. Each font file is parsed once per process.

The QR (``qr_url``) follows Anexo 20 (CFDI 4.0, "código de barras bidimensional"): ``id`` UUID,
``re`` RFC emisor, ``rr`` RFC receptor, ``tt`` the Total with up to 6 decimals and the
non-significant zeros omitted (at least one decimal: ``3327.01``, ``1000.0``), ``fe`` the last 8
characters of the emisor's Sello; values are URL-encoded (``&`` in an RFC becomes ``%26``). It is
drawn as vector squares (error correction M, 30 mm wide with its quiet zone ≥ 27.5 mm of code).
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import segno
from fontTools import ttLib
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos
from fpdf.fonts import SubsetMap, TTFFont

from .errors import CfdiError
from .model import Comprobante, Concepto, Pago, TimbreFiscalDigital
from .words import amount_in_words

__all__ = [
    "PdfStyle",
    "amount_in_words",
    "qr_url",
    "render_pdf",
    "total_for_qr",
    "LEGEND",
]

LEGEND = "Este documento es una representación impresa de un CFDI"
SAT_VERIFY_URL = "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"
FONTS_DIR = Path(__file__).resolve().parent / "fonts"

# --- SAT catalog descriptions (just what the printed form shows) -------------------------------

REGIMEN_FISCAL = {
    "601": "General de Ley Personas Morales",
    "603": "Personas Morales con Fines no Lucrativos",
    "605": "Sueldos y Salarios e Ingresos Asimilados a Salarios",
    "606": "Arrendamiento",
    "607": "Régimen de Enajenación o Adquisición de Bienes",
    "608": "Demás ingresos",
    "610": "Residentes en el Extranjero sin Establecimiento Permanente en México",
    "611": "Ingresos por Dividendos (socios y accionistas)",
    "612": "Personas Físicas con Actividades Empresariales y Profesionales",
    "614": "Ingresos por intereses",
    "615": "Régimen de los ingresos por obtención de premios",
    "616": "Sin obligaciones fiscales",
    "620": "Sociedades Cooperativas de Producción que optan por diferir sus ingresos",
    "621": "Incorporación Fiscal",
    "622": "Actividades Agrícolas, Ganaderas, Silvícolas y Pesqueras",
    "623": "Opcional para Grupos de Sociedades",
    "624": "Coordinados",
    "625": "Régimen de las Actividades Empresariales con ingresos a través de Plataformas "
    "Tecnológicas",
    "626": "Régimen Simplificado de Confianza",
}
USO_CFDI = {
    "G01": "Adquisición de mercancías",
    "G02": "Devoluciones, descuentos o bonificaciones",
    "G03": "Gastos en general",
    "I01": "Construcciones",
    "I02": "Mobiliario y equipo de oficina por inversiones",
    "I03": "Equipo de transporte",
    "I04": "Equipo de computo y accesorios",
    "I05": "Dados, troqueles, moldes, matrices y herramental",
    "I06": "Comunicaciones telefónicas",
    "I07": "Comunicaciones satelitales",
    "I08": "Otra maquinaria y equipo",
    "D01": "Honorarios médicos, dentales y gastos hospitalarios",
    "D02": "Gastos médicos por incapacidad o discapacidad",
    "D03": "Gastos funerales",
    "D04": "Donativos",
    "D05": "Intereses reales efectivamente pagados por créditos hipotecarios (casa habitación)",
    "D06": "Aportaciones voluntarias al SAR",
    "D07": "Primas por seguros de gastos médicos",
    "D08": "Gastos de transportación escolar obligatoria",
    "D09": "Depósitos en cuentas para el ahorro, primas que tengan como base planes de pensiones",
    "D10": "Pagos por servicios educativos (colegiaturas)",
    "S01": "Sin efectos fiscales",
    "CP01": "Pagos",
    "CN01": "Nómina",
}
FORMA_PAGO = {
    "01": "Efectivo",
    "02": "Cheque nominativo",
    "03": "Transferencia electrónica de fondos",
    "04": "Tarjeta de crédito",
    "05": "Monedero electrónico",
    "06": "Dinero electrónico",
    "08": "Vales de despensa",
    "12": "Dación en pago",
    "13": "Pago por subrogación",
    "14": "Pago por consignación",
    "15": "Condonación",
    "17": "Compensación",
    "23": "Novación",
    "24": "Confusión",
    "25": "Remisión de deuda",
    "26": "Prescripción o caducidad",
    "27": "A satisfacción del acreedor",
    "28": "Tarjeta de débito",
    "29": "Tarjeta de servicios",
    "30": "Aplicación de anticipos",
    "31": "Intermediario pagos",
    "99": "Por definir",
}
METODO_PAGO = {
    "PUE": "Pago en una sola exhibición",
    "PPD": "Pago en parcialidades o diferido",
}
TIPO_COMPROBANTE = {
    "I": "Ingreso",
    "E": "Egreso",
    "T": "Traslado",
    "N": "Nómina",
    "P": "Pago",
}
EXPORTACION = {
    "01": "No aplica",
    "02": "Definitiva con clave A1",
    "03": "Temporal",
    "04": "Definitiva con clave distinta a A1 o cuando no existe enajenación en términos del CFF",
}
OBJETO_IMP = {
    "01": "No objeto de impuesto",
    "02": "Sí objeto de impuesto",
    "03": "Sí objeto del impuesto y no obligado al desglose",
    "04": "Sí objeto del impuesto y no causa impuesto",
    "05": "Sí objeto del impuesto, IVA crédito PODEBI",
    "06": "Sí objeto del IVA, no traslado IVA",
    "07": "No traslado del IVA, sí desglose IEPS",
    "08": "No traslado del IVA, no desglose IEPS",
}
IMPUESTO = {"001": "ISR", "002": "IVA", "003": "IEPS"}
TIPO_RELACION = {
    "01": "Nota de crédito de los documentos relacionados",
    "02": "Nota de débito de los documentos relacionados",
    "03": "Devolución de mercancía sobre facturas o traslados previos",
    "04": "Sustitución de los CFDI previos",
    "05": "Traslados de mercancías facturados previamente",
    "06": "Factura generada por los traslados previos",
    "07": "CFDI por aplicación de anticipo",
}
PERIODICIDAD = {
    "01": "Diario",
    "02": "Semanal",
    "03": "Quincenal",
    "04": "Mensual",
    "05": "Bimestral",
}
MESES = {
    "01": "Enero",
    "02": "Febrero",
    "03": "Marzo",
    "04": "Abril",
    "05": "Mayo",
    "06": "Junio",
    "07": "Julio",
    "08": "Agosto",
    "09": "Septiembre",
    "10": "Octubre",
    "11": "Noviembre",
    "12": "Diciembre",
    "13": "Enero-Febrero",
    "14": "Marzo-Abril",
    "15": "Mayo-Junio",
    "16": "Julio-Agosto",
    "17": "Septiembre-Octubre",
    "18": "Noviembre-Diciembre",
}
TITLE = {
    "I": "FACTURA",
    "E": "NOTA DE CRÉDITO",
    "T": "CARTA DE TRASLADO",
    "N": "RECIBO DE NÓMINA",
    "P": "RECIBO ELECTRÓNICO DE PAGO",
}


def describe(catalog: dict[str, str], code: str | None) -> str:
    """``"601 - General de Ley Personas Morales"``; the bare code when it is not in the dict."""
    if not code:
        return ""
    desc = catalog.get(code)
    return f"{code} - {desc}" if desc else code


# --- Style -----------------------------------------------------------------------------------

_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class PdfStyle:
    """Per-emisor look, from configuration: a logo (PNG/JPEG) and the colours."""

    logo_path: Path | None = None
    primary_color: str = "#1F4E79"
    text_color: str = "#222222"
    watermark_color: str = "#C00000"
    footer_note: str | None = None

    def __post_init__(self) -> None:
        for name in ("primary_color", "text_color", "watermark_color"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _COLOR.match(value):
                raise CfdiError.one(
                    "CONN-PDF-COLOR",
                    f"El color {value!r} de {name} no es válido: use el formato #RRGGBB.",
                    name,
                )
        if self.logo_path is not None:
            path = Path(self.logo_path)
            object.__setattr__(self, "logo_path", path)
            if not path.is_file():
                raise CfdiError.one(
                    "CONN-PDF-LOGO", f"No se encuentra el archivo del logotipo {path}.", "logo_path"
                )


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


# --- Fonts: shipped files, parsed once per process --------------------------------------------

_FONT_FILES = {
    ("dv", ""): "DejaVuSans-Latin.ttf",
    ("dv", "B"): "DejaVuSans-Bold-Latin.ttf",
    ("dvx", ""): "DejaVuSans.ttf",
    ("dvx", "B"): "DejaVuSans-Bold.ttf",
    ("sym", ""): "NotoSansSymbols2-Regular.ttf",
}
_templates: dict[tuple[str, str], TTFFont] = {}
_font_bytes: dict[tuple[str, str], bytes] = {}
_font_lock = threading.Lock()


def _template(family: str, style: str) -> TTFFont:
    key = (family, style)
    font = _templates.get(key)
    if font is None:
        with _font_lock:
            font = _templates.get(key)
            if font is None:
                path = FONTS_DIR / _FONT_FILES[key]
                donor = FPDF()
                donor.add_font(family, style, str(path))
                font = donor.fonts[f"{family}{style}"]
                _font_bytes[key] = path.read_bytes()
                _templates[key] = font
    return font


def _attach_font(pdf: FPDF, family: str, style: str) -> None:
    """Add a shipped font to ``pdf`` reusing the per-process parse (cmap, widths, metrics).

    fpdf2 subsets the embedded font in place when writing, so each document gets its own fresh
    fontTools object (a cheap lazy open of bytes kept in memory); the parsed tables that never
    change are shared. If fpdf2's internals ever differ, fall back to a plain ``add_font``.
    """
    fontkey = f"{family}{style}"
    tmpl = _template(family, style)
    try:
        font = copy.copy(tmpl)
        font.i = len(pdf.fonts) + 1
        font.ttfont = ttLib.TTFont(
            BytesIO(_font_bytes[(family, style)]), lazy=True, recalcTimestamp=False
        )
        font.desc = copy.copy(tmpl.desc)
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font._hbfont = None
        font.subset = SubsetMap(font)
        pdf.fonts[fontkey] = font
    except (AttributeError, TypeError):  # pragma: no cover - other fpdf2 versions
        pdf.fonts.pop(fontkey, None)
        pdf.add_font(family, style, str(FONTS_DIR / _FONT_FILES[(family, style)]))


def _cmap(family: str, style: str = "") -> dict[int, str]:
    return _template(family, style).cmap


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(value: Any, *, multiline: bool = False) -> str:
    """Text safe to print: no control characters; newlines kept only where asked."""
    if value is None:
        return ""
    text = str(value)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
        return _CONTROL.sub("", text)
    return _CONTROL.sub("", text.replace("\r", " ").replace("\n", " ").replace("\t", " "))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _fallbacks_needed(c: Comprobante, style: PdfStyle) -> list[str]:
    chars: set[str] = set()
    for s in _strings(c.model_dump(exclude={"OtrosComplementos", "Certificado"})):
        chars.update(s)
    if style.footer_note:
        chars.update(style.footer_note)
    latin = _cmap("dv")
    missing = {ord(ch) for ch in chars if ord(ch) not in latin and ch not in "\n\r\t"}
    if not missing:
        return []
    families = []
    full = _cmap("dvx")
    if missing & full.keys():
        families.append("dvx")
        missing -= full.keys()
    if missing & _cmap("sym").keys():
        families.append("sym")
    return families


# --- Number formatting -------------------------------------------------------------------------


def _money(value: Decimal | None) -> str:
    """Thousands separators, at least 2 decimals, more when the XML has them."""
    if value is None:
        return ""
    try:
        d = Decimal(value)
        if d.as_tuple().exponent > -2:  # type: ignore[operator]
            d = d.quantize(Decimal("0.01"))
        return f"{d:,f}"
    except (InvalidOperation, ValueError, TypeError):
        return str(value)


def _qty(value: Decimal | None) -> str:
    if value is None:
        return ""
    try:
        return f"{Decimal(value):,f}"
    except (InvalidOperation, ValueError, TypeError):
        return str(value)


def _rate(tipo_factor: str | None, value: Decimal | None) -> str:
    if value is None:
        return ""
    if tipo_factor == "Tasa":
        pct = f"{Decimal(value) * 100:f}"
        if "." in pct:
            pct = pct.rstrip("0").rstrip(".")
        return f"{pct}%"
    return f"{value:f}"


def total_for_qr(total: Decimal | None) -> str:
    """Anexo 20 4.0: up to 6 decimals, non-significant zeros omitted, at least one decimal."""
    d = Decimal(total or 0).quantize(Decimal("0.000001"))
    text = f"{d:f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def qr_url(c: Comprobante) -> str:
    """SAT's verification URL for a stamped CFDI (see the module doc for each parameter)."""
    tfd = c.TimbreFiscalDigital
    if tfd is None:
        raise CfdiError.one(
            "CONN-PDF-SIN-TIMBRE",
            "El CFDI no está timbrado: no tiene UUID para el código QR de verificación.",
            "Complemento.TimbreFiscalDigital",
        )
    sello = c.Sello or tfd.SelloCFD or ""
    params = [
        ("id", tfd.UUID),
        ("re", c.Emisor.Rfc),
        ("rr", c.Receptor.Rfc),
        ("tt", total_for_qr(c.Total)),
        ("fe", sello[-8:]),
    ]
    return SAT_VERIFY_URL + "?" + "&".join(f"{k}={quote(v, safe='/=')}" for k, v in params)


def _cadena_tfd(tfd: TimbreFiscalDigital) -> str:
    try:
        from .cadena import cadena_tfd

        return cadena_tfd(tfd)
    except Exception:  # noqa: BLE001 - the printed form falls back to Anexo 20's layout
        parts = [
            tfd.Version,
            tfd.UUID,
            tfd.FechaTimbrado,
            tfd.RfcProvCertif,
            tfd.Leyenda or "",
            tfd.SelloCFD,
            tfd.NoCertificadoSAT,
        ]
        return "||" + "|".join(p for p in parts if p) + "||"


# --- The document ------------------------------------------------------------------------------

_PAGE_W = 215.9  # Letter, mm
_MARGIN = 10.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_BOTTOM = 16.0  # footer area
_LH = 3.4  # line height for 7 pt text
_QR_MM = 30.0

# conceptos table: (title, width, align)
_COLUMNS = [
    ("Clave SAT", 17.0, "L"),
    ("Cantidad", 16.0, "R"),
    ("Unidad", 22.0, "L"),
    ("Descripción", 0.0, "L"),  # the rest
    ("Valor unitario", 23.0, "R"),
    ("Descuento", 19.0, "R"),
    ("Importe", 23.0, "R"),
]
_DESC_W = _CONTENT_W - sum(w for _, w, _ in _COLUMNS)
_COLUMNS[3] = ("Descripción", _DESC_W, "L")


class _Doc(FPDF):
    """fpdf2 document with our footer (legend, page numbers) and the cancelled watermark."""

    def __init__(self, style: PdfStyle, header_text: str, cancelled: bool) -> None:
        super().__init__(orientation="P", unit="mm", format="Letter")
        self.style = style
        self.primary = _rgb(style.primary_color)
        self.text_rgb = _rgb(style.text_color)
        self.header_text = header_text
        self.cancelled = cancelled
        self.table_header: bool = False
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, _BOTTOM)
        self.set_creator("cfdi-connector")
        self.set_title(header_text)

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font("dv", "", 6.5)
            self.set_text_color(110, 110, 110)
            self.cell(
                _CONTENT_W, 4, self.header_text, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
            self.set_draw_color(*self.primary)
            self.line(_MARGIN, self.get_y(), _PAGE_W - _MARGIN, self.get_y())
            self.ln(1.5)
            if self.table_header:
                _table_header(self)

    def footer(self) -> None:
        if self.cancelled:
            self._watermark()
        self.set_y(-12)
        self.set_draw_color(*self.primary)
        self.line(_MARGIN, self.get_y(), _PAGE_W - _MARGIN, self.get_y())
        self.set_font("dv", "", 6.5)
        self.set_text_color(90, 90, 90)
        note = LEGEND
        if self.style.footer_note:
            note += "  ·  " + _clean(self.style.footer_note)
        self.set_xy(_MARGIN, -11)
        self.cell(_CONTENT_W - 30, 4, note, align="L")
        self.set_xy(_PAGE_W - _MARGIN - 30, -11)
        self.cell(30, 4, f"Página {self.page_no()} de {{nb}}", align="R")

    def _watermark(self) -> None:
        x, y = self.get_x(), self.get_y()
        auto = self.auto_page_break
        self.set_auto_page_break(False)
        with self.local_context(fill_opacity=0.22, text_color=_rgb(self.style.watermark_color)):
            self.set_font("dv", "B", 96)
            cx, cy = _PAGE_W / 2, 279.4 / 2
            with self.rotation(52, cx, cy):
                width = self.get_string_width("CANCELADO")
                self.text(cx - width / 2, cy + 12, "CANCELADO")
        self.set_auto_page_break(auto, _BOTTOM)
        self.set_xy(x, y)


def _table_header(pdf: _Doc) -> None:
    pdf.set_font("dv", "B", 6.5)
    pdf.set_fill_color(*pdf.primary)
    pdf.set_text_color(255, 255, 255)
    x = _MARGIN
    y = pdf.get_y()
    for title, width, align in _COLUMNS:
        pdf.set_xy(x, y)
        pdf.cell(width, 5, title, align="R" if align == "R" else "C", fill=True)
        x += width
    pdf.set_xy(_MARGIN, y + 5)
    pdf.set_text_color(*pdf.text_rgb)


class _Renderer:
    def __init__(self, c: Comprobante, style: PdfStyle, cancelled: bool) -> None:
        self.c = c
        self.style = style
        serie_folio = "-".join(p for p in (c.Serie, c.Folio) if p)
        head = f"{TITLE.get(c.TipoDeComprobante, 'CFDI')} {serie_folio}".strip()
        if c.uuid:
            head += f"  ·  Folio fiscal {c.uuid}"
        self.pdf = pdf = _Doc(style, _clean(head), cancelled)
        _attach_font(pdf, "dv", "")
        _attach_font(pdf, "dv", "B")
        fallbacks = _fallbacks_needed(c, style)
        for family in fallbacks:
            _attach_font(pdf, family, "")
            if (family, "B") in _FONT_FILES:
                _attach_font(pdf, family, "B")
        if fallbacks:
            pdf.set_fallback_fonts(fallbacks, exact_match=False)
        pdf.alias_nb_pages()
        pdf.add_page()

    # -- primitives -------------------------------------------------------------------------

    def _font(self, bold: bool = False, size: float = 7.0) -> None:
        self.pdf.set_font("dv", "B" if bold else "", size)

    def _text_color(self) -> None:
        self.pdf.set_text_color(*self.pdf.text_rgb)

    def _lines(self, text: str, width: float, *, char_wrap: bool = False) -> int:
        if not text:
            return 1
        lines = self.pdf.multi_cell(
            width,
            _LH,
            text,
            dry_run=True,
            output="LINES",
            wrapmode=WrapMode.CHAR if char_wrap else WrapMode.WORD,
        )
        return max(1, len(lines))

    def _ensure(self, height: float) -> None:
        """Start a new page unless ``height`` mm fit above the footer."""
        if self.pdf.get_y() + height > self.pdf.page_break_trigger:
            self.pdf.add_page()

    def _section(self, title: str) -> None:
        pdf = self.pdf
        self._ensure(12)
        pdf.ln(1.5)
        self._font(True, 7.5)
        pdf.set_text_color(*pdf.primary)
        pdf.cell(_CONTENT_W, 4.5, title.upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(*pdf.primary)
        pdf.set_line_width(0.3)
        pdf.line(_MARGIN, pdf.get_y(), _PAGE_W - _MARGIN, pdf.get_y())
        pdf.set_line_width(0.2)
        pdf.ln(1)
        self._text_color()

    def _fields(
        self, pairs: list[tuple[str, str]], cols: int, x: float = _MARGIN, width: float = _CONTENT_W
    ) -> None:
        """Label above value, ``cols`` per row; values wrap inside their column."""
        pdf = self.pdf
        pairs = [(label, _clean(value)) for label, value in pairs if value not in (None, "")]
        col_w = width / cols
        for start in range(0, len(pairs), cols):
            row = pairs[start : start + cols]
            self._font(False, 7)
            heights = [self._lines(v, col_w - 2) for _, v in row]
            row_h = 3 + max(heights) * _LH + 0.8
            self._ensure(row_h)
            y = pdf.get_y()
            for i, (label, value) in enumerate(row):
                pdf.set_xy(x + i * col_w, y)
                self._font(True, 5.8)
                pdf.set_text_color(*pdf.primary)
                pdf.cell(col_w - 2, 3, label.upper())
                pdf.set_xy(x + i * col_w, y + 3)
                self._font(False, 7)
                self._text_color()
                pdf.multi_cell(col_w - 2, _LH, value, align="L")
            pdf.set_xy(_MARGIN, y + row_h)

    # -- sections ---------------------------------------------------------------------------

    def header(self) -> None:
        c, pdf = self.c, self.pdf
        top = pdf.get_y()
        x = _MARGIN
        if self.style.logo_path is not None:
            try:
                info = pdf.image(
                    str(self.style.logo_path), x=_MARGIN, y=top, h=18, keep_aspect_ratio=True
                )
                x = _MARGIN + min(float(info.rendered_width), 45.0) + 3
            except Exception as exc:  # noqa: BLE001 - any unreadable image
                raise CfdiError.one(
                    "CONN-PDF-LOGO",
                    f"El logotipo {self.style.logo_path} no es una imagen PNG/JPEG válida: {exc}",
                    "logo_path",
                ) from exc
        box_w = 72.0
        left_w = _PAGE_W - _MARGIN - box_w - 4 - x
        pdf.set_xy(x, top)
        self._font(True, 11)
        pdf.set_text_color(*pdf.primary)
        pdf.multi_cell(left_w, 5, _clean(c.Emisor.Nombre), new_x=XPos.LEFT, new_y=YPos.NEXT)
        self._font(False, 7.5)
        self._text_color()
        lines = [
            f"RFC: {_clean(c.Emisor.Rfc)}",
            f"Régimen fiscal: {describe(REGIMEN_FISCAL, c.Emisor.RegimenFiscal)}",
            f"Lugar de expedición (C.P.): {_clean(c.LugarExpedicion)}",
        ]
        if c.Emisor.FacAtrAdquirente:
            lines.append(f"FacAtrAdquirente: {_clean(c.Emisor.FacAtrAdquirente)}")
        for line in lines:
            pdf.multi_cell(left_w, 3.6, line, new_x=XPos.LEFT, new_y=YPos.NEXT)
        left_bottom = max(pdf.get_y(), top + (18 if self.style.logo_path else 0))

        # the box on the right: title, serie/folio, fecha, folio fiscal
        bx = _PAGE_W - _MARGIN - box_w
        pdf.set_xy(bx, top)
        pdf.set_fill_color(*pdf.primary)
        pdf.set_text_color(255, 255, 255)
        self._font(True, 9)
        pdf.cell(box_w, 6, TITLE.get(c.TipoDeComprobante, "CFDI"), align="C", fill=True)
        rows = [
            ("Serie y folio", " ".join(p for p in (_clean(c.Serie), _clean(c.Folio)) if p) or "—"),
            ("Fecha de emisión", _clean(c.Fecha)),
            ("Folio fiscal (UUID)", c.uuid or "SIN TIMBRAR"),
        ]
        y = top + 6
        for label, value in rows:
            pdf.set_xy(bx + 1.5, y + 0.6)
            self._font(True, 5.8)
            pdf.set_text_color(*pdf.primary)
            pdf.cell(box_w - 3, 2.8, label.upper())
            pdf.set_xy(bx + 1.5, y + 3.2)
            self._font(False, 7)
            self._text_color()
            pdf.multi_cell(box_w - 3, 3.2, value, align="L")
            y = pdf.get_y()
        pdf.set_draw_color(*pdf.primary)
        pdf.rect(bx, top, box_w, y + 0.8 - top)
        pdf.set_y(max(left_bottom, y + 0.8) + 1)

    def receptor(self) -> None:
        r = self.c.Receptor
        self._section("Receptor")
        pairs = [
            ("Nombre / razón social", r.Nombre),
            ("RFC", r.Rfc),
            ("Domicilio fiscal (C.P.)", r.DomicilioFiscalReceptor),
            ("Régimen fiscal", describe(REGIMEN_FISCAL, r.RegimenFiscalReceptor)),
            ("Uso del CFDI", describe(USO_CFDI, r.UsoCFDI)),
            ("Residencia fiscal", r.ResidenciaFiscal or ""),
            ("NumRegIdTrib", r.NumRegIdTrib or ""),
        ]
        self._fields(pairs, 3)

    def comprobante(self) -> None:
        c = self.c
        self._section("Datos del comprobante")
        pairs = [
            ("Tipo de comprobante", describe(TIPO_COMPROBANTE, c.TipoDeComprobante)),
            ("Exportación", describe(EXPORTACION, c.Exportacion)),
            ("Forma de pago", describe(FORMA_PAGO, c.FormaPago)),
            ("Método de pago", describe(METODO_PAGO, c.MetodoPago)),
            ("Moneda", c.Moneda),
            ("Tipo de cambio", _qty(c.TipoCambio) if c.TipoCambio is not None else ""),
            ("Condiciones de pago", c.CondicionesDePago or ""),
            ("No. de certificado del emisor", c.NoCertificado or ""),
            ("Versión", c.Version),
            ("Confirmación", c.Confirmacion or ""),
        ]
        self._fields(pairs, 4)
        g = c.InformacionGlobal
        if g is not None:
            self._section("Información global")
            self._fields(
                [
                    ("Periodicidad", describe(PERIODICIDAD, g.Periodicidad)),
                    ("Meses", describe(MESES, g.Meses)),
                    ("Año", str(g.Anio)),
                ],
                4,
            )
        if c.CfdiRelacionados:
            self._section("CFDI relacionados")
            for rel in c.CfdiRelacionados:
                self._fields(
                    [
                        ("Tipo de relación", describe(TIPO_RELACION, rel.TipoRelacion)),
                        ("UUID relacionados", ", ".join(rel.UUIDs)),
                    ],
                    2,
                )

    def conceptos(self) -> None:
        pdf = self.pdf
        if not self.c.Conceptos:
            return
        self._section("Conceptos")
        self._ensure(5 + 2 * _LH)
        _table_header(pdf)
        pdf.table_header = True
        detail_x = _MARGIN + _COLUMNS[0][1]
        detail_w = _CONTENT_W - _COLUMNS[0][1]
        for index, k in enumerate(self.c.Conceptos):
            cells = [
                _clean(k.ClaveProdServ),
                _qty(k.Cantidad),
                " ".join(p for p in (_clean(k.ClaveUnidad), _clean(k.Unidad)) if p),
                _clean(k.Descripcion, multiline=True),
                _money(k.ValorUnitario),
                _money(k.Descuento) if k.Descuento is not None else "",
                _money(k.Importe),
            ]
            details = self._concepto_details(k)
            self._font(False, 7)
            main_lines = max(
                self._lines(t, w - 1.6) for t, (_, w, _) in zip(cells, _COLUMNS, strict=True)
            )
            self._font(False, 6)
            detail_lines = sum(self._lines(d, detail_w - 1.6) for d in details)
            row_h = main_lines * _LH + detail_lines * 2.9 + 1.6
            self._ensure(row_h)
            y = pdf.get_y()
            if index % 2 == 1:
                pdf.set_fill_color(244, 246, 249)
                pdf.rect(_MARGIN, y, _CONTENT_W, row_h, style="F")
            x = _MARGIN
            self._font(False, 7)
            self._text_color()
            for text, (_, width, align) in zip(cells, _COLUMNS, strict=True):
                pdf.set_xy(x + 0.8, y + 0.8)
                pdf.multi_cell(width - 1.6, _LH, text, align=align)
                x += width
            if details:
                pdf.set_xy(detail_x + 0.8, y + 0.8 + main_lines * _LH)
                self._font(False, 6)
                pdf.set_text_color(90, 90, 90)
                for d in details:
                    pdf.set_x(detail_x + 0.8)
                    pdf.multi_cell(detail_w - 1.6, 2.9, d, new_x=XPos.LEFT, new_y=YPos.NEXT)
                self._text_color()
            pdf.set_draw_color(200, 205, 212)
            pdf.line(_MARGIN, y + row_h, _PAGE_W - _MARGIN, y + row_h)
            pdf.set_xy(_MARGIN, y + row_h)
        pdf.table_header = False

    @staticmethod
    def _concepto_details(k: Concepto) -> list[str]:
        out: list[str] = []
        head = []
        if k.NoIdentificacion:
            head.append(f"No. identificación: {_clean(k.NoIdentificacion)}")
        head.append(f"Objeto de impuesto: {describe(OBJETO_IMP, k.ObjetoImp)}")
        out.append("   ".join(head))
        if k.Impuestos is not None:
            for t in k.Impuestos.Traslados:
                imp = IMPUESTO.get(t.Impuesto, t.Impuesto)
                if t.TipoFactor == "Exento":
                    out.append(f"Traslado {imp} ({t.Impuesto}) Exento   Base {_money(t.Base)}")
                else:
                    out.append(
                        f"Traslado {imp} ({t.Impuesto}) {t.TipoFactor} "
                        f"{_rate(t.TipoFactor, t.TasaOCuota)}   Base {_money(t.Base)}   "
                        f"Importe {_money(t.Importe)}"
                    )
            for r in k.Impuestos.Retenciones:
                imp = IMPUESTO.get(r.Impuesto, r.Impuesto)
                out.append(
                    f"Retención {imp} ({r.Impuesto}) {r.TipoFactor} "
                    f"{_rate(r.TipoFactor, r.TasaOCuota)}   Base {_money(r.Base)}   "
                    f"Importe {_money(r.Importe)}"
                )
        if k.ACuentaTerceros is not None:
            t3 = k.ACuentaTerceros
            out.append(
                f"A cuenta de terceros: {_clean(t3.NombreACuentaTerceros)} RFC "
                f"{_clean(t3.RfcACuentaTerceros)}, régimen "
                f"{describe(REGIMEN_FISCAL, t3.RegimenFiscalACuentaTerceros)}, C.P. "
                f"{_clean(t3.DomicilioFiscalACuentaTerceros)}"
            )
        if k.InformacionAduanera:
            out.append("Pedimentos: " + ", ".join(_clean(p) for p in k.InformacionAduanera))
        if k.CuentaPredial:
            out.append("Cuenta predial: " + ", ".join(_clean(p) for p in k.CuentaPredial))
        return out

    def totals(self) -> None:
        c, pdf = self.c, self.pdf
        if c.TipoDeComprobante == "P":
            return
        rows: list[tuple[str, str, bool]] = [("Subtotal", _money(c.SubTotal), False)]
        if c.Descuento is not None and c.Descuento != 0:
            rows.append(("Descuento", _money(c.Descuento), False))
        imp = c.Impuestos
        if imp is not None:
            for t in imp.Traslados:
                name = IMPUESTO.get(t.Impuesto, t.Impuesto)
                if t.TipoFactor == "Exento":
                    rows.append((f"{name} exento (base {_money(t.Base)})", "0.00", False))
                else:
                    rows.append(
                        (
                            f"{name} trasladado {_rate(t.TipoFactor, t.TasaOCuota)}",
                            _money(t.Importe),
                            False,
                        )
                    )
            for r in imp.Retenciones:
                name = IMPUESTO.get(r.Impuesto, r.Impuesto)
                rows.append((f"{name} retenido", _money(r.Importe), False))
        rows.append((f"Total {c.Moneda}", _money(c.Total), True))
        words = ""
        if c.Total is not None:
            try:
                words = amount_in_words(c.Total, c.Moneda)
            except CfdiError:
                words = ""
        right_w = 78.0
        left_w = _CONTENT_W - right_w - 4
        self._font(False, 7.5)
        words_h = 4 + self._lines(words, left_w - 2) * 3.8
        height = max(len(rows) * 4.6 + 1, words_h + 12)
        self._ensure(height + 3)
        pdf.ln(2)
        y = pdf.get_y()
        # left: amount in words and tax totals
        pdf.set_xy(_MARGIN, y)
        self._font(True, 5.8)
        pdf.set_text_color(*pdf.primary)
        pdf.cell(left_w, 3, "IMPORTE CON LETRA")
        pdf.set_xy(_MARGIN, y + 3)
        self._font(True, 7.5)
        self._text_color()
        pdf.multi_cell(left_w, 3.8, words, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if imp is not None:
            pdf.ln(1)
            self._font(False, 6.5)
            summary = []
            if imp.TotalImpuestosTrasladados is not None:
                summary.append(
                    f"Total de impuestos trasladados: {_money(imp.TotalImpuestosTrasladados)}"
                )
            if imp.TotalImpuestosRetenidos is not None:
                summary.append(
                    f"Total de impuestos retenidos: {_money(imp.TotalImpuestosRetenidos)}"
                )
            for t in imp.Traslados:
                summary.append(
                    f"Traslado {IMPUESTO.get(t.Impuesto, t.Impuesto)} {t.TipoFactor} "
                    f"{_rate(t.TipoFactor, t.TasaOCuota)}: base {_money(t.Base)}, "
                    f"importe {_money(t.Importe) or '—'}"
                )
            if summary:
                pdf.multi_cell(left_w, 3, "\n".join(summary), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        left_bottom = pdf.get_y()
        # right: subtotal … total
        rx = _PAGE_W - _MARGIN - right_w
        ry = y
        for label, value, strong in rows:
            if strong:
                pdf.set_fill_color(*pdf.primary)
                pdf.set_text_color(255, 255, 255)
                pdf.rect(rx, ry, right_w, 5.2, style="F")
            else:
                self._text_color()
            self._font(strong, 8 if strong else 7.5)
            pdf.set_xy(rx + 1, ry + 0.6)
            pdf.cell(right_w - 32, 4, label, align="L")
            pdf.set_xy(rx + right_w - 31, ry + 0.6)
            pdf.cell(30, 4, value, align="R")
            ry += 5.2 if strong else 4.4
        self._text_color()
        pdf.set_xy(_MARGIN, max(left_bottom, ry) + 1)

    def pagos(self) -> None:
        pagos = self.c.Pagos
        if pagos is None:
            return
        pdf = self.pdf
        self._section("Complemento de pago (Pagos 2.0)")
        t = pagos.Totales
        totals = [
            ("Monto total de pagos", _money(t.MontoTotalPagos)),
            ("Traslados base IVA 16%", _money(t.TotalTrasladosBaseIVA16)),
            ("Traslados IVA 16%", _money(t.TotalTrasladosImpuestoIVA16)),
            ("Traslados base IVA 8%", _money(t.TotalTrasladosBaseIVA8)),
            ("Traslados IVA 8%", _money(t.TotalTrasladosImpuestoIVA8)),
            ("Traslados base IVA 0%", _money(t.TotalTrasladosBaseIVA0)),
            ("Traslados IVA 0%", _money(t.TotalTrasladosImpuestoIVA0)),
            ("Traslados base IVA exento", _money(t.TotalTrasladosBaseIVAExento)),
            ("Retenciones IVA", _money(t.TotalRetencionesIVA)),
            ("Retenciones ISR", _money(t.TotalRetencionesISR)),
            ("Retenciones IEPS", _money(t.TotalRetencionesIEPS)),
        ]
        self._fields(totals, 4)
        monedas = {p.MonedaP for p in pagos.Pago}
        if t.MontoTotalPagos is not None and len(monedas) <= 1:
            # Totales are always in MXN (Pagos 2.0)
            self._fields(
                [("Monto total de pagos con letra", amount_in_words(t.MontoTotalPagos, "MXN"))], 1
            )
        for n, p in enumerate(pagos.Pago, start=1):
            self._pago(n, p)
        pdf.ln(1)

    def _pago(self, n: int, p: Pago) -> None:
        pdf = self.pdf
        self._ensure(30)
        pdf.ln(1)
        self._font(True, 7)
        pdf.set_text_color(*pdf.primary)
        pdf.cell(_CONTENT_W, 4, f"Pago {n}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._text_color()
        pairs = [
            ("Fecha de pago", p.FechaPago),
            ("Forma de pago", describe(FORMA_PAGO, p.FormaDePagoP)),
            ("Moneda", p.MonedaP),
            ("Tipo de cambio", _qty(p.TipoCambioP) if p.TipoCambioP is not None else ""),
            ("Monto", _money(p.Monto)),
            ("Número de operación", p.NumOperacion or ""),
            ("RFC banco ordenante", p.RfcEmisorCtaOrd or ""),
            ("Banco ordenante extranjero", p.NomBancoOrdExt or ""),
            ("Cuenta ordenante", p.CtaOrdenante or ""),
            ("RFC banco beneficiario", p.RfcEmisorCtaBen or ""),
            ("Cuenta beneficiaria", p.CtaBeneficiario or ""),
            ("Tipo de cadena de pago", p.TipoCadPago or ""),
        ]
        self._fields(pairs, 4)
        if p.ImpuestosP is not None:
            lines = []
            for tp in p.ImpuestosP.TrasladosP:
                lines.append(
                    f"Traslado {IMPUESTO.get(tp.ImpuestoP, tp.ImpuestoP)} {tp.TipoFactorP} "
                    f"{_rate(tp.TipoFactorP, tp.TasaOCuotaP)}: base {_money(tp.BaseP)}, "
                    f"importe {_money(tp.ImporteP) or '—'}"
                )
            for rp in p.ImpuestosP.RetencionesP:
                lines.append(
                    f"Retención {IMPUESTO.get(rp.ImpuestoP, rp.ImpuestoP)}: {_money(rp.ImporteP)}"
                )
            if lines:
                self._fields([("Impuestos del pago", "; ".join(lines))], 1)
        if not p.DoctoRelacionado:
            return
        cols = [
            ("Documento relacionado (UUID)", 58.0, "L"),
            ("Serie / folio", 24.0, "L"),
            ("Moneda / equiv.", 20.0, "L"),
            ("Parcialidad", 15.0, "R"),
            ("Saldo anterior", 26.0, "R"),
            ("Importe pagado", 26.0, "R"),
            ("Saldo insoluto", _CONTENT_W - 169.0, "R"),
        ]

        def head() -> None:
            self._font(True, 6.2)
            pdf.set_fill_color(*pdf.primary)
            pdf.set_text_color(255, 255, 255)
            x, y = _MARGIN, pdf.get_y()
            for title, width, align in cols:
                pdf.set_xy(x, y)
                pdf.cell(width, 4.5, title, align=align, fill=True)
                x += width
            pdf.set_xy(_MARGIN, y + 4.5)
            self._text_color()

        self._ensure(4.5 + 2 * _LH + 3)
        head()
        for d in p.DoctoRelacionado:
            cells = [
                d.IdDocumento,
                " ".join(x for x in (_clean(d.Serie), _clean(d.Folio)) if x),
                d.MonedaDR
                + (f" / {_qty(d.EquivalenciaDR)}" if d.EquivalenciaDR is not None else ""),
                str(d.NumParcialidad),
                _money(d.ImpSaldoAnt),
                _money(d.ImpPagado),
                _money(d.ImpSaldoInsoluto),
            ]
            taxes = []
            if d.ImpuestosDR is not None:
                for tr in d.ImpuestosDR.TrasladosDR:
                    taxes.append(
                        f"Traslado {IMPUESTO.get(tr.ImpuestoDR, tr.ImpuestoDR)} {tr.TipoFactorDR} "
                        f"{_rate(tr.TipoFactorDR, tr.TasaOCuotaDR)} base {_money(tr.BaseDR)} "
                        f"importe {_money(tr.ImporteDR) or '—'}"
                    )
                for rr in d.ImpuestosDR.RetencionesDR:
                    taxes.append(
                        f"Retención {IMPUESTO.get(rr.ImpuestoDR, rr.ImpuestoDR)} "
                        f"{_rate(rr.TipoFactorDR, rr.TasaOCuotaDR)} base {_money(rr.BaseDR)} "
                        f"importe {_money(rr.ImporteDR)}"
                    )
            detail = f"Objeto de impuesto: {describe(OBJETO_IMP, d.ObjetoImpDR)}"
            if taxes:
                detail += "   " + "; ".join(taxes)
            self._font(False, 6.8)
            main = max(
                self._lines(_clean(t), w - 1.6) for t, (_, w, _) in zip(cells, cols, strict=True)
            )
            self._font(False, 6)
            dl = self._lines(detail, _CONTENT_W - 1.6)
            row_h = main * _LH + dl * 2.9 + 1.4
            if pdf.get_y() + row_h > pdf.page_break_trigger:
                pdf.add_page()
                head()
            y = pdf.get_y()
            x = _MARGIN
            self._font(False, 6.8)
            for text, (_, width, align) in zip(cells, cols, strict=True):
                pdf.set_xy(x + 0.8, y + 0.7)
                pdf.multi_cell(width - 1.6, _LH, _clean(text), align=align)
                x += width
            pdf.set_xy(_MARGIN + 0.8, y + 0.7 + main * _LH)
            self._font(False, 6)
            pdf.set_text_color(90, 90, 90)
            pdf.multi_cell(_CONTENT_W - 1.6, 2.9, detail)
            self._text_color()
            pdf.set_draw_color(200, 205, 212)
            pdf.line(_MARGIN, y + row_h, _PAGE_W - _MARGIN, y + row_h)
            pdf.set_xy(_MARGIN, y + row_h)

    def stamp(self) -> None:
        c, pdf = self.c, self.pdf
        tfd = c.TimbreFiscalDigital
        if tfd is None:
            self._unstamped()
            return
        cadena = _cadena_tfd(tfd)
        blocks = [
            ("Sello digital del CFDI", c.Sello or tfd.SelloCFD),
            ("Sello digital del SAT", tfd.SelloSAT),
            ("Cadena original del complemento de certificación digital del SAT", cadena),
        ]
        text_x = _MARGIN + _QR_MM + 4
        text_w = _CONTENT_W - _QR_MM - 4
        self._font(False, 6)
        heights = [
            3 + self._lines(_clean(v), text_w, char_wrap=True) * 2.7 + 0.6 for _, v in blocks
        ]
        fields_h = 2 * (3 + _LH + 0.8)
        needed = 6 + max(_QR_MM, fields_h + sum(heights))
        self._ensure(min(needed, pdf.page_break_trigger - _MARGIN - 5))
        self._section("Timbre fiscal digital")
        y0 = pdf.get_y()
        self._draw_qr(qr_url(c), _MARGIN, y0, _QR_MM)
        pairs = [
            ("Folio fiscal (UUID)", tfd.UUID),
            ("Fecha y hora de certificación", tfd.FechaTimbrado),
            ("RFC del proveedor de certificación", tfd.RfcProvCertif),
            ("No. de certificado del emisor", c.NoCertificado or ""),
            ("No. de certificado del SAT", tfd.NoCertificadoSAT),
            ("Versión del timbre", tfd.Version),
        ]
        if tfd.Leyenda:
            pairs.append(("Leyenda", tfd.Leyenda))
        self._fields(pairs, 3, x=text_x, width=text_w)
        for label, value in blocks:
            self._seal_block(label, _clean(value), text_x, text_w)
        pdf.set_y(max(pdf.get_y(), y0 + _QR_MM) + 1)
        self._font(True, 7)
        self._text_color()
        pdf.cell(_CONTENT_W, 4, LEGEND, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _seal_block(self, label: str, value: str, x: float, width: float) -> None:
        pdf = self.pdf
        self._ensure(3 + 2 * 2.7)
        pdf.set_x(x)
        self._font(True, 5.8)
        pdf.set_text_color(*pdf.primary)
        pdf.cell(width, 3, label.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
        self._font(False, 6)
        self._text_color()
        pdf.set_x(x)
        pdf.multi_cell(width, 2.7, value, wrapmode=WrapMode.CHAR, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.ln(0.6)

    def _unstamped(self) -> None:
        c, pdf = self.c, self.pdf
        self._ensure(30)
        self._section("Timbre fiscal digital")
        pdf.set_fill_color(253, 236, 234)
        pdf.set_draw_color(192, 0, 0)
        pdf.set_text_color(192, 0, 0)
        self._font(True, 10)
        y = pdf.get_y()
        pdf.multi_cell(
            _CONTENT_W,
            6,
            "SIN TIMBRAR — este comprobante no ha sido certificado por un PAC y no tiene "
            "validez fiscal.",
            border=1,
            align="C",
            fill=True,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_y(max(pdf.get_y(), y + 6) + 1)
        self._text_color()
        if c.Sello:
            self._seal_block("Sello digital del CFDI", _clean(c.Sello), _MARGIN, _CONTENT_W)

    def _draw_qr(self, url: str, x: float, y: float, size: float) -> None:
        """QR as filled vector squares (runs of dark modules merged per row)."""
        pdf = self.pdf
        qr = segno.make(url, error="m", micro=False, boost_error=True)
        matrix = qr.matrix
        n = len(matrix)
        border = 4
        module = size / (n + 2 * border)
        pdf.set_fill_color(255, 255, 255)
        pdf.rect(x, y, size, size, style="F")
        pdf.set_fill_color(0, 0, 0)
        ox, oy = x + border * module, y + border * module
        for r, row in enumerate(matrix):
            c = 0
            while c < n:
                if row[c] & 1:
                    start = c
                    while c < n and row[c] & 1:
                        c += 1
                    pdf.rect(
                        ox + start * module,
                        oy + r * module,
                        (c - start) * module,
                        module + 0.01,
                        style="F",
                    )
                else:
                    c += 1

    def render(self) -> bytes:
        self.header()
        self.receptor()
        self.comprobante()
        self.conceptos()
        self.totals()
        self.pagos()
        self.stamp()
        return bytes(self.pdf.output())


def render_pdf(c: Comprobante, *, style: PdfStyle | None = None, cancelled: bool = False) -> bytes:
    """The representación impresa of ``c`` as PDF bytes (see the module doc)."""
    if not isinstance(c, Comprobante):
        raise CfdiError.one(
            "CONN-PDF-DATOS", "Se esperaba un Comprobante CFDI 4.0 para la representación impresa."
        )
    renderer = _Renderer(c, style or PdfStyle(), cancelled)
    return renderer.render()
