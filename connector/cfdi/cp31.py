"""Complemento Carta Porte 3.1 (namespace ``cartaporte31``): its node model, autotransporte
federal first (issue 15). The complement hangs from ``Comprobante.CartaPorte``; ``xml_cp31``
writes, reads and walks it for the cadena, ``rules_cp31`` checks it (``CONN-CP-nnn``) and
``complete_carta_porte`` (called by ``amounts.complete``) fills in the ``IdCCP`` and the totals
the data leaves out. A document whose Carta Porte 3.1 carries maritime, air or rail transport is
read as ``OtrosComplementos`` (verbatim) and refused by ``rules_cp31`` (``CONN-CP-002``).

Field names are SAT's attribute names, each node's attributes in the order of SAT's
``CartaPorte31.xsd`` (tests compare them with the XSD). Lenient like ``model``: every attribute
may be missing (SAT's XSD names what is required). Wrapper elements without attributes are lists
here: ``Ubicaciones`` (of ``Ubicacion``), ``RegimenesAduaneros`` (of ``RegimenAduanero`` codes),
``FiguraTransporte`` (of ``TiposFigura``), ``Remolques``. Maritime, air and rail transport are not
modelled yet.
"""

import uuid
from decimal import Decimal
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from connector.cfdi.cce20 import Domicilio, _Node, parse_comext_xsd

NS_CP31 = "http://www.sat.gob.mx/CartaPorte31"
SCHEMA_CP31 = (
    "http://www.sat.gob.mx/CartaPorte31 "
    "http://www.sat.gob.mx/sitio_internet/cfd/CartaPorte/CartaPorte31.xsd"
)
CATALOG_XSD = (
    Path(__file__).resolve().parent / "sat" / "cfd" / "catalogos" / "CartaPorte"
    / "catCartaPorte.xsd"
)  # fmt: skip


# the same node configuration and SAT address (t_Domicilio's attributes) as Comercio Exterior's
DomicilioCP = Domicilio
_DomicilioCP = Domicilio


class Ubicacion(_Node):
    TipoUbicacion: str | None = None  # Origen, Destino
    IDUbicacion: str | None = None
    RFCRemitenteDestinatario: str | None = None
    NombreRemitenteDestinatario: str | None = None
    NumRegIdTrib: str | None = None
    ResidenciaFiscal: str | None = None
    NumEstacion: str | None = None
    NombreEstacion: str | None = None
    NavegacionTrafico: str | None = None
    FechaHoraSalidaLlegada: str | None = None
    TipoEstacion: str | None = None
    DistanciaRecorrida: Decimal | None = None
    Domicilio: _DomicilioCP | None = None


class DocumentacionAduanera(_Node):
    TipoDocumento: str | None = None
    NumPedimento: str | None = None
    IdentDocAduanero: str | None = None
    RFCImpo: str | None = None


class GuiasIdentificacion(_Node):
    NumeroGuiaIdentificacion: str | None = None
    DescripGuiaIdentificacion: str | None = None
    PesoGuiaIdentificacion: Decimal | None = None


class CantidadTransporta(_Node):
    Cantidad: Decimal | None = None
    IDOrigen: str | None = None
    IDDestino: str | None = None
    CvesTransporte: str | None = None


class DetalleMercancia(_Node):
    UnidadPesoMerc: str | None = None
    PesoBruto: Decimal | None = None
    PesoNeto: Decimal | None = None
    PesoTara: Decimal | None = None
    NumPiezas: str | None = None


_DocumentacionAduanera = DocumentacionAduanera
_GuiasIdentificacion = GuiasIdentificacion
_CantidadTransporta = CantidadTransporta
_DetalleMercancia = DetalleMercancia


class MercanciaCP(_Node):
    BienesTransp: str | None = None
    ClaveSTCC: str | None = None
    Descripcion: str | None = None
    Cantidad: Decimal | None = None
    ClaveUnidad: str | None = None
    Unidad: str | None = None
    Dimensiones: str | None = None
    MaterialPeligroso: str | None = None
    CveMaterialPeligroso: str | None = None
    Embalaje: str | None = None
    DescripEmbalaje: str | None = None
    SectorCOFEPRIS: str | None = None
    NombreIngredienteActivo: str | None = None
    NomQuimico: str | None = None
    DenominacionGenericaProd: str | None = None
    DenominacionDistintivaProd: str | None = None
    Fabricante: str | None = None
    FechaCaducidad: str | None = None
    LoteMedicamento: str | None = None
    FormaFarmaceutica: str | None = None
    CondicionesEspTransp: str | None = None
    RegistroSanitarioFolioAutorizacion: str | None = None
    PermisoImportacion: str | None = None
    FolioImpoVUCEM: str | None = None
    NumCAS: str | None = None
    RazonSocialEmpImp: str | None = None
    NumRegSanPlagCOFEPRIS: str | None = None
    DatosFabricante: str | None = None
    DatosFormulador: str | None = None
    DatosMaquilador: str | None = None
    UsoAutorizado: str | None = None
    PesoEnKg: Decimal | None = None
    ValorMercancia: Decimal | None = None
    Moneda: str | None = None
    FraccionArancelaria: str | None = None
    UUIDComercioExt: str | None = None
    TipoMateria: str | None = None
    DescripcionMateria: str | None = None
    DocumentacionAduanera: list[_DocumentacionAduanera] = Field(default_factory=list)
    GuiasIdentificacion: list[_GuiasIdentificacion] = Field(default_factory=list)
    CantidadTransporta: list[_CantidadTransporta] = Field(default_factory=list)
    DetalleMercancia: _DetalleMercancia | None = None


class IdentificacionVehicular(_Node):
    ConfigVehicular: str | None = None
    PesoBrutoVehicular: Decimal | None = None
    PlacaVM: str | None = None
    AnioModeloVM: str | None = None


class Seguros(_Node):
    AseguraRespCivil: str | None = None
    PolizaRespCivil: str | None = None
    AseguraMedAmbiente: str | None = None
    PolizaMedAmbiente: str | None = None
    AseguraCarga: str | None = None
    PolizaCarga: str | None = None
    PrimaSeguro: Decimal | None = None


class Remolque(_Node):
    SubTipoRem: str | None = None
    Placa: str | None = None


_IdentificacionVehicular = IdentificacionVehicular
_Seguros = Seguros
_Remolque = Remolque


class Autotransporte(_Node):
    PermSCT: str | None = None
    NumPermisoSCT: str | None = None
    IdentificacionVehicular: _IdentificacionVehicular | None = None
    Seguros: _Seguros | None = None
    Remolques: list[_Remolque] = Field(default_factory=list)  # cartaporte31:Remolques/Remolque


_MercanciaCP = MercanciaCP
_Autotransporte = Autotransporte


class MercanciasCP(_Node):
    PesoBrutoTotal: Decimal | None = None
    UnidadPeso: str | None = None
    PesoNetoTotal: Decimal | None = None
    NumTotalMercancias: str | None = None
    CargoPorTasacion: Decimal | None = None
    LogisticaInversaRecoleccionDevolucion: str | None = None
    Mercancia: list[_MercanciaCP] = Field(default_factory=list)
    Autotransporte: _Autotransporte | None = None


class TiposFigura(_Node):
    TipoFigura: str | None = None
    RFCFigura: str | None = None
    NumLicencia: str | None = None
    NombreFigura: str | None = None
    NumRegIdTribFigura: str | None = None
    ResidenciaFiscalFigura: str | None = None
    PartesTransporte: list[str] = Field(default_factory=list)  # ParteTransporte codes
    Domicilio: _DomicilioCP | None = None


_Ubicacion = Ubicacion
_MercanciasCP = MercanciasCP
_TiposFigura = TiposFigura


class CartaPorte(_Node):
    Version: str = "3.1"
    IdCCP: str | None = None
    TranspInternac: str | None = None  # Sí, No
    EntradaSalidaMerc: str | None = None
    PaisOrigenDestino: str | None = None
    ViaEntradaSalida: str | None = None
    TotalDistRec: Decimal | None = None
    RegistroISTMO: str | None = None
    UbicacionPoloOrigen: str | None = None
    UbicacionPoloDestino: str | None = None
    RegimenesAduaneros: list[str] = Field(default_factory=list)  # RegimenAduaneroCCP codes
    Ubicaciones: list[_Ubicacion] = Field(default_factory=list)
    Mercancias: _MercanciasCP | None = None
    FiguraTransporte: list[_TiposFigura] = Field(default_factory=list)


# Attributes SAT's CartaPorte31.xslt writes as Requerido (the others are Opcional), per node
CADENA_REQUIRED: dict[type[BaseModel], frozenset[str]] = {
    CartaPorte: frozenset({"Version", "IdCCP", "TranspInternac"}),
    Ubicacion: frozenset({"TipoUbicacion", "RFCRemitenteDestinatario", "FechaHoraSalidaLlegada"}),
    DomicilioCP: frozenset({"Estado", "Pais", "CodigoPostal"}),
    MercanciasCP: frozenset({"PesoBrutoTotal", "UnidadPeso", "NumTotalMercancias"}),
    MercanciaCP: frozenset({"BienesTransp", "Descripcion", "Cantidad", "ClaveUnidad", "PesoEnKg"}),
    DocumentacionAduanera: frozenset({"TipoDocumento"}),
    GuiasIdentificacion: frozenset(
        {"NumeroGuiaIdentificacion", "DescripGuiaIdentificacion", "PesoGuiaIdentificacion"}
    ),
    CantidadTransporta: frozenset({"Cantidad", "IDOrigen", "IDDestino"}),
    DetalleMercancia: frozenset({"UnidadPesoMerc", "PesoBruto", "PesoNeto", "PesoTara"}),
    Autotransporte: frozenset({"PermSCT", "NumPermisoSCT"}),
    IdentificacionVehicular: frozenset(
        {"ConfigVehicular", "PesoBrutoVehicular", "PlacaVM", "AnioModeloVM"}
    ),
    Seguros: frozenset({"AseguraRespCivil", "PolizaRespCivil"}),
    Remolque: frozenset({"SubTipoRem", "Placa"}),
    TiposFigura: frozenset({"TipoFigura", "NombreFigura"}),
}


# --- IdCCP and totals ---------------------------------------------------------------------------

# IdCCP: SAT's guide asks for a UUID (RFC 4122, 36 characters) whose first three characters are
# replaced by "CCC". Ours is a name-based UUID (uuid5) of the invoice (emisor RFC, serie, folio,
# fecha): the same invoice read again gets the same IdCCP, two invoices never share one.
_IDCCP_NAMESPACE = uuid.UUID("6f1c1a52-3c2e-5d0e-9a51-43617274615f")


def id_ccp(rfc: str, serie: str, folio: str, fecha: str) -> str:
    """The IdCCP of an invoice: ``CCC`` + the last 33 characters of a UUID."""
    key = "|".join((rfc.upper(), serie, folio, fecha))
    return "CCC" + str(uuid.uuid5(_IDCCP_NAMESPACE, key))[3:]


def total_distancia(cp: CartaPorte) -> Decimal | None:
    """Σ DistanciaRecorrida of the ubicaciones (None when none has one)."""
    values = [u.DistanciaRecorrida for u in cp.Ubicaciones if u.DistanciaRecorrida is not None]
    return sum(values, Decimal(0)) if values else None


def peso_bruto_total(m: MercanciasCP) -> Decimal | None:
    """Σ PesoEnKg of the mercancías (None when one has none)."""
    values = [v for x in m.Mercancia if (v := x.PesoEnKg) is not None]
    if not values or len(values) != len(m.Mercancia):
        return None
    return sum(values, Decimal(0))


def complete_carta_porte(
    cp: CartaPorte, rfc: str, serie: str, folio: str, fecha: str
) -> CartaPorte:
    """A copy of ``cp`` with IdCCP, TotalDistRec, PesoBrutoTotal, UnidadPeso (KGM: the weights
    are PesoEnKg) and NumTotalMercancias filled in where missing; given values are kept (the
    rules check them)."""
    out = cp.model_copy()
    if out.IdCCP is None:
        out.IdCCP = id_ccp(rfc, serie, folio, fecha)
    if out.TotalDistRec is None:
        out.TotalDistRec = total_distancia(out)
    m = out.Mercancias
    if m is not None and None in (m.PesoBrutoTotal, m.UnidadPeso, m.NumTotalMercancias):
        m = out.Mercancias = m.model_copy()
        if m.PesoBrutoTotal is None:
            m.PesoBrutoTotal = peso_bruto_total(m)
        if m.UnidadPeso is None:
            m.UnidadPeso = "KGM"
        if m.NumTotalMercancias is None and m.Mercancia:
            m.NumTotalMercancias = str(len(m.Mercancia))
    return out


# --- Catalogs (catCartaPorte.xsd) ---------------------------------------------------------------


@cache
def cp_catalogs() -> dict[str, frozenset[str]]:
    """Every ``c_*`` code list of catCartaPorte.xsd as a set, parsed once per process."""
    return {k: frozenset(v) for k, v in parse_comext_xsd(CATALOG_XSD).items()}


__all__ = [
    "CADENA_REQUIRED",
    "NS_CP31",
    "SCHEMA_CP31",
    "complete_carta_porte",
    "cp_catalogs",
    "id_ccp",
    "Autotransporte",
    "CantidadTransporta",
    "CartaPorte",
    "DetalleMercancia",
    "DocumentacionAduanera",
    "DomicilioCP",
    "GuiasIdentificacion",
    "IdentificacionVehicular",
    "MercanciaCP",
    "MercanciasCP",
    "Remolque",
    "Seguros",
    "TiposFigura",
    "Ubicacion",
]
