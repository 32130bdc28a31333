"""SAT's CFDI 4.0 validation rules, each a small named check tagged with its official code.

``validate(c, *, now=None)`` runs every rule and returns every problem at once. Each problem
carries the code of SAT's validation matrix (``CFDI40xxx``, messages read from the matrix shipped
as ``matriz.tsv``, never retyped), a path such as ``Conceptos[3].Impuestos.Traslados[0].Importe``
and the official Spanish message followed by the detail of what was found.

Codes that are not in SAT's matrix:

* ``401`` — the PACs' (and SAT's) code for the 72-hour rule: with ``now``, a Fecha more than
  72 hours before ``now`` or later than ``now`` is rejected at stamping. Fecha is local time of
  the place of issue; for an aware ``now`` every Mexican zone (UTC−5 … UTC−8) is accepted, plus
  :data:`CLOCK_SKEW` of tolerance; the zone of an aware ``now`` itself too; a naive ``now`` is compared as the same local time.
* ``CONN-*`` — ours: XSD-level data checks the matrix leaves to the schema (numbers, RFC and
  postal-code patterns), and ``CONN-REGLA`` when a rule could not run on odd data (a bug to fix;
  it never raises).

The Pagos 2.0 complement's rules (SAT's ``CRP20xxx`` codes, a few ``CONN-PAGOS-xxx``) are in
``rules_pagos``, run by ``validate`` as one more rule.

Which of SAT's codes are checked here and which are left to the PAC: ``docs/sat-rules.md``.
Not implemented here: rules that need SAT's online lists (l_LCO, RFC names and addresses:
CFDI40138/39, 40143-45, 40147/48, 40187, 40189 for RFCs other than EXT990101NI1, 40190, 40192,
CFDI140224/25), columns of SAT's Excel catalogs we do not ship (c_Pais NumRegIdTrib formats
CFDI40156; c_ClaveProdServ complements and taxes CFDI40163/40164), the daily exchange-rate
limits (CFDI40118), the RMF Total limits and the PAC's confirmation keys (CFDI40120, 40127-40129)
and the seal and certificate (CFDI40102/40106, done by ``connector.cfdi.seal``). CFDI40209
repeats CFDI40206 (TotalImpuestosRetenidos missing), which is reported once as CFDI40206.
CFDI40142 checks only the pattern of FacAtrAdquirente (10 digits): whether the operation number
is the one SAT's validator gave is for the PAC.

Validate a *completed* Comprobante (``amounts.complete``): a derived amount that is None is
reported as missing where a rule needs it, never raised on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from importlib import resources
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from .amounts import (
    CONTEXT,
    quantum,
    retencion_groups,
    round_to,
    tasa_key,
    traslado_groups,
)
from .catalogs import IMPUESTO_RETENCION, IMPUESTO_TRASLADO, Catalogs, catalogs
from .errors import Problem
from .model import RFC_EXTRANJERO, RFC_PUBLICO_GENERAL, Comprobante, Concepto, Parte
from .xsd_messages import cut

# --- Messages -----------------------------------------------------------------------------------


def _load_matrix() -> tuple[dict[str, str], dict[str, str]]:
    """(code -> official Spanish message, code -> the rule as SAT states it), from SAT's
    validation matrix (TSV shipped with us)."""
    text = resources.files(__package__).joinpath("matriz.tsv").read_text(encoding="utf-8")
    messages: dict[str, str] = {}
    rules: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) >= 6 and cols[4].strip():
            messages[cols[4].strip()] = " ".join(cols[5].split())
            rules[cols[4].strip()] = " ".join(cols[3].split())
    return messages, rules


MATRIX, MATRIX_RULES = _load_matrix()

MESSAGES: dict[str, str] = {
    **MATRIX,
    "401": "El rango de la fecha de generación no debe de ser mayor a 72 horas para la emisión "
    "del timbre.",
    "CONN-NUMERO": "El valor no es un importe válido para el CFDI: debe ser un número finito, "
    "no negativo, con hasta 18 enteros y 6 decimales.",
    "CONN-CANTIDAD": "El campo Cantidad debe ser mayor que cero.",
    "CONN-RFC": "El RFC no cumple con el patrón del SAT.",
    "CONN-CP": "El código postal no contiene un valor del catálogo c_CodigoPostal.",
    "CONN-UUID": "El UUID del CFDI relacionado no cumple con el patrón requerido.",
    "CONN-CONCEPTOS": "El comprobante debe tener al menos un concepto.",
    "CONN-INFOGLOBAL": "El nodo InformacionGlobal solo debe existir en un comprobante de Ingreso "
    'al RFC "XAXX010101000" con Nombre "PUBLICO EN GENERAL".',
    "CONN-IEPS-CUOTA-BASE": "Con TipoFactor Cuota la Base es el número de unidades (litros, "
    "piezas, gramos) a las que se aplica la cuota; el conector no la calcula: el ERP debe "
    "enviarla.",
    "CONN-REGLA": "No se pudo aplicar una regla de validación a estos datos; revise el campo "
    "indicado.",
}

# --- Patterns and constants ---------------------------------------------------------------------

RE_FECHA = re.compile(
    r"(20[1-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
)
RE_RFC = re.compile(r"[A-Z&Ñ]{3,4}[0-9]{2}(0[1-9]|1[012])(0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]")
RE_UUID = re.compile(r"[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}")
RE_PEDIMENTO = re.compile(r"[0-9]{2}  [0-9]{2}  [0-9]{4}  [0-9]{7}")
RE_FAC_ATR = re.compile(r"[0-9]{10}")
PUBLICO_EN_GENERAL = "PUBLICO EN GENERAL"
RFC_TERCERO_EXTRANJERO = "EXT990101NI1"
NOMBRE_TERCERO_EXTRANJERO = (
    "EXPEDICIÓN DE CFDI POR RESIDENTES EN MÉXICO QUE PRESTAN SERVICIOS DE INTERMEDIACIÓN ENTRE "
    "TERCEROS A OFERENTES DE BIENES Y SERVICIOS RESIDENTES EN EL EXTRANJERO"
)
NS_COMERCIO_EXTERIOR = b"http://www.sat.gob.mx/ComercioExterior"
NS_IMPLOCAL = b"http://www.sat.gob.mx/implocal"
MAX_AGE = timedelta(hours=72)
CLOCK_SKEW = timedelta(minutes=5)
MEXICO_OFFSETS = (timedelta(hours=-5), timedelta(hours=-8))  # easternmost, westernmost zone
MAX_INT_DIGITS = 18
MAX_DECIMALS = 6
FIELD_DECIMALS = {"EquivalenciaDR": 10}  # Pagos 2.0 XSD: fractionDigits 10
ZERO = Decimal(0)
ONE = Decimal(1)
HALF = Decimal("0.5")

# --- Context ------------------------------------------------------------------------------------


class _Ctx:
    __slots__ = ("c", "cats", "dec", "now", "problems", "has_cce")

    def __init__(self, c: Comprobante, cats: Catalogs, now: datetime | None) -> None:
        self.c = c
        self.cats = cats
        self.dec = cats.decimals(c.Moneda)
        self.now = now
        self.problems: list[Problem] = []
        self.has_cce = c.ComercioExterior is not None or any(
            isinstance(x, bytes) and NS_COMERCIO_EXTERIOR in x for x in c.OtrosComplementos or ()
        )

    def add(
        self, code: str, path: str, detail: str | None = None, *, message: str | None = None
    ) -> None:
        """A problem with the code's message (or ``message``, e.g. the rule as SAT states it
        when the matrix's message describes another case of the same code) and ``detail``."""
        message = message or MESSAGES[code]
        if detail:
            message = f"{message} {detail}"
        self.problems.append(Problem(code=code, path=path, message=message))


Rule = Callable[[_Ctx], None]
RULES: list[tuple[str, Rule]] = []


def rule(fn: Rule) -> Rule:
    RULES.append((fn.__name__.lstrip("_"), fn))
    return fn


def num(value: Any) -> Decimal | None:
    """``value`` when it is a finite Decimal, else None (rules skip what they cannot compute)."""
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


def decimals_of(value: Decimal) -> int:
    """Decimal places as written: minus the exponent (0 for integers, NaN and infinities)."""
    # str() writes plain notation, with exactly that many digits after the point, unless it
    # needs an exponent; much cheaper than as_tuple() (a named tuple of every digit)
    text = str(value)
    if "E" in text or "e" in text:
        exp = value.as_tuple().exponent
        return -exp if isinstance(exp, int) and exp < 0 else 0
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def _fmt(value: Any) -> str:
    """A value as a message quotes it: cut short, so a 1 MB field never fills an error file."""
    return f'"{cut(str(value))}"' if value is not None else "(vacío)"


def _is_persona_generica(rfc: str) -> bool:
    return rfc in (RFC_PUBLICO_GENERAL, RFC_EXTRANJERO)


def _sum(values: list[Decimal]) -> Decimal:
    total = ZERO
    for v in values:
        total += v
    return total


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


def _parse_fecha(fecha: str) -> datetime | None:
    if not RE_FECHA.fullmatch(fecha):
        return None
    try:  # the pattern admits only YYYY-MM-DDTHH:MM:SS: ISO, read faster than strptime
        return datetime.fromisoformat(fecha)
    except ValueError:
        return None


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


def _check_decimals(x: _Ctx, code: str, path: str, value: Decimal | None) -> None:
    v = num(value)
    if v is not None and decimals_of(v) > x.dec:
        x.add(code, path, f"Valor: {value}; la moneda {x.c.Moneda} admite {x.dec} decimales.")


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


def _half_unit(value: Decimal) -> Decimal:
    """½·10^−d for a value given with d decimals."""
    return quantum(decimals_of(value)) * HALF


def importe_limits(a: Decimal, b: Decimal, decimals: int) -> tuple[Decimal, Decimal]:
    """SAT's limits for a product ``a × b`` given with ``decimals`` places (Anexo 20):
    (a − ½·10^−da)(b − ½·10^−db) truncated, (a + ½·10^−da)(b + ½·10^−db) rounded up."""
    ctx = CONTEXT
    ha, hb = _half_unit(a), _half_unit(b)
    q = quantum(decimals)
    low = ctx.multiply(ctx.subtract(a, ha), ctx.subtract(b, hb))
    high = ctx.multiply(ctx.add(a, ha), ctx.add(b, hb))
    return (
        low.quantize(q, rounding=ROUND_FLOOR, context=ctx),
        high.quantize(q, rounding=ROUND_CEILING, context=ctx),
    )


def _tax_limits(base: Decimal, tasa: Decimal, importe: Decimal) -> tuple[Decimal, Decimal]:
    """Limits of a tax Importe: (Base ∓ ½·10^−db) × TasaOCuota, floor / ceiling."""
    ctx = CONTEXT
    hb = _half_unit(base)
    q = quantum(decimals_of(importe))
    low = ctx.multiply(ctx.subtract(base, hb), tasa)
    high = ctx.multiply(ctx.add(base, hb), tasa)
    return (
        low.quantize(q, rounding=ROUND_FLOOR, context=ctx),
        high.quantize(q, rounding=ROUND_CEILING, context=ctx),
    )


@rule
def _conceptos_presentes(x: _Ctx) -> None:
    if not x.c.Conceptos:
        x.add("CONN-CONCEPTOS", "Conceptos")


def _concepto(x: _Ctx, i: int, k: Concepto) -> None:
    c, cats = x.c, x.cats
    p = f"Conceptos[{i}]"
    if k.ClaveProdServ not in cats.ClaveProdServ:
        x.add("CFDI40162", f"{p}.ClaveProdServ", f"Valor: {_fmt(k.ClaveProdServ)}.")
    if k.ClaveUnidad not in cats.ClaveUnidad:
        x.add("CFDI40165", f"{p}.ClaveUnidad", f"Valor: {_fmt(k.ClaveUnidad)}.")
    vu, cant, importe = num(k.ValorUnitario), num(k.Cantidad), num(k.Importe)
    if c.TipoDeComprobante in ("I", "E", "N") and vu is not None and vu <= 0:
        x.add("CFDI40166", f"{p}.ValorUnitario", f"Valor: {k.ValorUnitario}.")
    if k.Importe is None:
        x.add("CFDI40167", f"{p}.Importe", "El campo Importe no viene.")
    elif importe is not None and vu is not None and cant is not None:
        lower, upper = importe_limits(cant, vu, decimals_of(importe))
        if not lower <= importe <= upper:
            x.add(
                "CFDI40167",
                f"{p}.Importe",
                f"Valor: {k.Importe}; límites: {lower} a {upper}.",
            )
    desc = num(k.Descuento)
    if desc is not None and importe is not None:
        if decimals_of(desc) > decimals_of(importe):
            x.add("CFDI40168", f"{p}.Descuento", f"Descuento: {k.Descuento}; Importe: {k.Importe}.")
        if desc > importe:
            x.add("CFDI40169", f"{p}.Descuento", f"Descuento: {k.Descuento}; Importe: {k.Importe}.")
    _objeto_imp(x, p, k)
    if k.Impuestos is not None:
        _impuestos_concepto(x, p, k)
    _a_cuenta_terceros(x, p, k)
    for j, pedimento in enumerate(k.InformacionAduanera):
        path = f"{p}.InformacionAduanera[{j}]"
        if x.has_cce:
            x.add("CFDI40195", path)
        elif not RE_PEDIMENTO.fullmatch(pedimento):
            x.add("CFDI40194", path, f"Valor: {_fmt(pedimento)}.")
    for j, parte in enumerate(k.Parte):
        _parte(x, f"{p}.Parte[{j}]", parte)


def _parte(x: _Ctx, pp: str, parte: Parte) -> None:
    if parte.ClaveProdServ not in x.cats.ClaveProdServ:
        x.add("CFDI40196", f"{pp}.ClaveProdServ", f"Valor: {_fmt(parte.ClaveProdServ)}.")
    vu, cant, importe = num(parte.ValorUnitario), num(parte.Cantidad), num(parte.Importe)
    if vu is not None and vu <= 0:
        x.add("CFDI40197", f"{pp}.ValorUnitario", f"Valor: {parte.ValorUnitario}.")
    if importe is not None and vu is not None and cant is not None:
        lower, upper = importe_limits(cant, vu, decimals_of(importe))
        if not lower <= importe <= upper:
            x.add(
                "CFDI40198", f"{pp}.Importe", f"Valor: {parte.Importe}; límites: {lower} a {upper}."
            )
    for j, pedimento in enumerate(parte.InformacionAduanera):
        path = f"{pp}.InformacionAduanera[{j}]"
        if x.has_cce:
            x.add("CFDI40200", path)
        elif not RE_PEDIMENTO.fullmatch(pedimento):
            x.add("CFDI40199", path, f"Valor: {_fmt(pedimento)}.")


def _objeto_imp(x: _Ctx, p: str, k: Concepto) -> None:
    obj = k.ObjetoImp
    if obj not in x.cats.ObjetoImp:
        x.add("CFDI40170", f"{p}.ObjetoImp", f"Valor: {_fmt(obj)}.")
        return
    imp = k.Impuestos
    if obj == "02" and imp is None:
        x.add("CFDI40171", f"{p}.Impuestos")
    elif obj in ("01", "03", "04", "05") and imp is not None:
        x.add("CFDI40172", f"{p}.Impuestos", f"ObjetoImp: {_fmt(obj)}.")
    taxes = [] if imp is None else [t.Impuesto for t in imp.Traslados + imp.Retenciones]
    if obj in ("06", "08") and any(t in ("002", "003") for t in taxes):
        x.add("CFDI140226", f"{p}.Impuestos", f"ObjetoImp: {_fmt(obj)}.")
    if obj == "07":
        traslados = [] if imp is None else [t.Impuesto for t in imp.Traslados]
        if "002" in taxes or "003" not in traslados:
            x.add("CFDI140227", f"{p}.Impuestos")


def _cuota_detail(t: Any) -> str:
    return f"Impuesto {_fmt(t.Impuesto)}, TasaOCuota {t.TasaOCuota} por unidad; la Base no viene."


def _impuestos_concepto(x: _Ctx, p: str, k: Concepto) -> None:
    cats = x.cats
    imp = k.Impuestos
    assert imp is not None
    if not imp.Traslados and not imp.Retenciones:
        x.add("CFDI40173", f"{p}.Impuestos")
    for j, t in enumerate(imp.Traslados):
        tp = f"{p}.Impuestos.Traslados[{j}]"
        base = num(t.Base)
        if t.Base is None and t.TipoFactor == "Cuota":  # amounts never computes it
            x.add("CONN-IEPS-CUOTA-BASE", f"{tp}.Base", _cuota_detail(t))
            continue
        if t.Base is None:
            x.add("CFDI40174", f"{tp}.Base", "El campo Base no viene.")
        elif base is not None and base <= 0:
            x.add("CFDI40174", f"{tp}.Base", f"Valor: {t.Base}.")
        if t.Impuesto not in cats.Impuesto or t.Impuesto not in IMPUESTO_TRASLADO:
            x.add("CFDI40175", f"{tp}.Impuesto", f"Valor: {_fmt(t.Impuesto)}.")
        if t.TipoFactor not in cats.TipoFactor:
            x.add("CFDI40176", f"{tp}.TipoFactor", f"Valor: {_fmt(t.TipoFactor)}.")
            continue
        if t.TipoFactor == "Exento":
            if t.TasaOCuota is not None or t.Importe is not None:
                x.add("CFDI40177", tp)
            continue
        if t.TasaOCuota is None or t.Importe is None:
            x.add("CFDI40178", tp)
            continue
        tasa, importe = num(t.TasaOCuota), num(t.Importe)
        if tasa is None or not cats.tasa_valida(t.Impuesto, t.TipoFactor, tasa, traslado=True):
            x.add(
                "CFDI40179",
                f"{tp}.TasaOCuota",
                f"Valor: {t.TasaOCuota} ({t.Impuesto}, {t.TipoFactor}).",
            )
        elif base is not None and importe is not None:
            lower, upper = _tax_limits(base, tasa, importe)
            if not lower <= importe <= upper:
                x.add(
                    "CFDI40180", f"{tp}.Importe", f"Valor: {t.Importe}; límites: {lower} a {upper}."
                )
    for j, r in enumerate(imp.Retenciones):
        rp = f"{p}.Impuestos.Retenciones[{j}]"
        base = num(r.Base)
        if r.Base is None and r.TipoFactor == "Cuota":
            x.add("CONN-IEPS-CUOTA-BASE", f"{rp}.Base", _cuota_detail(r))
            continue
        if r.Base is None:
            x.add("CFDI40181", f"{rp}.Base", "El campo Base no viene.")
        elif base is not None and base <= 0:
            x.add("CFDI40181", f"{rp}.Base", f"Valor: {r.Base}.")
        if r.Impuesto not in cats.Impuesto or r.Impuesto not in IMPUESTO_RETENCION:
            x.add("CFDI40182", f"{rp}.Impuesto", f"Valor: {_fmt(r.Impuesto)}.")
        if r.TipoFactor not in cats.TipoFactor:
            x.add("CFDI40183", f"{rp}.TipoFactor", f"Valor: {_fmt(r.TipoFactor)}.")
            continue
        if r.TipoFactor == "Exento":
            x.add("CFDI40184", f"{rp}.TipoFactor")
            continue
        tasa, importe = num(r.TasaOCuota), num(r.Importe)
        if tasa is None or not cats.tasa_valida(r.Impuesto, r.TipoFactor, tasa, traslado=False):
            x.add(
                "CFDI40185",
                f"{rp}.TasaOCuota",
                f"Valor: {r.TasaOCuota} ({r.Impuesto}, {r.TipoFactor}).",
            )
        elif r.Importe is None:
            x.add("CFDI40186", f"{rp}.Importe", "El campo Importe no viene.")
        elif base is not None and importe is not None:
            lower, upper = _tax_limits(base, tasa, importe)
            if not lower <= importe <= upper:
                x.add(
                    "CFDI40186", f"{rp}.Importe", f"Valor: {r.Importe}; límites: {lower} a {upper}."
                )


def _a_cuenta_terceros(x: _Ctx, p: str, k: Concepto) -> None:
    t = k.ACuentaTerceros
    if t is None:
        return
    c = x.c
    tp = f"{p}.ACuentaTerceros"
    if not RE_RFC.fullmatch(t.RfcACuentaTerceros):
        x.add("CONN-RFC", f"{tp}.RfcACuentaTerceros", f"Valor: {_fmt(t.RfcACuentaTerceros)}.")
    if t.RfcACuentaTerceros in (c.Emisor.Rfc, c.Receptor.Rfc):
        x.add("CFDI40188", f"{tp}.RfcACuentaTerceros", f"Valor: {_fmt(t.RfcACuentaTerceros)}.")
    if t.RegimenFiscalACuentaTerceros not in x.cats.RegimenFiscal:
        x.add(
            "CFDI40191",
            f"{tp}.RegimenFiscalACuentaTerceros",
            f"Valor: {_fmt(t.RegimenFiscalACuentaTerceros)}.",
        )
    if t.DomicilioFiscalACuentaTerceros not in x.cats.CodigoPostal:
        x.add(
            "CONN-CP",
            f"{tp}.DomicilioFiscalACuentaTerceros",
            f"Valor: {_fmt(t.DomicilioFiscalACuentaTerceros)}.",
        )
    if t.RfcACuentaTerceros == RFC_TERCERO_EXTRANJERO:
        if " ".join(t.NombreACuentaTerceros.split()).upper() != NOMBRE_TERCERO_EXTRANJERO:
            x.add("CFDI40189", f"{tp}.NombreACuentaTerceros")
        if t.DomicilioFiscalACuentaTerceros != c.LugarExpedicion:
            x.add("CFDI40193", f"{tp}.DomicilioFiscalACuentaTerceros")
        if t.RegimenFiscalACuentaTerceros != "616":
            x.add("CFDI140223", f"{tp}.RegimenFiscalACuentaTerceros")


@rule
def _conceptos(x: _Ctx) -> None:
    for i, k in enumerate(x.c.Conceptos):
        try:
            _concepto(x, i, k)
        except Exception as exc:  # one odd concepto must not hide the others' problems
            x.add("CONN-REGLA", f"Conceptos[{i}]", f"({type(exc).__name__})")


# --- Impuestos (summary) ------------------------------------------------------------------------


def _concept_taxes_complete(c: Comprobante) -> bool:
    """True when every concept tax amount the sums need is present and finite."""
    for k in c.Conceptos:
        if k.Impuestos is None:
            continue
        for t in k.Impuestos.Traslados:
            if num(t.Base) is None:
                return False
            if t.TipoFactor != "Exento" and num(t.Importe) is None:
                return False
        for r in k.Impuestos.Retenciones:
            if num(r.Importe) is None:
                return False
    return True


@rule
def _impuestos(x: _Ctx) -> None:
    c = x.c
    imp = c.Impuestos
    if c.TipoDeComprobante in ("T", "P"):
        if imp is not None:
            x.add("CFDI40201", "Impuestos", f"TipoDeComprobante: {_fmt(c.TipoDeComprobante)}.")
        return
    sums_ok = _concept_taxes_complete(c)
    exp_t = traslado_groups(c.Conceptos) if sums_ok else {}
    exp_r = retencion_groups(c.Conceptos) if sums_ok else {}
    if imp is None:
        for key in exp_t:
            x.add("CFDI40221", "Impuestos", f"Falta el traslado {_key(key)} de los conceptos.")
        for key in exp_r:
            x.add("CFDI40211", "Impuestos", f"Falta la retención {key} de los conceptos.")
        return
    _resumen_traslados(x, exp_t, sums_ok)
    _resumen_retenciones(x, exp_r, sums_ok)


def _key(key: tuple[str, str, Decimal | None]) -> str:
    imp, factor, tasa = key
    return f"({imp}, {factor}{'' if tasa is None else ', ' + str(tasa)})"


def _resumen_traslados(
    x: _Ctx,
    expected: dict[tuple[str, str, Decimal | None], tuple[Decimal, Decimal | None]],
    sums_ok: bool,
) -> None:
    imp = x.c.Impuestos
    assert imp is not None
    seen: set[tuple[str, str, Decimal | None]] = set()
    gravados: list[Decimal] = []
    gravados_ok = True
    solo_exento = bool(imp.Traslados) and all(t.TipoFactor == "Exento" for t in imp.Traslados)
    for j, t in enumerate(imp.Traslados):
        tp = f"Impuestos.Traslados[{j}]"
        exento = t.TipoFactor == "Exento"
        tasa = num(t.TasaOCuota)
        key = (t.Impuesto, t.TipoFactor, None if exento else tasa_key(tasa))
        if t.Impuesto not in x.cats.Impuesto or t.Impuesto not in IMPUESTO_TRASLADO:
            x.add("CFDI40217", f"{tp}.Impuesto", f"Valor: {_fmt(t.Impuesto)}.")
        if key in seen:
            x.add("CFDI40218", tp, f"Combinación repetida {_key(key)}.")
        seen.add(key)
        _check_decimals(x, "CFDI40214", f"{tp}.Base", t.Base)
        if exento:
            if solo_exento and (t.TasaOCuota is not None or t.Importe is not None):
                x.add("CFDI40213", tp)
        else:
            if tasa is None or not x.cats.tasa_valida(
                t.Impuesto, t.TipoFactor, tasa, traslado=True
            ):
                x.add("CFDI40219", f"{tp}.TasaOCuota", f"Valor: {_fmt(t.TasaOCuota)}.")
            _check_decimals(x, "CFDI40220", f"{tp}.Importe", t.Importe)
            importe = num(t.Importe)
            if importe is None:
                gravados_ok = False
                if t.Importe is None:
                    x.add("CFDI40221", f"{tp}.Importe", "El campo Importe no viene.")
            else:
                gravados.append(importe)
        if not sums_ok:
            continue
        if key not in expected:
            x.add("CFDI40221", tp, f"Ningún concepto tiene el traslado {_key(key)}.")
            continue
        exp_base, exp_importe = expected[key]
        base = num(t.Base)
        want_base = round_to(exp_base, x.dec)
        if base is not None and base != want_base:
            code = "CFDI40216" if solo_exento else "CFDI40215"
            x.add(code, f"{tp}.Base", f"Valor: {t.Base}; esperado: {want_base}.")
        importe = num(t.Importe)
        if not exento and exp_importe is not None and importe is not None:
            want = round_to(exp_importe, x.dec)
            if importe != want:
                x.add("CFDI40221", f"{tp}.Importe", f"Valor: {t.Importe}; esperado: {want}.")
    for key in expected:
        if key not in seen:
            x.add(
                "CFDI40221",
                "Impuestos.Traslados",
                f"Falta el traslado {_key(key)} de los conceptos.",
            )
    total = imp.TotalImpuestosTrasladados
    has_gravados = any(t.TipoFactor != "Exento" for t in imp.Traslados)
    if total is None:
        if has_gravados:
            x.add("CFDI40212", "Impuestos.TotalImpuestosTrasladados")
        return
    _check_decimals(x, "CFDI40204", "Impuestos.TotalImpuestosTrasladados", total)
    if num(total) is not None and gravados_ok:
        want = round_to(_sum(gravados), x.dec)
        if total != want:
            x.add(
                "CFDI40205",
                "Impuestos.TotalImpuestosTrasladados",
                f"Valor: {total}; esperado: {want}.",
            )


def _resumen_retenciones(x: _Ctx, expected: dict[str, Decimal], sums_ok: bool) -> None:
    imp = x.c.Impuestos
    assert imp is not None
    seen: set[str] = set()
    importes: list[Decimal] = []
    importes_ok = True
    for j, r in enumerate(imp.Retenciones):
        rp = f"Impuestos.Retenciones[{j}]"
        if r.Impuesto not in x.cats.Impuesto:
            x.add("CFDI40207", f"{rp}.Impuesto", f"Valor: {_fmt(r.Impuesto)}.")
        if r.Impuesto in seen:
            x.add("CFDI40208", f"{rp}.Impuesto", f"Impuesto repetido: {_fmt(r.Impuesto)}.")
        seen.add(r.Impuesto)
        _check_decimals(x, "CFDI40210", f"{rp}.Importe", r.Importe)
        importe = num(r.Importe)
        if importe is None:
            importes_ok = False
            continue
        importes.append(importe)
        if not sums_ok:
            continue
        if r.Impuesto not in expected:
            x.add(
                "CFDI40211", f"{rp}.Importe", f"Ningún concepto retiene el impuesto {r.Impuesto}."
            )
            continue
        want = round_to(expected[r.Impuesto], x.dec)
        if importe != want:
            x.add("CFDI40211", f"{rp}.Importe", f"Valor: {r.Importe}; esperado: {want}.")
    for key in expected:
        if key not in seen:
            x.add(
                "CFDI40211", "Impuestos.Retenciones", f"Falta la retención {key} de los conceptos."
            )
    total = imp.TotalImpuestosRetenidos
    if total is None:
        if imp.Retenciones:
            x.add("CFDI40206", "Impuestos.TotalImpuestosRetenidos")
        return
    _check_decimals(x, "CFDI40202", "Impuestos.TotalImpuestosRetenidos", total)
    if num(total) is not None and importes_ok:
        want = round_to(_sum(importes), x.dec)
        if total != want:
            x.add(
                "CFDI40203",
                "Impuestos.TotalImpuestosRetenidos",
                f"Valor: {total}; esperado: {want}.",
            )


# --- Entry point --------------------------------------------------------------------------------


_PATH_STEP = re.compile(r"([A-Za-z]+)(?:\[(\d+)\])?")
_CONCEPTO_PATH = re.compile(r"Conceptos\[(\d+)\]\.(.*)")
_CONCEPTO_AMOUNTS = ("Cantidad", "ValorUnitario", "Importe", "Descuento", "Impuestos")


def _derived(given: Comprobante, path: str) -> bool:
    """True when the value at ``path`` is absent from ``given`` (the input of
    ``amounts.complete``): the connector computed it."""
    node: Any = given
    for step in path.split("."):
        m = _PATH_STEP.fullmatch(step)
        if m is None or not isinstance(node, BaseModel) or m[1] not in type(node).model_fields:
            return False  # not a model path (e.g. "", "InformacionGlobal.Año"): not derived
        node = getattr(node, m[1])
        if m[2] is not None:
            index = int(m[2])
            node = node[index] if isinstance(node, list) and index < len(node) else None
        if node is None:
            return True
    return False


def _amount_source(path: str) -> tuple[int | None, bool]:
    """(concepto index or None, True when ``path`` is an amount the derived amounts of that
    concepto, or of the comprobante, are computed from)."""
    m = _CONCEPTO_PATH.fullmatch(path)
    if m is not None:
        return int(m[1]), m[2].startswith(_CONCEPTO_AMOUNTS)
    return None, path.startswith(("SubTotal", "Descuento", "Impuestos", "Pagos"))


def without_follow_ons(problems: list[Problem], given: Comprobante) -> list[Problem]:
    """``problems`` without the errors about amounts the connector derived (absent from
    ``given``) from an amount already in error: the root cause is reported, not its echoes.
    An amount of concepto i derives from concepto i's amounts; the comprobante's (SubTotal,
    Descuento, Total, the Impuestos summary, Pagos) from any amount. Any problem with a model
    path can be filtered (the XSD checks' too), not only ``validate``'s."""
    derived = {p.path for p in problems if p.severity == "error" and _derived(given, p.path)}
    if not derived:
        return problems
    roots: set[int | None] = set()  # concepto indexes with an amount in error; None: any
    for p in problems:
        if p.severity == "error" and p.path not in derived:
            index, is_amount = _amount_source(p.path)
            if is_amount:
                roots.update((index, None))

    def echo(p: Problem) -> bool:
        if p.path not in derived:
            return False
        index, _ = _amount_source(p.path)
        return index in roots

    return [p for p in problems if not echo(p)]


def validate(
    c: Comprobante, *, now: datetime | None = None, given: Comprobante | None = None
) -> list[Problem]:
    """Every SAT rule on ``c``; all problems at once, never an exception for bad data.

    ``given``: the invoice as the ERP gave it, when ``c`` is ``amounts.complete(given)``; an
    error about an amount the connector derived from an amount already in error is then left
    out (the error on what the ERP sent says it)."""
    x = _Ctx(c, catalogs(), now)
    with localcontext(CONTEXT):
        for name, check in RULES:
            try:
                check(x)
            except Exception as exc:  # a rule that cannot run on odd data is a problem, not a crash
                x.add("CONN-REGLA", "", f"Regla {name} ({type(exc).__name__}).")
    if given is not None and x.problems:
        return without_follow_ons(x.problems, given)
    return x.problems


def validate_one(c: Comprobante, check: Rule, path: str, label: str) -> list[Problem]:
    """One complement's rule alone (``check``), on a document as given (e.g. a sealed XML), as
    the sandbox PAC applies it; odd data is a ``CONN-REGLA`` problem at ``path``, never a
    crash."""
    x = _Ctx(c, catalogs(), None)
    with localcontext(CONTEXT):
        try:
            check(x)
        except Exception as exc:
            x.add("CONN-REGLA", path, f"Regla {label} ({type(exc).__name__}).")
    return x.problems


__all__ = ["MESSAGES", "RULES", "importe_limits", "validate", "validate_one", "without_follow_ons"]

# The Pagos 2.0 rules (CRP20xxx) live in their own module, which adds its rule and messages to
# RULES and MESSAGES; imported last, as it builds on this module.
from . import rules_pagos  # noqa: E402, F401
