"""The Carta Porte 3.1 node model follows SAT's CartaPorte31.xsd: every node's attributes, in the
XSD's order (the order the XML and SAT's cadena need), and its children (autotransporte federal;
maritime, air and rail are not modelled yet)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from pydantic import BaseModel

from connector.cfdi import cp31
from connector.cfdi.model import attribute_fields

XSD = Path(cp31.__file__).parent / "sat" / "cfd" / "CartaPorte" / "CartaPorte31.xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"

# XSD path (from CartaPorte) -> model class
NODES: dict[str, type[BaseModel]] = {
    "": cp31.CartaPorte,
    "Ubicaciones/Ubicacion": cp31.Ubicacion,
    "Ubicaciones/Ubicacion/Domicilio": cp31.DomicilioCP,
    "Mercancias": cp31.MercanciasCP,
    "Mercancias/Mercancia": cp31.MercanciaCP,
    "Mercancias/Mercancia/DocumentacionAduanera": cp31.DocumentacionAduanera,
    "Mercancias/Mercancia/GuiasIdentificacion": cp31.GuiasIdentificacion,
    "Mercancias/Mercancia/CantidadTransporta": cp31.CantidadTransporta,
    "Mercancias/Mercancia/DetalleMercancia": cp31.DetalleMercancia,
    "Mercancias/Autotransporte": cp31.Autotransporte,
    "Mercancias/Autotransporte/IdentificacionVehicular": cp31.IdentificacionVehicular,
    "Mercancias/Autotransporte/Seguros": cp31.Seguros,
    "Mercancias/Autotransporte/Remolques/Remolque": cp31.Remolque,
    "FiguraTransporte/TiposFigura": cp31.TiposFigura,
    "FiguraTransporte/TiposFigura/Domicilio": cp31.DomicilioCP,
}
# wrapper elements (RegimenesAduaneros, Ubicaciones, Remolques, FiguraTransporte,
# PartesTransporte) are list fields of the same name
NOT_MODELLED = {"TransporteMaritimo", "TransporteAereo", "TransporteFerroviario"}


def _element(path: str) -> etree._Element:
    el = etree.parse(str(XSD)).getroot().find(f"{XS}element[@name='CartaPorte']")
    for name in filter(None, path.split("/")):
        el = next(e for e in el.iter(f"{XS}element") if e.get("name") == name and e is not el)
    return el


@pytest.mark.parametrize("path", sorted(NODES), ids=lambda p: p or "CartaPorte")
def test_node_attributes_and_children_are_the_xsds(path: str) -> None:
    el = _element(path)
    ctype = el.find(f"{XS}complexType")
    attrs = tuple(a.get("name") for a in ctype.findall(f"{XS}attribute"))
    assert attribute_fields(NODES[path]) == attrs
    children = {e.get("name") for e in ctype.findall(f"{XS}sequence/{XS}element")} - NOT_MODELLED
    fields = set(NODES[path].model_fields) - set(attrs)
    assert fields == children
