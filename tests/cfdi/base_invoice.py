"""One valid CFDI 4.0 Ingreso (as plain data) that the rule tests break one thing at a time.

Emisor: SAT's test RFC EKU9003173C9 (persona moral, régimen 601). Receptor: SAT's test persona
física CACX7605101P8 (régimen 612, CP 36257, UsoCFDI G03). All codes are in SAT's catalogs.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from connector.cfdi.amounts import complete
from connector.cfdi.model import Comprobante, load_invoice

FECHA = "2025-01-15T10:00:00"

_BASE: dict[str, Any] = {
    "Serie": "A",
    "Folio": "1001",
    "Fecha": FECHA,
    "FormaPago": "03",
    "Moneda": "MXN",
    "TipoDeComprobante": "I",
    "Exportacion": "01",
    "MetodoPago": "PUE",
    "LugarExpedicion": "86000",
    "Emisor": {"Rfc": "EKU9003173C9", "Nombre": "ESCUELA KEMPER URGATE", "RegimenFiscal": "601"},
    "Receptor": {
        "Rfc": "CACX7605101P8",
        "Nombre": "XOCHILT CASAS CHAVEZ",
        "DomicilioFiscalReceptor": "36257",
        "RegimenFiscalReceptor": "612",
        "UsoCFDI": "G03",
    },
    "Conceptos": [
        {
            "ClaveProdServ": "52161557",
            "NoIdentificacion": "GAMEPAD007",
            "Cantidad": "4",
            "ClaveUnidad": "H87",
            "Unidad": "PIEZA",
            "Descripcion": "Control de juego portátil",
            "ValorUnitario": "956.04",
            "Descuento": "100.00",
            "ObjetoImp": "02",
            "Impuestos": {
                "Traslados": [{"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}]
            },
        },
        {
            "ClaveProdServ": "84111506",
            "Cantidad": "1.5",
            "ClaveUnidad": "E48",
            "Descripcion": "Servicio de instalación",
            "ValorUnitario": "1000.333",
            "ObjetoImp": "02",
            "Impuestos": {
                "Traslados": [{"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}],
                "Retenciones": [
                    {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.106667"},
                    {"Impuesto": "001", "TipoFactor": "Tasa", "TasaOCuota": "0.100000"},
                ],
            },
        },
    ],
}


def base_data() -> dict[str, Any]:
    """A fresh deep copy of the base invoice data (derived amounts not filled in)."""
    return copy.deepcopy(_BASE)


def load(data: dict[str, Any]) -> Comprobante:
    c, problems = load_invoice(data)
    assert c is not None, problems
    return c


def base_invoice() -> Comprobante:
    """The base invoice with every derived amount computed: valid by SAT's rules."""
    return complete(load(base_data()))


def d(value: str) -> Decimal:
    return Decimal(value)


_PAGO: dict[str, Any] = {
    "Fecha": "2023-06-13T14:15:16",
    "TipoDeComprobante": "P",
    "LugarExpedicion": "52000",
    "Moneda": "XXX",
    "Exportacion": "01",
    "Emisor": {"Rfc": "EKU9003173C9", "Nombre": "ESCUELA KEMPER URGATE", "RegimenFiscal": "601"},
    "Receptor": {
        "Rfc": "COSC8001137NA",
        "Nombre": "CARLOS CORTES SOTO",
        "DomicilioFiscalReceptor": "52000",
        "RegimenFiscalReceptor": "605",
        "UsoCFDI": "CP01",
    },
    "Conceptos": [
        {
            "ClaveProdServ": "84111506",
            "Cantidad": "1",
            "ClaveUnidad": "ACT",
            "Descripcion": "Pago",
            "ValorUnitario": "0",
            "ObjetoImp": "01",
        }
    ],
    "Pagos": {
        "Pago": [
            {
                "FechaPago": "2023-06-12T17:18:19",
                "FormaDePagoP": "03",
                "MonedaP": "MXN",
                "TipoCambioP": "1",
                "Monto": "15000.00",
                "DoctoRelacionado": [
                    {
                        "IdDocumento": "00000000-1111-2222-3333-00000000000A",
                        "MonedaDR": "MXN",
                        "EquivalenciaDR": "1",
                        "NumParcialidad": 2,
                        "ImpSaldoAnt": "12000.00",
                        "ImpPagado": "12000.00",
                        "ImpSaldoInsoluto": "0",
                        "ObjetoImpDR": "02",
                        "ImpuestosDR": {
                            "TrasladosDR": [
                                {
                                    "BaseDR": "10344.83",
                                    "ImpuestoDR": "002",
                                    "TipoFactorDR": "Tasa",
                                    "TasaOCuotaDR": "0.160000",
                                }
                            ]
                        },
                    },
                    {
                        "IdDocumento": "00000000-1111-2222-3333-00000000000B",
                        "MonedaDR": "MXN",
                        "EquivalenciaDR": "1",
                        "NumParcialidad": 1,
                        "ImpSaldoAnt": "10000.00",
                        "ImpPagado": "3000.00",
                        "ImpSaldoInsoluto": "7000.00",
                        "ObjetoImpDR": "02",
                        "ImpuestosDR": {
                            "TrasladosDR": [
                                {
                                    "BaseDR": "2586.21",
                                    "ImpuestoDR": "002",
                                    "TipoFactorDR": "Tasa",
                                    "TasaOCuotaDR": "0.160000",
                                }
                            ]
                        },
                    },
                ],
            }
        ]
    },
}


def pago_data() -> dict[str, Any]:
    """A Pagos 2.0 comprobante (SAT sample shape), derived amounts not filled in."""
    return copy.deepcopy(_PAGO)


def pago_one_document(
    importe_dr: str | None = None, importe_p: str | None = None
) -> dict[str, Any]:
    """A payment of 4 000.00 settling an invoice whose IVA base is 3 448.28 (16 % = 551.72);
    the document's ``importe_dr`` and the payment's ImpuestosP ``importe_p`` given as the ERP
    would (the audit's examples: 100.00, 600.00), else computed."""
    data = pago_data()
    pago = data["Pagos"]["Pago"][0]
    pago["Monto"] = "4000.00"
    doc = pago["DoctoRelacionado"][0]
    doc.update(ImpSaldoAnt="4000.00", ImpPagado="4000.00", ImpSaldoInsoluto="0")
    traslado = doc["ImpuestosDR"]["TrasladosDR"][0]
    traslado["BaseDR"] = "3448.28"
    if importe_dr is not None:
        traslado["ImporteDR"] = importe_dr
    del pago["DoctoRelacionado"][1]
    if importe_p is not None:
        traslado_p = {"BaseP": "3448.28", "ImpuestoP": "002", "TipoFactorP": "Tasa"}
        traslado_p.update(TasaOCuotaP="0.160000", ImporteP=importe_p)
        pago["ImpuestosP"] = {"TrasladosP": [traslado_p]}
    return data


def pago_usd_data(monto: str, pagado: str, equivalencia: str = "17.5") -> dict[str, Any]:
    """A partial payment in two currencies: USD ``monto`` at 17.5 paying ``pagado`` MXN of an
    MXN invoice of 3 500.00 (IVA 16 %), EquivalenciaDR ``equivalencia``."""
    data = pago_data()
    pago = data["Pagos"]["Pago"][0]
    pago.update(MonedaP="USD", TipoCambioP="17.5", Monto=monto)
    saldo = Decimal("3500.00")
    base = (Decimal(pagado) / Decimal("1.16")).quantize(Decimal("0.01"))
    pago["DoctoRelacionado"] = [
        {
            "IdDocumento": "00000000-1111-2222-3333-00000000000C",
            "MonedaDR": "MXN",
            "EquivalenciaDR": equivalencia,
            "NumParcialidad": 1,
            "ImpSaldoAnt": str(saldo),
            "ImpPagado": pagado,
            "ImpSaldoInsoluto": str(saldo - Decimal(pagado)),
            "ObjetoImpDR": "02",
            "ImpuestosDR": {
                "TrasladosDR": [
                    {
                        "BaseDR": str(base),
                        "ImpuestoDR": "002",
                        "TipoFactorDR": "Tasa",
                        "TasaOCuotaDR": "0.160000",
                    }
                ]
            },
        }
    ]
    return data


def pago_invoice() -> Comprobante:
    return complete(load(pago_data()))


def completed_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its derived amounts computed, back as plain data (to break one thing)."""
    return complete(load(data)).model_dump(by_alias=True)


def publico_data() -> dict[str, Any]:
    """A factura global to público en general (XAXX010101000 + InformacionGlobal)."""
    data = base_data()
    data["Receptor"] = {
        "Rfc": "XAXX010101000",
        "Nombre": "PUBLICO EN GENERAL",
        "DomicilioFiscalReceptor": data["LugarExpedicion"],
        "RegimenFiscalReceptor": "616",
        "UsoCFDI": "S01",
    }
    data["InformacionGlobal"] = {"Periodicidad": "01", "Meses": "01", "Año": 2025}
    return data


def extranjero_data() -> dict[str, Any]:
    """An invoice to a foreign resident (XEXX010101000, ResidenciaFiscal, NumRegIdTrib)."""
    data = base_data()
    data["Receptor"] = {
        "Rfc": "XEXX010101000",
        "Nombre": "ACME INC",
        "DomicilioFiscalReceptor": data["LugarExpedicion"],
        "ResidenciaFiscal": "USA",
        "NumRegIdTrib": "121585958",
        "RegimenFiscalReceptor": "616",
        "UsoCFDI": "S01",
    }
    return data


def traslado_data() -> dict[str, Any]:
    """A tipo T (traslado de mercancías): no FormaPago, MetodoPago or taxes; totals 0."""
    data = base_data()
    data.update(TipoDeComprobante="T", FormaPago=None, MetodoPago=None)
    data["Receptor"]["UsoCFDI"] = "S01"
    for k in data["Conceptos"]:
        k["ObjetoImp"] = "01"
        k.pop("Impuestos")
        k.pop("Descuento", None)
    return data


def exento_data() -> dict[str, Any]:
    """An invoice whose only traslados are IVA Exento."""
    data = base_data()
    for k in data["Conceptos"]:
        k["Impuestos"] = {"Traslados": [{"Impuesto": "002", "TipoFactor": "Exento"}]}
    return data


TERCERO: dict[str, str] = {
    "RfcACuentaTerceros": "JUFA7608212V6",
    "NombreACuentaTerceros": "ADRIANA JUAREZ FERNANDEZ",
    "RegimenFiscalACuentaTerceros": "612",
    "DomicilioFiscalACuentaTerceros": "06000",
}

COMERCIO_EXTERIOR = (
    b'<cce20:ComercioExterior xmlns:cce20="http://www.sat.gob.mx/ComercioExterior20" '
    b'Version="2.0"/>'
)


def cce_data() -> dict[str, Any]:
    """An export invoice (Exportacion 02, USD, foreign receptor) with a valid Comercio
    Exterior 2.0 complement: two conceptos, one mercancía each, every amount consistent."""
    data = extranjero_data()
    data.update(Moneda="USD", TipoCambio="17.5000", Exportacion="02")
    data["Receptor"]["DomicilioFiscalReceptor"] = data["LugarExpedicion"]
    iva0 = {"Traslados": [{"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.000000"}]}
    data["Conceptos"] = [
        {
            "ClaveProdServ": "43201800",
            "NoIdentificacion": "USB32",
            "Cantidad": "10",
            "ClaveUnidad": "H87",
            "Unidad": "Pieza",
            "Descripcion": "Memoria USB 32 GB",
            "ValorUnitario": "100.00",
            "ObjetoImp": "02",
            "Impuestos": copy.deepcopy(iva0),
        },
        {
            "ClaveProdServ": "43211503",
            "NoIdentificacion": "LAP14",
            "Cantidad": "5",
            "ClaveUnidad": "H87",
            "Unidad": "Pieza",
            "Descripcion": "Computadora portátil 14 pulgadas",
            "ValorUnitario": "250.50",
            "ObjetoImp": "02",
            "Impuestos": copy.deepcopy(iva0),
        },
    ]
    data["ComercioExterior"] = {
        "ClaveDePedimento": "A1",
        "CertificadoOrigen": "0",
        "Incoterm": "FOB",
        "TipoCambioUSD": "17.5000",
        "TotalUSD": "2252.50",
        "Emisor": {
            "Domicilio": {
                "Calle": "Av. Paseo Tabasco",
                "NumeroExterior": "1203",
                "Estado": "TAB",
                "Pais": "MEX",
                "CodigoPostal": "86000",
            }
        },
        "Receptor": {
            "Domicilio": {
                "Calle": "Main St",
                "NumeroExterior": "1",
                "Estado": "TX",
                "Pais": "USA",
                "CodigoPostal": "73301",
            }
        },
        "Mercancias": [
            {
                "NoIdentificacion": "USB32",
                "FraccionArancelaria": "8523510100",
                "CantidadAduana": "10",
                "UnidadAduana": "06",
                "ValorUnitarioAduana": "100.00",
                "ValorDolares": "1000.00",
            },
            {
                "NoIdentificacion": "LAP14",
                "FraccionArancelaria": "8471300101",
                "CantidadAduana": "5",
                "UnidadAduana": "06",
                "ValorUnitarioAduana": "250.50",
                "ValorDolares": "1252.50",
                "DescripcionesEspecificas": [
                    {"Marca": "ACME", "Modelo": "X14", "NumeroSerie": "SN-0001"}
                ],
            },
        ],
    }
    return data


def cp_data() -> dict[str, Any]:
    """A traslado (tipo T) of the emisor's own goods on a federal road with a valid Carta Porte
    3.1 (autotransporte): two mercancías, origen Villahermosa, destino Celaya. IdCCP and the
    totals are left to ``amounts.complete``."""
    data = traslado_data()
    data["Conceptos"][1].update(ClaveProdServ="43211503", ClaveUnidad="H87", Cantidad="2",
                                Descripcion="Computadora portátil", ValorUnitario="0")  # fmt: skip
    data["Conceptos"][0]["ValorUnitario"] = "0"
    data["CartaPorte"] = {
        "TranspInternac": "No",
        "Ubicaciones": [
            {
                "TipoUbicacion": "Origen",
                "IDUbicacion": "OR000001",
                "RFCRemitenteDestinatario": "EKU9003173C9",
                "NombreRemitenteDestinatario": "ESCUELA KEMPER URGATE",
                "FechaHoraSalidaLlegada": "2025-01-15T11:00:00",
                "Domicilio": {"Calle": "Av. Paseo Tabasco", "NumeroExterior": "1203",
                              "Municipio": "004", "Estado": "TAB", "Pais": "MEX",
                              "CodigoPostal": "86000"},
            },
            {
                "TipoUbicacion": "Destino",
                "IDUbicacion": "DE000001",
                "RFCRemitenteDestinatario": "CACX7605101P8",
                "NombreRemitenteDestinatario": "XOCHILT CASAS CHAVEZ",
                "FechaHoraSalidaLlegada": "2025-01-16T09:30:00",
                "DistanciaRecorrida": "1050.5",
                "Domicilio": {"Calle": "Benito Juárez", "Estado": "GUA", "Pais": "MEX",
                              "CodigoPostal": "36257"},
            },
        ],
        "Mercancias": {
            "Mercancia": [
                {"BienesTransp": "52161557", "Descripcion": "Control de juego portátil",
                 "Cantidad": "4", "ClaveUnidad": "H87", "Unidad": "PIEZA",
                 "MaterialPeligroso": "No", "PesoEnKg": "2.400"},
                {"BienesTransp": "43211503", "Descripcion": "Computadora portátil",
                 "Cantidad": "2", "ClaveUnidad": "H87", "PesoEnKg": "4.800",
                 "CantidadTransporta": [
                     {"Cantidad": "2", "IDOrigen": "OR000001", "IDDestino": "DE000001"}
                 ]},
            ],
            "Autotransporte": {
                "PermSCT": "TPAF01",
                "NumPermisoSCT": "0X2XTXZ0X5X0X3X2X1X0",
                "IdentificacionVehicular": {"ConfigVehicular": "C2",
                                            "PesoBrutoVehicular": "10.50",
                                            "PlacaVM": "501AAA", "AnioModeloVM": "2020"},
                "Seguros": {"AseguraRespCivil": "SW Seguros", "PolizaRespCivil": "123456"},
            },
        },
        "FiguraTransporte": [
            {"TipoFigura": "01", "RFCFigura": "VAAM130719H60", "NumLicencia": "a234567890",
             "NombreFigura": "Miguel Vázquez"},
        ],
    }  # fmt: skip
    return data
