"""SAT's CFDI 4.0 rules on the Conceptos (each concepto, its taxes, Parte, ACuentaTerceros)
and on the Impuestos summary of the Comprobante; registered in ``rules_base.RULES``
(``rules.validate`` runs them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .amounts import (
    retencion_groups,
    round_to,
    tasa_key,
    traslado_groups,
)
from .catalogs import IMPUESTO_RETENCION, IMPUESTO_TRASLADO
from .model import Comprobante, Concepto, Parte
from .rules_base import (
    NOMBRE_TERCERO_EXTRANJERO,
    RE_PEDIMENTO,
    RE_RFC,
    RFC_TERCERO_EXTRANJERO,
    _check_decimals,
    _Ctx,
    _fmt,
    _sum,
    _tax_limits,
    decimals_of,
    importe_limits,
    num,
    rule,
)

# --- Conceptos -----------------------------------------------------------------------------------


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
        for impuesto in exp_r:
            x.add("CFDI40211", "Impuestos", f"Falta la retención {impuesto} de los conceptos.")
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
