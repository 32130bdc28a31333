"""What every SAT rule module builds on: the messages of SAT's matrix, the patterns and
constants of Anexo 20, the rule context (``_Ctx``), the registry of rules (``RULES``,
``@rule``), the number helpers and the limits of a product or a tax amount.

The rule families (``rules_comprobante``, ``rules_conceptos``, ``rules_pagos``, and the
complements' ``rules_cce20`` and ``rules_cp31``) import it downward and register their rules
in ``RULES`` as they load; ``rules.validate`` runs them in that order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from importlib import resources
from typing import Any

from .amounts import (
    CONTEXT,
    quantum,
)
from .catalogs import Catalogs, catalogs
from .errors import Problem
from .model import RFC_EXTRANJERO, RFC_PUBLICO_GENERAL, Comprobante
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


def _parse_fecha(fecha: str) -> datetime | None:
    if not RE_FECHA.fullmatch(fecha):
        return None
    try:  # the pattern admits only YYYY-MM-DDTHH:MM:SS: ISO, read faster than strptime
        return datetime.fromisoformat(fecha)
    except ValueError:
        return None


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


def _check_decimals(x: _Ctx, code: str, path: str, value: Decimal | None) -> None:
    v = num(value)
    if v is not None and decimals_of(v) > x.dec:
        x.add(code, path, f"Valor: {value}; la moneda {x.c.Moneda} admite {x.dec} decimales.")


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
