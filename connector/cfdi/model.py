"""Typed CFDI 4.0 model (pydantic v2).

Field names are SAT's attribute names, so the XML attribute ``Rfc`` is the field ``Rfc``.
The only exception is ``InformacionGlobal.Anio`` (XML ``Año``).

The model is deliberately *lenient*: codes and patterns are plain strings, so data that breaks
SAT's rules still loads and the validator (``connector.cfdi.rules``) reports every problem with
its SAT code. Only what cannot be represented at all (``"abc"`` as an amount) fails here, and
``load_invoice`` turns that into ``Problem`` values too.

Money is ``Decimal`` everywhere. Derived amounts (concepto Importe, tax Importe, SubTotal,
Total, tax summaries) may be ``None`` on input; ``connector.cfdi.amounts.complete`` computes
them with SAT's rounding rules, and the validator checks them when they are given.
"""

from decimal import Decimal
from functools import cache
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .cce20 import ComercioExterior
from .cp31 import CartaPorte
from .errors import Problem

NS_CFDI = "http://www.sat.gob.mx/cfd/4"
NS_TFD = "http://www.sat.gob.mx/TimbreFiscalDigital"
NS_PAGO20 = "http://www.sat.gob.mx/Pagos20"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"

RFC_PUBLICO_GENERAL = "XAXX010101000"
RFC_EXTRANJERO = "XEXX010101000"


class _Node(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        validate_assignment=False,
        str_strip_whitespace=False,
    )


# --- Impuestos per concepto -------------------------------------------------------------------


class Traslado(_Node):
    Base: Decimal | None = None  # computed when None (amounts: Importe - Descuento [+ IEPS])
    Impuesto: str  # 002 IVA, 003 IEPS (001 ISR is never a traslado)
    TipoFactor: str  # Tasa, Cuota, Exento
    TasaOCuota: Decimal | None = None  # absent when Exento
    Importe: Decimal | None = None  # absent when Exento; computed when None and not Exento


class Retencion(_Node):
    Base: Decimal | None = None  # computed when None (amounts: Importe - Descuento [+ IEPS])
    Impuesto: str  # 001 ISR, 002 IVA, 003 IEPS
    TipoFactor: str
    TasaOCuota: Decimal
    Importe: Decimal | None = None


class ImpuestosConcepto(_Node):
    Traslados: list[Traslado] = Field(default_factory=list)
    Retenciones: list[Retencion] = Field(default_factory=list)


class ACuentaTerceros(_Node):
    RfcACuentaTerceros: str
    NombreACuentaTerceros: str
    RegimenFiscalACuentaTerceros: str
    DomicilioFiscalACuentaTerceros: str


_ACuentaTerceros = ACuentaTerceros


class Parte(_Node):
    ClaveProdServ: str
    NoIdentificacion: str | None = None
    Cantidad: Decimal
    Unidad: str | None = None
    Descripcion: str
    ValorUnitario: Decimal | None = None
    Importe: Decimal | None = None
    InformacionAduanera: list[str] = Field(default_factory=list)  # NumeroPedimento values


_Parte = Parte


class Concepto(_Node):
    ClaveProdServ: str
    NoIdentificacion: str | None = None
    Cantidad: Decimal
    ClaveUnidad: str
    Unidad: str | None = None
    Descripcion: str
    ValorUnitario: Decimal
    Importe: Decimal | None = None  # Cantidad * ValorUnitario, computed when None
    Descuento: Decimal | None = None
    ObjetoImp: str  # 01 no objeto, 02 sí objeto, 03 sí objeto no obligado, 04..08
    Impuestos: ImpuestosConcepto | None = None
    ACuentaTerceros: _ACuentaTerceros | None = None
    InformacionAduanera: list[str] = Field(default_factory=list)  # NumeroPedimento values
    CuentaPredial: list[str] = Field(default_factory=list)  # Numero values
    # Children of ComplementoConcepto (e.g. iedu:instEducativas) kept verbatim as serialized XML
    ComplementoConcepto: list[bytes] = Field(default_factory=list)
    Parte: list[_Parte] = Field(default_factory=list)


# --- Comprobante-level nodes --------------------------------------------------------------------


class InformacionGlobal(_Node):
    Periodicidad: str
    Meses: str
    Anio: int = Field(alias="Año")


_InformacionGlobal = InformacionGlobal


class CfdiRelacionados(_Node):
    TipoRelacion: str
    UUIDs: list[str] = Field(default_factory=list)


_CfdiRelacionados = CfdiRelacionados


class Emisor(_Node):
    Rfc: str
    Nombre: str
    RegimenFiscal: str
    FacAtrAdquirente: str | None = None


_Emisor = Emisor


class Receptor(_Node):
    Rfc: str
    Nombre: str
    DomicilioFiscalReceptor: str
    ResidenciaFiscal: str | None = None
    NumRegIdTrib: str | None = None
    RegimenFiscalReceptor: str
    UsoCFDI: str


_Receptor = Receptor


class TrasladoResumen(_Node):
    Base: Decimal
    Impuesto: str
    TipoFactor: str
    TasaOCuota: Decimal | None = None
    Importe: Decimal | None = None


class RetencionResumen(_Node):
    Impuesto: str
    Importe: Decimal


class Impuestos(_Node):
    TotalImpuestosRetenidos: Decimal | None = None
    TotalImpuestosTrasladados: Decimal | None = None
    Retenciones: list[RetencionResumen] = Field(default_factory=list)
    Traslados: list[TrasladoResumen] = Field(default_factory=list)


_Impuestos = Impuestos


# --- Complemento Pagos 2.0 ----------------------------------------------------------------------


class TrasladoDR(_Node):
    BaseDR: Decimal
    ImpuestoDR: str
    TipoFactorDR: str
    TasaOCuotaDR: Decimal | None = None
    ImporteDR: Decimal | None = None


class RetencionDR(_Node):
    BaseDR: Decimal
    ImpuestoDR: str
    TipoFactorDR: str
    TasaOCuotaDR: Decimal
    ImporteDR: Decimal


class ImpuestosDR(_Node):
    RetencionesDR: list[RetencionDR] = Field(default_factory=list)
    TrasladosDR: list[TrasladoDR] = Field(default_factory=list)


_ImpuestosDR = ImpuestosDR


class DoctoRelacionado(_Node):
    IdDocumento: str
    Serie: str | None = None
    Folio: str | None = None
    MonedaDR: str
    EquivalenciaDR: Decimal | None = None
    NumParcialidad: int
    ImpSaldoAnt: Decimal
    ImpPagado: Decimal
    ImpSaldoInsoluto: Decimal
    ObjetoImpDR: str
    ImpuestosDR: _ImpuestosDR | None = None


_DoctoRelacionado = DoctoRelacionado


class TrasladoP(_Node):
    BaseP: Decimal
    ImpuestoP: str
    TipoFactorP: str
    TasaOCuotaP: Decimal | None = None
    ImporteP: Decimal | None = None


class RetencionP(_Node):
    ImpuestoP: str
    ImporteP: Decimal


class ImpuestosP(_Node):
    RetencionesP: list[RetencionP] = Field(default_factory=list)
    TrasladosP: list[TrasladoP] = Field(default_factory=list)


_ImpuestosP = ImpuestosP


class Pago(_Node):
    FechaPago: str  # xs:dateTime text as given, e.g. 2025-01-15T12:00:00
    FormaDePagoP: str
    MonedaP: str
    TipoCambioP: Decimal | None = None
    Monto: Decimal
    NumOperacion: str | None = None
    RfcEmisorCtaOrd: str | None = None
    NomBancoOrdExt: str | None = None
    CtaOrdenante: str | None = None
    RfcEmisorCtaBen: str | None = None
    CtaBeneficiario: str | None = None
    TipoCadPago: str | None = None
    CertPago: str | None = None
    CadPago: str | None = None
    SelloPago: str | None = None
    DoctoRelacionado: list[_DoctoRelacionado] = Field(default_factory=list)
    ImpuestosP: _ImpuestosP | None = None


_Pago = Pago


class PagosTotales(_Node):
    TotalRetencionesIVA: Decimal | None = None
    TotalRetencionesISR: Decimal | None = None
    TotalRetencionesIEPS: Decimal | None = None
    TotalTrasladosBaseIVA16: Decimal | None = None
    TotalTrasladosImpuestoIVA16: Decimal | None = None
    TotalTrasladosBaseIVA8: Decimal | None = None
    TotalTrasladosImpuestoIVA8: Decimal | None = None
    TotalTrasladosBaseIVA0: Decimal | None = None
    TotalTrasladosImpuestoIVA0: Decimal | None = None
    TotalTrasladosBaseIVAExento: Decimal | None = None
    MontoTotalPagos: Decimal | None = None  # computed when None


class Pagos(_Node):
    Version: str = "2.0"
    Totales: PagosTotales = Field(default_factory=PagosTotales)
    Pago: list[_Pago] = Field(default_factory=list)


_Pagos = Pagos
_ComercioExterior = ComercioExterior
_CartaPorte = CartaPorte


# --- Timbre (added by the PAC) ------------------------------------------------------------------


class TimbreFiscalDigital(_Node):
    Version: str = "1.1"
    UUID: str
    FechaTimbrado: str
    RfcProvCertif: str
    Leyenda: str | None = None
    SelloCFD: str
    NoCertificadoSAT: str
    SelloSAT: str


_TimbreFiscalDigital = TimbreFiscalDigital


# --- Comprobante --------------------------------------------------------------------------------


class Comprobante(_Node):
    Version: str = "4.0"
    Serie: str | None = None
    Folio: str | None = None
    Fecha: str  # local time of issue, SAT pattern YYYY-MM-DDTHH:MM:SS (checked by CFDI40101)
    Sello: str | None = None
    FormaPago: str | None = None
    NoCertificado: str | None = None
    Certificado: str | None = None
    CondicionesDePago: str | None = None
    SubTotal: Decimal | None = None
    Descuento: Decimal | None = None
    Moneda: str
    TipoCambio: Decimal | None = None
    Total: Decimal | None = None
    TipoDeComprobante: str  # I, E, T, N, P
    Exportacion: str
    MetodoPago: str | None = None
    LugarExpedicion: str
    Confirmacion: str | None = None
    InformacionGlobal: _InformacionGlobal | None = None
    CfdiRelacionados: list[_CfdiRelacionados] = Field(default_factory=list)
    Emisor: _Emisor
    Receptor: _Receptor
    Conceptos: list[Concepto] = Field(default_factory=list)
    Impuestos: _Impuestos | None = None
    Pagos: _Pagos | None = None
    ComercioExterior: _ComercioExterior | None = None  # Comercio Exterior 2.0 (cce20)
    CartaPorte: _CartaPorte | None = None  # Carta Porte 3.1 (cp31), autotransporte federal
    TimbreFiscalDigital: _TimbreFiscalDigital | None = None
    # Complements this model does not type (e.g. Nómina) kept verbatim as serialized XML
    # elements, so a parsed document can be re-emitted and its cadena computed unchanged.
    OtrosComplementos: list[bytes] = Field(default_factory=list)

    @property
    def business_key(self) -> tuple[str, str, str]:
        """(emisor RFC, serie, folio): one invoice, one UUID."""
        return (self.Emisor.Rfc.upper(), self.Serie or "", self.Folio or "")

    @property
    def uuid(self) -> str | None:
        return self.TimbreFiscalDigital.UUID if self.TimbreFiscalDigital else None


@cache
def attribute_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a node that are XML attributes (not child nodes or lists), in the order the
    model declares them, which is SAT's XSD order. One source for the writer, the reader and
    the seal code. ``InformacionGlobal.Anio`` is written as ``Año`` by its users."""
    out = []
    for name, f in cls.model_fields.items():
        ann = f.annotation
        if get_origin(ann) is list:
            continue
        if any(isinstance(a, type) and issubclass(a, BaseModel) for a in (get_args(ann) or (ann,))):
            continue
        out.append(name)
    return tuple(out)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_invoice(data: dict[str, Any]) -> tuple[Comprobante | None, list[Problem]]:
    """Build a Comprobante from plain data; shape errors become Problems, never exceptions."""
    try:
        return Comprobante.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _loc(err["loc"])
            problems.append(
                Problem(
                    code="CONN-DATA",
                    path=path,
                    message=f"El campo {path or 'Comprobante'} no es válido: {_spanish(err)}",
                )
            )
        return None, problems


_SPANISH = {
    "missing": "es obligatorio y no viene",
    "decimal_parsing": "no es un número decimal",
    "decimal_type": "no es un número decimal",
    "int_parsing": "no es un número entero",
    "int_from_float": "no es un número entero",
    "string_type": "debe ser texto",
    "extra_forbidden": "no es un campo conocido del CFDI 4.0",
    "list_type": "debe ser una lista",
    "model_type": "tiene una estructura no válida",
    "model_attributes_type": "tiene una estructura no válida",
}


def _spanish(err: Any) -> str:
    return _SPANISH.get(err["type"], f"valor no válido ({err['type']})")
