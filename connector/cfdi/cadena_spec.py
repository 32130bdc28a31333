"""The cadena original's field specs and XPath's ``normalize-space``: what both the cadena walk
(``cadena``) and the model-to-XML writer (``xmlio``, which writes the XML and the cadena in one
pass) read. No imports from either, so each imports it downward."""

from __future__ import annotations

import re

_WS = re.compile("[ \t\r\n]+")


def normalize_space(s: str) -> str:
    """XPath 1.0 ``normalize-space``: only #x20, #x9, #xD and #xA count as whitespace."""
    if "  " in s or "\t" in s or "\n" in s or "\r" in s:
        return _WS.sub(" ", s).strip(" ")
    if s[:1] == " " or s[-1:] == " ":
        return s.strip(" ")
    return s


# Field specs: (attribute, required). The order is the XSLT's, which is not always the XSD's.
_R, _O = True, False
_COMPROBANTE = (
    ("Version", _R),
    ("Serie", _O),
    ("Folio", _O),
    ("Fecha", _R),
    ("FormaPago", _O),
    ("NoCertificado", _R),
    ("CondicionesDePago", _O),
    ("SubTotal", _R),
    ("Descuento", _O),
    ("Moneda", _R),
    ("TipoCambio", _O),
    ("Total", _R),
    ("TipoDeComprobante", _R),
    ("Exportacion", _R),
    ("MetodoPago", _O),
    ("LugarExpedicion", _R),
    ("Confirmacion", _O),
)
_INFO_GLOBAL = (("Periodicidad", _R), ("Meses", _R), ("Año", _R))
_EMISOR = (("Rfc", _R), ("Nombre", _R), ("RegimenFiscal", _R), ("FacAtrAdquirente", _O))
_RECEPTOR = (
    ("Rfc", _R),
    ("Nombre", _R),
    ("DomicilioFiscalReceptor", _R),
    ("ResidenciaFiscal", _O),
    ("NumRegIdTrib", _O),
    ("RegimenFiscalReceptor", _R),
    ("UsoCFDI", _R),
)
_CONCEPTO = (
    ("ClaveProdServ", _R),
    ("NoIdentificacion", _O),
    ("Cantidad", _R),
    ("ClaveUnidad", _R),
    ("Unidad", _O),
    ("Descripcion", _R),
    ("ValorUnitario", _R),
    ("Importe", _R),
    ("Descuento", _O),
    ("ObjetoImp", _R),
)
_TRASLADO = (
    ("Base", _R),
    ("Impuesto", _R),
    ("TipoFactor", _R),
    ("TasaOCuota", _O),
    ("Importe", _O),
)
_RETENCION = (
    ("Base", _R),
    ("Impuesto", _R),
    ("TipoFactor", _R),
    ("TasaOCuota", _R),
    ("Importe", _R),
)
_ACUENTA = (
    ("RfcACuentaTerceros", _R),
    ("NombreACuentaTerceros", _R),
    ("RegimenFiscalACuentaTerceros", _R),
    ("DomicilioFiscalACuentaTerceros", _R),
)
_RETENCION_RES = (("Impuesto", _R), ("Importe", _R))
_TOTALES = (
    ("TotalRetencionesIVA", _O),
    ("TotalRetencionesISR", _O),
    ("TotalRetencionesIEPS", _O),
    ("TotalTrasladosBaseIVA16", _O),
    ("TotalTrasladosImpuestoIVA16", _O),
    ("TotalTrasladosBaseIVA8", _O),
    ("TotalTrasladosImpuestoIVA8", _O),
    ("TotalTrasladosBaseIVA0", _O),
    ("TotalTrasladosImpuestoIVA0", _O),
    ("TotalTrasladosBaseIVAExento", _O),
    ("MontoTotalPagos", _R),
)
_PAGO = (
    ("FechaPago", _R),
    ("FormaDePagoP", _R),
    ("MonedaP", _R),
    ("TipoCambioP", _O),
    ("Monto", _R),
    ("NumOperacion", _O),
    ("RfcEmisorCtaOrd", _O),
    ("NomBancoOrdExt", _O),
    ("CtaOrdenante", _O),
    ("RfcEmisorCtaBen", _O),
    ("CtaBeneficiario", _O),
    ("TipoCadPago", _O),
    ("CertPago", _O),
    ("CadPago", _O),
    ("SelloPago", _O),
)
_DOCTO = (
    ("IdDocumento", _R),
    ("Serie", _O),
    ("Folio", _O),
    ("MonedaDR", _R),
    ("EquivalenciaDR", _O),
    ("NumParcialidad", _R),
    ("ImpSaldoAnt", _R),
    ("ImpPagado", _R),
    ("ImpSaldoInsoluto", _R),
    ("ObjetoImpDR", _R),
)
_RETENCION_DR = (
    ("BaseDR", _R),
    ("ImpuestoDR", _R),
    ("TipoFactorDR", _R),
    ("TasaOCuotaDR", _R),
    ("ImporteDR", _R),
)
_TRASLADO_DR = (
    ("BaseDR", _R),
    ("ImpuestoDR", _R),
    ("TipoFactorDR", _R),
    ("TasaOCuotaDR", _O),
    ("ImporteDR", _O),
)
_RETENCION_P = (("ImpuestoP", _R), ("ImporteP", _R))
_TRASLADO_P = (
    ("BaseP", _R),
    ("ImpuestoP", _R),
    ("TipoFactorP", _R),
    ("TasaOCuotaP", _O),
    ("ImporteP", _O),
)
_TFD = (
    ("Version", _R),
    ("UUID", _R),
    ("FechaTimbrado", _R),
    ("RfcProvCertif", _R),
    ("Leyenda", _O),
    ("SelloCFD", _R),
    ("NoCertificadoSAT", _R),
)
