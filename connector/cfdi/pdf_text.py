"""What the representación impresa (``pdf``) says, apart from how it is drawn: the descriptions
of SAT's codes it prints, amounts, quantities and rates as text, SAT's verification QR address
(``qr_url``, Anexo 20: see ``pdf``'s module doc) and the cadena of the TFD."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from .errors import CfdiError
from .model import Comprobante, TimbreFiscalDigital

LEGEND = "Este documento es una representación impresa de un CFDI"
SAT_VERIFY_URL = "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"

# --- SAT catalog descriptions (just what the printed form shows) -------------------------------

REGIMEN_FISCAL = {
    "601": "General de Ley Personas Morales",
    "603": "Personas Morales con Fines no Lucrativos",
    "605": "Sueldos y Salarios e Ingresos Asimilados a Salarios",
    "606": "Arrendamiento",
    "607": "Régimen de Enajenación o Adquisición de Bienes",
    "608": "Demás ingresos",
    "610": "Residentes en el Extranjero sin Establecimiento Permanente en México",
    "611": "Ingresos por Dividendos (socios y accionistas)",
    "612": "Personas Físicas con Actividades Empresariales y Profesionales",
    "614": "Ingresos por intereses",
    "615": "Régimen de los ingresos por obtención de premios",
    "616": "Sin obligaciones fiscales",
    "620": "Sociedades Cooperativas de Producción que optan por diferir sus ingresos",
    "621": "Incorporación Fiscal",
    "622": "Actividades Agrícolas, Ganaderas, Silvícolas y Pesqueras",
    "623": "Opcional para Grupos de Sociedades",
    "624": "Coordinados",
    "625": "Régimen de las Actividades Empresariales con ingresos a través de Plataformas "
    "Tecnológicas",
    "626": "Régimen Simplificado de Confianza",
}
USO_CFDI = {
    "G01": "Adquisición de mercancías",
    "G02": "Devoluciones, descuentos o bonificaciones",
    "G03": "Gastos en general",
    "I01": "Construcciones",
    "I02": "Mobiliario y equipo de oficina por inversiones",
    "I03": "Equipo de transporte",
    "I04": "Equipo de computo y accesorios",
    "I05": "Dados, troqueles, moldes, matrices y herramental",
    "I06": "Comunicaciones telefónicas",
    "I07": "Comunicaciones satelitales",
    "I08": "Otra maquinaria y equipo",
    "D01": "Honorarios médicos, dentales y gastos hospitalarios",
    "D02": "Gastos médicos por incapacidad o discapacidad",
    "D03": "Gastos funerales",
    "D04": "Donativos",
    "D05": "Intereses reales efectivamente pagados por créditos hipotecarios (casa habitación)",
    "D06": "Aportaciones voluntarias al SAR",
    "D07": "Primas por seguros de gastos médicos",
    "D08": "Gastos de transportación escolar obligatoria",
    "D09": "Depósitos en cuentas para el ahorro, primas que tengan como base planes de pensiones",
    "D10": "Pagos por servicios educativos (colegiaturas)",
    "S01": "Sin efectos fiscales",
    "CP01": "Pagos",
    "CN01": "Nómina",
}
FORMA_PAGO = {
    "01": "Efectivo",
    "02": "Cheque nominativo",
    "03": "Transferencia electrónica de fondos",
    "04": "Tarjeta de crédito",
    "05": "Monedero electrónico",
    "06": "Dinero electrónico",
    "08": "Vales de despensa",
    "12": "Dación en pago",
    "13": "Pago por subrogación",
    "14": "Pago por consignación",
    "15": "Condonación",
    "17": "Compensación",
    "23": "Novación",
    "24": "Confusión",
    "25": "Remisión de deuda",
    "26": "Prescripción o caducidad",
    "27": "A satisfacción del acreedor",
    "28": "Tarjeta de débito",
    "29": "Tarjeta de servicios",
    "30": "Aplicación de anticipos",
    "31": "Intermediario pagos",
    "99": "Por definir",
}
METODO_PAGO = {
    "PUE": "Pago en una sola exhibición",
    "PPD": "Pago en parcialidades o diferido",
}
TIPO_COMPROBANTE = {
    "I": "Ingreso",
    "E": "Egreso",
    "T": "Traslado",
    "N": "Nómina",
    "P": "Pago",
}
EXPORTACION = {
    "01": "No aplica",
    "02": "Definitiva con clave A1",
    "03": "Temporal",
    "04": "Definitiva con clave distinta a A1 o cuando no existe enajenación en términos del CFF",
}
OBJETO_IMP = {
    "01": "No objeto de impuesto",
    "02": "Sí objeto de impuesto",
    "03": "Sí objeto del impuesto y no obligado al desglose",
    "04": "Sí objeto del impuesto y no causa impuesto",
    "05": "Sí objeto del impuesto, IVA crédito PODEBI",
    "06": "Sí objeto del IVA, no traslado IVA",
    "07": "No traslado del IVA, sí desglose IEPS",
    "08": "No traslado del IVA, no desglose IEPS",
}
IMPUESTO = {"001": "ISR", "002": "IVA", "003": "IEPS"}
TIPO_RELACION = {
    "01": "Nota de crédito de los documentos relacionados",
    "02": "Nota de débito de los documentos relacionados",
    "03": "Devolución de mercancía sobre facturas o traslados previos",
    "04": "Sustitución de los CFDI previos",
    "05": "Traslados de mercancías facturados previamente",
    "06": "Factura generada por los traslados previos",
    "07": "CFDI por aplicación de anticipo",
}
PERIODICIDAD = {
    "01": "Diario",
    "02": "Semanal",
    "03": "Quincenal",
    "04": "Mensual",
    "05": "Bimestral",
}
MESES = {
    "01": "Enero",
    "02": "Febrero",
    "03": "Marzo",
    "04": "Abril",
    "05": "Mayo",
    "06": "Junio",
    "07": "Julio",
    "08": "Agosto",
    "09": "Septiembre",
    "10": "Octubre",
    "11": "Noviembre",
    "12": "Diciembre",
    "13": "Enero-Febrero",
    "14": "Marzo-Abril",
    "15": "Mayo-Junio",
    "16": "Julio-Agosto",
    "17": "Septiembre-Octubre",
    "18": "Noviembre-Diciembre",
}
TITLE = {
    "I": "FACTURA",
    "E": "NOTA DE CRÉDITO",
    "T": "CARTA DE TRASLADO",
    "N": "RECIBO DE NÓMINA",
    "P": "RECIBO ELECTRÓNICO DE PAGO",
}


def describe(catalog: dict[str, str], code: str | None) -> str:
    """``"601 - General de Ley Personas Morales"``; the bare code when it is not in the dict."""
    if not code:
        return ""
    desc = catalog.get(code)
    return f"{code} - {desc}" if desc else code


# --- Number formatting -------------------------------------------------------------------------


def _money(value: Decimal | None) -> str:
    """Thousands separators, at least 2 decimals, more when the XML has them."""
    if value is None:
        return ""
    try:
        d = Decimal(value)
        if d.as_tuple().exponent > -2:  # type: ignore[operator]
            d = d.quantize(Decimal("0.01"))
        return f"{d:,f}"
    except (InvalidOperation, ValueError, TypeError):
        return str(value)


def _qty(value: Decimal | None) -> str:
    if value is None:
        return ""
    try:
        return f"{Decimal(value):,f}"
    except (InvalidOperation, ValueError, TypeError):
        return str(value)


def _rate(tipo_factor: str | None, value: Decimal | None) -> str:
    if value is None:
        return ""
    if tipo_factor == "Tasa":
        pct = f"{Decimal(value) * 100:f}"
        if "." in pct:
            pct = pct.rstrip("0").rstrip(".")
        return f"{pct}%"
    return f"{value:f}"


_ELEMENT_NAME = re.compile(rb"<\s*(?:[\w.-]+:)?([\w.-]+)")


def _complement_names(elements: list[bytes]) -> list[str]:
    """Local names of complements the model keeps verbatim (CartaPorte, ComercioExterior…)."""
    names = []
    for raw in elements:
        body = raw.split(b"?>", 1)[-1] if raw.lstrip().startswith(b"<?") else raw
        match = _ELEMENT_NAME.search(body)
        if match:
            names.append(match.group(1).decode("ascii", "replace"))
    return names


def total_for_qr(total: Decimal | None) -> str:
    """Anexo 20 4.0: up to 6 decimals, non-significant zeros omitted, at least one decimal."""
    try:
        d = Decimal(total or 0).quantize(Decimal("0.000001"))
    except InvalidOperation:  # beyond SAT's 18 integer digits: print what the XML has
        return f"{total}"
    text = f"{d:f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def qr_url(c: Comprobante) -> str:
    """SAT's verification URL for a stamped CFDI (see the module doc for each parameter)."""
    tfd = c.TimbreFiscalDigital
    if tfd is None:
        raise CfdiError.one(
            "CONN-PDF-SIN-TIMBRE",
            "El CFDI no está timbrado: no tiene UUID para el código QR de verificación.",
            "Complemento.TimbreFiscalDigital",
        )
    sello = c.Sello or tfd.SelloCFD or ""
    params = [
        ("id", tfd.UUID),
        ("re", c.Emisor.Rfc),
        ("rr", c.Receptor.Rfc),
        ("tt", total_for_qr(c.Total)),
        ("fe", sello[-8:]),
    ]
    return SAT_VERIFY_URL + "?" + "&".join(f"{k}={quote(v, safe='/=')}" for k, v in params)


def _cadena_tfd(tfd: TimbreFiscalDigital) -> str:
    try:
        from .cadena import cadena_tfd

        return cadena_tfd(tfd)
    except Exception:  # noqa: BLE001 - the printed form falls back to Anexo 20's layout
        parts = [
            tfd.Version,
            tfd.UUID,
            tfd.FechaTimbrado,
            tfd.RfcProvCertif,
            tfd.Leyenda or "",
            tfd.SelloCFD,
            tfd.NoCertificadoSAT,
        ]
        return "||" + "|".join(p for p in parts if p) + "||"
