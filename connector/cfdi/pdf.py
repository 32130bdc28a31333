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
when the invoice has characters outside that subset, cut to just those glyphs. Each font is
parsed once per process, and fpdf2's font subsetting (the dominant cost of a small PDF) is cached
per glyph set: importing this module wraps ``fpdf.output.ftsubset`` so that fonts marked as ours
are subset once; every other font goes through fontTools unchanged.

The QR (``qr_url``) follows Anexo 20 (CFDI 4.0, "código de barras bidimensional"): ``id`` UUID,
``re`` RFC emisor, ``rr`` RFC receptor, ``tt`` the Total with up to 6 decimals and the
non-significant zeros omitted (at least one decimal: ``3327.01``, ``1000.0``), ``fe`` the last 8
characters of the emisor's Sello; values are URL-encoded (``&`` in an RFC becomes ``%26``). It is
drawn as vector squares (error correction M or better, the code 30 mm wide, ≥ 2.75 cm, with
white space around it as quiet zone).
"""

from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import segno
from fontTools import subset as ftsubset
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

from . import pdf_cce20, pdf_cp31
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
_FALLBACK_FAMILIES = ("dvx", "sym")


@dataclass(frozen=True)
class _Loaded:
    """A font ready to attach: parsed (shared, read-only), its bytes, all glyphs picked."""

    font: TTFFont
    data: bytes
    full: SubsetMap  # every glyph of the font picked, in a fixed order


def _load(data: bytes, family: str, style: str) -> _Loaded:
    font = TTFFont(FPDF(), BytesIO(data), f"{family}{style}", style)  # type: ignore[arg-type]
    full = SubsetMap(font)
    for codepoint in sorted(font.cmap):
        full.pick(codepoint)
    return _Loaded(font, data, full)


_loaded: dict[tuple[str, str], _Loaded] = {}
_pieces: OrderedDict[tuple[str, str, frozenset[int]], _Loaded] = OrderedDict()
_PIECES_MAX = 64
_font_lock = threading.Lock()


def _font(family: str, style: str) -> _Loaded:
    """A shipped font file, read and parsed once per process."""
    key = (family, style)
    loaded = _loaded.get(key)
    if loaded is None:
        with _font_lock:
            loaded = _loaded.get(key)
            if loaded is None:
                data = (FONTS_DIR / _FONT_FILES[key]).read_bytes()
                loaded = _loaded[key] = _load(data, family, style)
    return loaded


def _piece(family: str, style: str, codepoints: frozenset[int]) -> _Loaded:
    """Just the glyphs of ``codepoints`` from a big fallback font, cached per character set.

    Subsetting a big font costs tens of milliseconds; the characters an invoice needs from the
    fallbacks are few and repeat (a company's catalogue), so each set is made once per process.
    """
    key = (family, style, codepoints)
    with _font_lock:
        loaded = _pieces.get(key)
        if loaded is not None:
            _pieces.move_to_end(key)
            return loaded
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True, hinting=False)
    options.layout_features = []
    options.drop_tables += ["GDEF", "GPOS", "GSUB", "kern", "MATH", "FFTM"]
    font = ttLib.TTFont(BytesIO(_font(family, style).data), recalcTimestamp=False)
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(unicodes=sorted(codepoints | {0x20}))
    subsetter.subset(font)
    out = BytesIO()
    font.save(out)
    data = out.getvalue()
    loaded = _load(data, family, style)
    with _font_lock:
        _pieces[key] = loaded
        while len(_pieces) > _PIECES_MAX:
            _pieces.popitem(last=False)
    return loaded


class _KeyedFont(ttLib.TTFont):
    """A fontTools font that knows which shipped font (and glyph set) it is, for the cache."""

    cfdi_key: tuple[Any, ...] = ()


_subset_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_SUBSET_CACHE_MAX = 64


def _attach(pdf: FPDF, family: str, style: str, loaded: _Loaded, key: tuple[Any, ...]) -> None:
    """Add a parsed font to ``pdf`` sharing what never changes (cmap, widths, metrics).

    Every glyph of our (small) fonts is embedded, always in the same order, so the embedded
    font is the same for every invoice and fpdf2's font subsetting — the dominant cost of a
    PDF — is done once per process (see ``_CachingSubsetter``). fpdf2 modifies the font object
    when writing, so each document gets its own fontTools object (a lazy open of the bytes).
    """
    tmpl, data, full = loaded.font, loaded.data, loaded.full
    font = copy.copy(tmpl)
    font.i = len(pdf.fonts) + 1
    ttfont = _KeyedFont(BytesIO(data), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    ttfont.cfdi_key = key
    font.ttfont = ttfont
    font.desc = copy.copy(tmpl.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    subset = SubsetMap.__new__(SubsetMap)
    subset.font = font
    subset._next = full._next
    subset._reserved = list(full._reserved)
    subset._char_id_per_glyph = dict(full._char_id_per_glyph)
    font.subset = subset
    pdf.fonts[f"{family}{style}"] = font


class _CachingSubsetter:
    """Stands in for fontTools' Subsetter inside fpdf2's writer (``fpdf.output.ftsubset``).

    For our shipped fonts (a ``_KeyedFont``) the subset of a given glyph set is computed once
    and kept as bytes; the font object is then reloaded from those bytes, which fpdf2 saves
    without re-subsetting. Any other font goes to the real Subsetter unchanged.
    """

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        self._real = ftsubset.Subsetter(options=options, **kwargs)
        self._glyphs: frozenset[str] = frozenset()

    def populate(self, glyphs: Any = (), **kwargs: Any) -> None:
        self._glyphs = frozenset(glyphs)
        self._real.populate(glyphs=glyphs, **kwargs)

    def subset(self, font: Any) -> None:
        key = getattr(font, "cfdi_key", None)
        if not key:
            self._real.subset(font)
            return
        cache_key = (key, self._glyphs)
        with _font_lock:
            data = _subset_cache.get(cache_key)
        if data is None:
            self._real.options.glyph_names = True  # names survive the reload below
            self._real.subset(font)
            out = BytesIO()
            font.save(out)
            data = out.getvalue()
            with _font_lock:
                _subset_cache[cache_key] = data
                while len(_subset_cache) > _SUBSET_CACHE_MAX:
                    _subset_cache.popitem(last=False)
        fresh = ttLib.TTFont(BytesIO(data), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
        font.__dict__.clear()
        font.__dict__.update(fresh.__dict__)


class _SubsetModule:
    """``fontTools.subset`` as fpdf2's writer sees it, with the caching Subsetter."""

    Options = ftsubset.Options
    Subsetter = _CachingSubsetter

    def __getattr__(self, name: str) -> Any:
        return getattr(ftsubset, name)


def _install_subset_cache() -> None:
    import fpdf.output as fpdf_output

    if getattr(fpdf_output, "ftsubset", None) is ftsubset:
        fpdf_output.ftsubset = _SubsetModule()  # type: ignore[assignment]


_install_subset_cache()


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


def _fallback_plan(c: Comprobante, style: PdfStyle) -> dict[str, frozenset[int]]:
    """Characters outside the Latin fonts, per fallback family that has them."""
    chars: set[str] = set()
    for s in _strings(c.model_dump(exclude={"OtrosComplementos", "Certificado"})):
        chars.update(s)
    if style.footer_note:
        chars.update(style.footer_note)
    latin = _font("dv", "").font.cmap
    missing = {ord(ch) for ch in chars if ord(ch) not in latin and ord(ch) >= 0x20}
    plan: dict[str, frozenset[int]] = {}
    for family in _FALLBACK_FAMILIES:
        if not missing:
            break
        found = missing & _font(family, "").font.cmap.keys()
        if found:
            plan[family] = frozenset(found)
            missing -= found
    return plan


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


_ELEMENT_NAME = re.compile(rb"<\s*(?:[\w.-]+:)?([\w.-]+)")


def _complement_names(elements: list[bytes]) -> list[str]:
    """Local names of complements the model keeps verbatim (CartaPorte, ComercioExterior…)."""
    names = []
    for raw in elements:
        body = raw.split(b"?>", 1)[-1] if raw.lstrip().startswith(b"<?") else raw
        match = _ELEMENT_NAME.search(body)
        if match:
            names.append(match.group(1).decode("ascii", "replace"))
    return names


def total_for_qr(total: Decimal | None) -> str:
    """Anexo 20 4.0: up to 6 decimals, non-significant zeros omitted, at least one decimal."""
    try:
        d = Decimal(total or 0).quantize(Decimal("0.000001"))
    except InvalidOperation:  # beyond SAT's 18 integer digits: print what the XML has
        return f"{total}"
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
_PAGE_H = 279.4
_MARGIN = 10.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_BOTTOM = 16.0  # room for the footer
_LH = 3.4  # line height of 7 pt text
_DLH = 2.9  # line height of 6 pt detail text
_SLH = 2.7  # line height of the seals
_QR_MM = 30.0
_PT = 25.4 / 72  # mm per point
_GREY = (90, 90, 90)

# conceptos table: (title, width, align); Descripción takes the rest
_COLUMNS = [
    ("Clave SAT", 17.0, "L"),
    ("Cantidad", 16.0, "R"),
    ("Unidad", 22.0, "L"),
    ("Descripción", 0.0, "L"),
    ("Valor unitario", 23.0, "R"),
    ("Descuento", 19.0, "R"),
    ("Importe", 23.0, "R"),
]
_COLUMNS[3] = ("Descripción", _CONTENT_W - sum(w for _, w, _ in _COLUMNS), "L")
_DR_COLUMNS = [
    ("Documento relacionado (UUID)", 58.0, "L"),
    ("Serie / folio", 24.0, "L"),
    ("Moneda / equiv.", 26.0, "L"),
    ("Parcialidad", 17.0, "R"),
    ("Saldo anterior", 22.0, "R"),
    ("Importe pagado", 22.0, "R"),
    ("Saldo insoluto", 0.0, "R"),
]
_DR_COLUMNS[6] = ("Saldo insoluto", _CONTENT_W - sum(w for _, w, _ in _DR_COLUMNS), "R")


class _Doc(FPDF):
    """fpdf2 document whose page header repeats the running title and the open table's header."""

    def __init__(self, renderer: _Renderer) -> None:
        super().__init__(orientation="P", unit="mm", format="Letter")
        self.renderer = renderer
        self.repeat_header: Any = None  # callable drawing the open table's header
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(False, _BOTTOM)
        # page numbers are written once the count is known: no alias to replace (fpdf2 takes
        # None, though its annotation says str)
        self.alias_nb_pages(None)  # type: ignore[arg-type]
        self.set_creator("cfdi-connector")

    def header(self) -> None:
        if self.page_no() > 1:
            self.renderer.running_header()
            if self.repeat_header is not None:
                self.repeat_header()


class _WidthTable(dict[str, int]):
    """char → advance width in font units for one weight; computed on first use."""

    def __init__(self, renderer: _Renderer, bold: bool) -> None:
        super().__init__()
        self._renderer = renderer
        self._bold = bold

    def __missing__(self, ch: str) -> int:
        width = self[ch] = self._renderer._width_of(self._bold, ch)
        return width


class _Renderer:
    """Lays the CFDI out with our own line breaking (fast, exact) and draws text runs per font."""

    margin, content_w = _MARGIN, _CONTENT_W  # for the complements' sections (pdf_cce20, pdf_cp31)

    def __init__(self, c: Comprobante, style: PdfStyle, cancelled: bool) -> None:
        self.c = c
        self.style = style
        self.cancelled = cancelled
        self.primary = _rgb(style.primary_color)
        self.text_rgb = _rgb(style.text_color)
        serie_folio = "-".join(p for p in (_clean(c.Serie), _clean(c.Folio)) if p)
        head = f"{TITLE.get(c.TipoDeComprobante, 'CFDI')} {serie_folio}".strip()
        if c.uuid:
            head += f"  ·  Folio fiscal {_clean(c.uuid)}"
        self.running = head
        self.pdf = pdf = _Doc(self)
        pdf.set_title(head)
        self._fonts: dict[tuple[str, str], TTFFont] = {}
        for style_ in ("", "B"):
            loaded = _font("dv", style_)
            _attach(pdf, "dv", style_, loaded, ("dv", style_))
            self._fonts[("dv", style_)] = loaded.font
        plan = _fallback_plan(c, style)
        self.fallbacks = list(plan)
        for family, codepoints in plan.items():
            for style_ in ("", "B"):
                if (family, style_) in _FONT_FILES:
                    loaded = _piece(family, style_, codepoints)
                    _attach(pdf, family, style_, loaded, (family, style_, codepoints))
                    self._fonts[(family, style_)] = loaded.font
        self._family_of: dict[str, str] = {}
        self._widths = {bold: _WidthTable(self, bold) for bold in (False, True)}
        # characters drawn with a fallback font (None: the Latin fonts have them all)
        fallback_chars = sorted(chr(cp) for cps in plan.values() for cp in cps)
        self._other = (
            re.compile("[" + "".join(re.escape(ch) for ch in fallback_chars) + "]")
            if fallback_chars
            else None
        )
        self.bold = False
        self.size = 7.0
        self.y = _MARGIN
        pdf.add_page()

    # -- text primitives --------------------------------------------------------------------

    def font(self, bold: bool = False, size: float = 7.0) -> None:
        self.bold = bold
        self.size = size

    def color(self, rgb: tuple[int, int, int] | None = None) -> None:
        self.pdf.set_text_color(*(rgb or self.text_rgb))

    def _family(self, ch: str) -> str:
        family = self._family_of.get(ch)
        if family is None:
            code = ord(ch)
            family = "dv"
            if code not in self._fonts[("dv", "")].cmap:
                for candidate in self.fallbacks:
                    if code in self._fonts[(candidate, "")].cmap:
                        family = candidate
                        break
            self._family_of[ch] = family
        return family

    def _style_for(self, family: str) -> str:
        return "B" if self.bold and (family, "B") in self._fonts else ""

    def _units(self) -> dict[str, int]:
        """Advance widths (1/1000 em) per character in the current weight, filled lazily."""
        table = self._widths[self.bold]
        return table

    def _width_of(self, bold: bool, ch: str) -> int:
        family = self._family(ch)
        style = "B" if bold and (family, "B") in self._fonts else ""
        return int(self._fonts[(family, style)].cw[ord(ch)])

    def width(self, text: str) -> float:
        """Width in mm of ``text`` in the current font and size."""
        return sum(map(self._units().__getitem__, text)) * self.size * _PT / 1000

    def wrap(self, text: str, width: float, *, by_char: bool = False) -> list[str]:
        """Greedy line breaking at spaces (or anywhere with ``by_char``); never wider than width."""
        lines: list[str] = []
        units = self._units().__getitem__
        limit = width * 1000 / (self.size * _PT)  # the width in font units
        space = units(" ")
        for paragraph in text.split("\n"):
            if by_char or " " not in paragraph:
                lines.extend(self._wrap_chars(paragraph, limit))
                continue
            current, used = "", 0
            for word in paragraph.split(" "):
                w = sum(map(units, word))
                if current and used + space + w <= limit:
                    current, used = f"{current} {word}", used + space + w
                    continue
                if not current and w <= limit:
                    current, used = word, w
                    continue
                if current:
                    lines.append(current)
                if w <= limit:
                    current, used = word, w
                else:
                    parts = self._wrap_chars(word, limit)
                    lines.extend(parts[:-1])
                    current = parts[-1]
                    used = sum(map(units, current))
            lines.append(current)
        return lines or [""]

    def _wrap_chars(self, text: str, limit: float) -> list[str]:
        """Break anywhere (seals are unbroken base64); ``limit`` in font units."""
        units = self._units().__getitem__
        lines: list[str] = []
        start, used = 0, 0
        for i, ch in enumerate(text):
            w = units(ch)
            if used + w > limit and i > start:
                lines.append(text[start:i])
                start, used = i, 0
            used += w
        lines.append(text[start:])
        return lines

    def put(
        self, x: float, y: float, width: float, text: str, align: str = "L", lh: float = _LH
    ) -> None:
        """Draw one line inside the box (x, y, width, lh), split into runs per font."""
        if not text:
            return
        if align != "L":
            free = width - self.width(text)
            x += free if align == "R" else free / 2
        baseline = y + lh / 2 + 0.34 * self.size * _PT
        pdf = self.pdf
        if self._other is None or not self._other.search(text):
            pdf.set_font("dv", "B" if self.bold else "", self.size)
            pdf.text(x, baseline, text)
            return
        run_start = 0
        family = self._family(text[0])
        for i in range(1, len(text) + 1):
            next_family = self._family(text[i]) if i < len(text) else None
            if next_family == family:
                continue
            run = text[run_start:i]
            pdf.set_font(family, self._style_for(family), self.size)
            pdf.text(x, baseline, run)
            x += self.width(run)
            run_start, family = i, next_family or family

    def para(
        self,
        x: float,
        width: float,
        text: str,
        *,
        align: str = "L",
        lh: float = _LH,
        by_char: bool = False,
        breakable: bool = False,
    ) -> float:
        """Wrapped text from ``self.y``; returns the height used (page breaks when breakable)."""
        used = 0.0
        for line in self.wrap(text, width, by_char=by_char):
            if breakable and self.y + lh > self.pdf.page_break_trigger:
                self.new_page()
            self.put(x, self.y, width, line, align, lh)
            self.y += lh
            used += lh
        return used

    def height(self, text: str, width: float, lh: float = _LH, by_char: bool = False) -> float:
        return len(self.wrap(text, width, by_char=by_char)) * lh

    # -- layout helpers -----------------------------------------------------------------------

    def new_page(self) -> None:
        self.pdf.add_page()  # the header callback draws and sets self.y

    def ensure(self, height: float) -> None:
        if self.y + height > self.pdf.page_break_trigger:
            self.new_page()

    def running_header(self) -> None:
        self.font(False, 6.5)
        self.color(_GREY)
        self.put(_MARGIN, _MARGIN, _CONTENT_W, self.running, "R", 4)
        self.pdf.set_draw_color(*self.primary)
        self.pdf.line(_MARGIN, _MARGIN + 4.5, _PAGE_W - _MARGIN, _MARGIN + 4.5)
        self.y = _MARGIN + 6
        self.color()

    def section(self, title: str, keep: float = 12) -> None:
        self.ensure(keep + 7)
        self.y += 1.5
        self.font(True, 7.5)
        self.color(self.primary)
        self.put(_MARGIN, self.y, _CONTENT_W, title.upper(), "L", 4.5)
        self.y += 4.5
        pdf = self.pdf
        pdf.set_draw_color(*self.primary)
        pdf.set_line_width(0.3)
        pdf.line(_MARGIN, self.y, _PAGE_W - _MARGIN, self.y)
        pdf.set_line_width(0.2)
        self.y += 1
        self.color()

    def fields(
        self,
        pairs: list[tuple[str, str]],
        cols: int,
        x: float = _MARGIN,
        width: float = _CONTENT_W,
        spans: dict[str, int] | None = None,
    ) -> None:
        """Label above value, ``cols`` per row; a label in ``spans`` takes several columns."""
        spans = spans or {}
        items = [(label, _clean(value)) for label, value in pairs if value not in (None, "")]
        col_w = width / cols
        rows: list[list[tuple[str, str, int]]] = [[]]
        used = 0
        for label, value in items:
            span = min(spans.get(label, 1), cols)
            if used + span > cols:
                rows.append([])
                used = 0
            rows[-1].append((label, value, span))
            used += span
        for row in rows:
            if not row:
                continue
            self.font(False, 7)
            wrapped = [self.wrap(v, col_w * s - 2) for _, v, s in row]
            row_h = 3 + max(len(w) for w in wrapped) * _LH + 0.8
            if len(row) == 1 and row_h > 60:  # a long single value may run over pages
                label, value, span = row[0]
                self.ensure(3 + 2 * _LH)
                self.font(True, 5.8)
                self.color(self.primary)
                self.put(x, self.y, col_w * span - 2, label.upper(), "L", 3)
                self.y += 3
                self.font(False, 7)
                self.color()
                self.para(x, col_w * span - 2, value, breakable=True)
                self.y += 0.8
                continue
            self.ensure(row_h)
            cx = x
            for (label, _, span), lines in zip(row, wrapped, strict=True):
                self.font(True, 5.8)
                self.color(self.primary)
                self.put(cx, self.y, col_w * span - 2, label.upper(), "L", 3)
                self.font(False, 7)
                self.color()
                for n, line in enumerate(lines):
                    self.put(cx, self.y + 3 + n * _LH, col_w * span - 2, line)
                cx += col_w * span
            self.y += row_h

    # -- sections ---------------------------------------------------------------------------

    def header(self) -> None:
        c, pdf = self.c, self.pdf
        top = self.y
        x = _MARGIN
        logo_h = 0.0
        if self.style.logo_path is not None:
            try:
                info = pdf.image(
                    str(self.style.logo_path), x=_MARGIN, y=top, h=18, keep_aspect_ratio=True
                )
            except Exception as exc:  # noqa: BLE001 - any unreadable image
                raise CfdiError.one(
                    "CONN-PDF-LOGO",
                    f"El logotipo {self.style.logo_path} no es una imagen PNG/JPEG válida "
                    f"({type(exc).__name__}).",
                    "logo_path",
                ) from exc
            x = _MARGIN + min(float(info.rendered_width), 45.0) + 3
            logo_h = 18.0
        box_w = 72.0
        left_w = _PAGE_W - _MARGIN - box_w - 4 - x
        self.font(True, 11)
        self.color(self.primary)
        self.para(x, left_w, _clean(c.Emisor.Nombre), lh=5)
        self.font(False, 7.5)
        self.color()
        lines = [
            f"RFC: {_clean(c.Emisor.Rfc)}",
            f"Régimen fiscal: {describe(REGIMEN_FISCAL, c.Emisor.RegimenFiscal)}",
            f"Lugar de expedición (C.P.): {_clean(c.LugarExpedicion)}",
        ]
        if c.Emisor.FacAtrAdquirente:
            lines.append(f"FacAtrAdquirente: {_clean(c.Emisor.FacAtrAdquirente)}")
        for line in lines:
            self.para(x, left_w, line, lh=3.6)
        left_bottom = max(self.y, top + logo_h)

        bx = _PAGE_W - _MARGIN - box_w
        pdf.set_fill_color(*self.primary)
        pdf.rect(bx, top, box_w, 6, style="F")
        self.font(True, 9)
        self.color((255, 255, 255))
        self.put(bx, top, box_w, TITLE.get(c.TipoDeComprobante, "CFDI"), "C", 6)
        self.y = top + 6.6
        rows = [
            ("Serie y folio", " ".join(p for p in (_clean(c.Serie), _clean(c.Folio)) if p) or "—"),
            ("Fecha de emisión", _clean(c.Fecha)),
            ("Folio fiscal (UUID)", _clean(c.uuid) or "SIN TIMBRAR"),
        ]
        for label, value in rows:
            self.font(True, 5.8)
            self.color(self.primary)
            self.put(bx + 1.5, self.y, box_w - 3, label.upper(), "L", 2.8)
            self.y += 2.8
            self.font(False, 7)
            self.color()
            self.para(bx + 1.5, box_w - 3, value, lh=3.3)
            self.y += 0.4
        pdf.set_draw_color(*self.primary)
        pdf.rect(bx, top, box_w, self.y + 0.4 - top)
        self.y = max(left_bottom, self.y + 0.4) + 1

    def receptor(self) -> None:
        r = self.c.Receptor
        self.section("Receptor")
        self.fields(
            [
                ("Nombre / razón social", r.Nombre),
                ("RFC", r.Rfc),
                ("Domicilio fiscal (C.P.)", r.DomicilioFiscalReceptor),
                ("Régimen fiscal", describe(REGIMEN_FISCAL, r.RegimenFiscalReceptor)),
                ("Uso del CFDI", describe(USO_CFDI, r.UsoCFDI)),
                ("Residencia fiscal", r.ResidenciaFiscal or ""),
                ("NumRegIdTrib", r.NumRegIdTrib or ""),
            ],
            3,
        )

    def comprobante(self) -> None:
        c = self.c
        self.section("Datos del comprobante")
        self.fields(
            [
                ("Tipo de comprobante", describe(TIPO_COMPROBANTE, c.TipoDeComprobante)),
                ("Exportación", describe(EXPORTACION, c.Exportacion)),
                ("Forma de pago", describe(FORMA_PAGO, c.FormaPago)),
                ("Método de pago", describe(METODO_PAGO, c.MetodoPago)),
                ("Moneda", c.Moneda),
                ("Tipo de cambio", _qty(c.TipoCambio) if c.TipoCambio is not None else ""),
                ("Lugar de expedición", c.LugarExpedicion),
                ("Fecha de emisión", c.Fecha),
                ("Condiciones de pago", c.CondicionesDePago or ""),
                ("No. de certificado del emisor", c.NoCertificado or ""),
                ("Versión", c.Version),
                ("Confirmación", c.Confirmacion or ""),
                ("Otros complementos", ", ".join(_complement_names(c.OtrosComplementos))),
            ],
            4,
            spans={"Otros complementos": 2},
        )
        g = c.InformacionGlobal
        if g is not None:
            self.section("Información global")
            self.fields(
                [
                    ("Periodicidad", describe(PERIODICIDAD, g.Periodicidad)),
                    ("Meses", describe(MESES, g.Meses)),
                    ("Año", str(g.Anio)),
                ],
                4,
            )
        if c.CfdiRelacionados:
            self.section("CFDI relacionados")
            for rel in c.CfdiRelacionados:
                self.fields([("Tipo de relación", describe(TIPO_RELACION, rel.TipoRelacion))], 1)
                self.fields([("UUID relacionados", ", ".join(rel.UUIDs))], 1)

    def _table_head(self, columns: list[tuple[str, float, str]], h: float = 5.0) -> None:
        pdf = self.pdf
        pdf.set_fill_color(*self.primary)
        pdf.rect(_MARGIN, self.y, _CONTENT_W, h, style="F")
        self.font(True, 6.3)
        self.color((255, 255, 255))
        x = _MARGIN
        for title, width, align in columns:
            self.put(x + 0.8, self.y, width - 1.6, title, "R" if align == "R" else "C", h)
            x += width
        self.y += h
        self.color()

    def conceptos(self) -> None:
        pdf = self.pdf
        if not self.c.Conceptos:
            return
        self.section("Conceptos", keep=5 + 3 * _LH)
        self._table_head(_COLUMNS)
        pdf.repeat_header = lambda: self._table_head(_COLUMNS)
        detail_x = _MARGIN + _COLUMNS[0][1]
        detail_w = _CONTENT_W - _COLUMNS[0][1] - 1.6
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
            self.font(False, 7)
            wrapped = [self.wrap(t, w - 1.6) for t, (_, w, _) in zip(cells, _COLUMNS, strict=True)]
            if len(wrapped[3]) > 40:  # many line breaks: keep the row within one page
                wrapped[3] = self.wrap(" ".join(cells[3].split()), _COLUMNS[3][1] - 1.6)
            main_h = max(len(w) for w in wrapped) * _LH
            self.font(False, 6)
            details = [line for d in self._concepto_details(k) for line in self.wrap(d, detail_w)]
            row_h = main_h + len(details) * _DLH + 1.6
            self.ensure(min(row_h, pdf.page_break_trigger - 30))
            y = self.y
            if index % 2 == 1:
                pdf.set_fill_color(244, 246, 249)
                pdf.rect(_MARGIN, y, _CONTENT_W, row_h, style="F")
            x = _MARGIN
            self.font(False, 7)
            self.color()
            for lines, (_, width, align) in zip(wrapped, _COLUMNS, strict=True):
                for n, line in enumerate(lines):
                    self.put(x + 0.8, y + 0.8 + n * _LH, width - 1.6, line, align)
                x += width
            self.font(False, 6)
            self.color(_GREY)
            self.y = y + 0.8 + main_h
            for line in details:
                if self.y + _DLH > pdf.page_break_trigger:  # a giant row: continue on next page
                    self.new_page()
                    self.font(False, 6)
                    self.color(_GREY)
                self.put(detail_x + 0.8, self.y, detail_w, line, "L", _DLH)
                self.y += _DLH
            self.color()
            self.y = max(self.y + 0.8, y + row_h) if self.y >= y else self.y + 0.8
            pdf.set_draw_color(200, 205, 212)
            pdf.line(_MARGIN, self.y, _PAGE_W - _MARGIN, self.y)
        pdf.repeat_header = None

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
                f"A cuenta de terceros: {_clean(t3.NombreACuentaTerceros)}, RFC "
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
        rows: list[tuple[str, str]] = [("Subtotal", _money(c.SubTotal))]
        if c.Descuento is not None and c.Descuento != 0:
            rows.append(("Descuento", _money(c.Descuento)))
        imp = c.Impuestos
        summary: list[str] = []
        if imp is not None:
            for t in imp.Traslados:
                name = IMPUESTO.get(t.Impuesto, t.Impuesto)
                if t.TipoFactor == "Exento":
                    rows.append((f"{name} exento", "0.00"))
                else:
                    rows.append(
                        (
                            f"{name} trasladado {_rate(t.TipoFactor, t.TasaOCuota)}",
                            _money(t.Importe),
                        )
                    )
                summary.append(
                    f"Traslado {name} ({t.Impuesto}) {t.TipoFactor} "
                    f"{_rate(t.TipoFactor, t.TasaOCuota)}: base {_money(t.Base)}, "
                    f"importe {_money(t.Importe) or '—'}"
                )
            for r in imp.Retenciones:
                name = IMPUESTO.get(r.Impuesto, r.Impuesto)
                rows.append((f"{name} retenido", _money(r.Importe)))
                summary.append(f"Retención {name} ({r.Impuesto}): importe {_money(r.Importe)}")
            if imp.TotalImpuestosTrasladados is not None:
                summary.append(
                    f"Total de impuestos trasladados: {_money(imp.TotalImpuestosTrasladados)}"
                )
            if imp.TotalImpuestosRetenidos is not None:
                summary.append(
                    f"Total de impuestos retenidos: {_money(imp.TotalImpuestosRetenidos)}"
                )
        words = ""
        if c.Total is not None:
            try:
                words = amount_in_words(c.Total, c.Moneda)
            except CfdiError:
                words = ""
        right_w = 80.0
        left_w = _CONTENT_W - right_w - 6
        self.font(True, 7.5)
        words_h = self.height(words, left_w, 3.8)
        self.font(False, 6.5)
        summary_h = sum(self.height(s, left_w, 3.0) for s in summary)
        height = max(len(rows) * 4.4 + 5.6, 3 + words_h + 1.5 + summary_h)
        self.ensure(height + 3)
        self.y += 2
        top = self.y
        self.font(True, 5.8)
        self.color(self.primary)
        self.put(_MARGIN, self.y, left_w, "IMPORTE CON LETRA", "L", 3)
        self.y += 3
        self.font(True, 7.5)
        self.color()
        self.para(_MARGIN, left_w, words, lh=3.8)
        self.y += 1.5
        if summary:
            self.font(True, 5.8)
            self.color(self.primary)
            self.put(_MARGIN, self.y, left_w, "RESUMEN DE IMPUESTOS", "L", 3)
            self.y += 3
            self.font(False, 6.5)
            self.color()
            for s in summary:
                self.para(_MARGIN, left_w, s, lh=3.0)
        left_bottom = self.y
        rx = _PAGE_W - _MARGIN - right_w
        ry = top
        self.font(False, 7.5)
        for label, value in rows:
            self.put(rx + 1, ry, right_w - 34, label, "L", 4.4)
            self.put(rx + right_w - 33, ry, 32, value, "R", 4.4)
            ry += 4.4
        pdf.set_fill_color(*self.primary)
        pdf.rect(rx, ry + 0.4, right_w, 5.2, style="F")
        self.font(True, 8.5)
        self.color((255, 255, 255))
        self.put(rx + 1, ry + 0.4, right_w - 34, f"Total {_clean(c.Moneda)}", "L", 5.2)
        self.put(rx + right_w - 33, ry + 0.4, 32, _money(c.Total), "R", 5.2)
        self.color()
        self.y = max(left_bottom, ry + 5.6) + 1

    def pagos(self) -> None:
        pagos = self.c.Pagos
        if pagos is None:
            return
        self.section("Complemento de pago (Pagos 2.0)")
        t = pagos.Totales
        self.fields(
            [
                ("Monto total de pagos (MXN)", _money(t.MontoTotalPagos)),
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
            ],
            4,
        )
        if t.MontoTotalPagos is not None:
            # Pagos 2.0 Totales are expressed in MXN
            self.fields(
                [("Monto total de pagos con letra", amount_in_words(t.MontoTotalPagos, "MXN"))], 1
            )
        for n, p in enumerate(pagos.Pago, start=1):
            self._pago(n, p)

    def _pago(self, n: int, p: Pago) -> None:
        pdf = self.pdf
        self.ensure(30)
        self.y += 1
        self.font(True, 7)
        self.color(self.primary)
        self.put(_MARGIN, self.y, _CONTENT_W, f"Pago {n}", "L", 4)
        self.y += 4
        self.color()
        self.fields(
            [
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
            ],
            4,
        )
        if p.ImpuestosP is not None:
            lines = [
                f"Traslado {IMPUESTO.get(tp.ImpuestoP, tp.ImpuestoP)} {tp.TipoFactorP} "
                f"{_rate(tp.TipoFactorP, tp.TasaOCuotaP)}: base {_money(tp.BaseP)}, "
                f"importe {_money(tp.ImporteP) or '—'}"
                for tp in p.ImpuestosP.TrasladosP
            ] + [
                f"Retención {IMPUESTO.get(rp.ImpuestoP, rp.ImpuestoP)}: {_money(rp.ImporteP)}"
                for rp in p.ImpuestosP.RetencionesP
            ]
            if lines:
                self.fields([("Impuestos del pago", "; ".join(lines))], 1)
        if not p.DoctoRelacionado:
            return
        self.ensure(4.5 + 2 * _LH + 3)
        self._table_head(_DR_COLUMNS, 4.5)
        pdf.repeat_header = lambda: self._table_head(_DR_COLUMNS, 4.5)
        for d in p.DoctoRelacionado:
            equiv = f" / {_qty(d.EquivalenciaDR)}" if d.EquivalenciaDR is not None else ""
            cells = [
                _clean(d.IdDocumento),
                " ".join(x for x in (_clean(d.Serie), _clean(d.Folio)) if x),
                _clean(d.MonedaDR) + equiv,
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
            self.font(False, 6.8)
            wrapped = [
                self.wrap(t, w - 1.6) for t, (_, w, _) in zip(cells, _DR_COLUMNS, strict=True)
            ]
            main_h = max(len(w) for w in wrapped) * _LH
            self.font(False, 6)
            detail_lines = self.wrap(detail, _CONTENT_W - 1.6)
            row_h = main_h + len(detail_lines) * _DLH + 1.4
            self.ensure(row_h)
            y = self.y
            x = _MARGIN
            self.font(False, 6.8)
            for lines, (_, width, align) in zip(wrapped, _DR_COLUMNS, strict=True):
                for i, line in enumerate(lines):
                    self.put(x + 0.8, y + 0.7 + i * _LH, width - 1.6, line, align)
                x += width
            self.font(False, 6)
            self.color(_GREY)
            for i, line in enumerate(detail_lines):
                self.put(
                    _MARGIN + 0.8, y + 0.7 + main_h + i * _DLH, _CONTENT_W - 1.6, line, "L", _DLH
                )
            self.color()
            self.y = y + row_h
            pdf.set_draw_color(200, 205, 212)
            pdf.line(_MARGIN, self.y, _PAGE_W - _MARGIN, self.y)
        pdf.repeat_header = None

    def stamp(self) -> None:
        c = self.c
        tfd = c.TimbreFiscalDigital
        if tfd is None:
            self._unstamped()
            return
        blocks = [
            ("Sello digital del CFDI", _clean(c.Sello or tfd.SelloCFD)),
            ("Sello digital del SAT", _clean(tfd.SelloSAT)),
            (
                "Cadena original del complemento de certificación digital del SAT",
                _clean(_cadena_tfd(tfd)),
            ),
        ]
        text_x = _MARGIN + _QR_MM + 5
        text_w = _CONTENT_W - _QR_MM - 5
        self.font(False, 6)
        seals_h = sum(3.6 + self.height(v, text_w, _SLH, by_char=True) for _, v in blocks)
        needed = 6 + max(_QR_MM + 5, 3 * (3 + _LH + 0.8) + seals_h) + 6
        self.ensure(min(needed, self.pdf.page_break_trigger - _MARGIN - 6))
        self.section("Timbre fiscal digital")
        y0 = self.y
        self.draw_qr(qr_url(c), _MARGIN, y0 + 2.5, _QR_MM)
        pairs = [
            ("Folio fiscal (UUID)", tfd.UUID),
            ("Fecha y hora de certificación", tfd.FechaTimbrado),
            ("RFC del proveedor de certificación", tfd.RfcProvCertif),
            ("No. de certificado del emisor", c.NoCertificado or ""),
            ("No. de certificado del SAT", tfd.NoCertificadoSAT),
            ("Versión del timbre", tfd.Version),
            ("Leyenda", tfd.Leyenda or ""),
        ]
        self.fields(
            pairs, 3, x=text_x, width=text_w, spans={"Leyenda": 3, "Folio fiscal (UUID)": 2}
        )
        for label, value in blocks:
            self._seal_block(label, value, text_x, text_w)
        self.y = max(self.y, y0 + _QR_MM + 5) + 1.5
        self.ensure(5)
        self.font(True, 7)
        self.color()
        self.put(_MARGIN, self.y, _CONTENT_W, LEGEND, "C", 4)
        self.y += 4

    def _seal_block(self, label: str, value: str, x: float, width: float) -> None:
        self.ensure(3 + 2 * _SLH)
        self.font(True, 5.8)
        self.color(self.primary)
        self.put(x, self.y, width, label.upper(), "L", 3)
        self.y += 3
        self.font(False, 6)
        self.color()
        self.para(x, width, value, lh=_SLH, by_char=True, breakable=True)
        self.y += 0.6

    def _unstamped(self) -> None:
        c, pdf = self.c, self.pdf
        self.section("Timbre fiscal digital", keep=20)
        pdf.set_fill_color(253, 236, 234)
        pdf.set_draw_color(192, 0, 0)
        pdf.rect(_MARGIN, self.y, _CONTENT_W, 8, style="DF")
        self.font(True, 9.5)
        self.color((192, 0, 0))
        self.put(
            _MARGIN,
            self.y,
            _CONTENT_W,
            "SIN TIMBRAR — este comprobante no ha sido certificado por un PAC y no tiene "
            "validez fiscal",
            "C",
            8,
        )
        self.y += 9
        self.color()
        if c.Sello:
            self._seal_block("Sello digital del CFDI", _clean(c.Sello), _MARGIN, _CONTENT_W)

    def draw_qr(self, url: str, x: float, y: float, size: float) -> None:
        """The QR as filled vector squares (dark runs merged per row)."""
        pdf = self.pdf
        # a fixed mask: choosing the "best" one costs ~100 ms in pure Python; every mask is valid
        matrix = segno.make(url, error="m", micro=False, boost_error=True, mask=0).matrix
        n = len(matrix)
        module = size / n  # the code itself is ``size`` wide; the quiet zone is white page
        ox, oy = x, y
        k, page_h = pdf.k, pdf.h
        ops = []
        for r, row in enumerate(matrix):
            col = 0
            top = (page_h - (oy + r * module)) * k
            height = -module * 1.02 * k
            while col < n:
                if row[col] & 1:
                    start = col
                    while col < n and row[col] & 1:
                        col += 1
                    ops.append(
                        f"{(ox + start * module) * k:.3f} {top:.3f} "
                        f"{(col - start) * module * k:.3f} {height:.3f} re"
                    )
                else:
                    col += 1
        # one path of rectangles filled at once (fpdf2's rect() per run costs ~10x more)
        pdf._out("q 0 g " + " ".join(ops) + " f Q")

    def finish(self) -> None:
        """Footers (legend, "Página N de M") and the CANCELADO watermark on every page."""
        pdf = self.pdf
        total = pdf.page_no()
        note = LEGEND
        if self.style.footer_note:
            note += "  ·  " + _clean(self.style.footer_note)
        for page in range(1, total + 1):
            pdf.page = page
            # fpdf2 tracks font and colours as emitted on the page being written: after going
            # back to a finished page, make it emit them again on that page.
            pdf.current_font_is_set_on_page = False
            pdf.set_fill_color(1, 2, 3)
            pdf.set_fill_color(255, 255, 255)
            pdf.set_draw_color(1, 2, 3)
            y = _PAGE_H - 12
            pdf.set_draw_color(*self.primary)
            pdf.line(_MARGIN, y, _PAGE_W - _MARGIN, y)
            self.font(False, 6.5)
            self.color(_GREY)
            number = f"Página {page} de {total}"
            self.put(_MARGIN, y + 1, _CONTENT_W - 32, note, "L", 4)
            self.put(_PAGE_W - _MARGIN - 30, y + 1, 30, number, "R", 4)
            if self.cancelled:
                self._watermark()
        pdf.page = total

    def _watermark(self) -> None:
        pdf = self.pdf
        with pdf.local_context(fill_opacity=0.22):
            self.color(_rgb(self.style.watermark_color))
            self.font(True, 90)
            cx, cy = _PAGE_W / 2, _PAGE_H / 2
            with pdf.rotation(55, cx, cy):
                w = self.width("CANCELADO")
                self.put(cx - w / 2, cy - 15, w, "CANCELADO", "L", 30)
        self.color()

    def render(self) -> bytes:
        self.header()
        self.receptor()
        self.comprobante()
        self.conceptos()
        self.totals()
        self.pagos()
        if self.c.ComercioExterior is not None:
            pdf_cce20.draw(self, self.c.ComercioExterior)
        if self.c.CartaPorte is not None:
            tfd = self.c.TimbreFiscalDigital
            pdf_cp31.draw(self, self.c.CartaPorte, tfd.FechaTimbrado if tfd else None)
        self.stamp()
        self.finish()
        return bytes(self.pdf.output())


def render_pdf(c: Comprobante, *, style: PdfStyle | None = None, cancelled: bool = False) -> bytes:
    """The representación impresa of ``c`` as PDF bytes (see the module doc)."""
    if not isinstance(c, Comprobante):
        raise CfdiError.one(
            "CONN-PDF-DATOS", "Se esperaba un Comprobante CFDI 4.0 para la representación impresa."
        )
    return _Renderer(c, style or PdfStyle(), cancelled).render()


def pdf_command(
    xml_path: str,
    output: str | None = None,
    logo: str | None = None,
    color: str | None = None,
    cancelled: bool = False,
) -> int:
    """``cfdi-connector pdf``: XML file → PDF beside it (or ``output``); Spanish errors, exit 1."""
    import os
    import sys
    import tempfile

    from .xmlio import from_xml

    src = Path(xml_path)
    try:
        try:
            data = src.read_bytes()
        except FileNotFoundError as exc:
            raise CfdiError.one("CONN-PDF-ARCHIVO", f"El archivo {src} no existe.") from exc
        except OSError as exc:
            raise CfdiError.one(
                "CONN-PDF-ARCHIVO", f"No se puede leer el archivo {src} ({exc.__class__.__name__})."
            ) from exc
        options: dict[str, Any] = {}
        if logo:
            options["logo_path"] = Path(logo)
        if color:
            options["primary_color"] = color
        style = PdfStyle(**options)
        comprobante = from_xml(data)
        pdf = render_pdf(comprobante, style=style, cancelled=cancelled)
        out = Path(output) if output else src.with_suffix(".pdf")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pdf)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, out)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CfdiError.one(
                "CONN-PDF-SALIDA", f"No se puede escribir el PDF {out} ({exc.__class__.__name__})."
            ) from exc
    except CfdiError as exc:
        for text in [str(p) for p in exc.problems] or [f"{exc.code} {exc}"]:
            print(f"{src}: {text}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the command never crashes with a traceback
        print(
            f"{src}: CONN-PDF-ERROR No se pudo generar la representación impresa: {exc!r}",
            file=sys.stderr,
        )
        return 1
    print(f"{out}")
    return 0
