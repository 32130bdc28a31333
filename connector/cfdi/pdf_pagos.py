"""The Pagos 2.0 section of the representación impresa (``pdf``): the complement's totals, and
each payment with its documents paid, their balances and taxes. Drawn with the renderer's own
``section``, ``fields`` and tables (this module does not import ``pdf``: it is handed the
renderer)."""

from __future__ import annotations

from typing import Any

from .model import Pago, Pagos
from .pdf_fonts import _clean
from .pdf_layout import _CONTENT_W, _DLH, _DR_COLUMNS, _GREY, _LH, _MARGIN, _PAGE_W
from .pdf_text import FORMA_PAGO, IMPUESTO, OBJETO_IMP, _money, _qty, _rate, describe
from .words import amount_in_words


def draw(r: Any, pagos: Pagos) -> None:
    """The section on renderer ``r`` (``pdf._Renderer``)."""
    r.section("Complemento de pago (Pagos 2.0)")
    t = pagos.Totales
    r.fields(
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
        r.fields([("Monto total de pagos con letra", amount_in_words(t.MontoTotalPagos, "MXN"))], 1)
    for n, p in enumerate(pagos.Pago, start=1):
        _pago(r, n, p)


def _pago(r: Any, n: int, p: Pago) -> None:
    pdf = r.pdf
    r.ensure(30)
    r.y += 1
    r.font(True, 7)
    r.color(r.primary)
    r.put(_MARGIN, r.y, _CONTENT_W, f"Pago {n}", "L", 4)
    r.y += 4
    r.color()
    r.fields(
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
            r.fields([("Impuestos del pago", "; ".join(lines))], 1)
    if not p.DoctoRelacionado:
        return
    r.ensure(4.5 + 2 * _LH + 3)
    r._table_head(_DR_COLUMNS, 4.5)
    pdf.repeat_header = lambda: r._table_head(_DR_COLUMNS, 4.5)
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
        r.font(False, 6.8)
        wrapped = [r.wrap(t, w - 1.6) for t, (_, w, _) in zip(cells, _DR_COLUMNS, strict=True)]
        main_h = max(len(w) for w in wrapped) * _LH
        r.font(False, 6)
        detail_lines = r.wrap(detail, _CONTENT_W - 1.6)
        row_h = main_h + len(detail_lines) * _DLH + 1.4
        r.ensure(row_h)
        y = r.y
        x = _MARGIN
        r.font(False, 6.8)
        for lines, (_, width, align) in zip(wrapped, _DR_COLUMNS, strict=True):
            for i, line in enumerate(lines):
                r.put(x + 0.8, y + 0.7 + i * _LH, width - 1.6, line, align)
            x += width
        r.font(False, 6)
        r.color(_GREY)
        for i, line in enumerate(detail_lines):
            r.put(_MARGIN + 0.8, y + 0.7 + main_h + i * _DLH, _CONTENT_W - 1.6, line, "L", _DLH)
        r.color()
        r.y = y + row_h
        pdf.set_draw_color(200, 205, 212)
        pdf.line(_MARGIN, r.y, _PAGE_W - _MARGIN, r.y)
    pdf.repeat_header = None
