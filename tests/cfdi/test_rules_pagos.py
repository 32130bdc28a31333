"""rules_pagos: SAT's Pagos 2.0 rules, one case per CRP20xxx code (named after it), each breaking
one thing of a valid payment (``base_invoice.pago_data``: 15 000.00 MXN paying two documents,
IVA 16 %) and asserting the code at the field's path with the message of SAT's Pagos 2.0 matrix;
valid payments (partial, in two currencies, amounts within SAT's tolerances) report nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from connector.cfdi.amounts import complete
from connector.cfdi.errors import Problem
from connector.cfdi.rules import MESSAGES, validate
from connector.cfdi.rules_pagos import MATRIX_PAGOS, validate_pagos

from .base_invoice import (
    base_data,
    completed_data,
    load,
    pago_data,
    pago_one_document,
    pago_usd_data,
)
from .test_rules import both, setv, top  # the mutation helpers of the CFDI 4.0 cases

Data = dict[str, Any]
P0 = "Pagos.Pago[0]"
DR0 = f"{P0}.DoctoRelacionado[0]"
DR1 = f"{P0}.DoctoRelacionado[1]"
T1 = f"{DR1}.ImpuestosDR.TrasladosDR[0]"
R1 = f"{DR1}.ImpuestosDR.RetencionesDR[0]"
IP = f"{P0}.ImpuestosP"
TOT = "Pagos.Totales"


def problems_of(mutate: Callable[[Data], Any], data: Data | None = None) -> list[Problem]:
    d = completed_data(data or pago_data())
    mutate(d)
    return validate(load(d))


def pago(d: Data) -> Data:
    return d["Pagos"]["Pago"][0]


def dr1(d: Data) -> Data:
    return pago(d)["DoctoRelacionado"][1]


def t1(d: Data) -> Data:
    return dr1(d)["ImpuestosDR"]["TrasladosDR"][0]


def tp0(d: Data) -> Data:
    return pago(d)["ImpuestosP"]["TrasladosP"][0]


def k0(d: Data) -> Data:
    return d["Conceptos"][0]


def totales(d: Data) -> Data:
    return d["Pagos"]["Totales"]


RETENCION_ISR = {
    "BaseDR": "2586.21",
    "ImpuestoDR": "001",
    "TipoFactorDR": "Tasa",
    "TasaOCuotaDR": "0.100000",
    "ImporteDR": "258.62",
}


def with_retencion(**values: str) -> Callable[[Data], None]:
    """An ISR retention in the second document, carried into ImpuestosP and Totales."""

    def mutate(d: Data) -> None:
        dr1(d)["ImpuestosDR"]["RetencionesDR"] = [{**RETENCION_ISR, **values}]
        pago(d)["ImpuestosP"]["RetencionesP"] = [{"ImpuestoP": "001", "ImporteP": "258.62"}]
        totales(d)["TotalRetencionesISR"] = "258.62"

    return mutate


def r1(d: Data) -> Data:
    return dr1(d)["ImpuestosDR"]["RetencionesDR"][0]


def dup_traslado_p(d: Data) -> None:
    pago(d)["ImpuestosP"]["TrasladosP"].append(dict(tp0(d)))


def exento_dr1(d: Data) -> None:
    t1(d).update(TipoFactorDR="Exento", TasaOCuotaDR=None, ImporteDR=None)


def two_conceptos(d: Data) -> None:
    d["Conceptos"].append(dict(k0(d)))


def del_total(name: str) -> Callable[[Data], None]:
    return lambda d: totales(d).pop(name)


CASES: list[tuple[str, Callable[[Data], Any], str, str]] = [
    # (id, mutation, code, path)
    ("CRP20101_tipo_p", lambda d: None, "CRP20101", "TipoDeComprobante"),  # on the I base
    ("CONN-PAGOS-001_requires_complemento", top(Pagos=None), "CONN-PAGOS-001", "Pagos"),
    ("CRP20102_exportacion_01", top(Exportacion="03"), "CRP20102", "Exportacion"),
    ("CRP20104_moneda_xxx", top(Moneda="MXN"), "CRP20104", "Moneda"),
    ("CRP20107_condiciones", top(CondicionesDePago="Contado"), "CRP20107", "CondicionesDePago"),
    ("CRP20108_descuento", top(Descuento="0.00"), "CRP20108", "Descuento"),
    ("CRP20109_tipo_cambio", top(Moneda="MXN", TipoCambio="1"), "CRP20109", "TipoCambio"),
    (
        "CONN-PAGOS-003_uso_cp01",
        setv(lambda d: d["Receptor"], UsoCFDI="G03"),
        "CONN-PAGOS-003",
        "Receptor.UsoCFDI",
    ),
    ("CRP20111_un_concepto", two_conceptos, "CRP20111", "Conceptos"),
    (
        "CRP20112_apartados",
        setv(k0, CuentaPredial=["123456"]),
        "CRP20112",
        "Conceptos[0].CuentaPredial",
    ),
    (
        "CRP20113_clave",
        setv(k0, ClaveProdServ="01010101"),
        "CRP20113",
        "Conceptos[0].ClaveProdServ",
    ),
    (
        "CRP20114_no_identificacion",
        setv(k0, NoIdentificacion="X1"),
        "CRP20114",
        "Conceptos[0].NoIdentificacion",
    ),
    ("CRP20115_cantidad", setv(k0, Cantidad="2"), "CRP20115", "Conceptos[0].Cantidad"),
    ("CRP20116_clave_unidad", setv(k0, ClaveUnidad="H87"), "CRP20116", "Conceptos[0].ClaveUnidad"),
    ("CRP20117_unidad", setv(k0, Unidad="Pieza"), "CRP20117", "Conceptos[0].Unidad"),
    ("CRP20118_descripcion", setv(k0, Descripcion="Abono"), "CRP20118", "Conceptos[0].Descripcion"),
    (
        "CRP20119_valor_unitario",
        setv(k0, ValorUnitario="1"),
        "CRP20119",
        "Conceptos[0].ValorUnitario",
    ),
    ("CRP20120_importe", setv(k0, Importe="1"), "CRP20120", "Conceptos[0].Importe"),
    ("CRP20121_descuento_concepto", setv(k0, Descuento="0"), "CRP20121", "Conceptos[0].Descuento"),
    ("CRP20122_objeto_imp", setv(k0, ObjetoImp="02"), "CRP20122", "Conceptos[0].ObjetoImp"),
    (
        "CRP20123_impuestos_concepto",
        setv(k0, Impuestos={"Traslados": [], "Retenciones": []}),
        "CRP20123",
        "Conceptos[0].Impuestos",
    ),
    # Totales
    (
        "CRP20201_total_retenciones_iva",
        setv(totales, TotalRetencionesIVA="1.00"),
        "CRP20201",
        f"{TOT}.TotalRetencionesIVA",
    ),
    (
        "CRP20202_total_retenciones_isr",
        both(with_retencion(), setv(totales, TotalRetencionesISR="258.00")),
        "CRP20202",
        f"{TOT}.TotalRetencionesISR",
    ),
    (
        "CRP20203_total_retenciones_ieps",
        setv(totales, TotalRetencionesIEPS="1.00"),
        "CRP20203",
        f"{TOT}.TotalRetencionesIEPS",
    ),
    (
        "CRP20204_total_base_iva16",
        setv(totales, TotalTrasladosBaseIVA16="12931.00"),
        "CRP20204",
        f"{TOT}.TotalTrasladosBaseIVA16",
    ),
    (
        "CRP20205_total_impuesto_iva16",
        setv(totales, TotalTrasladosImpuestoIVA16="2068.00"),
        "CRP20205",
        f"{TOT}.TotalTrasladosImpuestoIVA16",
    ),
    (
        "CRP20206_total_base_iva8",
        setv(totales, TotalTrasladosBaseIVA8="1.00"),
        "CRP20206",
        f"{TOT}.TotalTrasladosBaseIVA8",
    ),
    (
        "CRP20207_total_impuesto_iva8",
        setv(totales, TotalTrasladosImpuestoIVA8="1.00"),
        "CRP20207",
        f"{TOT}.TotalTrasladosImpuestoIVA8",
    ),
    (
        "CRP20208_total_base_iva0",
        setv(totales, TotalTrasladosBaseIVA0="1.00"),
        "CRP20208",
        f"{TOT}.TotalTrasladosBaseIVA0",
    ),
    (
        "CRP20209_total_impuesto_iva0",
        setv(totales, TotalTrasladosImpuestoIVA0="1.00"),
        "CRP20209",
        f"{TOT}.TotalTrasladosImpuestoIVA0",
    ),
    (
        "CRP20210_total_base_exento",
        setv(totales, TotalTrasladosBaseIVAExento="1.00"),
        "CRP20210",
        f"{TOT}.TotalTrasladosBaseIVAExento",
    ),
    (
        "CRP20211_monto_total_pagos",
        setv(totales, MontoTotalPagos="15000.01"),
        "CRP20211",
        f"{TOT}.MontoTotalPagos",
    ),
    (
        "CRP20264_total_retenciones_falta",
        both(with_retencion(), del_total("TotalRetencionesISR")),
        "CRP20264",
        f"{TOT}.TotalRetencionesISR",
    ),
    (
        "CRP20267_total_base_falta",
        del_total("TotalTrasladosBaseIVA16"),
        "CRP20267",
        f"{TOT}.TotalTrasladosBaseIVA16",
    ),
    (
        "CRP20273_total_impuesto_falta",
        del_total("TotalTrasladosImpuestoIVA16"),
        "CRP20273",
        f"{TOT}.TotalTrasladosImpuestoIVA16",
    ),
    # Pago
    ("CRP20212_forma_99", setv(pago, FormaDePagoP="99"), "CRP20212", f"{P0}.FormaDePagoP"),
    (
        "CONN-PAGOS-008_forma_catalogo",
        setv(pago, FormaDePagoP="98"),
        "CONN-PAGOS-008",
        f"{P0}.FormaDePagoP",
    ),
    ("CRP20213_moneda_p_xxx", setv(pago, MonedaP="XXX"), "CRP20213", f"{P0}.MonedaP"),
    (
        "CONN-PAGOS-009_moneda_p_catalogo",
        setv(pago, MonedaP="ABC"),
        "CONN-PAGOS-009",
        f"{P0}.MonedaP",
    ),
    (
        "CRP20214_tipo_cambio_p_requerido",
        setv(pago, MonedaP="USD", TipoCambioP=None),
        "CRP20214",
        f"{P0}.TipoCambioP",
    ),
    ("CRP20215_tipo_cambio_p_1", setv(pago, TipoCambioP="2"), "CRP20215", f"{P0}.TipoCambioP"),
    (
        "CONN-PAGOS-012_fecha_pago",
        setv(pago, FechaPago="12/06/2023"),
        "CONN-PAGOS-012",
        f"{P0}.FechaPago",
    ),
    ("CRP20217_monto_cubre", setv(pago, Monto="14999.99"), "CRP20217", f"{P0}.Monto"),
    ("CRP20218_monto_positivo", setv(pago, Monto="0"), "CRP20218", f"{P0}.Monto"),
    ("CRP20219_monto_decimales", setv(pago, Monto="15000.001"), "CRP20219", f"{P0}.Monto"),
    (
        "CRP20221_rfc_ordenante",
        setv(pago, FormaDePagoP="01", RfcEmisorCtaOrd="BMI9704113PA"),
        "CRP20221",
        f"{P0}.RfcEmisorCtaOrd",
    ),
    (
        "CRP20223_banco_extranjero",
        setv(pago, RfcEmisorCtaOrd="XEXX010101000"),
        "CRP20223",
        f"{P0}.NomBancoOrdExt",
    ),
    (
        "CRP20224_cta_ordenante",
        setv(pago, FormaDePagoP="01", CtaOrdenante="0001970000"),
        "CRP20224",
        f"{P0}.CtaOrdenante",
    ),
    (
        "CRP20227_rfc_beneficiario",
        setv(pago, FormaDePagoP="01", RfcEmisorCtaBen="BBA830831LJ2"),
        "CRP20227",
        f"{P0}.RfcEmisorCtaBen",
    ),
    (
        "CRP20228_cta_beneficiario",
        setv(pago, FormaDePagoP="01", CtaBeneficiario="0198005000"),
        "CRP20228",
        f"{P0}.CtaBeneficiario",
    ),
    (
        "CRP20229_tipo_cad_pago",
        setv(
            pago,
            FormaDePagoP="02",
            TipoCadPago="01",
            CertPago="QQ==",
            CadPago="x",
            SelloPago="QQ==",
        ),
        "CRP20229",
        f"{P0}.TipoCadPago",
    ),
    (
        "CRP20230_cert_pago_requerido",
        setv(pago, TipoCadPago="01", CadPago="x", SelloPago="QQ=="),
        "CRP20230",
        f"{P0}.CertPago",
    ),
    ("CRP20231_cert_pago_sobra", setv(pago, CertPago="QQ=="), "CRP20231", f"{P0}.CertPago"),
    (
        "CRP20232_cad_pago_requerido",
        setv(pago, TipoCadPago="01", CertPago="QQ==", SelloPago="QQ=="),
        "CRP20232",
        f"{P0}.CadPago",
    ),
    ("CRP20233_cad_pago_sobra", setv(pago, CadPago="x"), "CRP20233", f"{P0}.CadPago"),
    (
        "CRP20234_sello_pago_requerido",
        setv(pago, TipoCadPago="01", CertPago="QQ==", CadPago="x"),
        "CRP20234",
        f"{P0}.SelloPago",
    ),
    ("CRP20235_sello_pago_sobra", setv(pago, SelloPago="QQ=="), "CRP20235", f"{P0}.SelloPago"),
    # DoctoRelacionado
    (
        "CRP20236_moneda_dr_xxx",
        setv(dr1, MonedaDR="XXX", EquivalenciaDR="1"),
        "CRP20236",
        f"{DR1}.MonedaDR",
    ),
    (
        "CONN-PAGOS-014_moneda_dr_catalogo",
        setv(dr1, MonedaDR="ABC"),
        "CONN-PAGOS-014",
        f"{DR1}.MonedaDR",
    ),
    (
        "CRP20237_equivalencia_requerida",
        setv(dr1, MonedaDR="USD", EquivalenciaDR=None),
        "CRP20237",
        f"{DR1}.EquivalenciaDR",
    ),
    ("CRP20238_equivalencia_1", setv(dr1, EquivalenciaDR="2"), "CRP20238", f"{DR1}.EquivalenciaDR"),
    (
        "CRP20239_saldo_anterior_positivo",
        setv(dr1, ImpSaldoAnt="0"),
        "CRP20239",
        f"{DR1}.ImpSaldoAnt",
    ),
    (
        "CRP20240_saldo_anterior_decimales",
        setv(dr1, ImpSaldoAnt="10000.001", ImpSaldoInsoluto="7000.001"),
        "CRP20240",
        f"{DR1}.ImpSaldoAnt",
    ),
    (
        "CRP20241_pagado_positivo",
        setv(dr1, ImpPagado="0", ImpSaldoInsoluto="10000.00"),
        "CRP20241",
        f"{DR1}.ImpPagado",
    ),
    (
        "CRP20242_pagado_decimales",
        setv(dr1, ImpPagado="2999.999", ImpSaldoInsoluto="7000.001"),
        "CRP20242",
        f"{DR1}.ImpPagado",
    ),
    (
        "CRP20243_insoluto_decimales",
        setv(dr1, ImpSaldoInsoluto="7000.000001"),
        "CRP20243",
        f"{DR1}.ImpSaldoInsoluto",
    ),
    (
        "CRP20244_saldo_insoluto",
        setv(dr1, ImpSaldoInsoluto="6000.00"),
        "CRP20244",
        f"{DR1}.ImpSaldoInsoluto",
    ),
    (
        "CRP20244_saldo_negativo",
        setv(dr1, ImpPagado="11000.00", ImpSaldoInsoluto="-1000.00"),
        "CRP20244",
        f"{DR1}.ImpSaldoInsoluto",
    ),
    ("CRP20245_objeto_imp_dr", setv(dr1, ObjetoImpDR="09"), "CRP20245", f"{DR1}.ObjetoImpDR"),
    (
        "CRP20246_impuestos_dr_requerido",
        setv(dr1, ImpuestosDR=None),
        "CRP20246",
        f"{DR1}.ImpuestosDR",
    ),
    ("CRP20247_impuestos_dr_sobra", setv(dr1, ObjetoImpDR="01"), "CRP20247", f"{DR1}.ImpuestosDR"),
    ("CRP20278_objeto_06_sin_iva", setv(dr1, ObjetoImpDR="06"), "CRP20278", f"{DR1}.ImpuestosDR"),
    ("CRP20279_objeto_07_ieps", setv(dr1, ObjetoImpDR="07"), "CRP20279", f"{DR1}.ImpuestosDR"),
    ("CRP20248_impuestos_dr_vacio", setv(dr1, ImpuestosDR={}), "CRP20248", f"{DR1}.ImpuestosDR"),
    # RetencionDR
    ("CRP20249_base_retencion", with_retencion(BaseDR="0"), "CRP20249", f"{R1}.BaseDR"),
    (
        "CRP20250_impuesto_retencion",
        with_retencion(ImpuestoDR="004"),
        "CRP20250",
        f"{R1}.ImpuestoDR",
    ),
    (
        "CRP20251_factor_retencion",
        with_retencion(TipoFactorDR="Tasas"),
        "CRP20251",
        f"{R1}.TipoFactorDR",
    ),
    (
        "CRP20252_retencion_exenta",
        with_retencion(TipoFactorDR="Exento"),
        "CRP20252",
        f"{R1}.TipoFactorDR",
    ),
    (
        "CRP20253_tasa_retencion",
        with_retencion(TasaOCuotaDR="0.500000"),
        "CRP20253",
        f"{R1}.TasaOCuotaDR",
    ),
    (
        "CRP20254_importe_retencion",
        with_retencion(ImporteDR="258.60"),
        "CRP20254",
        f"{R1}.ImporteDR",
    ),
    # TrasladoDR
    ("CRP20255_base_traslado", setv(t1, BaseDR="0"), "CRP20255", f"{T1}.BaseDR"),
    ("CRP20256_impuesto_traslado", setv(t1, ImpuestoDR="001"), "CRP20256", f"{T1}.ImpuestoDR"),
    ("CRP20257_factor_traslado", setv(t1, TipoFactorDR="Tasas"), "CRP20257", f"{T1}.TipoFactorDR"),
    ("CRP20258_exento_sin_tasa", setv(t1, TipoFactorDR="Exento"), "CRP20258", T1),
    ("CRP20259_tasa_requerida", setv(t1, TasaOCuotaDR=None), "CRP20259", f"{T1}.TasaOCuotaDR"),
    ("CRP20260_tasa_traslado", setv(t1, TasaOCuotaDR="0.170000"), "CRP20260", f"{T1}.TasaOCuotaDR"),
    ("CRP20261_importe_traslado", setv(t1, ImporteDR="413.77"), "CRP20261", f"{T1}.ImporteDR"),
    # ImpuestosP
    (
        "CRP20262_impuesto_retencion_p",
        both(
            with_retencion(),
            lambda d: pago(d)["ImpuestosP"]["RetencionesP"][0].update(ImpuestoP="004"),
        ),
        "CRP20262",
        f"{IP}.RetencionesP[0].ImpuestoP",
    ),
    (
        "CRP20263_retencion_p_repetida",
        both(
            with_retencion(),
            lambda d: pago(d)["ImpuestosP"]["RetencionesP"].append(
                {"ImpuestoP": "001", "ImporteP": "0.00"}
            ),
        ),
        "CRP20263",
        f"{IP}.RetencionesP[1].ImpuestoP",
    ),
    (
        "CRP20265_importe_retencion_p",
        both(
            with_retencion(),
            lambda d: pago(d)["ImpuestosP"]["RetencionesP"][0].update(ImporteP="258.00"),
        ),
        "CRP20265",
        f"{IP}.RetencionesP[0].ImporteP",
    ),
    ("CRP20266_exento_p", setv(tp0, TipoFactorP="Exento"), "CRP20266", f"{IP}.TrasladosP[0]"),
    ("CRP20268_base_p", setv(tp0, BaseP="12000.00"), "CRP20268", f"{IP}.TrasladosP[0].BaseP"),
    ("CRP20269_base_p_exento", exento_dr1, "CRP20269", IP),
    (
        "CRP20270_impuesto_p",
        setv(tp0, ImpuestoP="001"),
        "CRP20270",
        f"{IP}.TrasladosP[0].ImpuestoP",
    ),
    ("CRP20271_traslado_p_repetido", dup_traslado_p, "CRP20271", f"{IP}.TrasladosP[1]"),
    (
        "CRP20272_tasa_p",
        setv(tp0, TasaOCuotaP="0.170000"),
        "CRP20272",
        f"{IP}.TrasladosP[0].TasaOCuotaP",
    ),
    (
        "CRP20274_importe_p",
        setv(tp0, ImporteP="2000.00"),
        "CRP20274",
        f"{IP}.TrasladosP[0].ImporteP",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "code", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(mutate: Callable[[Data], Any], code: str, path: str) -> None:
    data = base_data() if code == "CRP20101" else None
    if data is not None:
        data["Pagos"] = completed_data(pago_data())["Pagos"]
    problems = problems_of(mutate, data)
    hits = [p for p in problems if p.code == code and p.path == path]
    assert hits, f"{code} at {path} not reported; got {[str(p) for p in problems]}"
    assert all(p.message.startswith(MESSAGES[code]) for p in hits)
    if code.startswith("CRP"):
        assert MESSAGES[code] == MATRIX_PAGOS[code]
    assert all(p.code != "CONN-REGLA" for p in problems), problems


def test_messages_come_from_sats_pagos_matrix() -> None:
    assert len(MATRIX_PAGOS) == 102  # CRP20101 … CRP20279
    assert MATRIX_PAGOS["CRP20261"] == (
        "El valor del campo ImporteDR o que corresponde a Traslado no se encuentra entre el "
        "limite inferior y superior permitido."
    )
    assert MATRIX_PAGOS["CRP20101"] == 'El valor del campo TipoDeComprobante debe ser "P".'


# --- The audit's two examples (issue 18, item 1) ------------------------------------------------


def test_CRP20261_importe_dr_100_against_551_72_is_refused() -> None:
    c = complete(load(pago_one_document("100.00")))
    problems = validate(c)
    assert [(p.code, p.path) for p in problems] == [
        ("CRP20261", f"{DR0}.ImpuestosDR.TrasladosDR[0].ImporteDR")
    ]
    assert problems[0].message == (
        "El valor del campo ImporteDR o que corresponde a Traslado no se encuentra entre el "
        "limite inferior y superior permitido. Valor: 100.00; BaseDR 3448.28 × TasaOCuotaDR "
        "0.160000 = 551.72480000; límites: 551.72 a 551.73."
    )


def test_CRP20274_impuestos_p_600_against_551_72_is_refused() -> None:
    c = complete(load(pago_one_document(importe_p="600.00")))
    problems = validate(c)
    assert [(p.code, p.path) for p in problems] == [("CRP20274", f"{IP}.TrasladosP[0].ImporteP")]
    assert problems[0].message == (
        MATRIX_PAGOS["CRP20274"] + " Valor: 600.00; suma de los documentos relacionados: 551.72."
    )


def test_the_computed_amounts_of_the_examples_are_valid() -> None:
    c = complete(load(pago_one_document()))
    assert validate(c) == []
    assert c.Pagos is not None and c.Pagos.Totales.TotalTrasladosImpuestoIVA16 == Decimal("551.72")


# --- Valid payments within SAT's tolerances -----------------------------------------------------


def test_CRP20261_importe_dr_within_limits_with_six_decimals() -> None:
    """BaseDR 2586.21 × 0.16 = 413.7936; with BaseDR's half cent the limits of an ImporteDR
    written with 6 decimals are 2586.205 × 0.16 = 413.792800 to 2586.215 × 0.16 = 413.794400."""
    for importe, ok in (
        ("413.793600", True),
        ("413.792800", True),
        ("413.794400", True),
        ("413.792799", False),
        ("413.794401", False),
        ("413.78", False),
        ("413.80", True),  # 413.7944 rounded up
        ("413.81", False),
    ):
        codes = [p.code for p in problems_of(setv(t1, ImporteDR=importe))]
        assert ("CRP20261" not in codes) is ok, (importe, codes)


def test_CRP20268_CRP20274_sums_truncated_or_rounded_are_both_accepted() -> None:
    """Both documents in USD paid in MXN (EquivalenciaDR 0.058): Σ BaseDR ÷ 0.058 =
    222948.9655…, Σ ImporteDR ÷ 0.058 = 35671.7241…; the sum truncated (public validators) or
    rounded (``amounts.complete``) is accepted, at the decimals written (at least MXN's 2)."""
    data = pago_data()
    pago(data)["Monto"] = "258620.70"
    for doc in pago(data)["DoctoRelacionado"]:
        doc.update(MonedaDR="USD", EquivalenciaDR="0.058")
    d = completed_data(data)
    assert validate(load(d)) == []
    assert (tp0(d)["BaseP"], tp0(d)["ImporteP"]) == (Decimal("222948.97"), Decimal("35671.72"))
    cases = [
        ("BaseP", "222948.96", True),
        ("BaseP", "222948.97", True),
        ("BaseP", "222948.9655", True),
        ("BaseP", "222948.95", False),
        ("BaseP", "222948.98", False),
        ("ImporteP", "35671.724137", True),
        ("ImporteP", "35671.724138", True),
        ("ImporteP", "35671.73", False),
        ("ImporteP", "35671.7", False),
    ]
    for field, value, ok in cases:
        changed = copy.deepcopy(d)
        tp0(changed)[field] = value
        codes = {p.code for p in validate(load(changed)) if p.code in ("CRP20268", "CRP20274")}
        assert (codes == set()) is ok, (field, value, codes)


def test_two_currency_partial_payment_is_valid() -> None:
    """USD 100.00 at 17.5 pays 1 750.00 of an MXN invoice of 3 500.00 (EquivalenciaDR 17.5)."""
    c = complete(load(pago_usd_data("100.00", "1750.00")))
    assert validate(c) == []
    assert validate_pagos(c) == []
    assert c.Pagos is not None
    assert c.Pagos.Totales.MontoTotalPagos == Decimal("1750.00")


def test_CRP20276_monto_within_the_margin_of_the_exchange() -> None:
    """1 750.04 MXN ÷ 17.5 = 100.0023 USD > Monto 100.00, but within the limits of the
    exchange (1 750.035 ÷ 17.55 … 1 750.045 ÷ 17.45 = 99.717… … 100.289…): valid; 99.00 is not."""
    assert validate(complete(load(pago_usd_data("100.00", "1750.04")))) == []
    problems = validate(complete(load(pago_usd_data("99.00", "1750.04"))))
    hits = [p for p in problems if p.code == "CRP20276"]
    assert [p.path for p in hits] == [f"{P0}.Monto"]
    assert hits[0].message == (
        MATRIX_PAGOS["CRP20276"]
        + " Monto: 99.00; suma de ImpPagado entre EquivalenciaDR: 100.002285; "
        "límites: 99.71 a 100.29."
    )


def test_CRP20217_monto_may_exceed_the_documents_paid() -> None:
    assert (
        problems_of(both(setv(pago, Monto="16000.00"), setv(totales, MontoTotalPagos="16000.00")))
        == []
    )


def test_validate_pagos_alone_reports_only_pagos_rules() -> None:
    data = completed_data(pago_data())
    t1(data)["ImporteDR"] = "100.00"
    data["Fecha"] = "not a date"
    problems = validate_pagos(load(data))
    assert [p.code for p in problems] == ["CRP20261", "CRP20274"]  # not CFDI40101
