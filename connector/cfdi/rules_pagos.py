"""SAT's Pagos 2.0 rules (Complemento para recepción de pagos), each tagged with its ``CRP20xxx``
code and reported with the message of SAT's Pagos 2.0 validation matrix (shipped as
``matriz_pagos20.tsv``, never retyped), followed by the detail of what was compared.

Over 500 lines for a reason: one complement's rules in one module, as SAT's own matrix for it;
what they share with the CFDI 4.0 rules is in ``rules_base``.

They run inside ``rules.validate`` (one more rule of ``rules_base.RULES``) and alone through
``validate_pagos(c)``, which the sandbox PAC applies to every Pagos 2.0 document it stamps.

Amounts are checked from the data given, as SAT's validator does:

* ``ImporteDR`` of a TrasladoDR/RetencionDR (CRP20261/CRP20254) between the limits of
  ``BaseDR × TasaOCuotaDR``: (BaseDR ∓ ½·10^−d) × TasaOCuotaDR, d the decimals BaseDR is written
  with, truncated / rounded up to the decimals ImporteDR is written with (the limits of
  Anexo 20 for every tax amount, the same function as CFDI40180/40186);
* ``ImpSaldoInsoluto = ImpSaldoAnt − ImpPagado`` and not negative (CRP20244); ImpSaldoAnt,
  ImpPagado and Monto greater than zero (CRP20239/41, CRP20218); decimals within those of
  MonedaDR (CRP20240/42/43) and MonedaP (CRP20219), from c_Moneda;
* ``Monto`` covering the documents paid (CRP20217): Σ ImpPagado ÷ EquivalenciaDR ≤ Monto. When
  currencies differ and the sum exceeds Monto, Monto must lie between the sums of each
  ImpPagado's limits (CRP20276): (ImpPagado ∓ ½·10^−d) ÷ (EquivalenciaDR ± ½·10^−e), d and e the
  decimals written, e = 10 for a document in the payment's currency (CRP20277); bounds taken to
  MonedaP's decimals (lower truncated, upper rounded up);
* ``ImpuestosP`` (CRP20265, CRP20268/69, CRP20274) as the sum of the documents' BaseDR / ImporteDR
  divided by EquivalenciaDR (``amounts.impuestos_dr_sums``), grouped by impuesto, factor and
  tasa: the value given must be that sum truncated or rounded (public validators truncate,
  ``amounts.complete`` rounds half-up) to the decimals it is written with, at least MonedaP's;
* ``Totales`` (CRP20201–CRP20211) equal to the rounding to 2 decimals (MXN) of Σ amount ×
  TipoCambioP over the payments (``amounts.pagos_totales``), as the matrix's messages say; a
  total missing where payments carry that tax is CRP20264/67/73 (MontoTotalPagos: CRP20211).

Codes of SAT's matrix not checked here: CRP20216/CRP20220 (exchange-rate and amount limits that
need a Confirmacion: SAT's daily data), CRP20222 (the RFC list), CRP20225/CRP20226 (the account
patterns of c_FormaPago's columns, not shipped), CRP20275 (a per-document margin whose reference
value the matrix does not give; its limits enter CRP20276). CRP20103/CRP20110 (SubTotal, Total),
CRP20105/CRP20106 (FormaPago, MetodoPago) are reported as CFDI40109, CFDI40119, CFDI40103 and
CFDI40125 by the CFDI 4.0 rules; CRP20109 (TipoCambio) as CFDI40116 when Moneda is XXX.

Ours (``CONN-PAGOS-xxx``), where SAT's matrix has no code: a tipo P without the complement,
UsoCFDI CP01, catalog values (c_FormaPago, c_Moneda) and FechaPago's pattern, which SAT leaves to
the schema.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from importlib import resources

from .amounts import CONTEXT, impuestos_dr_sums, pagos_totales, quantum, tasa_key
from .catalogs import IMPUESTO_RETENCION, IMPUESTO_TRASLADO, catalogs
from .errors import Problem
from .model import RFC_EXTRANJERO, Comprobante, DoctoRelacionado, ImpuestosP, Pago
from .rules_base import MESSAGES, _Ctx, _fmt, _parse_fecha, _tax_limits, decimals_of, num, rule

ZERO = Decimal(0)
ONE = Decimal(1)
HALF = Decimal("0.5")
SAME_CURRENCY_DECIMALS = 10  # CRP20277: EquivalenciaDR taken as 1.0000000000
# c_FormaPago: the formas that admit the accounts and RFCs of the banks (CRP20221, 24, 27, 28)
FORMAS_CON_CUENTAS = frozenset({"02", "03", "04", "05", "06", "28", "29"})


def _load_matrix() -> dict[str, str]:
    """code -> official Spanish message, from SAT's Pagos 2.0 matrix (TSV shipped with us);
    a final period is added where SAT's message has none (our detail follows it)."""
    text = resources.files(__package__).joinpath("matriz_pagos20.tsv").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) >= 2 and cols[0].strip().startswith("CRP"):
            message = " ".join(cols[1].split())
            out[cols[0].strip()] = message if message.endswith(".") else message + "."
    return out


MATRIX_PAGOS: dict[str, str] = _load_matrix()

MESSAGES_PAGOS: dict[str, str] = {
    **MATRIX_PAGOS,
    "CONN-PAGOS-001": "El comprobante de tipo P debe incluir el complemento de Pagos 2.0.",
    "CONN-PAGOS-003": 'El campo UsoCFDI del comprobante de pago debe ser "CP01".',
    "CONN-PAGOS-008": "El campo FormaDePagoP no contiene un valor del catálogo c_FormaPago.",
    "CONN-PAGOS-009": "El campo MonedaP no contiene un valor del catálogo c_Moneda.",
    "CONN-PAGOS-012": "El campo FechaPago no cumple con el patrón AAAA-MM-DDThh:mm:ss.",
    "CONN-PAGOS-014": "El campo MonedaDR no contiene un valor del catálogo c_Moneda.",
}
MESSAGES.update(MESSAGES_PAGOS)

# (field, required value, code) of the one concepto of a payment, and the fields it must not have
_CONCEPTO_PAGO = (
    ("ClaveProdServ", "84111506", "CRP20113"),
    ("Cantidad", ONE, "CRP20115"),
    ("ClaveUnidad", "ACT", "CRP20116"),
    ("Descripcion", "Pago", "CRP20118"),
    ("ValorUnitario", ZERO, "CRP20119"),
    ("Importe", ZERO, "CRP20120"),
    ("ObjetoImp", "01", "CRP20122"),
)
_CONCEPTO_SIN = (
    ("NoIdentificacion", "CRP20114"),
    ("Unidad", "CRP20117"),
    ("Descuento", "CRP20121"),
    ("Impuestos", "CRP20123"),
)
_APARTADOS = ("InformacionAduanera", "CuentaPredial", "ComplementoConcepto", "Parte")

_TOTALES = {
    "TotalRetencionesIVA": "CRP20201",
    "TotalRetencionesISR": "CRP20202",
    "TotalRetencionesIEPS": "CRP20203",
    "TotalTrasladosBaseIVA16": "CRP20204",
    "TotalTrasladosImpuestoIVA16": "CRP20205",
    "TotalTrasladosBaseIVA8": "CRP20206",
    "TotalTrasladosImpuestoIVA8": "CRP20207",
    "TotalTrasladosBaseIVA0": "CRP20208",
    "TotalTrasladosImpuestoIVA0": "CRP20209",
    "TotalTrasladosBaseIVAExento": "CRP20210",
    "MontoTotalPagos": "CRP20211",
}


def _missing_total_code(name: str) -> str:
    """The code of a total the payments call for but the document lacks."""
    if name.startswith("TotalRetenciones"):
        return "CRP20264"
    if name.startswith("TotalTrasladosBase"):
        return "CRP20267"
    if name.startswith("TotalTrasladosImpuesto"):
        return "CRP20273"
    return _TOTALES[name]


# --- Comprobante and concepto -------------------------------------------------------------------


@rule
def _pagos(x: _Ctx) -> None:
    c = x.c
    if c.TipoDeComprobante != "P":
        if c.Pagos is not None:
            x.add(
                "CRP20101",
                "TipoDeComprobante",
                f"Valor: {_fmt(c.TipoDeComprobante)}; el comprobante trae el complemento de "
                "Pagos 2.0.",
            )
        return
    if c.Pagos is None:
        x.add("CONN-PAGOS-001", "Pagos")
    if c.Exportacion != "01":
        x.add("CRP20102", "Exportacion", f"Valor: {_fmt(c.Exportacion)}.")
    if c.Moneda != "XXX":
        x.add("CRP20104", "Moneda", f"Valor: {_fmt(c.Moneda)}.")
        if c.TipoCambio is not None:  # with XXX, CFDI40116 reports it
            x.add("CRP20109", "TipoCambio", f"Valor: {c.TipoCambio}.")
    if c.CondicionesDePago is not None:
        x.add("CRP20107", "CondicionesDePago", f"Valor: {_fmt(c.CondicionesDePago)}.")
    if c.Descuento is not None:
        x.add("CRP20108", "Descuento", f"Valor: {c.Descuento}.")
    if c.Receptor.UsoCFDI != "CP01":
        x.add("CONN-PAGOS-003", "Receptor.UsoCFDI", f"Valor: {_fmt(c.Receptor.UsoCFDI)}.")
    if len(c.Conceptos) > 1:
        x.add("CRP20111", "Conceptos", f"Conceptos: {len(c.Conceptos)}.")
    for i, k in enumerate(c.Conceptos):
        p = f"Conceptos[{i}]"
        for name, want, code in _CONCEPTO_PAGO:
            got = getattr(k, name)
            if got != want:
                x.add(code, f"{p}.{name}", f"Valor: {_fmt(got)}.")
        for name, code in _CONCEPTO_SIN:
            if getattr(k, name) is not None:
                x.add(code, f"{p}.{name}")
        if k.ACuentaTerceros is None:
            for name in _APARTADOS:
                if getattr(k, name):
                    x.add("CRP20112", f"{p}.{name}")
    if c.Pagos is not None:
        for i, pago in enumerate(c.Pagos.Pago):
            _pago(x, f"Pagos.Pago[{i}]", pago)
        _totales(x)


# --- Pago ---------------------------------------------------------------------------------------


def _pago(x: _Ctx, pp: str, pago: Pago) -> None:
    cats = x.cats
    if pago.FormaDePagoP == "99":
        x.add("CRP20212", f"{pp}.FormaDePagoP")
    elif pago.FormaDePagoP not in cats.FormaPago:
        x.add("CONN-PAGOS-008", f"{pp}.FormaDePagoP", f"Valor: {_fmt(pago.FormaDePagoP)}.")
    if pago.MonedaP == "XXX":
        x.add("CRP20213", f"{pp}.MonedaP")
    elif pago.MonedaP not in cats.Moneda:
        x.add("CONN-PAGOS-009", f"{pp}.MonedaP", f"Valor: {_fmt(pago.MonedaP)}.")
    elif pago.MonedaP == "MXN":
        if pago.TipoCambioP is not None and pago.TipoCambioP != ONE:
            x.add("CRP20215", f"{pp}.TipoCambioP", f"Valor: {pago.TipoCambioP}.")
    elif pago.TipoCambioP is None:
        x.add("CRP20214", f"{pp}.TipoCambioP", f"MonedaP: {_fmt(pago.MonedaP)}.")
    if _parse_fecha(pago.FechaPago) is None:
        x.add("CONN-PAGOS-012", f"{pp}.FechaPago", f"Valor: {_fmt(pago.FechaPago)}.")
    dec_p = cats.decimals(pago.MonedaP)
    monto = num(pago.Monto)
    if monto is not None:
        if monto <= 0:
            x.add("CRP20218", f"{pp}.Monto", f"Valor: {pago.Monto}.")
        if decimals_of(monto) > dec_p:
            x.add(
                "CRP20219",
                f"{pp}.Monto",
                f"Valor: {pago.Monto}; la moneda {pago.MonedaP} admite {dec_p} decimales.",
            )
    _cuentas(x, pp, pago)
    sound = True  # every document's amounts usable for the sums
    for j, dr in enumerate(pago.DoctoRelacionado):
        sound &= _docto(x, f"{pp}.DoctoRelacionado[{j}]", pago, dr)
    if sound and monto is not None:
        _monto_cubre(x, pp, pago, monto, dec_p)
    if sound:
        _impuestos_p(x, pp, pago, dec_p)


def _cuentas(x: _Ctx, pp: str, pago: Pago) -> None:
    """Bank accounts and the payment chain (CRP20221–CRP20235, without the RFC list and the
    account patterns)."""
    forma = pago.FormaDePagoP
    if forma not in FORMAS_CON_CUENTAS:
        detail = f"FormaDePagoP: {_fmt(forma)}."
        for name, code in (
            ("RfcEmisorCtaOrd", "CRP20221"),
            ("CtaOrdenante", "CRP20224"),
            ("RfcEmisorCtaBen", "CRP20227"),
            ("CtaBeneficiario", "CRP20228"),
        ):
            if getattr(pago, name) is not None:
                x.add(code, f"{pp}.{name}", detail)
    if pago.RfcEmisorCtaOrd == RFC_EXTRANJERO and not pago.NomBancoOrdExt:
        x.add("CRP20223", f"{pp}.NomBancoOrdExt", f"RfcEmisorCtaOrd: {_fmt(RFC_EXTRANJERO)}.")
    if pago.TipoCadPago is not None and forma != "03":
        x.add("CRP20229", f"{pp}.TipoCadPago", f"FormaDePagoP: {_fmt(forma)}.")
    with_chain = pago.TipoCadPago is not None
    for name, required, forbidden in (
        ("CertPago", "CRP20230", "CRP20231"),
        ("CadPago", "CRP20232", "CRP20233"),
        ("SelloPago", "CRP20234", "CRP20235"),
    ):
        present = getattr(pago, name) is not None
        if with_chain and not present:
            x.add(required, f"{pp}.{name}", f"TipoCadPago: {_fmt(pago.TipoCadPago)}.")
        elif present and not with_chain:
            x.add(forbidden, f"{pp}.{name}", "El campo TipoCadPago no viene.")


def _check_decimals(x: _Ctx, code: str, path: str, value: Decimal, moneda: str) -> None:
    dec = x.cats.decimals(moneda)
    if decimals_of(value) > dec:
        x.add(code, path, f"Valor: {value}; la moneda {moneda} admite {dec} decimales.")


def _docto(x: _Ctx, dp: str, pago: Pago, dr: DoctoRelacionado) -> bool:
    """The document's own rules; True when its amounts can enter the payment's sums."""
    sound = True
    if dr.MonedaDR == "XXX":
        x.add("CRP20236", f"{dp}.MonedaDR")
    elif dr.MonedaDR not in x.cats.Moneda:
        x.add("CONN-PAGOS-014", f"{dp}.MonedaDR", f"Valor: {_fmt(dr.MonedaDR)}.")
    equiv = dr.EquivalenciaDR
    if dr.MonedaDR != pago.MonedaP:
        if equiv is None:
            x.add(
                "CRP20237",
                f"{dp}.EquivalenciaDR",
                f"MonedaDR: {_fmt(dr.MonedaDR)}; MonedaP: {_fmt(pago.MonedaP)}.",
            )
            sound = False
        elif num(equiv) is None or equiv <= 0:
            sound = False  # CONN-NUMERO, or zero: nothing to divide by
    elif equiv is not None and equiv != ONE:
        x.add(
            "CRP20238",
            f"{dp}.EquivalenciaDR",
            f"Valor: {equiv}; MonedaDR y MonedaP: {_fmt(dr.MonedaDR)}.",
        )
        sound = False
    ant, pagado, insoluto = num(dr.ImpSaldoAnt), num(dr.ImpPagado), num(dr.ImpSaldoInsoluto)
    if ant is not None:
        if ant <= 0:
            x.add("CRP20239", f"{dp}.ImpSaldoAnt", f"Valor: {dr.ImpSaldoAnt}.")
        _check_decimals(x, "CRP20240", f"{dp}.ImpSaldoAnt", ant, dr.MonedaDR)
    if pagado is None:
        sound = False
    else:
        if pagado <= 0:
            x.add("CRP20241", f"{dp}.ImpPagado", f"Valor: {dr.ImpPagado}.")
        _check_decimals(x, "CRP20242", f"{dp}.ImpPagado", pagado, dr.MonedaDR)
    if insoluto is not None:
        _check_decimals(x, "CRP20243", f"{dp}.ImpSaldoInsoluto", insoluto, dr.MonedaDR)
    if ant is not None and pagado is not None and insoluto is not None:
        want = CONTEXT.subtract(ant, pagado)
        if insoluto != want or insoluto < 0:
            x.add(
                "CRP20244",
                f"{dp}.ImpSaldoInsoluto",
                f"Valor: {dr.ImpSaldoInsoluto}; ImpSaldoAnt {dr.ImpSaldoAnt} − ImpPagado "
                f"{dr.ImpPagado} = {want}.",
            )
    _objeto_imp_dr(x, dp, dr)
    return _impuestos_dr(x, dp, dr) and sound


def _objeto_imp_dr(x: _Ctx, dp: str, dr: DoctoRelacionado) -> None:
    objeto, imp = dr.ObjetoImpDR, dr.ImpuestosDR
    detail = f"ObjetoImpDR: {_fmt(objeto)}."
    if objeto not in x.cats.ObjetoImp:
        x.add("CRP20245", f"{dp}.ObjetoImpDR", f"Valor: {_fmt(objeto)}.")
    elif objeto == "02" and imp is None:
        x.add("CRP20246", f"{dp}.ImpuestosDR", detail)
    elif objeto in ("01", "03", "04", "05") and imp is not None:
        x.add("CRP20247", f"{dp}.ImpuestosDR", detail)
    elif objeto in ("06", "07", "08") and imp is not None:
        impuestos = [t.ImpuestoDR for t in imp.TrasladosDR] + [
            r.ImpuestoDR for r in imp.RetencionesDR
        ]
        if objeto in ("06", "08") and ({"002", "003"} & set(impuestos)):
            x.add("CRP20278", f"{dp}.ImpuestosDR", detail)
        elif objeto == "07" and (
            "002" in impuestos or all(t.ImpuestoDR != "003" for t in imp.TrasladosDR)
        ):
            x.add("CRP20279", f"{dp}.ImpuestosDR", detail)


def _impuestos_dr(x: _Ctx, dp: str, dr: DoctoRelacionado) -> bool:
    """ImpuestosDR's rules; True when every amount the sums need is there."""
    imp = dr.ImpuestosDR
    if imp is None:
        return True
    ip = f"{dp}.ImpuestosDR"
    if not imp.TrasladosDR and not imp.RetencionesDR:
        x.add("CRP20248", ip)
    sound = True
    cats = x.cats
    for k, r in enumerate(imp.RetencionesDR):
        rp = f"{ip}.RetencionesDR[{k}]"
        base, tasa, importe = num(r.BaseDR), num(r.TasaOCuotaDR), num(r.ImporteDR)
        sound &= base is not None and importe is not None
        if base is not None and base <= 0:
            x.add("CRP20249", f"{rp}.BaseDR", f"Valor: {r.BaseDR}.")
        if r.ImpuestoDR not in cats.Impuesto or r.ImpuestoDR not in IMPUESTO_RETENCION:
            x.add("CRP20250", f"{rp}.ImpuestoDR", f"Valor: {_fmt(r.ImpuestoDR)}.")
        if r.TipoFactorDR not in cats.TipoFactor:
            x.add("CRP20251", f"{rp}.TipoFactorDR", f"Valor: {_fmt(r.TipoFactorDR)}.")
        elif r.TipoFactorDR == "Exento":
            x.add("CRP20252", f"{rp}.TipoFactorDR")
        elif tasa is None or not cats.tasa_valida(
            r.ImpuestoDR, r.TipoFactorDR, tasa, traslado=False
        ):
            x.add("CRP20253", f"{rp}.TasaOCuotaDR", f"Valor: {_fmt(r.TasaOCuotaDR)}.")
        elif base is not None and importe is not None:
            _importe_dr(x, "CRP20254", f"{rp}.ImporteDR", base, tasa, importe)
    for k, t in enumerate(imp.TrasladosDR):
        tp = f"{ip}.TrasladosDR[{k}]"
        base, tasa, importe = num(t.BaseDR), num(t.TasaOCuotaDR), num(t.ImporteDR)
        exento = t.TipoFactorDR == "Exento"
        sound &= base is not None and (exento or importe is not None)
        if base is not None and base <= 0:
            x.add("CRP20255", f"{tp}.BaseDR", f"Valor: {t.BaseDR}.")
        if t.ImpuestoDR not in cats.Impuesto or t.ImpuestoDR not in IMPUESTO_TRASLADO:
            x.add("CRP20256", f"{tp}.ImpuestoDR", f"Valor: {_fmt(t.ImpuestoDR)}.")
        if t.TipoFactorDR not in cats.TipoFactor:
            x.add("CRP20257", f"{tp}.TipoFactorDR", f"Valor: {_fmt(t.TipoFactorDR)}.")
        elif exento:
            if t.TasaOCuotaDR is not None or t.ImporteDR is not None:
                x.add("CRP20258", tp)
        elif t.TasaOCuotaDR is None or t.ImporteDR is None:
            missing = "TasaOCuotaDR" if t.TasaOCuotaDR is None else "ImporteDR"
            x.add("CRP20259", f"{tp}.{missing}", f"El campo {missing} no viene.")
        elif tasa is None or not cats.tasa_valida(
            t.ImpuestoDR, t.TipoFactorDR, tasa, traslado=True
        ):
            x.add("CRP20260", f"{tp}.TasaOCuotaDR", f"Valor: {_fmt(t.TasaOCuotaDR)}.")
        elif base is not None and importe is not None:
            _importe_dr(x, "CRP20261", f"{tp}.ImporteDR", base, tasa, importe)
    return sound


def _importe_dr(
    x: _Ctx, code: str, path: str, base: Decimal, tasa: Decimal, importe: Decimal
) -> None:
    lower, upper = _tax_limits(base, tasa, importe)
    if not lower <= importe <= upper:
        x.add(
            code,
            path,
            f"Valor: {importe}; BaseDR {base} × TasaOCuotaDR {tasa} = "
            f"{CONTEXT.multiply(base, tasa)}; límites: {lower} a {upper}.",
        )


# --- Monto and ImpuestosP -----------------------------------------------------------------------


def _monto_cubre(x: _Ctx, pp: str, pago: Pago, monto: Decimal, dec_p: int) -> None:
    """CRP20217 / CRP20276: the documents paid fit in Monto (with the margin of the exchange
    between currencies)."""
    doctos = pago.DoctoRelacionado
    if not doctos:
        return
    ctx = CONTEXT
    suma = lower = upper = ZERO
    for dr in doctos:
        pagado = dr.ImpPagado
        same = dr.MonedaDR == pago.MonedaP
        equiv = ONE if same or dr.EquivalenciaDR is None else dr.EquivalenciaDR
        suma = ctx.add(suma, ctx.divide(pagado, equiv))
        half_p = ctx.multiply(quantum(decimals_of(pagado)), HALF)
        places = SAME_CURRENCY_DECIMALS if same else decimals_of(equiv)
        half_e = ctx.multiply(quantum(places), HALF)
        lower = ctx.add(lower, ctx.divide(ctx.subtract(pagado, half_p), ctx.add(equiv, half_e)))
        # EquivalenciaDR ≥ 10^−e, so EquivalenciaDR − ½·10^−e > 0
        high = ctx.divide(ctx.add(pagado, half_p), ctx.subtract(equiv, half_e))
        upper = ctx.add(upper, high)
    if suma <= monto:
        return
    if all(dr.MonedaDR == pago.MonedaP for dr in doctos):
        x.add("CRP20217", f"{pp}.Monto", f"Monto: {pago.Monto}; suma de ImpPagado: {suma}.")
        return
    q = quantum(dec_p)
    lower = lower.quantize(q, ROUND_FLOOR, ctx)
    upper = upper.quantize(q, ROUND_CEILING, ctx)
    if not lower <= monto <= upper:
        x.add(
            "CRP20276",
            f"{pp}.Monto",
            f"Monto: {pago.Monto}; suma de ImpPagado entre EquivalenciaDR: "
            f"{suma.quantize(quantum(6), ROUND_FLOOR, ctx)}; límites: {lower} a {upper}.",
        )


def _sum_limits(total: Decimal, given: Decimal, dec: int) -> tuple[Decimal, Decimal]:
    """The values accepted for a sum of converted amounts written as ``given``: the sum
    truncated or rounded half-up to the decimals ``given`` has (at least the currency's ``dec``)."""
    q = quantum(max(decimals_of(given), dec))
    return total.quantize(q, ROUND_FLOOR, CONTEXT), total.quantize(q, ROUND_HALF_UP, CONTEXT)


def _compare_sum(
    x: _Ctx, code: str, path: str, given: Decimal | None, total: Decimal, dec: int
) -> None:
    value = num(given)
    if value is None:
        return
    lower, upper = _sum_limits(total, value, dec)
    if not lower <= value <= upper:
        want = lower if lower == upper else f"{lower} a {upper}"
        x.add(code, path, f"Valor: {given}; suma de los documentos relacionados: {want}.")


def _key_text(key: tuple[str, str, Decimal | None]) -> str:
    imp, factor, tasa = key
    return f"({imp}, {factor}{'' if tasa is None else ', ' + str(tasa)})"


def _impuestos_p(x: _Ctx, pp: str, pago: Pago, dec_p: int) -> None:
    traslados_dr, retenciones_dr = impuestos_dr_sums(pago)
    imp = pago.ImpuestosP or ImpuestosP()
    ip = f"{pp}.ImpuestosP"
    cats = x.cats
    seen_r: set[str] = set()
    for j, r in enumerate(imp.RetencionesP):
        rp = f"{ip}.RetencionesP[{j}]"
        if r.ImpuestoP not in cats.Impuesto:
            x.add("CRP20262", f"{rp}.ImpuestoP", f"Valor: {_fmt(r.ImpuestoP)}.")
        if r.ImpuestoP in seen_r:
            x.add("CRP20263", f"{rp}.ImpuestoP", f"Impuesto repetido: {_fmt(r.ImpuestoP)}.")
            continue
        seen_r.add(r.ImpuestoP)
        if r.ImpuestoP not in retenciones_dr:
            x.add(
                "CRP20265",
                f"{rp}.ImporteP",
                f"Ningún documento relacionado retiene el impuesto {r.ImpuestoP}.",
            )
        else:
            _compare_sum(
                x, "CRP20265", f"{rp}.ImporteP", r.ImporteP, retenciones_dr[r.ImpuestoP], dec_p
            )
    for impuesto in retenciones_dr:
        if impuesto not in seen_r:
            x.add("CRP20265", ip, f"Falta la retención {impuesto} de los documentos relacionados.")
    seen_t: set[tuple[str, str, Decimal | None]] = set()
    for j, t in enumerate(imp.TrasladosP):
        tp = f"{ip}.TrasladosP[{j}]"
        exento = t.TipoFactorP == "Exento"
        key = (t.ImpuestoP, t.TipoFactorP, None if exento else tasa_key(num(t.TasaOCuotaP)))
        base_code = "CRP20269" if exento else "CRP20268"
        if t.ImpuestoP not in cats.Impuesto or t.ImpuestoP not in IMPUESTO_TRASLADO:
            x.add("CRP20270", f"{tp}.ImpuestoP", f"Valor: {_fmt(t.ImpuestoP)}.")
        if key in seen_t:
            x.add("CRP20271", tp, f"Combinación repetida {_key_text(key)}.")
            continue
        seen_t.add(key)
        tasa = num(t.TasaOCuotaP)
        if exento:
            if t.TasaOCuotaP is not None or t.ImporteP is not None:
                x.add("CRP20266", tp)
        elif tasa is None or not cats.tasa_valida(t.ImpuestoP, t.TipoFactorP, tasa, traslado=True):
            x.add("CRP20272", f"{tp}.TasaOCuotaP", f"Valor: {_fmt(t.TasaOCuotaP)}.")
        if key not in traslados_dr:
            x.add(
                base_code,
                f"{tp}.BaseP",
                f"Ningún documento relacionado tiene el traslado {_key_text(key)}.",
            )
            continue
        base, importe = traslados_dr[key]
        _compare_sum(x, base_code, f"{tp}.BaseP", t.BaseP, base, dec_p)
        if importe is not None:
            if t.ImporteP is None:
                x.add("CRP20274", f"{tp}.ImporteP", "El campo ImporteP no viene.")
            else:
                _compare_sum(x, "CRP20274", f"{tp}.ImporteP", t.ImporteP, importe, dec_p)
    for key in traslados_dr:
        if key not in seen_t:
            code = "CRP20269" if key[1] == "Exento" else "CRP20268"
            x.add(code, ip, f"Falta el traslado {_key_text(key)} de los documentos relacionados.")


# --- Totales ------------------------------------------------------------------------------------


def _totales(x: _Ctx) -> None:
    pagos = x.c.Pagos
    assert pagos is not None
    expected = pagos_totales(pagos)
    totales = pagos.Totales
    for name, want in expected.items():
        got = getattr(totales, name)
        path = f"Pagos.Totales.{name}"
        if got is None:
            x.add(_missing_total_code(name), path, f"El campo {name} no viene; esperado: {want}.")
        elif num(got) is not None and num(want) is not None and got != want:
            x.add(_TOTALES[name], path, f"Valor: {got}; esperado: {want}.")
    for name, value in totales.__dict__.items():
        if value is not None and name not in expected and name in _TOTALES:
            x.add(
                _TOTALES[name],
                f"Pagos.Totales.{name}",
                f"Valor: {value}; ningún pago tiene ese impuesto.",
            )


# --- Alone (the sandbox PAC) --------------------------------------------------------------------


def validate_pagos(c: Comprobante) -> list[Problem]:
    """The Pagos 2.0 rules alone, on a document as given (e.g. a sealed XML): all problems."""
    x = _Ctx(c, catalogs(), None)
    with localcontext(CONTEXT):
        try:
            _pagos(x)
        except Exception as exc:  # odd data is a problem to report, never a crash
            x.add("CONN-REGLA", "Pagos", f"Regla pagos ({type(exc).__name__}).")
    return x.problems


__all__ = ["MATRIX_PAGOS", "MESSAGES_PAGOS", "validate_pagos"]
