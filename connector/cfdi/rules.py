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

The rules live by family, each module registering its rules in ``rules_base.RULES`` as it
loads: ``rules_comprobante`` (the Comprobante's fields, Emisor, Receptor, the XSD-level numbers),
``rules_conceptos`` (the Conceptos and the Impuestos summary), ``rules_pagos`` (the Pagos 2.0
complement: SAT's ``CRP20xxx`` codes, a few ``CONN-PAGOS-xxx``), then the complements'
``rules_cce20`` and ``rules_cp31`` (loaded by the package, after this module). What they share
(messages, ``_Ctx``, the registry, number helpers, tax limits) is in ``rules_base``. This module
runs them: ``validate`` and ``without_follow_ons``.

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
from datetime import datetime
from decimal import localcontext
from typing import Any

from pydantic import BaseModel

# The rule families, imported for the rules they register, in the order validate runs them.
from . import rules_comprobante, rules_conceptos, rules_pagos  # noqa: F401  isort: skip
from .amounts import CONTEXT
from .catalogs import catalogs
from .errors import Problem
from .model import Comprobante
from .rules_base import (
    MATRIX,
    MATRIX_RULES,
    MESSAGES,
    RULES,
    Rule,
    _Ctx,
    _fmt,
    decimals_of,
    importe_limits,
    num,
    rule,
    validate_one,
)

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


# What the complements' rules (rules_cce20, rules_cp31) and the tests take from here, kept as it
# was before rules_base held it.
__all__ = [
    "MATRIX",
    "MATRIX_RULES",
    "MESSAGES",
    "RULES",
    "Rule",
    "_Ctx",
    "_fmt",
    "decimals_of",
    "importe_limits",
    "num",
    "rule",
    "validate",
    "validate_one",
    "without_follow_ons",
]
