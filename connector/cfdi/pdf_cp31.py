"""The Carta Porte 3.1 section of the representación impresa (``pdf``): what a highway inspector
reads — the IdCCP with SAT's Carta Porte verification QR (stamped documents), the trip
(international data, every ubicación with its domicilio, dates and distances), the goods (totals
and every mercancía with its customs documents, guías, quantities per trip leg and weights), the
vehicle (permiso SCT, configuración, placas, seguros, remolques) and the figuras de transporte.
Every attribute the complement carries is printed (those without a label here under SAT's
attribute name). Drawn with the renderer's own ``section``, ``fields`` and QR (this module does not
import ``pdf``: it is handed the renderer)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from .cp31 import CartaPorte, MercanciaCP, MercanciasCP, TiposFigura, Ubicacion
from .model import attribute_fields
from .pdf_cce20 import domicilio_text

# SAT's verification of a Carta Porte (Guía de llenado del complemento Carta Porte, QR code)
SAT_VERIFY_CCP_URL = "https://verificacfdi.facturaelectronica.sat.gob.mx/verificaccp/default.aspx"
QR_MM = 24.0

LABELS = {
    "Version": "Versión", "IdCCP": "IdCCP", "TranspInternac": "Transporte internacional",
    "EntradaSalidaMerc": "Entrada o salida", "PaisOrigenDestino": "País de origen o destino",
    "ViaEntradaSalida": "Vía de entrada o salida", "TotalDistRec": "Distancia total (km)",
    "RegistroISTMO": "Registro ISTMO", "UbicacionPoloOrigen": "Polo de origen",
    "UbicacionPoloDestino": "Polo de destino",
    "TipoUbicacion": "Tipo", "IDUbicacion": "ID ubicación",
    "RFCRemitenteDestinatario": "RFC remitente/destinatario",
    "NombreRemitenteDestinatario": "Nombre", "NumRegIdTrib": "Núm. registro tributario",
    "ResidenciaFiscal": "Residencia fiscal", "FechaHoraSalidaLlegada": "Fecha y hora",
    "DistanciaRecorrida": "Distancia (km)",
    "PesoBrutoTotal": "Peso bruto total", "UnidadPeso": "Unidad de peso",
    "PesoNetoTotal": "Peso neto total", "NumTotalMercancias": "Total de mercancías",
    "CargoPorTasacion": "Cargo por tasación",
    "LogisticaInversaRecoleccionDevolucion": "Logística inversa",
    "BienesTransp": "Bienes transportados", "ClaveSTCC": "Clave STCC",
    "Descripcion": "Descripción", "Cantidad": "Cantidad", "ClaveUnidad": "Clave de unidad",
    "Unidad": "Unidad", "Dimensiones": "Dimensiones", "MaterialPeligroso": "Material peligroso",
    "CveMaterialPeligroso": "Clave material peligroso", "Embalaje": "Embalaje",
    "DescripEmbalaje": "Descripción del embalaje", "PesoEnKg": "Peso (kg)",
    "ValorMercancia": "Valor", "Moneda": "Moneda", "FraccionArancelaria": "Fracción arancelaria",
    "UUIDComercioExt": "UUID comercio exterior",
    "TipoDocumento": "Documento aduanero", "NumPedimento": "Pedimento",
    "IdentDocAduanero": "Identificador del documento", "RFCImpo": "RFC importador",
    "NumeroGuiaIdentificacion": "Guía", "DescripGuiaIdentificacion": "Descripción de la guía",
    "PesoGuiaIdentificacion": "Peso de la guía", "IDOrigen": "ID origen",
    "IDDestino": "ID destino", "CvesTransporte": "Clave de transporte",
    "UnidadPesoMerc": "Unidad de peso", "PesoBruto": "Peso bruto", "PesoNeto": "Peso neto",
    "PesoTara": "Peso tara", "NumPiezas": "Piezas",
    "PermSCT": "Permiso SCT", "NumPermisoSCT": "Núm. permiso SCT",
    "ConfigVehicular": "Configuración vehicular", "PesoBrutoVehicular": "Peso bruto vehicular (t)",
    "PlacaVM": "Placa", "AnioModeloVM": "Año modelo",
    "AseguraRespCivil": "Aseguradora resp. civil", "PolizaRespCivil": "Póliza resp. civil",
    "AseguraMedAmbiente": "Aseguradora medio ambiente",
    "PolizaMedAmbiente": "Póliza medio ambiente", "AseguraCarga": "Aseguradora de la carga",
    "PolizaCarga": "Póliza de la carga", "PrimaSeguro": "Prima del seguro",
    "SubTipoRem": "Subtipo de remolque", "Placa": "Placa del remolque",
    "TipoFigura": "Tipo de figura", "RFCFigura": "RFC", "NumLicencia": "Licencia",
    "NombreFigura": "Nombre", "NumRegIdTribFigura": "Núm. registro tributario",
    "ResidenciaFiscalFigura": "Residencia fiscal",
}  # fmt: skip
FIGURAS = {"01": "Operador", "02": "Propietario", "03": "Arrendador", "04": "Notificado",
           "05": "Integrante de coordinados"}  # fmt: skip


def _pairs(node: BaseModel, first: str = "") -> list[tuple[str, str]]:
    """(label, value) of every attribute of ``node`` given; ``first`` heads the first label."""
    out = [
        (LABELS.get(n, n), str(v))
        for n in attribute_fields(type(node))
        if (v := getattr(node, n)) is not None
    ]
    if out and first:
        out[0] = (f"{first}: {out[0][0]}", out[0][1])
    return out


def verification_url(cp: CartaPorte, fecha_timbrado: str) -> str:
    """SAT's verification URL of a Carta Porte: IdCCP, FechaOrig (the first origen's
    FechaHoraSalidaLlegada) and FechaTimb (the stamp's FechaTimbrado)."""
    origen = next((u for u in cp.Ubicaciones if u.TipoUbicacion == "Origen"), None)
    params = [
        ("IdCCP", cp.IdCCP or ""),
        ("FechaOrig", (origen.FechaHoraSalidaLlegada or "") if origen else ""),
        ("FechaTimb", fecha_timbrado),
    ]
    return SAT_VERIFY_CCP_URL + "?" + "&".join(f"{k}={quote(v, safe=':')}" for k, v in params)


def _root(r: Any, cp: CartaPorte, fecha_timbrado: str | None) -> None:
    pairs = _pairs(cp)
    if cp.RegimenesAduaneros:
        pairs.append(("Regímenes aduaneros", ", ".join(cp.RegimenesAduaneros)))
    if fecha_timbrado is None:
        r.fields(pairs, 4, spans={"IdCCP": 2})
        return
    r.ensure(QR_MM + 4)
    y0 = r.y
    x, width = r.margin + QR_MM + 5, r.content_w - QR_MM - 5
    r.draw_qr(verification_url(cp, fecha_timbrado), r.margin, y0 + 1.5, QR_MM)
    r.fields(pairs, 3, x=x, width=width, spans={"IdCCP": 2})
    r.y = max(r.y, y0 + QR_MM + 3)


def _ubicacion(r: Any, n: int, u: Ubicacion) -> None:
    pairs = _pairs(u, f"Ubicación {n}")
    if u.Domicilio is not None:
        pairs.append(("Domicilio", domicilio_text(u.Domicilio)))
    r.fields(pairs, 4, spans={"Domicilio": 4, "Nombre": 2})


def _mercancia(r: Any, n: int, m: MercanciaCP) -> None:
    r.fields(_pairs(m, f"Mercancía {n}"), 4, spans={"Descripción": 2})
    for child in (*m.DocumentacionAduanera, *m.GuiasIdentificacion, *m.CantidadTransporta):
        r.fields(_pairs(child), 4)
    if m.DetalleMercancia is not None:
        r.fields(_pairs(m.DetalleMercancia, "Detalle"), 5)


def _mercancias(r: Any, ms: MercanciasCP) -> None:
    r.fields(_pairs(ms), 6)
    for n, m in enumerate(ms.Mercancia, start=1):
        _mercancia(r, n, m)
    a = ms.Autotransporte
    if a is None:
        return
    r.section("Autotransporte")
    pairs = _pairs(a)
    if a.IdentificacionVehicular is not None:
        pairs += _pairs(a.IdentificacionVehicular)
    r.fields(pairs, 4, spans={"Núm. permiso SCT": 2})
    if a.Seguros is not None:
        r.fields(_pairs(a.Seguros), 4)
    for n, rem in enumerate(a.Remolques, start=1):
        r.fields(_pairs(rem, f"Remolque {n}"), 4)


def _figura(r: Any, f: TiposFigura) -> None:
    pairs = _pairs(f)
    if f.TipoFigura in FIGURAS:
        pairs[0] = (pairs[0][0], f"{f.TipoFigura} - {FIGURAS[f.TipoFigura]}")
    if f.PartesTransporte:
        pairs.append(("Partes de transporte", ", ".join(f.PartesTransporte)))
    if f.Domicilio is not None:
        pairs.append(("Domicilio", domicilio_text(f.Domicilio)))
    r.fields(pairs, 4, spans={"Domicilio": 4, "Nombre": 2})


def draw(r: Any, cp: CartaPorte, fecha_timbrado: str | None) -> None:
    """The section on renderer ``r`` (``pdf._Renderer``); the verification QR when the document
    is stamped (``fecha_timbrado``)."""
    r.section("Complemento Carta Porte 3.1", keep=QR_MM + 6)
    _root(r, cp, fecha_timbrado)
    for n, u in enumerate(cp.Ubicaciones, start=1):
        _ubicacion(r, n, u)
    if cp.Mercancias is not None:
        r.section("Mercancías transportadas")
        _mercancias(r, cp.Mercancias)
    if cp.FiguraTransporte:
        r.section("Figuras de transporte")
        for f in cp.FiguraTransporte:
            _figura(r, f)
