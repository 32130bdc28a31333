"""rules.validate: one test per SAT rule, each breaking exactly one thing of a valid invoice.

Every case starts from a valid base invoice (``base_invoice.py``: EKU9003173C9 → CACX7605101P8,
or the público-en-general / extranjero / tipo T / exento / Pagos variants), breaks one field, and
asserts that the rule's code is reported at the field's path with the official SAT message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.cfdi.amounts import complete
from connector.cfdi.errors import Problem
from connector.cfdi.rules import MATRIX, MATRIX_RULES, MESSAGES, validate

from .base_invoice import (
    COMERCIO_EXTERIOR,
    TERCERO,
    base_data,
    completed_data,
    exento_data,
    extranjero_data,
    load,
    pago_data,
    publico_data,
    traslado_data,
)

Data = dict[str, Any]
BASES: dict[str, Callable[[], Data]] = {
    "base": base_data,
    "publico": publico_data,
    "extranjero": extranjero_data,
    "traslado": traslado_data,
    "exento": exento_data,
    "pago": pago_data,
}

CDMX = timezone(timedelta(hours=-6))  # Mexico City, no DST since 2022


def problems_of(
    base: str, mutate: Callable[[Data], Any], now: datetime | None = None
) -> list[Problem]:
    data = completed_data(BASES[base]())
    mutate(data)
    return validate(load(data), now=now)


def k0(d: Data) -> Data:
    return d["Conceptos"][0]


def t0(d: Data) -> Data:
    return d["Conceptos"][0]["Impuestos"]["Traslados"][0]


def r1(d: Data) -> Data:  # the IVA retención of the second concepto
    return d["Conceptos"][1]["Impuestos"]["Retenciones"][0]


def rec(d: Data) -> Data:
    return d["Receptor"]


def setv(node: Callable[[Data], Data], **values: Any) -> Callable[[Data], None]:
    def mutate(d: Data) -> None:
        node(d).update(values)

    return mutate


def top(**values: Any) -> Callable[[Data], None]:
    return setv(lambda d: d, **values)


def both(*mutations: Callable[[Data], Any]) -> Callable[[Data], None]:
    def mutate(d: Data) -> None:
        for m in mutations:
            m(d)

    return mutate


def add_tercero(**values: str) -> Callable[[Data], None]:
    return setv(k0, ACuentaTerceros={**TERCERO, **values})


EXT = "EXT990101NI1"
EXT_NOMBRE = (
    "EXPEDICIÓN DE CFDI POR RESIDENTES EN MÉXICO QUE PRESTAN SERVICIOS DE INTERMEDIACIÓN ENTRE "
    "TERCEROS A OFERENTES DE BIENES Y SERVICIOS RESIDENTES EN EL EXTRANJERO"
)
UUID = "6F35D3B5-3651-5370-BC2C-14CDBE384CD7"
CCE = top(OtrosComplementos=[COMERCIO_EXTERIOR])
PARTE = {
    "ClaveProdServ": "52161557",
    "Cantidad": "2.00",
    "Descripcion": "Batería del control",
    "ValorUnitario": "10.00",
    "Importe": "20.00",
}


def _dup_summary_traslado(d: Data) -> None:
    d["Impuestos"]["Traslados"].append(dict(d["Impuestos"]["Traslados"][0]))


def _dup_summary_retencion(d: Data) -> None:
    d["Impuestos"]["Retenciones"].append(dict(d["Impuestos"]["Retenciones"][0]))


def _dr(d: Data) -> Data:
    return d["Pagos"]["Pago"][0]["DoctoRelacionado"][1]


CASES = [
    # (id, base, mutation, code, path)
    ("CFDI40101_fecha_pattern", "base", top(Fecha="2025-13-01T10:00:00"), "CFDI40101", "Fecha"),
    ("CFDI40101_fecha_not_a_date", "base", top(Fecha="2025-02-30T10:00:00"), "CFDI40101", "Fecha"),
    ("CFDI40101_fecha_with_zone", "base", top(Fecha="2025-01-15T10:00:00Z"), "CFDI40101", "Fecha"),
    (
        "CFDI40103_forma_pago_absent_for_T",
        "traslado",
        top(FormaPago="01"),
        "CFDI40103",
        "FormaPago",
    ),
    ("CFDI40104_forma_pago_catalog", "base", top(FormaPago="07"), "CFDI40104", "FormaPago"),
    (
        "CFDI40105_ppd_requires_forma_pago_99",
        "base",
        top(MetodoPago="PPD"),
        "CFDI40105",
        "FormaPago",
    ),
    ("CFDI40107_subtotal_decimals", "base", top(SubTotal="5324.660"), "CFDI40107", "SubTotal"),
    ("CFDI40108_subtotal_sum", "base", top(SubTotal="5324.67"), "CFDI40108", "SubTotal"),
    ("CFDI40109_subtotal_zero_for_T", "traslado", top(SubTotal="10.00"), "CFDI40109", "SubTotal"),
    ("CFDI40110_descuento_le_subtotal", "base", top(Descuento="6000.00"), "CFDI40110", "Descuento"),
    ("CFDI40111_descuento_required", "base", top(Descuento=None), "CFDI40111", "Descuento"),
    ("CFDI40111_descuento_sum", "base", top(Descuento="99.00"), "CFDI40111", "Descuento"),
    ("CFDI40111_descuento_omitted", "traslado", top(Descuento="0.00"), "CFDI40111", "Descuento"),
    (
        "CFDI40111_no_concept_descuento_for_T",
        "traslado",
        setv(k0, Descuento="1.00"),
        "CFDI40111",
        "Conceptos[0].Descuento",
    ),
    ("CFDI40112_descuento_decimals", "base", top(Descuento="100.000"), "CFDI40112", "Descuento"),
    ("CFDI40113_moneda_catalog", "base", top(Moneda="MXP"), "CFDI40113", "Moneda"),
    ("CFDI40114_tipo_cambio_1_for_mxn", "base", top(TipoCambio="2"), "CFDI40114", "TipoCambio"),
    ("CFDI40115_tipo_cambio_required", "base", top(Moneda="USD"), "CFDI40115", "TipoCambio"),
    (
        "CFDI40116_no_tipo_cambio_for_xxx",
        "base",
        top(Moneda="XXX", TipoCambio="1"),
        "CFDI40116",
        "TipoCambio",
    ),
    (
        "CFDI40117_tipo_cambio_pattern",
        "base",
        top(Moneda="USD", TipoCambio="17.1234567"),
        "CFDI40117",
        "TipoCambio",
    ),
    ("CFDI40119_total", "base", top(Total="5750.52"), "CFDI40119", "Total"),
    ("CFDI40119_total_zero_for_T", "traslado", top(Total="1.00"), "CFDI40119", "Total"),
    (
        "CFDI40121_tipo_de_comprobante_catalog",
        "base",
        top(TipoDeComprobante="X"),
        "CFDI40121",
        "TipoDeComprobante",
    ),
    (
        "CFDI40122_exportacion_02_requires_cce",
        "base",
        top(Exportacion="02"),
        "CFDI40122",
        "Exportacion",
    ),
    ("CFDI40123_exportacion_catalog", "base", top(Exportacion="05"), "CFDI40123", "Exportacion"),
    ("CFDI40124_metodo_pago_catalog", "base", top(MetodoPago="PPP"), "CFDI40124", "MetodoPago"),
    (
        "CFDI40125_metodo_pago_absent_for_T",
        "traslado",
        top(MetodoPago="PUE"),
        "CFDI40125",
        "MetodoPago",
    ),
    (
        "CFDI40126_lugar_expedicion_catalog",
        "base",
        top(LugarExpedicion="00001"),
        "CFDI40126",
        "LugarExpedicion",
    ),
    (
        "CFDI40130_informacion_global_required",
        "publico",
        top(InformacionGlobal=None),
        "CFDI40130",
        "InformacionGlobal",
    ),
    (
        "CFDI40131_periodicidad_catalog",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Periodicidad="07"),
        "CFDI40131",
        "InformacionGlobal.Periodicidad",
    ),
    (
        "CFDI40132_periodicidad_05_requires_621",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Periodicidad="05", Meses="13"),
        "CFDI40132",
        "Emisor.RegimenFiscal",
    ),
    (
        "CFDI40133_meses_catalog",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Meses="19"),
        "CFDI40133",
        "InformacionGlobal.Meses",
    ),
    (
        "CFDI40134_meses_01_12",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Meses="13"),
        "CFDI40134",
        "InformacionGlobal.Meses",
    ),
    (
        "CFDI40135_meses_13_18_for_05",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Periodicidad="05", Meses="01"),
        "CFDI40135",
        "InformacionGlobal.Meses",
    ),
    (
        "CFDI40136_anio_range",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Año=2019),
        "CFDI40136",
        "InformacionGlobal.Año",
    ),
    (
        "CFDI40136_anio_future",
        "publico",
        setv(lambda d: d["InformacionGlobal"], Año=2026),
        "CFDI40136",
        "InformacionGlobal.Año",
    ),
    (
        "CONN-INFOGLOBAL_only_for_publico",
        "base",
        top(InformacionGlobal={"Periodicidad": "01", "Meses": "01", "Año": 2025}),
        "CONN-INFOGLOBAL",
        "InformacionGlobal",
    ),
    (
        "CFDI40137_tipo_relacion_catalog",
        "base",
        top(CfdiRelacionados=[{"TipoRelacion": "10", "UUIDs": [UUID]}]),
        "CFDI40137",
        "CfdiRelacionados[0].TipoRelacion",
    ),
    (
        "CONN-UUID_relacionado",
        "base",
        top(CfdiRelacionados=[{"TipoRelacion": "04", "UUIDs": ["nope"]}]),
        "CONN-UUID",
        "CfdiRelacionados[0].UUIDs[0]",
    ),
    (
        "CONN-RFC_emisor",
        "base",
        setv(lambda d: d["Emisor"], Rfc="EKU900317"),
        "CONN-RFC",
        "Emisor.Rfc",
    ),
    ("CONN-RFC_receptor", "base", setv(rec, Rfc="cacx7605101p8"), "CONN-RFC", "Receptor.Rfc"),
    (
        "CFDI40140_regimen_emisor_catalog",
        "base",
        setv(lambda d: d["Emisor"], RegimenFiscal="600"),
        "CFDI40140",
        "Emisor.RegimenFiscal",
    ),
    (
        "CFDI40141_regimen_emisor_persona",
        "base",
        setv(lambda d: d["Emisor"], RegimenFiscal="612"),
        "CFDI40141",
        "Emisor.RegimenFiscal",
    ),
    (
        "CFDI40142_fac_atr_adquirente",
        "base",
        setv(lambda d: d["Emisor"], FacAtrAdquirente="12AB"),
        "CFDI40142",
        "Emisor.FacAtrAdquirente",
    ),
    (
        "CFDI40146_publico_requires_xaxx",
        "base",
        setv(rec, Nombre="PUBLICO EN GENERAL"),
        "CFDI40146",
        "Receptor.Rfc",
    ),
    (
        "CFDI40149_cp_publico_equals_lugar",
        "publico",
        setv(rec, DomicilioFiscalReceptor="06000"),
        "CFDI40149",
        "Receptor.DomicilioFiscalReceptor",
    ),
    (
        "CFDI40149_cp_extranjero_equals_lugar",
        "extranjero",
        setv(rec, DomicilioFiscalReceptor="06000"),
        "CFDI40149",
        "Receptor.DomicilioFiscalReceptor",
    ),
    (
        "CONN-CP_receptor",
        "base",
        setv(rec, DomicilioFiscalReceptor="0600"),
        "CONN-CP",
        "Receptor.DomicilioFiscalReceptor",
    ),
    (
        "CFDI40150_residencia_catalog",
        "extranjero",
        setv(rec, ResidenciaFiscal="XYZ"),
        "CFDI40150",
        "Receptor.ResidenciaFiscal",
    ),
    (
        "CFDI40151_residencia_only_extranjero",
        "base",
        setv(rec, ResidenciaFiscal="USA"),
        "CFDI40151",
        "Receptor.ResidenciaFiscal",
    ),
    (
        "CFDI40152_residencia_not_mex",
        "extranjero",
        setv(rec, ResidenciaFiscal="MEX"),
        "CFDI40152",
        "Receptor.ResidenciaFiscal",
    ),
    (
        "CFDI40153_residencia_required_with_num_reg",
        "extranjero",
        setv(rec, ResidenciaFiscal=None),
        "CFDI40153",
        "Receptor.ResidenciaFiscal",
    ),
    (
        "CFDI40154_num_reg_only_extranjero",
        "base",
        setv(rec, NumRegIdTrib="121585958"),
        "CFDI40154",
        "Receptor.NumRegIdTrib",
    ),
    (
        "CFDI40155_num_reg_required_with_cce",
        "extranjero",
        both(top(Exportacion="02"), CCE, setv(rec, NumRegIdTrib=None)),
        "CFDI40155",
        "Receptor.NumRegIdTrib",
    ),
    (
        "CFDI40157_regimen_receptor_catalog",
        "base",
        setv(rec, RegimenFiscalReceptor="600"),
        "CFDI40157",
        "Receptor.RegimenFiscalReceptor",
    ),
    (
        "CFDI40158_regimen_receptor_persona",
        "base",
        setv(rec, RegimenFiscalReceptor="601"),
        "CFDI40158",
        "Receptor.RegimenFiscalReceptor",
    ),
    (
        "CFDI40159_generico_requires_616",
        "publico",
        setv(rec, RegimenFiscalReceptor="605"),
        "CFDI40159",
        "Receptor.RegimenFiscalReceptor",
    ),
    (
        "CFDI40160_uso_cfdi_catalog",
        "base",
        setv(rec, UsoCFDI="G99"),
        "CFDI40160",
        "Receptor.UsoCFDI",
    ),
    (
        "CFDI40161_uso_cfdi_regimen",
        "base",
        setv(rec, UsoCFDI="CN01"),
        "CFDI40161",
        "Receptor.UsoCFDI",
    ),
    (
        "CFDI40161_uso_cfdi_publico",
        "publico",
        setv(rec, UsoCFDI="G03"),
        "CFDI40161",
        "Receptor.UsoCFDI",
    ),
    (
        "CFDI40161_deducciones_not_for_moral",
        "base",
        both(setv(rec, Rfc="MCI7306249Y1", RegimenFiscalReceptor="603", UsoCFDI="D01")),
        "CFDI40161",
        "Receptor.UsoCFDI",
    ),
    (
        "CFDI40162_clave_prod_serv_catalog",
        "base",
        setv(k0, ClaveProdServ="99999999"),
        "CFDI40162",
        "Conceptos[0].ClaveProdServ",
    ),
    (
        "CFDI40165_clave_unidad_catalog",
        "base",
        setv(k0, ClaveUnidad="XX9"),
        "CFDI40165",
        "Conceptos[0].ClaveUnidad",
    ),
    (
        "CFDI40166_valor_unitario_positive",
        "base",
        setv(k0, ValorUnitario="0"),
        "CFDI40166",
        "Conceptos[0].ValorUnitario",
    ),
    (
        "CFDI40167_importe_limits",
        "base",
        setv(k0, Importe="4500.00"),
        "CFDI40167",
        "Conceptos[0].Importe",
    ),
    (
        "CFDI40167_importe_limits_low",
        "base",
        setv(k0, Importe="3000.00"),
        "CFDI40167",
        "Conceptos[0].Importe",
    ),
    (
        "CFDI40168_descuento_decimals",
        "base",
        setv(k0, Descuento="100.000"),
        "CFDI40168",
        "Conceptos[0].Descuento",
    ),
    (
        "CFDI40169_descuento_le_importe",
        "base",
        setv(k0, Descuento="3824.17"),
        "CFDI40169",
        "Conceptos[0].Descuento",
    ),
    (
        "CFDI40170_objeto_imp_catalog",
        "base",
        setv(k0, ObjetoImp="09"),
        "CFDI40170",
        "Conceptos[0].ObjetoImp",
    ),
    (
        "CFDI40171_objeto_imp_02_requires_impuestos",
        "base",
        setv(k0, Impuestos=None),
        "CFDI40171",
        "Conceptos[0].Impuestos",
    ),
    (
        "CFDI40172_objeto_imp_01_no_impuestos",
        "base",
        setv(k0, ObjetoImp="01"),
        "CFDI40172",
        "Conceptos[0].Impuestos",
    ),
    (
        "CFDI40173_impuestos_not_empty",
        "base",
        setv(k0, Impuestos={"Traslados": [], "Retenciones": []}),
        "CFDI40173",
        "Conceptos[0].Impuestos",
    ),
    (
        "CFDI40174_traslado_base_positive",
        "base",
        setv(t0, Base="0"),
        "CFDI40174",
        "Conceptos[0].Impuestos.Traslados[0].Base",
    ),
    (
        "CONN-IEPS-CUOTA-BASE_units_from_the_erp",  # amounts never computes a Cuota's Base
        "base",
        setv(t0, Impuesto="003", TipoFactor="Cuota", TasaOCuota="6.000000", Base=None),
        "CONN-IEPS-CUOTA-BASE",
        "Conceptos[0].Impuestos.Traslados[0].Base",
    ),
    (
        "CONN-IEPS-CUOTA-BASE_retencion",
        "base",
        setv(r1, Impuesto="003", TipoFactor="Cuota", TasaOCuota="6.000000", Base=None),
        "CONN-IEPS-CUOTA-BASE",
        "Conceptos[1].Impuestos.Retenciones[0].Base",
    ),
    (
        "CFDI40175_traslado_impuesto_catalog",
        "base",
        setv(t0, Impuesto="001"),
        "CFDI40175",
        "Conceptos[0].Impuestos.Traslados[0].Impuesto",
    ),
    (
        "CFDI40176_traslado_tipo_factor_catalog",
        "base",
        setv(t0, TipoFactor="Tasas"),
        "CFDI40176",
        "Conceptos[0].Impuestos.Traslados[0].TipoFactor",
    ),
    (
        "CFDI40177_exento_without_tasa",
        "base",
        setv(t0, TipoFactor="Exento"),
        "CFDI40177",
        "Conceptos[0].Impuestos.Traslados[0]",
    ),
    (
        "CFDI40178_tasa_requires_tasa_o_cuota",
        "base",
        setv(t0, TasaOCuota=None),
        "CFDI40178",
        "Conceptos[0].Impuestos.Traslados[0]",
    ),
    (
        "CFDI40179_traslado_tasa_catalog",
        "base",
        setv(t0, TasaOCuota="0.150000"),
        "CFDI40179",
        "Conceptos[0].Impuestos.Traslados[0].TasaOCuota",
    ),
    (
        "CFDI40180_traslado_importe_limits",
        "base",
        setv(t0, Importe="595.89"),
        "CFDI40180",
        "Conceptos[0].Impuestos.Traslados[0].Importe",
    ),
    (
        "CFDI40181_retencion_base_positive",
        "base",
        setv(r1, Base="0"),
        "CFDI40181",
        "Conceptos[1].Impuestos.Retenciones[0].Base",
    ),
    (
        "CFDI40182_retencion_impuesto_catalog",
        "base",
        setv(r1, Impuesto="004"),
        "CFDI40182",
        "Conceptos[1].Impuestos.Retenciones[0].Impuesto",
    ),
    (
        "CFDI40183_retencion_tipo_factor_catalog",
        "base",
        setv(r1, TipoFactor="Porcentaje"),
        "CFDI40183",
        "Conceptos[1].Impuestos.Retenciones[0].TipoFactor",
    ),
    (
        "CFDI40184_retencion_not_exento",
        "base",
        setv(r1, TipoFactor="Exento"),
        "CFDI40184",
        "Conceptos[1].Impuestos.Retenciones[0].TipoFactor",
    ),
    (
        "CFDI40185_retencion_tasa_range",
        "base",
        setv(r1, TasaOCuota="0.200000"),
        "CFDI40185",
        "Conceptos[1].Impuestos.Retenciones[0].TasaOCuota",
    ),
    (
        "CFDI40186_retencion_importe_limits",
        "base",
        setv(r1, Importe="170.00"),
        "CFDI40186",
        "Conceptos[1].Impuestos.Retenciones[0].Importe",
    ),
    (
        "CFDI40188_tercero_not_emisor",
        "base",
        add_tercero(RfcACuentaTerceros="EKU9003173C9"),
        "CFDI40188",
        "Conceptos[0].ACuentaTerceros.RfcACuentaTerceros",
    ),
    (
        "CFDI40189_tercero_extranjero_nombre",
        "base",
        add_tercero(
            RfcACuentaTerceros=EXT,
            RegimenFiscalACuentaTerceros="616",
            DomicilioFiscalACuentaTerceros="86000",
        ),
        "CFDI40189",
        "Conceptos[0].ACuentaTerceros.NombreACuentaTerceros",
    ),
    (
        "CFDI40191_tercero_regimen_catalog",
        "base",
        add_tercero(RegimenFiscalACuentaTerceros="600"),
        "CFDI40191",
        "Conceptos[0].ACuentaTerceros.RegimenFiscalACuentaTerceros",
    ),
    (
        "CFDI40193_tercero_extranjero_cp",
        "base",
        add_tercero(
            RfcACuentaTerceros=EXT,
            NombreACuentaTerceros=EXT_NOMBRE,
            RegimenFiscalACuentaTerceros="616",
        ),
        "CFDI40193",
        "Conceptos[0].ACuentaTerceros.DomicilioFiscalACuentaTerceros",
    ),
    (
        "CFDI140223_tercero_extranjero_616",
        "base",
        add_tercero(
            RfcACuentaTerceros=EXT,
            NombreACuentaTerceros=EXT_NOMBRE,
            DomicilioFiscalACuentaTerceros="86000",
        ),
        "CFDI140223",
        "Conceptos[0].ACuentaTerceros.RegimenFiscalACuentaTerceros",
    ),
    (
        "CONN-CP_tercero",
        "base",
        add_tercero(DomicilioFiscalACuentaTerceros="00001"),
        "CONN-CP",
        "Conceptos[0].ACuentaTerceros.DomicilioFiscalACuentaTerceros",
    ),
    (
        "CFDI40194_numero_pedimento",
        "base",
        setv(k0, InformacionAduanera=["21 47 3807 8003832"]),
        "CFDI40194",
        "Conceptos[0].InformacionAduanera[0]",
    ),
    (
        "CFDI40195_no_pedimento_with_cce",
        "base",
        both(top(Exportacion="02"), CCE, setv(k0, InformacionAduanera=["21  47  3807  8003832"])),
        "CFDI40195",
        "Conceptos[0].InformacionAduanera[0]",
    ),
    (
        "CFDI40196_parte_clave_prod_serv",
        "base",
        setv(k0, Parte=[{**PARTE, "ClaveProdServ": "99999999"}]),
        "CFDI40196",
        "Conceptos[0].Parte[0].ClaveProdServ",
    ),
    (
        "CFDI40197_parte_valor_unitario_positive",
        "base",
        setv(k0, Parte=[{**PARTE, "ValorUnitario": "0", "Importe": "0"}]),
        "CFDI40197",
        "Conceptos[0].Parte[0].ValorUnitario",
    ),
    (
        "CFDI40198_parte_importe_limits",
        "base",
        setv(k0, Parte=[{**PARTE, "Importe": "30.00"}]),
        "CFDI40198",
        "Conceptos[0].Parte[0].Importe",
    ),
    (
        "CFDI40199_parte_numero_pedimento",
        "base",
        setv(k0, Parte=[{**PARTE, "InformacionAduanera": ["21 47 3807 8003832"]}]),
        "CFDI40199",
        "Conceptos[0].Parte[0].InformacionAduanera[0]",
    ),
    (
        "CFDI40200_parte_no_pedimento_with_cce",
        "base",
        both(
            top(Exportacion="02"),
            CCE,
            setv(k0, Parte=[{**PARTE, "InformacionAduanera": ["21  47  3807  8003832"]}]),
        ),
        "CFDI40200",
        "Conceptos[0].Parte[0].InformacionAduanera[0]",
    ),
    ("CFDI40222_no_cce_for_exportacion_01", "base", CCE, "CFDI40222", "Exportacion"),
    (
        "CFDI140226_objeto_imp_06_no_iva",
        "base",
        setv(k0, ObjetoImp="06"),
        "CFDI140226",
        "Conceptos[0].Impuestos",
    ),
    (
        "CFDI140227_objeto_imp_07_requires_ieps",
        "base",
        setv(k0, ObjetoImp="07"),
        "CFDI140227",
        "Conceptos[0].Impuestos",
    ),
    (
        "CFDI40201_no_impuestos_for_T",
        "traslado",
        top(Impuestos={"TotalImpuestosTrasladados": "0.00"}),
        "CFDI40201",
        "Impuestos",
    ),
    (
        "CFDI40202_total_retenidos_decimals",
        "base",
        setv(lambda d: d["Impuestos"], TotalImpuestosRetenidos="310.100"),
        "CFDI40202",
        "Impuestos.TotalImpuestosRetenidos",
    ),
    (
        "CFDI40203_total_retenidos_sum",
        "base",
        setv(lambda d: d["Impuestos"], TotalImpuestosRetenidos="300.00"),
        "CFDI40203",
        "Impuestos.TotalImpuestosRetenidos",
    ),
    (
        "CFDI40204_total_trasladados_decimals",
        "base",
        setv(lambda d: d["Impuestos"], TotalImpuestosTrasladados="835.950"),
        "CFDI40204",
        "Impuestos.TotalImpuestosTrasladados",
    ),
    (
        "CFDI40205_total_trasladados_sum",
        "base",
        setv(lambda d: d["Impuestos"], TotalImpuestosTrasladados="800.00"),
        "CFDI40205",
        "Impuestos.TotalImpuestosTrasladados",
    ),
    (
        "CFDI40206_total_retenidos_required",
        "base",
        setv(lambda d: d["Impuestos"], TotalImpuestosRetenidos=None),
        "CFDI40206",
        "Impuestos.TotalImpuestosRetenidos",
    ),
    (
        "CFDI40207_retencion_impuesto_catalog",
        "base",
        setv(lambda d: d["Impuestos"]["Retenciones"][0], Impuesto="004"),
        "CFDI40207",
        "Impuestos.Retenciones[0].Impuesto",
    ),
    (
        "CFDI40208_one_retencion_per_impuesto",
        "base",
        _dup_summary_retencion,
        "CFDI40208",
        "Impuestos.Retenciones[2].Impuesto",
    ),
    (
        "CFDI40210_retencion_importe_decimals",
        "base",
        setv(lambda d: d["Impuestos"]["Retenciones"][0], Importe="160.050"),
        "CFDI40210",
        "Impuestos.Retenciones[0].Importe",
    ),
    (
        "CFDI40211_retencion_importe_sum",
        "base",
        setv(lambda d: d["Impuestos"]["Retenciones"][0], Importe="160.00"),
        "CFDI40211",
        "Impuestos.Retenciones[0].Importe",
    ),
    (
        "CFDI40211_retencion_missing",
        "base",
        lambda d: d["Impuestos"]["Retenciones"].pop(),
        "CFDI40211",
        "Impuestos.Retenciones",
    ),
    (
        "CFDI40212_total_trasladados_required",
        "base",
        setv(lambda d: d["Impuestos"], TotalImpuestosTrasladados=None),
        "CFDI40212",
        "Impuestos.TotalImpuestosTrasladados",
    ),
    (
        "CFDI40213_exento_summary_only_base",
        "exento",
        setv(lambda d: d["Impuestos"]["Traslados"][0], TasaOCuota="0.000000", Importe="0.00"),
        "CFDI40213",
        "Impuestos.Traslados[0]",
    ),
    (
        "CFDI40214_traslado_base_decimals",
        "base",
        setv(lambda d: d["Impuestos"]["Traslados"][0], Base="5224.660"),
        "CFDI40214",
        "Impuestos.Traslados[0].Base",
    ),
    (
        "CFDI40215_traslado_base_sum",
        "base",
        setv(lambda d: d["Impuestos"]["Traslados"][0], Base="5000.00"),
        "CFDI40215",
        "Impuestos.Traslados[0].Base",
    ),
    (
        "CFDI40216_exento_base_sum",
        "exento",
        setv(lambda d: d["Impuestos"]["Traslados"][0], Base="5000.00"),
        "CFDI40216",
        "Impuestos.Traslados[0].Base",
    ),
    (
        "CFDI40217_traslado_impuesto_catalog",
        "base",
        setv(lambda d: d["Impuestos"]["Traslados"][0], Impuesto="004"),
        "CFDI40217",
        "Impuestos.Traslados[0].Impuesto",
    ),
    (
        "CFDI40218_one_traslado_per_combination",
        "base",
        _dup_summary_traslado,
        "CFDI40218",
        "Impuestos.Traslados[1]",
    ),
    (
        "CFDI40219_traslado_tasa_catalog",
        "base",
        setv(lambda d: d["Impuestos"]["Traslados"][0], TasaOCuota="0.150000"),
        "CFDI40219",
        "Impuestos.Traslados[0].TasaOCuota",
    ),
    (
        "CFDI40220_traslado_importe_decimals",
        "base",
        setv(lambda d: d["Impuestos"]["Traslados"][0], Importe="835.950"),
        "CFDI40220",
        "Impuestos.Traslados[0].Importe",
    ),
    (
        "CFDI40221_traslado_importe_sum",
        "base",
        setv(lambda d: d["Impuestos"]["Traslados"][0], Importe="835.00"),
        "CFDI40221",
        "Impuestos.Traslados[0].Importe",
    ),
    ("CFDI40221_summary_missing", "base", top(Impuestos=None), "CFDI40221", "Impuestos"),
    (
        "CONN-NUMERO_negative",
        "base",
        setv(k0, ValorUnitario="-956.04"),
        "CONN-NUMERO",
        "Conceptos[0].ValorUnitario",
    ),
    (
        "CONN-NUMERO_too_many_decimals",
        "base",
        setv(k0, ValorUnitario="956.0400001"),
        "CONN-NUMERO",
        "Conceptos[0].ValorUnitario",
    ),
    (
        "CONN-NUMERO_too_many_digits",
        "base",
        setv(k0, ValorUnitario="1234567890123456789"),
        "CONN-NUMERO",
        "Conceptos[0].ValorUnitario",
    ),
    (
        "CONN-CANTIDAD_positive",
        "base",
        setv(k0, Cantidad="0"),
        "CONN-CANTIDAD",
        "Conceptos[0].Cantidad",
    ),
    ("CONN-CONCEPTOS_required", "base", top(Conceptos=[]), "CONN-CONCEPTOS", "Conceptos"),
]


@pytest.mark.parametrize(
    ("base", "mutate", "code", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(base: str, mutate: Callable[[Data], Any], code: str, path: str) -> None:
    problems = problems_of(base, mutate)
    hits = [p for p in problems if p.code == code and p.path == path]
    assert hits, f"{code} at {path} not reported; got {[str(p) for p in problems]}"
    # the matrix's message, or its statement of the rule when the message is another case's
    official = (MESSAGES[code], MATRIX_RULES.get(code, MESSAGES[code]))
    assert all(p.message.startswith(official) for p in hits)
    assert all(p.code != "CONN-REGLA" for p in problems), problems


@pytest.mark.parametrize("base", sorted(BASES))
def test_valid_bases_have_no_problems(base: str) -> None:
    assert problems_of(base, lambda d: None) == []


def test_equivalencia_dr_may_have_ten_decimals() -> None:
    mutate = setv(_dr, EquivalenciaDR="1.0000000000")
    assert problems_of("pago", mutate) == []
    codes = {p.code for p in problems_of("pago", setv(_dr, EquivalenciaDR="1.00000000001"))}
    assert "CONN-NUMERO" in codes


def test_valid_extras_have_no_problems() -> None:
    """Partes, a tercero, pedimentos, related CFDI and a foreign currency, all well formed."""
    mutate = both(
        setv(
            k0,
            Parte=[PARTE],
            InformacionAduanera=["21  47  3807  8003832"],
            ACuentaTerceros=TERCERO,
        ),
        top(CfdiRelacionados=[{"TipoRelacion": "04", "UUIDs": [UUID]}]),
        add_tercero(
            RfcACuentaTerceros=EXT,
            NombreACuentaTerceros=EXT_NOMBRE,
            RegimenFiscalACuentaTerceros="616",
            DomicilioFiscalACuentaTerceros="86000",
        ),
    )
    assert problems_of("base", mutate) == []


def test_cfdiutils_samples_are_valid(shared_dir: Path) -> None:
    from connector.cfdi.xmlio import from_xml

    for name in ("cfdi40-valid_CfdiUtils.xml", "cfdi40-pago20-valid_CfdiUtils.xml"):
        c = from_xml((shared_dir / "samples" / name).read_bytes())
        assert validate(c) == [], name


def test_messages_come_from_the_matrix() -> None:
    assert len(MATRIX) >= 120
    assert MATRIX["CFDI40105"] == 'El campo FormaPago no contiene el valor "99".'
    assert MATRIX["CFDI40101"] == "El campo Fecha no cumple con el patrón requerido."
    problem = problems_of("base", top(MetodoPago="PPD"))[0]
    assert problem.message.startswith(MATRIX["CFDI40105"])


def test_several_problems_at_once() -> None:
    problems = problems_of(
        "base",
        both(
            top(FormaPago="07", Moneda="MXP", LugarExpedicion="00001"),
            setv(rec, UsoCFDI="G99"),
            setv(k0, ClaveUnidad="XX9"),
            setv(lambda d: d["Conceptos"][1], ClaveProdServ="99999999"),
        ),
    )
    found = {(p.code, p.path) for p in problems}
    assert {
        ("CFDI40104", "FormaPago"),
        ("CFDI40113", "Moneda"),
        ("CFDI40126", "LugarExpedicion"),
        ("CFDI40160", "Receptor.UsoCFDI"),
        ("CFDI40165", "Conceptos[0].ClaveUnidad"),
        ("CFDI40162", "Conceptos[1].ClaveProdServ"),
    } <= found


def test_importe_within_limits_is_accepted() -> None:
    # 4 × 956.04 = 3824.16; 3824.15 is inside SAT's limits (the CfdiUtils sample does this)
    data = base_data()
    data["Conceptos"][0]["Importe"] = "3824.15"
    c = complete(load(data))
    assert c.Conceptos[0].Importe == Decimal("3824.15")
    assert validate(c) == []


# --- 72 hours (PAC code 401) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        (datetime(2025, 1, 15, 10, 0, 0), True),
        (datetime(2025, 1, 18, 10, 0, 0), True),  # exactly 72 h
        (datetime(2025, 1, 18, 10, 0, 1), False),
        (datetime(2025, 1, 15, 10, 4, 0), True),
        (datetime(2025, 1, 15, 9, 50, 0), False),  # Fecha 10 min in the future
        (datetime(2025, 1, 15, 9, 57, 0), True),  # within the clock skew
        (datetime(2025, 1, 15, 10, 0, tzinfo=CDMX), True),  # 10:00 in Mexico City
        (datetime(2025, 1, 15, 8, 0, tzinfo=CDMX), False),  # before 10:00 anywhere in Mexico
        (datetime(2025, 1, 18, 11, 59, tzinfo=CDMX), True),  # Tijuana (UTC-8) still inside
        (datetime(2025, 1, 18, 12, 6, tzinfo=CDMX), False),
        # the clock's own zone counts too: 10:00 on a UTC server (an ERP writing UTC wall time)
        (datetime(2025, 1, 15, 10, 0, tzinfo=UTC), True),
        (datetime(2025, 1, 15, 9, 50, tzinfo=UTC), False),
    ],
)
def test_401_fecha_within_72_hours(now: datetime, ok: bool) -> None:
    problems = [p for p in problems_of("base", lambda d: None, now=now) if p.code == "401"]
    if ok:
        assert problems == []
    else:
        assert [p.path for p in problems] == ["Fecha"]
        assert "72 horas" in problems[0].message


def test_without_now_no_72_hour_rule() -> None:
    assert problems_of("base", top(Fecha="2020-01-01T00:00:00")) == []


# --- Odd data never raises ----------------------------------------------------------------------


def test_uncompleted_invoice_reports_missing_amounts() -> None:
    problems = validate(load(base_data()))  # derived amounts all None
    codes = {p.code for p in problems}
    assert {"CFDI40108", "CFDI40119", "CFDI40167", "CFDI40178"} <= codes
    assert "CONN-REGLA" not in codes


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN", "1E+40", "-1", "1E-30"])
@pytest.mark.parametrize(
    "where",
    [
        "SubTotal",
        "Total",
        "Descuento",
        "TipoCambio",
        "Conceptos[0].Importe",
        "Conceptos[0].Cantidad",
        "Conceptos[0].ValorUnitario",
        "Conceptos[0].Descuento",
        "Traslado.Base",
        "Traslado.TasaOCuota",
        "Traslado.Importe",
        "Retencion.Importe",
        "Impuestos.TotalImpuestosTrasladados",
        "Impuestos.Traslados[0].Base",
    ],
)
def test_odd_numbers_never_raise(value: str, where: str) -> None:
    c = load(completed_data(base_data()))
    number = Decimal(value)
    assert c.Conceptos[0].Impuestos is not None and c.Impuestos is not None
    assert c.Conceptos[1].Impuestos is not None
    targets = {
        "Traslado": c.Conceptos[0].Impuestos.Traslados[0],
        "Retencion": c.Conceptos[1].Impuestos.Retenciones[0],
        "Conceptos[0]": c.Conceptos[0],
        "Impuestos.Traslados[0]": c.Impuestos.Traslados[0],
        "Impuestos": c.Impuestos,
    }
    node_name, _, attr = where.rpartition(".")
    setattr(targets.get(node_name, c), attr, number)
    problems = validate(c)
    assert problems, "an odd number must be reported"
    assert all(p.code != "CONN-REGLA" for p in problems), [str(p) for p in problems]


def test_odd_strings_never_raise() -> None:
    c = load(completed_data(base_data()))
    c.Fecha = ""
    c.Moneda = ""
    c.Receptor.Rfc = ""
    c.Emisor.Rfc = "Ñ" * 200
    c.Conceptos[0].ClaveProdServ = "\x00"
    codes = {p.code for p in validate(c, now=datetime(2025, 1, 1))}
    assert {"CFDI40101", "CFDI40113", "CONN-RFC", "CFDI40162"} <= codes
    assert "CONN-REGLA" not in codes


def test_crashing_rule_becomes_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.cfdi import rules

    def boom(x: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(rules, "RULES", [*rules.RULES, ("boom", boom)])
    problems = validate(load(completed_data(base_data())))
    assert [p.code for p in problems] == ["CONN-REGLA"]
    assert "boom" in problems[0].message


def test_every_code_the_rules_emit_has_a_case() -> None:
    import re

    from connector.cfdi import rules

    folder = Path(rules.__file__).parent
    families = ("rules", "rules_base", "rules_comprobante", "rules_conceptos")
    source = "".join((folder / f"{name}.py").read_text(encoding="utf-8") for name in families)
    emitted = set(re.findall(r'"((?:CFDI\d+)|(?:CONN-[A-Z0-9-]+))"', source)) - {"CONN-REGLA"}
    assert emitted <= {case[3] for case in CASES}
    assert emitted <= set(MESSAGES)


def test_cfdi40111_says_what_was_compared() -> None:
    # the matrix's CFDI40111 message is about T/P invoices; a wrong sum must say what it compared
    (p,) = [p for p in problems_of("base", top(Descuento="99.00")) if p.code == "CFDI40111"]
    assert "TipoDeComprobante no es I,E o N" not in p.message
    assert p.message.startswith(MATRIX_RULES["CFDI40111"])
    assert p.message.endswith("Descuento: 99.00; suma de los Descuento de los conceptos: 100.00.")
    (p,) = [p for p in problems_of("base", top(Descuento=None)) if p.code == "CFDI40111"]
    assert "suma de los Descuento de los conceptos: 100.00" in p.message
    (p,) = [p for p in problems_of("traslado", top(Descuento="0.00")) if p.code == "CFDI40111"]
    assert "Descuento: 0.00" in p.message and "debe omitirse" in p.message


@pytest.mark.parametrize("i", [0, 1])
def test_descuento_over_importe_reports_only_the_root_cause(i: int) -> None:
    # the ERP leaves the amounts to the connector; a concept's Descuento exceeds its Importe:
    # the derived (negative) Bases, tax Importes and summary are echoes, not the ERP's data
    data = base_data()
    data["Conceptos"][i]["Descuento"] = "5000.00"
    given = load(data)
    problems = validate(complete(given), given=given)
    assert [(p.code, p.path) for p in problems] == [("CFDI40169", f"Conceptos[{i}].Descuento")]
    # without ``given`` every derived amount is reported, as before
    assert len(validate(complete(given))) > 1


def test_errors_on_amounts_the_erp_sent_are_kept() -> None:
    # the same root cause, but the ERP sent the (negative) Base: that value is its own error
    data = base_data()
    data["Conceptos"][0]["Descuento"] = "5000.00"
    data["Conceptos"][0]["Impuestos"]["Traslados"][0]["Base"] = "-1175.84"
    given = load(data)
    found = {(p.code, p.path) for p in validate(complete(given), given=given)}
    base = "Conceptos[0].Impuestos.Traslados[0].Base"
    assert {("CFDI40169", "Conceptos[0].Descuento"), ("CFDI40174", base)} <= found
    assert ("CONN-NUMERO", base) in found
    # its derived Importe (−188.13) is an echo of that Base
    assert ("CONN-NUMERO", "Conceptos[0].Impuestos.Traslados[0].Importe") not in found


def test_derived_errors_in_another_concepto_are_kept() -> None:
    # a root cause in concepto 0 hides neither errors on given values elsewhere nor an error
    # on an amount derived in concepto 1 (its Importe, 100 × 9·10^17, has more than 18 digits)
    data = base_data()
    data["Conceptos"][0]["Descuento"] = "5000.00"
    data["Conceptos"][1]["ClaveProdServ"] = "99999999"
    data["Conceptos"][1]["Cantidad"] = "100"
    data["Conceptos"][1]["ValorUnitario"] = "900000000000000000"
    given = load(data)
    found = {(p.code, p.path) for p in validate(complete(given), given=given)}
    assert {
        ("CFDI40169", "Conceptos[0].Descuento"),
        ("CFDI40162", "Conceptos[1].ClaveProdServ"),
        ("CONN-NUMERO", "Conceptos[1].Importe"),
    } <= found
    assert not any(path.startswith("Conceptos[0].Impuestos") for _, path in found)
