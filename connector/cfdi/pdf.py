"""Representación impresa (PDF) of a CFDI 4.0, stamped or not, ours or another software's.

Over 500 lines for a reason: the CFDI's sections, one method each, drawn in order by one
renderer; the page, fonts, texts and the complements' sections are already modules of their own.

``render_pdf(c)`` draws one Letter-size document with fpdf2: emisor and receptor, the
comprobante data (with the descriptions of SAT's codes), the conceptos table flowing over as
many pages as needed (headers repeated, "Página N de M"), the tax summary and totals with the
total in words, the Pagos 2.0 complement, and the stamp (UUID, certificates, seals, the cadena
original del complemento de certificación and SAT's verification QR). ``cancelled=True`` adds a
"CANCELADO" watermark on every page; an unstamped CFDI gets a "SIN TIMBRAR" note instead of the
stamp section.

The parts: ``pdf_text`` (SAT's descriptions, amounts as text, the QR address), ``pdf_fonts``
(``PdfStyle``, the fonts), ``pdf_layout`` (the page and its text primitives); the sections are
drawn here, the complements' by ``pdf_pagos``, ``pdf_cce20``, ``pdf_cp31`` and
``pdf_nomina12``.

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

from pathlib import Path
from typing import Any

from . import pdf_cce20, pdf_cp31, pdf_nomina12, pdf_pagos
from .errors import CfdiError
from .model import Comprobante, Concepto
from .pdf_fonts import PdfStyle, _clean
from .pdf_layout import (
    _COLUMNS,
    _CONTENT_W,
    _DLH,
    _GREY,
    _LH,
    _MARGIN,
    _PAGE_W,
    _QR_MM,
    _SLH,
    _Layout,
)
from .pdf_text import (
    EXPORTACION,
    FORMA_PAGO,
    IMPUESTO,
    LEGEND,
    MESES,
    METODO_PAGO,
    OBJETO_IMP,
    PERIODICIDAD,
    REGIMEN_FISCAL,
    TIPO_COMPROBANTE,
    TIPO_RELACION,
    TITLE,
    USO_CFDI,
    _cadena_tfd,
    _complement_names,
    _money,
    _qty,
    _rate,
    describe,
    qr_url,
    total_for_qr,
)
from .words import amount_in_words

__all__ = [
    "PdfStyle",
    "amount_in_words",
    "qr_url",
    "render_pdf",
    "total_for_qr",
    "LEGEND",
]


class _Renderer(_Layout):
    """Lays the CFDI out with our own line breaking (fast, exact) and draws text runs per font:
    the page and its primitives are ``pdf_layout._Layout``'s, the sections are drawn here (and
    by ``pdf_pagos``, ``pdf_cce20``, ``pdf_cp31``)."""

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

    def render(self) -> bytes:
        self.header()
        self.receptor()
        self.comprobante()
        self.conceptos()
        self.totals()
        if self.c.Pagos is not None:
            pdf_pagos.draw(self, self.c.Pagos)
        if self.c.ComercioExterior is not None:
            pdf_cce20.draw(self, self.c.ComercioExterior)
        if self.c.CartaPorte is not None:
            tfd = self.c.TimbreFiscalDigital
            pdf_cp31.draw(self, self.c.CartaPorte, tfd.FechaTimbrado if tfd else None)
        for raw in self.c.OtrosComplementos:  # kept verbatim: Nómina from payroll software
            if pdf_nomina12.is_nomina(raw):
                pdf_nomina12.draw(self, raw)
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
