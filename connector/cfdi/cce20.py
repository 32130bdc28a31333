"""Complemento para Comercio Exterior 2.0 (namespace ``cce20``): its node model and catalogs.

Field names are SAT's attribute names and every node declares its attributes in the order of
SAT's ``ComercioExterior20.xsd``, which is also the order of SAT's XSLT for the cadena
(``ComercioExterior20.xslt`` walks each node's attributes in XSD order, then its children).
Like ``model``, the nodes are lenient (codes are plain strings, and attributes the XSD requires
may be missing: SAT's XSD then names them, ``xmlio.validate_limits``): ``rules_cce20`` reports
every broken SAT rule with its code. The complement hangs from ``Comprobante.ComercioExterior``;
``xml_cce20`` writes and reads it, ``cadena`` walks it.

Catalogs (``c_FraccionArancelaria``, ``c_UnidadAduana``, ``c_MotivoTraslado``,
``c_ClavePedimento``, ``c_INCOTERM``) come from SAT's ``catComExt.xsd`` shipped in ``sat/``.
"""

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TypeAlias

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

NS_CCE20 = "http://www.sat.gob.mx/ComercioExterior20"
SCHEMA_CCE20 = (
    "http://www.sat.gob.mx/ComercioExterior20 "
    "http://www.sat.gob.mx/sitio_internet/cfd/ComercioExterior20/ComercioExterior20.xsd"
)
CATALOG_XSD = (
    Path(__file__).resolve().parent / "sat" / "cfd" / "catalogos" / "ComExt" / ("catComExt.xsd")
)


class _Node(BaseModel):
    # the same configuration as model._Node (this module cannot import model: model imports it)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)


class Domicilio(_Node):
    Calle: str | None = None
    NumeroExterior: str | None = None
    NumeroInterior: str | None = None
    Colonia: str | None = None
    Localidad: str | None = None
    Referencia: str | None = None
    Municipio: str | None = None
    Estado: str | None = None
    Pais: str | None = None
    CodigoPostal: str | None = None


_Domicilio = Domicilio


class EmisorCCE(_Node):
    Curp: str | None = None
    Domicilio: _Domicilio | None = None


class Propietario(_Node):
    NumRegIdTrib: str | None = None
    ResidenciaFiscal: str | None = None


class ReceptorCCE(_Node):
    NumRegIdTrib: str | None = None
    Domicilio: _Domicilio | None = None


class Destinatario(_Node):
    NumRegIdTrib: str | None = None
    Nombre: str | None = None
    Domicilio: list[_Domicilio] = Field(default_factory=list)


class DescripcionesEspecificas(_Node):
    Marca: str | None = None
    Modelo: str | None = None
    SubModelo: str | None = None
    NumeroSerie: str | None = None


_DescripcionesEspecificas: TypeAlias = DescripcionesEspecificas


class Mercancia(_Node):
    NoIdentificacion: str | None = None
    FraccionArancelaria: str | None = None
    CantidadAduana: Decimal | None = None
    UnidadAduana: str | None = None
    ValorUnitarioAduana: Decimal | None = None
    ValorDolares: Decimal | None = None
    DescripcionesEspecificas: list[_DescripcionesEspecificas] = Field(default_factory=list)


_EmisorCCE: TypeAlias = EmisorCCE
_Propietario: TypeAlias = Propietario
_ReceptorCCE: TypeAlias = ReceptorCCE
_Destinatario: TypeAlias = Destinatario
_Mercancia: TypeAlias = Mercancia


class ComercioExterior(_Node):
    Version: str = "2.0"
    MotivoTraslado: str | None = None
    ClaveDePedimento: str = "A1"
    CertificadoOrigen: str | None = None  # "0" or "1" (xs:int in the XSD, kept as written)
    NumCertificadoOrigen: str | None = None
    NumeroExportadorConfiable: str | None = None
    Incoterm: str | None = None
    Observaciones: str | None = None
    TipoCambioUSD: Decimal | None = None
    TotalUSD: Decimal | None = None
    Emisor: _EmisorCCE | None = None
    Propietario: list[_Propietario] = Field(default_factory=list)
    Receptor: _ReceptorCCE | None = None
    Destinatario: list[_Destinatario] = Field(default_factory=list)
    Mercancias: list[_Mercancia] = Field(default_factory=list)


# Attributes SAT's XSLT writes as Requerido (the others are Opcional), per node
CADENA_REQUIRED: dict[type[BaseModel], frozenset[str]] = {
    ComercioExterior: frozenset(
        {"Version", "ClaveDePedimento", "CertificadoOrigen", "TipoCambioUSD", "TotalUSD"}
    ),
    EmisorCCE: frozenset(),
    Propietario: frozenset({"NumRegIdTrib", "ResidenciaFiscal"}),
    ReceptorCCE: frozenset(),
    Destinatario: frozenset(),
    Domicilio: frozenset({"Calle", "Estado", "Pais", "CodigoPostal"}),
    Mercancia: frozenset({"NoIdentificacion", "ValorDolares"}),
    DescripcionesEspecificas: frozenset({"Marca"}),
}


# --- Catalogs (catComExt.xsd) -------------------------------------------------------------------


class ComExtCatalogs:
    """The code lists of ``catComExt.xsd``, as sets."""

    def __init__(self, raw: dict[str, list[str]]) -> None:
        self.FraccionArancelaria = frozenset(raw.get("c_FraccionArancelaria", ()))
        self.UnidadAduana = frozenset(raw.get("c_UnidadAduana", ()))
        self.MotivoTraslado = frozenset(raw.get("c_MotivoTraslado", ()))
        self.ClavePedimento = frozenset(raw.get("c_ClavePedimento", ()))
        self.INCOTERM = frozenset(raw.get("c_INCOTERM", ()))


def parse_comext_xsd(xsd: Path = CATALOG_XSD) -> dict[str, list[str]]:
    """Every ``c_*`` simple type of catComExt.xsd as its list of enumeration values."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    out: dict[str, list[str]] = {}
    for _event, elem in etree.iterparse(
        str(xsd), events=("end",), tag=f"{xs}simpleType", resolve_entities=False,
        no_network=True, huge_tree=True,
    ):  # fmt: skip
        name = elem.get("name", "")
        if name.startswith("c_"):
            out[name] = [e.get("value", "") for e in elem.iter(f"{xs}enumeration")]
        elem.clear()
    return out


@cache
def comext_catalogs() -> ComExtCatalogs:
    """The catalogs, parsed once per process (~26,000 fracciones: about 0.2 s)."""
    return ComExtCatalogs(parse_comext_xsd())


__all__ = [
    "CADENA_REQUIRED",
    "NS_CCE20",
    "SCHEMA_CCE20",
    "ComExtCatalogs",
    "ComercioExterior",
    "DescripcionesEspecificas",
    "Destinatario",
    "Domicilio",
    "EmisorCCE",
    "Mercancia",
    "Propietario",
    "ReceptorCCE",
    "comext_catalogs",
    "parse_comext_xsd",
]
