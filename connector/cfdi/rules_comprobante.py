"""SAT's CFDI 4.0 rules on the Comprobante's own fields, Emisor and Receptor, and the
XSD-level number checks on every node (``CONN-NUMERO``, ``CONN-CANTIDAD``); registered in
``rules_base.RULES`` (``rules.validate`` runs them)."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal, localcontext
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from .amounts import (
    CONTEXT,
    round_to,
)
from .model import RFC_EXTRANJERO, RFC_PUBLICO_GENERAL, Comprobante
from .rules_base import (
    CLOCK_SKEW,
    FIELD_DECIMALS,
    MATRIX_RULES,
    MAX_AGE,
    MAX_DECIMALS,
    MAX_INT_DIGITS,
    MEXICO_OFFSETS,
    NS_IMPLOCAL,
    ONE,
    PUBLICO_EN_GENERAL,
    RE_FAC_ATR,
    RE_RFC,
    RE_UUID,
    ZERO,
    _check_decimals,
    _Ctx,
    _fmt,
    _is_persona_generica,
    _parse_fecha,
    _sum,
    decimals_of,
    num,
    rule,
)

# --- Generic data checks (XSD level) ------------------------------------------------------------

_NON_AMOUNT_DECIMALS = {"TipoCambio"}  # checked by CFDI40117
_PLANS: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}


def _plan(cls: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(Decimal fields, node fields, list-of-node fields) of a model class, computed once."""
    plan = _PLANS.get(cls)
    if plan is None:
        decimals, nodes, lists = [], [], []
        for name, info in cls.model_fields.items():
            kinds = {info.annotation, *get_args(info.annotation)}
            if Decimal in kinds and name not in _NON_AMOUNT_DECIMALS:
                decimals.append(name)
            elif get_origin(info.annotation) is list:
                args = get_args(info.annotation)
                if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                    lists.append(name)
            elif any(isinstance(k, type) and issubclass(k, BaseModel) for k in kinds):
                nodes.append(name)
        plan = _PLANS[cls] = (tuple(decimals), tuple(nodes), tuple(lists))
    return plan


def _number_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, Decimal) or not value.is_finite():
        return "CONN-NUMERO"
    if name == "Cantidad" and value <= 0:
        return "CONN-CANTIDAD"
    max_decimals = FIELD_DECIMALS.get(name, MAX_DECIMALS)
    # adjusted() + 1 is the number of digits before the point (digits + exponent)
    too_long = decimals_of(value) > max_decimals or value.adjusted() >= MAX_INT_DIGITS
    if (value.is_signed() or too_long) and value != 0:  # -0 is 0
        return "CONN-NUMERO"
    return None


def _check_numbers(x: _Ctx, node: BaseModel, path: str) -> None:
    decimals, nodes, lists = _plan(type(node))
    values = node.__dict__
    prefix = f"{path}." if path else ""
    for name in decimals:
        value = values.get(name)
        if value is not None:
            code = _number_problem(name, value)
            if code is not None:
                x.add(code, prefix + name, f"Valor: {value}.")
    for name in nodes:
        value = values.get(name)
        if isinstance(value, BaseModel):
            _check_numbers(x, value, prefix + name)
    for name in lists:
        for i, item in enumerate(values.get(name) or ()):
            if isinstance(item, BaseModel):
                _check_numbers(x, item, f"{prefix}{name}[{i}]")


@rule
def _numbers(x: _Ctx) -> None:
    """XSD-level numbers: finite, not negative, up to 18 integer digits and 6 decimals."""
    _check_numbers(x, x.c, "")


# --- Comprobante --------------------------------------------------------------------------------


@rule
def _fecha(x: _Ctx) -> None:
    fecha = _parse_fecha(x.c.Fecha)
    if fecha is None:
        x.add("CFDI40101", "Fecha", f"Valor: {_fmt(x.c.Fecha)}.")
        return
    if x.now is None:
        return
    now = x.now
    if now.tzinfo is None:
        earliest = latest = fecha
    else:
        # Fecha is local time where it was issued: any Mexican zone, or the zone of the clock
        # that gives ``now`` (the ERP and the connector usually share it). Of those readings
        # the easternmost is the earliest instant, the westernmost the latest.
        offsets = (*MEXICO_OFFSETS, now.utcoffset() or timedelta(0))
        now = now.astimezone(UTC).replace(tzinfo=None)
        earliest = fecha - max(offsets)
        latest = fecha - min(offsets)
    if earliest > now + CLOCK_SKEW:
        x.add("401", "Fecha", f"La fecha {x.c.Fecha} es posterior a la fecha actual.")
    elif latest < now - MAX_AGE:
        x.add("401", "Fecha", f"La fecha {x.c.Fecha} tiene más de 72 horas.")


@rule
def _forma_pago(x: _Ctx) -> None:
    c = x.c
    if c.FormaPago is not None:
        if c.TipoDeComprobante in ("T", "N", "P"):
            x.add("CFDI40103", "FormaPago", f"TipoDeComprobante: {_fmt(c.TipoDeComprobante)}.")
        elif c.FormaPago not in x.cats.FormaPago:
            x.add("CFDI40104", "FormaPago", f"Valor: {_fmt(c.FormaPago)}.")
    if c.MetodoPago == "PPD" and c.FormaPago is not None and c.FormaPago != "99":
        x.add("CFDI40105", "FormaPago", f'Valor: {_fmt(c.FormaPago)}; MetodoPago: "PPD".')


@rule
def _metodo_pago(x: _Ctx) -> None:
    c = x.c
    if c.MetodoPago is None:
        return
    if c.TipoDeComprobante in ("T", "P"):
        x.add("CFDI40125", "MetodoPago", f"TipoDeComprobante: {_fmt(c.TipoDeComprobante)}.")
    elif c.MetodoPago not in x.cats.MetodoPago:
        x.add("CFDI40124", "MetodoPago", f"Valor: {_fmt(c.MetodoPago)}.")


@rule
def _tipo_de_comprobante(x: _Ctx) -> None:
    if x.c.TipoDeComprobante not in x.cats.TipoDeComprobante:
        x.add("CFDI40121", "TipoDeComprobante", f"Valor: {_fmt(x.c.TipoDeComprobante)}.")


@rule
def _exportacion(x: _Ctx) -> None:
    exp = x.c.Exportacion
    if exp not in x.cats.Exportacion:
        x.add("CFDI40123", "Exportacion", f"Valor: {_fmt(exp)}.")
    elif exp == "02" and not x.has_cce:
        x.add("CFDI40122", "Exportacion")
    elif exp in ("01", "03") and x.has_cce:
        x.add("CFDI40222", "Exportacion", f"Valor: {_fmt(exp)}.")


@rule
def _lugar_expedicion(x: _Ctx) -> None:
    if x.c.LugarExpedicion not in x.cats.CodigoPostal:
        x.add("CFDI40126", "LugarExpedicion", f"Valor: {_fmt(x.c.LugarExpedicion)}.")


@rule
def _moneda(x: _Ctx) -> None:
    c = x.c
    if c.Moneda not in x.cats.Moneda:
        x.add("CFDI40113", "Moneda", f"Valor: {_fmt(c.Moneda)}.")
    tc = c.TipoCambio
    if tc is None:
        if c.Moneda not in ("MXN", "XXX"):
            x.add("CFDI40115", "TipoCambio", f"Moneda: {_fmt(c.Moneda)}.")
        return
    if c.Moneda == "XXX":
        x.add("CFDI40116", "TipoCambio")
        return
    value = num(tc)
    if (
        value is None
        or value < 0
        or decimals_of(value) > MAX_DECIMALS
        or value >= Decimal(10) ** MAX_INT_DIGITS
    ):
        x.add("CFDI40117", "TipoCambio", f"Valor: {_fmt(tc)}.")
        return
    if c.Moneda == "MXN" and value != ONE:
        x.add("CFDI40114", "TipoCambio", f"Valor: {_fmt(tc)}.")


@rule
def _subtotal(x: _Ctx) -> None:
    c = x.c
    if c.SubTotal is None:
        x.add("CFDI40108", "SubTotal", "El campo SubTotal no viene.")
        return
    _check_decimals(x, "CFDI40107", "SubTotal", c.SubTotal)
    subtotal = num(c.SubTotal)
    if subtotal is None:
        return
    if c.TipoDeComprobante in ("T", "P"):
        if subtotal != 0:
            x.add("CFDI40109", "SubTotal", f"Valor: {c.SubTotal}.")
        return
    importes = [num(k.Importe) for k in c.Conceptos]
    if any(v is None for v in importes):
        return  # a missing/invalid concept Importe is reported on the concept
    expected = round_to(_sum([v for v in importes if v is not None]), x.dec)
    if subtotal != expected:
        x.add("CFDI40108", "SubTotal", f"Valor: {c.SubTotal}; esperado: {expected}.")


@rule
def _descuento(x: _Ctx) -> None:
    c = x.c
    con_descuento = [k.Descuento for k in c.Conceptos if k.Descuento is not None]
    # the matrix's message for CFDI40111 is about T/P invoices; the other cases of the code
    # get the rule as SAT states it (what is compared with what) and the values compared
    rule_text = MATRIX_RULES["CFDI40111"]
    if c.TipoDeComprobante in ("I", "E", "N") and con_descuento:
        values = [num(v) for v in con_descuento]
        expected = None
        if all(v is not None for v in values):
            expected = round_to(_sum([v for v in values if v is not None]), x.dec)
        suma = (
            f"suma de los Descuento de los conceptos: {expected}"
            if expected is not None
            else "un Descuento de concepto no es un importe válido"
        )
        if c.Descuento is None:
            detail = f"El campo Descuento no viene; {suma}."
            x.add("CFDI40111", "Descuento", detail, message=rule_text)
            return
        if expected is not None and num(c.Descuento) is not None and c.Descuento != expected:
            detail = f"Descuento: {c.Descuento}; {suma}."
            x.add("CFDI40111", "Descuento", detail, message=rule_text)
    elif c.Descuento is not None:
        detail = (
            f"Descuento: {c.Descuento}; ningún concepto tiene descuento"
            if c.TipoDeComprobante in ("I", "E", "N")
            else f"Descuento: {c.Descuento}; TipoDeComprobante: {_fmt(c.TipoDeComprobante)}"
        )
        x.add("CFDI40111", "Descuento", f"{detail}: el campo debe omitirse.", message=rule_text)
        return
    if c.TipoDeComprobante not in ("I", "E", "N"):
        for i, k in enumerate(c.Conceptos):
            if k.Descuento is not None and c.TipoDeComprobante != "P":  # P: CRP20121
                x.add(
                    "CFDI40111",
                    f"Conceptos[{i}].Descuento",
                    f"TipoDeComprobante: {_fmt(c.TipoDeComprobante)}.",
                )
    if c.Descuento is None:
        return
    _check_decimals(x, "CFDI40112", "Descuento", c.Descuento)
    desc, sub = num(c.Descuento), num(c.SubTotal)
    if desc is not None and sub is not None and desc > sub:
        x.add("CFDI40110", "Descuento", f"Descuento: {c.Descuento}; SubTotal: {c.SubTotal}.")


def _has_implocal(c: Comprobante) -> bool:
    return any(NS_IMPLOCAL in x for x in c.OtrosComplementos)


@rule
def _total(x: _Ctx) -> None:
    c = x.c
    if c.Total is None:
        x.add("CFDI40119", "Total", "El campo Total no viene.")
        return
    total = num(c.Total)
    if total is None:
        return
    if c.TipoDeComprobante in ("T", "P"):
        if total != 0:
            x.add("CFDI40119", "Total", f"Valor: {c.Total}; esperado: 0.")
        return
    if _has_implocal(c):
        return  # local taxes (implocal) enter the Total; that complement is not typed here
    parts = [c.SubTotal, c.Descuento]
    if c.Impuestos is not None:
        parts += [c.Impuestos.TotalImpuestosTrasladados, c.Impuestos.TotalImpuestosRetenidos]
    if any(p is not None and num(p) is None for p in parts) or c.SubTotal is None:
        return
    with localcontext(CONTEXT):
        expected = (c.SubTotal or ZERO) - (c.Descuento or ZERO)
        if c.Impuestos is not None:
            expected += c.Impuestos.TotalImpuestosTrasladados or ZERO
            expected -= c.Impuestos.TotalImpuestosRetenidos or ZERO
        expected = round_to(expected, x.dec)
    if total != expected:
        x.add("CFDI40119", "Total", f"Valor: {c.Total}; esperado: {expected}.")


# --- InformacionGlobal, CfdiRelacionados --------------------------------------------------------


def _es_publico_en_general(c: Comprobante) -> bool:
    return (
        c.Receptor.Rfc == RFC_PUBLICO_GENERAL
        and c.Receptor.Nombre.strip().upper() == PUBLICO_EN_GENERAL
    )


@rule
def _informacion_global(x: _Ctx) -> None:
    c = x.c
    ig = c.InformacionGlobal
    publico = _es_publico_en_general(c)
    if ig is None:
        if publico and c.TipoDeComprobante == "I":
            x.add("CFDI40130", "InformacionGlobal")
        return
    if not publico:
        x.add("CONN-INFOGLOBAL", "InformacionGlobal")
    if ig.Periodicidad not in x.cats.Periodicidad:
        x.add("CFDI40131", "InformacionGlobal.Periodicidad", f"Valor: {_fmt(ig.Periodicidad)}.")
    elif ig.Periodicidad == "05" and c.Emisor.RegimenFiscal != "621":
        x.add("CFDI40132", "Emisor.RegimenFiscal", f"Valor: {_fmt(c.Emisor.RegimenFiscal)}.")
    if ig.Meses not in x.cats.Meses:
        x.add("CFDI40133", "InformacionGlobal.Meses", f"Valor: {_fmt(ig.Meses)}.")
    elif ig.Periodicidad == "05" and ig.Meses not in {str(n) for n in range(13, 19)}:
        x.add("CFDI40135", "InformacionGlobal.Meses", f"Valor: {_fmt(ig.Meses)}.")
    elif ig.Periodicidad != "05" and ig.Meses not in {f"{n:02d}" for n in range(1, 13)}:
        x.add("CFDI40134", "InformacionGlobal.Meses", f"Valor: {_fmt(ig.Meses)}.")
    fecha = _parse_fecha(c.Fecha)
    year = x.now.year if x.now is not None else (fecha.year if fecha else None)
    if year is not None and not (year - 5 <= ig.Anio <= year):
        x.add("CFDI40136", "InformacionGlobal.Año", f"Valor: {ig.Anio}; año en curso: {year}.")


@rule
def _cfdi_relacionados(x: _Ctx) -> None:
    for i, rel in enumerate(x.c.CfdiRelacionados):
        path = f"CfdiRelacionados[{i}]"
        if rel.TipoRelacion not in x.cats.TipoRelacion:
            x.add("CFDI40137", f"{path}.TipoRelacion", f"Valor: {_fmt(rel.TipoRelacion)}.")
        for j, uuid in enumerate(rel.UUIDs):
            if not RE_UUID.fullmatch(uuid):
                x.add("CONN-UUID", f"{path}.UUIDs[{j}]", f"Valor: {_fmt(uuid)}.")


# --- Emisor, Receptor ---------------------------------------------------------------------------


@rule
def _emisor(x: _Ctx) -> None:
    e = x.c.Emisor
    if not RE_RFC.fullmatch(e.Rfc):
        x.add("CONN-RFC", "Emisor.Rfc", f"Valor: {_fmt(e.Rfc)}.")
    if e.RegimenFiscal not in x.cats.RegimenFiscal:
        x.add("CFDI40140", "Emisor.RegimenFiscal", f"Valor: {_fmt(e.RegimenFiscal)}.")
    elif not x.cats.regimen_aplica(e.RegimenFiscal, e.Rfc):
        persona = "física" if len(e.Rfc) == 13 else "moral"
        x.add("CFDI40141", "Emisor.RegimenFiscal", f"Régimen {e.RegimenFiscal}, persona {persona}.")
    if e.FacAtrAdquirente is not None and not RE_FAC_ATR.fullmatch(e.FacAtrAdquirente):
        x.add("CFDI40142", "Emisor.FacAtrAdquirente", f"Valor: {_fmt(e.FacAtrAdquirente)}.")


@rule
def _receptor(x: _Ctx) -> None:
    c, r, cats = x.c, x.c.Receptor, x.cats
    if not RE_RFC.fullmatch(r.Rfc):
        x.add("CONN-RFC", "Receptor.Rfc", f"Valor: {_fmt(r.Rfc)}.")
    if r.Nombre.strip().upper() == PUBLICO_EN_GENERAL and r.Rfc != RFC_PUBLICO_GENERAL:
        x.add("CFDI40146", "Receptor.Rfc", f"Valor: {_fmt(r.Rfc)}.")
    if r.DomicilioFiscalReceptor not in cats.CodigoPostal:
        x.add(
            "CONN-CP",
            "Receptor.DomicilioFiscalReceptor",
            f"Valor: {_fmt(r.DomicilioFiscalReceptor)}.",
        )
    elif _is_persona_generica(r.Rfc) and r.DomicilioFiscalReceptor != c.LugarExpedicion:
        x.add(
            "CFDI40149",
            "Receptor.DomicilioFiscalReceptor",
            f"Valor: {_fmt(r.DomicilioFiscalReceptor)}; LugarExpedicion: {_fmt(c.LugarExpedicion)}.",
        )
    # ResidenciaFiscal / NumRegIdTrib: only for the generic foreign RFC
    if r.ResidenciaFiscal is not None:
        if r.Rfc != RFC_EXTRANJERO:
            x.add("CFDI40151", "Receptor.ResidenciaFiscal")
        elif r.ResidenciaFiscal == "MEX":
            x.add("CFDI40152", "Receptor.ResidenciaFiscal")
        elif r.ResidenciaFiscal not in cats.Pais:
            x.add("CFDI40150", "Receptor.ResidenciaFiscal", f"Valor: {_fmt(r.ResidenciaFiscal)}.")
    if r.NumRegIdTrib is not None:
        if r.Rfc != RFC_EXTRANJERO:
            x.add("CFDI40154", "Receptor.NumRegIdTrib")
        elif r.ResidenciaFiscal is None:
            x.add("CFDI40153", "Receptor.ResidenciaFiscal")
    elif r.Rfc == RFC_EXTRANJERO and x.has_cce:
        x.add("CFDI40155", "Receptor.NumRegIdTrib")
    # RegimenFiscalReceptor / UsoCFDI
    regimen_ok = False
    if r.RegimenFiscalReceptor not in cats.RegimenFiscal:
        x.add(
            "CFDI40157",
            "Receptor.RegimenFiscalReceptor",
            f"Valor: {_fmt(r.RegimenFiscalReceptor)}.",
        )
    elif _is_persona_generica(r.Rfc) and r.RegimenFiscalReceptor != "616":
        x.add(
            "CFDI40159",
            "Receptor.RegimenFiscalReceptor",
            f"Valor: {_fmt(r.RegimenFiscalReceptor)}.",
        )
    elif not cats.regimen_aplica(r.RegimenFiscalReceptor, r.Rfc):
        persona = "física" if len(r.Rfc) == 13 else "moral"
        x.add(
            "CFDI40158",
            "Receptor.RegimenFiscalReceptor",
            f"Régimen {r.RegimenFiscalReceptor}, persona {persona}.",
        )
    else:
        regimen_ok = True
    if r.UsoCFDI not in cats.UsoCFDI:
        x.add("CFDI40160", "Receptor.UsoCFDI", f"Valor: {_fmt(r.UsoCFDI)}.")
    elif regimen_ok and not cats.uso_cfdi_aplica(r.UsoCFDI, r.RegimenFiscalReceptor, r.Rfc):
        x.add(
            "CFDI40161",
            "Receptor.UsoCFDI",
            f"UsoCFDI {r.UsoCFDI} con régimen {r.RegimenFiscalReceptor}.",
        )


# --- Conceptos ----------------------------------------------------------------------------------
