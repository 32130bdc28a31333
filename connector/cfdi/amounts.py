"""Derived amounts of a CFDI 4.0 by SAT's rounding rules (Anexo 20, Guía de llenado).

Over 500 lines for a reason: every derived amount and its rounding (conceptos, the tax summary,
Pagos 2.0) in one place, so ``complete`` and the rules share one definition of each.

``complete(c)`` returns a *copy* of the Comprobante with every missing derived amount computed
(only the nodes that change are copied; the rest are shared with ``c``, which is never
modified); an amount the input gives is kept as given (``connector.cfdi.rules`` checks it):

* concepto ``Importe`` = Cantidad × ValorUnitario, rounded half-up to the currency's decimals;
* concepto tax ``Base`` = Importe − Descuento, except IVA (002, traslado and retención): its
  base also includes the IEPS (003) trasladado of the same concepto (Ley del IVA, art. 12: the
  value on which IVA is computed includes the other taxes charged to the buyer); tax
  ``Importe`` = Base × TasaOCuota, rounded half-up to the currency's decimals (Exento: no
  TasaOCuota, no Importe). A Base the input gives is kept as given. A ``Cuota`` tax (IEPS per
  litre, per cigarette, per gram) gets no Base here: its Base is the number of units the cuota
  applies to, which only the ERP knows (Cantidad counts the concepto's ClaveUnidad, e.g.
  boxes); a missing one is left None and ``rules`` reports ``CONN-IEPS-CUOTA-BASE``;
* the ``Impuestos`` summary: traslados grouped by (Impuesto, TipoFactor, TasaOCuota), retenciones
  by Impuesto, each the *rounded sum* of the concept values (sum first, then round);
  ``TotalImpuestosTrasladados`` (Exento excluded, omitted when only Exento),
  ``TotalImpuestosRetenidos``;
* ``SubTotal`` = Σ Importe, ``Descuento`` = Σ concept Descuento (omitted when no concept has one),
  ``Total`` = SubTotal − Descuento + traslados − retenciones;
* tipo T and P: SubTotal 0, Total 0, no Impuestos summary;
* Carta Porte 3.1: IdCCP, TotalDistRec, PesoBrutoTotal, UnidadPeso and NumTotalMercancias
  (``cp31.complete_carta_porte``);
* Pagos 2.0: ``ImporteDR`` of each TrasladoDR, ``ImpuestosP`` from the documents' ImpuestosDR
  (each DR amount divided by EquivalenciaDR), and ``Totales`` converted to MXN with TipoCambioP
  (MontoTotalPagos, TotalTrasladosBase/ImpuestoIVA16/8/0, TotalTrasladosBaseIVAExento,
  TotalRetencionesIVA/ISR/IEPS), rounded to 2 decimals.

Arithmetic runs in a decimal context with high precision and no traps, and new nodes are built
with ``model_construct`` (no validation), so odd data (NaN,
infinities, absurdly large numbers) never raises here: it yields NaN, which the validator reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import TypeVar

from pydantic import BaseModel

from .catalogs import catalogs
from .cp31 import complete_carta_porte
from .model import (
    Comprobante,
    Concepto,
    Impuestos,
    ImpuestosP,
    Pago,
    Pagos,
    Retencion,
    RetencionP,
    RetencionResumen,
    Traslado,
    TrasladoP,
    TrasladoResumen,
)

CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP, traps=[])
TASA_QUANTUM = Decimal("0.000001")
ZERO = Decimal(0)
ONE = Decimal(1)
MXN_DECIMALS = 2

TrasladoKey = tuple[str, str, Decimal | None]
N = TypeVar("N", bound=BaseModel)


_QUANTA = tuple(ONE.scaleb(-n) for n in range(40))


def quantum(decimals: int) -> Decimal:
    """10^-decimals (cached for the usual range)."""
    if 0 <= decimals < len(_QUANTA):
        return _QUANTA[decimals]
    return ONE.scaleb(-decimals, context=CONTEXT)


def round_to(value: Decimal, decimals: int) -> Decimal:
    """Round half-up to ``decimals`` places (NaN for values that cannot be represented)."""
    # positional arguments: Decimal.quantize parses keywords slowly (~0.4 µs a call)
    return value.quantize(quantum(decimals), ROUND_HALF_UP, CONTEXT)


def tasa_key(value: Decimal | None) -> Decimal | None:
    """TasaOCuota as SAT writes it (6 decimals), for grouping and output."""
    if value is None:
        return None
    return value.quantize(TASA_QUANTUM, None, CONTEXT)


def _sum(values: Iterable[Decimal | None]) -> Decimal:
    add = CONTEXT.add
    total = ZERO
    for v in values:
        if v is not None:
            total = add(total, v)
    return total


# --- Concepts -----------------------------------------------------------------------------------


IVA = "002"
IEPS = "003"
CUOTA = "Cuota"  # TipoFactor whose Base is a number of units, not money: never defaulted


def _tax_importe(base: Decimal, tasa: Decimal, q: Decimal) -> Decimal:
    return (base * tasa).quantize(q, ROUND_HALF_UP, CONTEXT)


def iva_base(traslados: list[Traslado], base: Decimal, q: Decimal) -> Decimal:
    """Default IVA Base of a concepto whose other taxes have default base ``base``
    (Importe − Descuento): ``base`` plus the IEPS trasladado of the concepto (Ley del IVA,
    art. 12), each IEPS Importe as given or as computed here (rounded to the quantum ``q``):
    a Cuota IEPS only from the Base the ERP gave (units, never ``base``)."""
    total = base
    for t in traslados:
        values = t.__dict__
        if values["Impuesto"] != IEPS or values["TipoFactor"] == "Exento":
            continue
        importe = values["Importe"]
        tasa = values["TasaOCuota"]
        if importe is None and tasa is not None:
            b = values["Base"]
            if b is None and values["TipoFactor"] != CUOTA:
                b = base
            if b is not None:
                importe = _tax_importe(b, tasa, q)
        if importe is not None:
            total = CONTEXT.add(total, importe)
    return total


_new = object.__new__
_setattr = object.__setattr__


def _copy(node: N) -> N:
    """A shallow copy of a model node (what ``model_copy()`` does, without its overhead)."""
    new = _new(type(node))
    _setattr(new, "__dict__", node.__dict__.copy())
    _setattr(new, "__pydantic_fields_set__", node.__pydantic_fields_set__.copy())
    extra, private = node.__pydantic_extra__, node.__pydantic_private__
    _setattr(new, "__pydantic_extra__", None if extra is None else extra.copy())
    _setattr(new, "__pydantic_private__", None if private is None else private.copy())
    return new


def _make(cls: type[N], **values: object) -> N:
    """``cls.model_construct(**values)`` for nodes whose every field is given."""
    new = _new(cls)
    _setattr(new, "__dict__", values)
    _setattr(new, "__pydantic_fields_set__", set(values))
    _setattr(new, "__pydantic_extra__", None)
    _setattr(new, "__pydantic_private__", None)
    return new


def _set(node: BaseModel, name: str, value: object) -> None:
    """Assign a field of a node this module just copied (no validation, as before)."""
    node.__dict__[name] = value
    node.__pydantic_fields_set__.add(name)


# The functions below run for every concepto of every invoice: they read fields through
# ``__dict__`` and round with a precomputed quantum (same operations as ``round_to``).


def _default_base(
    values: dict[str, object], base: Decimal | None, base_iva: Decimal | None
) -> Decimal | None:
    """The Base a tax without one gets: none for a Cuota (units only the ERP knows), the IVA
    base for IVA, else Importe − Descuento."""
    if values["TipoFactor"] == CUOTA:
        return None
    return base_iva if values["Impuesto"] == IVA else base


def _completed_traslados(
    items: list[Traslado], base: Decimal | None, base_iva: Decimal | None, q: Decimal
) -> list[Traslado]:
    out: list[Traslado] | None = None
    for i, t in enumerate(items):
        values = t.__dict__
        b = values["Base"]
        default = _default_base(values, base, base_iva)
        new_base = b is None and default is not None
        if new_base:
            b = default
        tasa = values["TasaOCuota"]
        new_importe = (
            values["Importe"] is None
            and values["TipoFactor"] != "Exento"
            and tasa is not None
            and b is not None
        )
        if not (new_base or new_importe):
            continue
        t = _copy(t)
        changed, fields = t.__dict__, t.__pydantic_fields_set__
        if new_base:
            changed["Base"] = b
            fields.add("Base")
        if new_importe:
            changed["Importe"] = _tax_importe(b, tasa, q)
            fields.add("Importe")
        if out is None:
            out = list(items)
        out[i] = t
    return items if out is None else out


def _completed_retenciones(
    items: list[Retencion], base: Decimal | None, base_iva: Decimal | None, q: Decimal
) -> list[Retencion]:
    out: list[Retencion] | None = None
    for i, r in enumerate(items):
        values = r.__dict__
        b = values["Base"]
        default = _default_base(values, base, base_iva)
        new_base = b is None and default is not None
        if new_base:
            b = default
        new_importe = values["Importe"] is None and b is not None
        if not (new_base or new_importe):
            continue
        r = _copy(r)
        changed, fields = r.__dict__, r.__pydantic_fields_set__
        if new_base:
            changed["Base"] = b
            fields.add("Base")
        if new_importe:
            changed["Importe"] = _tax_importe(b, values["TasaOCuota"], q)
            fields.add("Importe")
        if out is None:
            out = list(items)
        out[i] = r
    return items if out is None else out


def _completed_concepto(concepto: Concepto, q: Decimal) -> Concepto:
    """``concepto`` with its missing amounts (a copy of the changed nodes only), rounded to the
    quantum ``q``; runs in ``CONTEXT``."""
    values = concepto.__dict__
    importe = values["Importe"]
    new_importe = importe is None
    if new_importe:
        importe = (values["Cantidad"] * values["ValorUnitario"]).quantize(q, ROUND_HALF_UP, CONTEXT)
    impuestos = values["Impuestos"]
    new_impuestos = None
    if impuestos is not None:
        base = None if importe is None else importe - (values["Descuento"] or ZERO)
        traslados = impuestos.Traslados
        retenciones = impuestos.Retenciones
        base_iva = base
        if base is not None and any(t.Impuesto == IEPS for t in traslados):
            base_iva = iva_base(traslados, base, q)
        new_traslados = (
            _completed_traslados(traslados, base, base_iva, q) if traslados else traslados
        )
        new_retenciones = (
            _completed_retenciones(retenciones, base, base_iva, q) if retenciones else retenciones
        )
        if new_traslados is not traslados or new_retenciones is not retenciones:
            new_impuestos = _copy(impuestos)
            new_impuestos.__dict__.update(Traslados=new_traslados, Retenciones=new_retenciones)
            new_impuestos.__pydantic_fields_set__.update(("Traslados", "Retenciones"))
    if not new_importe and new_impuestos is None:
        return concepto
    out = _copy(concepto)
    if new_importe:
        out.__dict__["Importe"] = importe
        out.__pydantic_fields_set__.add("Importe")
    if new_impuestos is not None:
        out.__dict__["Impuestos"] = new_impuestos
        out.__pydantic_fields_set__.add("Impuestos")
    return out


# --- Impuestos summary --------------------------------------------------------------------------


def traslado_groups(
    conceptos: Iterable[Concepto],
) -> dict[TrasladoKey, tuple[Decimal, Decimal | None]]:
    """Concept traslados grouped by (Impuesto, TipoFactor, TasaOCuota): unrounded (Σ Base, Σ
    Importe). Σ Importe is None for Exento groups."""
    add = CONTEXT.add
    groups: dict[TrasladoKey, list[Decimal]] = {}
    for concepto in conceptos:
        impuestos = concepto.Impuestos
        if impuestos is None:
            continue
        for t in impuestos.Traslados:
            factor = t.TipoFactor
            key = (t.Impuesto, factor, None if factor == "Exento" else tasa_key(t.TasaOCuota))
            sums = groups.get(key)
            if sums is None:
                sums = groups[key] = [ZERO, ZERO]
            if t.Base is not None:
                sums[0] = add(sums[0], t.Base)
            if t.Importe is not None:
                sums[1] = add(sums[1], t.Importe)
    return {
        key: (base, None if key[1] == "Exento" else importe)
        for key, (base, importe) in groups.items()
    }


def retencion_groups(conceptos: Iterable[Concepto]) -> dict[str, Decimal]:
    """Concept retenciones grouped by Impuesto: unrounded Σ Importe."""
    add = CONTEXT.add
    out: dict[str, Decimal] = {}
    for concepto in conceptos:
        impuestos = concepto.Impuestos
        if impuestos is None:
            continue
        for r in impuestos.Retenciones:
            total = out.get(r.Impuesto, ZERO)
            out[r.Impuesto] = total if r.Importe is None else add(total, r.Importe)
    return out


def summarize(conceptos: list[Concepto], decimals: int) -> Impuestos | None:
    """The comprobante-level Impuestos node from the concepts (None when they have no taxes)."""
    traslados = [
        _make(
            TrasladoResumen,
            Base=round_to(base, decimals),
            Impuesto=imp,
            TipoFactor=factor,
            TasaOCuota=tasa,
            Importe=None if importe is None else round_to(importe, decimals),
        )
        for (imp, factor, tasa), (base, importe) in traslado_groups(conceptos).items()
    ]
    retenciones = [
        _make(RetencionResumen, Impuesto=imp, Importe=round_to(importe, decimals))
        for imp, importe in retencion_groups(conceptos).items()
    ]
    if not traslados and not retenciones:
        return None
    out = _make(
        Impuestos,
        TotalImpuestosRetenidos=None,
        TotalImpuestosTrasladados=None,
        Retenciones=retenciones,
        Traslados=traslados,
    )
    _complete_summary_totals(out, decimals)
    return out


def _complete_summary_totals(impuestos: Impuestos, decimals: int) -> None:
    gravados = [t.Importe for t in impuestos.Traslados if t.TipoFactor != "Exento"]
    if impuestos.TotalImpuestosTrasladados is None and gravados:
        impuestos.TotalImpuestosTrasladados = round_to(_sum(gravados), decimals)
    if impuestos.TotalImpuestosRetenidos is None and impuestos.Retenciones:
        impuestos.TotalImpuestosRetenidos = round_to(
            _sum(r.Importe for r in impuestos.Retenciones), decimals
        )


# --- Pagos 2.0 ----------------------------------------------------------------------------------


def impuestos_dr_sums(
    pago: Pago,
) -> tuple[dict[TrasladoKey, tuple[Decimal, Decimal | None]], dict[str, Decimal]]:
    """A Pago's ImpuestosDR summed as its ImpuestosP must be (Pagos 2.0): every BaseDR and
    ImporteDR divided by the document's EquivalenciaDR (1 when missing), traslados grouped by
    (ImpuestoDR, TipoFactorDR, TasaOCuotaDR), retenciones by ImpuestoDR; unrounded. Σ Importe is
    None for Exento groups (and a missing ImporteDR adds nothing)."""
    add = CONTEXT.add
    traslados: dict[TrasladoKey, list[Decimal]] = {}
    retenciones: dict[str, Decimal] = {}
    with localcontext(CONTEXT):
        for dr in pago.DoctoRelacionado:
            if dr.ImpuestosDR is None:
                continue
            equiv = dr.EquivalenciaDR if dr.EquivalenciaDR else ONE
            for t in dr.ImpuestosDR.TrasladosDR:
                exento = t.TipoFactorDR == "Exento"
                key = (t.ImpuestoDR, t.TipoFactorDR, None if exento else tasa_key(t.TasaOCuotaDR))
                sums = traslados.setdefault(key, [ZERO, ZERO])
                sums[0] = add(sums[0], t.BaseDR / equiv)
                if t.ImporteDR is not None:
                    sums[1] = add(sums[1], t.ImporteDR / equiv)
            for r in dr.ImpuestosDR.RetencionesDR:
                retenciones[r.ImpuestoDR] = add(
                    retenciones.get(r.ImpuestoDR, ZERO), r.ImporteDR / equiv
                )
    return (
        {k: (b, None if k[1] == "Exento" else i) for k, (b, i) in traslados.items()},
        retenciones,
    )


def _complete_pagos(pagos: Pagos) -> None:
    cats = catalogs()
    with localcontext(CONTEXT):
        for pago in pagos.Pago:
            dec_p = cats.decimals(pago.MonedaP)
            for dr in pago.DoctoRelacionado:
                if dr.ImpuestosDR is None:
                    continue
                dec_dr = cats.decimals(dr.MonedaDR)
                for t in dr.ImpuestosDR.TrasladosDR:
                    exento = t.TipoFactorDR == "Exento"
                    if t.ImporteDR is None and not exento and t.TasaOCuotaDR is not None:
                        t.ImporteDR = round_to(t.BaseDR * t.TasaOCuotaDR, dec_dr)
            traslados, retenciones = impuestos_dr_sums(pago)
            if pago.ImpuestosP is None and (traslados or retenciones):
                pago.ImpuestosP = ImpuestosP.model_construct(
                    TrasladosP=[
                        TrasladoP.model_construct(
                            BaseP=round_to(base, dec_p),
                            ImpuestoP=imp,
                            TipoFactorP=factor,
                            TasaOCuotaP=tasa,
                            ImporteP=None if importe is None else round_to(importe, dec_p),
                        )
                        for (imp, factor, tasa), (base, importe) in traslados.items()
                    ],
                    RetencionesP=[
                        RetencionP.model_construct(ImpuestoP=imp, ImporteP=round_to(importe, dec_p))
                        for imp, importe in retenciones.items()
                    ],
                )
        _complete_pagos_totales(pagos)


def pago_tipo_cambio(moneda: str, tipo_cambio: Decimal | None) -> Decimal:
    """TipoCambioP to convert a Pago's amounts to MXN (1 for MXN or when missing)."""
    if moneda == "MXN" or tipo_cambio is None:
        return ONE
    return tipo_cambio


def pagos_totales(pagos: Pagos) -> dict[str, Decimal]:
    """Expected Pagos 2.0 ``Totales`` (only the fields that apply), in MXN, 2 decimals."""
    sums: dict[str, list[Decimal]] = {}
    with localcontext(CONTEXT):
        for pago in pagos.Pago:
            tc = pago_tipo_cambio(pago.MonedaP, pago.TipoCambioP)
            sums.setdefault("MontoTotalPagos", []).append(pago.Monto * tc)
            if pago.ImpuestosP is None:
                continue
            for r in pago.ImpuestosP.RetencionesP:
                name = {"001": "ISR", "002": "IVA", "003": "IEPS"}.get(r.ImpuestoP)
                if name:
                    sums.setdefault(f"TotalRetenciones{name}", []).append(r.ImporteP * tc)
            for t in pago.ImpuestosP.TrasladosP:
                if t.ImpuestoP != "002":
                    continue
                if t.TipoFactorP == "Exento":
                    sums.setdefault("TotalTrasladosBaseIVAExento", []).append(t.BaseP * tc)
                    continue
                suffix = {
                    Decimal("0.16"): "16",
                    Decimal("0.08"): "8",
                    ZERO: "0",
                }.get(t.TasaOCuotaP if t.TasaOCuotaP is not None else Decimal(-1))
                if t.TipoFactorP != "Tasa" or suffix is None:
                    continue
                sums.setdefault(f"TotalTrasladosBaseIVA{suffix}", []).append(t.BaseP * tc)
                sums.setdefault(f"TotalTrasladosImpuestoIVA{suffix}", []).append(
                    (t.ImporteP or ZERO) * tc
                )
        return {name: round_to(_sum(values), MXN_DECIMALS) for name, values in sums.items()}


def _complete_pagos_totales(pagos: Pagos) -> None:
    for name, value in pagos_totales(pagos).items():
        if getattr(pagos.Totales, name) is None:
            setattr(pagos.Totales, name, value)


# --- Comprobante --------------------------------------------------------------------------------


def clone(node: N) -> N:
    """A full copy of a model tree (much faster than ``model_copy(deep=True)``: no memo)."""
    new = node.model_copy()
    values = new.__dict__
    for name, value in values.items():
        if isinstance(value, BaseModel):
            values[name] = clone(value)
        elif isinstance(value, list):
            values[name] = [clone(v) if isinstance(v, BaseModel) else v for v in value]
    return new


def complete(c: Comprobante) -> Comprobante:
    """A copy of ``c`` with every missing derived amount computed (given amounts are kept).

    ``c`` is never modified. Only the nodes that change are copied: the result shares the
    others with ``c`` (treat both as values; copy before mutating either in place).
    """
    out = _copy(c)
    decimals = catalogs().decimals(out.Moneda)
    q = quantum(decimals)
    with localcontext(CONTEXT):
        conceptos = c.Conceptos
        new_conceptos: list[Concepto] | None = None
        for i, concepto in enumerate(conceptos):
            done = _completed_concepto(concepto, q)
            if done is not concepto:
                if new_conceptos is None:
                    new_conceptos = list(conceptos)
                new_conceptos[i] = done
        if new_conceptos is not None:
            _set(out, "Conceptos", new_conceptos)
        if out.TipoDeComprobante in ("T", "P"):
            if out.SubTotal is None:
                _set(out, "SubTotal", ZERO)
            if out.Total is None:
                _set(out, "Total", ZERO)
        else:
            if out.Impuestos is None:
                _set(out, "Impuestos", summarize(out.Conceptos, decimals))
            elif (
                out.Impuestos.TotalImpuestosTrasladados is None
                or out.Impuestos.TotalImpuestosRetenidos is None
            ):
                impuestos = _copy(out.Impuestos)
                _complete_summary_totals(impuestos, decimals)
                _set(out, "Impuestos", impuestos)
            if out.SubTotal is None:
                _set(out, "SubTotal", round_to(_sum(k.Importe for k in out.Conceptos), decimals))
            descuentos = [k.Descuento for k in out.Conceptos if k.Descuento is not None]
            if out.Descuento is None and descuentos:
                _set(out, "Descuento", round_to(_sum(descuentos), decimals))
            if out.Total is None:
                _set(out, "Total", round_to(expected_total(out), decimals))
        if out.Pagos is not None:
            pagos = clone(out.Pagos)
            _complete_pagos(pagos)
            _set(out, "Pagos", pagos)
        if out.CartaPorte is not None:  # IdCCP and the Carta Porte's totals
            cp = complete_carta_porte(
                out.CartaPorte, out.Emisor.Rfc, out.Serie or "", out.Folio or "", out.Fecha
            )
            _set(out, "CartaPorte", cp)
    return out


def expected_total(c: Comprobante) -> Decimal:
    """SubTotal − Descuento + TotalImpuestosTrasladados − TotalImpuestosRetenidos (unrounded)."""
    with localcontext(CONTEXT):
        total = (c.SubTotal or ZERO) - (c.Descuento or ZERO)
        if c.Impuestos is not None:
            total += c.Impuestos.TotalImpuestosTrasladados or ZERO
            total -= c.Impuestos.TotalImpuestosRetenidos or ZERO
        return total
