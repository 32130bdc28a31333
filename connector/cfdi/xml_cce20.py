"""Comercio Exterior 2.0 in XML: written as text with its cadena (the fast path of
``xmlio.xml_and_cadena``), built as lxml elements (``xmlio.build_tree``) and read back
(``xmlio.from_element``), through ``xmlio.COMPLEMENTS`` (this module registers itself there; the
package ``connector.cfdi`` imports it, so xmlio never imports it: no import cycle). Element and attribute order are SAT's XSD's; the cadena's fields are
those of SAT's ``ComercioExterior20.xslt`` (every attribute, in XSD order, Requerido or Opcional
as ``cce20.CADENA_REQUIRED`` says)."""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import BaseModel

from . import xmlio_base as _xb
from . import xmlio_read as _xr
from . import xmlio_text as _xt
from .cce20 import (
    CADENA_REQUIRED,
    NS_CCE20,
    SCHEMA_CCE20,
    ComercioExterior,
    DescripcionesEspecificas,
    Destinatario,
    Domicilio,
    EmisorCCE,
    Mercancia,
    Propietario,
    ReceptorCCE,
)
from .model import attribute_fields

_N = "{" + NS_CCE20 + "}"


def cadena_spec(cls: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(attribute, required) in XSD order: the cadena's fields of a node of this class."""
    required = CADENA_REQUIRED[cls]
    return tuple((n, n in required) for n in attribute_fields(cls))


_S = {cls: _xt._spec(attribute_fields(cls), cadena_spec(cls)) for cls in (
    ComercioExterior, EmisorCCE, Propietario, ReceptorCCE, Destinatario, Domicilio, Mercancia,
    DescripcionesEspecificas,
)}  # fmt: skip


# --- text and cadena ----------------------------------------------------------------------------


def write_text(out: Any, cad: list[str], cce: ComercioExterior) -> None:
    """The complement's XML into ``out`` and its cadena fields into ``cad`` (one walk)."""
    put, leaf, end = out.append, _xt._leaf, _xt._end
    put("<cce20:ComercioExterior")
    _xt._put(out, cad, cce, _S[ComercioExterior])
    put(">")
    e = cce.Emisor
    if e is not None:
        put("<cce20:Emisor")
        _xt._put(out, cad, e, _S[EmisorCCE])
        put(">")
        mark = len(out)
        if e.Domicilio is not None:
            leaf(out, cad, "<cce20:Domicilio", e.Domicilio, _S[Domicilio])
        end(out, mark, "</cce20:Emisor>")
    for p in cce.Propietario:
        leaf(out, cad, "<cce20:Propietario", p, _S[Propietario])
    r = cce.Receptor
    if r is not None:
        put("<cce20:Receptor")
        _xt._put(out, cad, r, _S[ReceptorCCE])
        put(">")
        mark = len(out)
        if r.Domicilio is not None:
            leaf(out, cad, "<cce20:Domicilio", r.Domicilio, _S[Domicilio])
        end(out, mark, "</cce20:Receptor>")
    for d in cce.Destinatario:
        put("<cce20:Destinatario")
        _xt._put(out, cad, d, _S[Destinatario])
        put(">")
        mark = len(out)
        for dom in d.Domicilio:
            leaf(out, cad, "<cce20:Domicilio", dom, _S[Domicilio])
        end(out, mark, "</cce20:Destinatario>")
    put("<cce20:Mercancias>")
    mark = len(out)
    for m in cce.Mercancias:
        put("<cce20:Mercancia")
        _xt._put(out, cad, m, _S[Mercancia])
        put(">")
        mmark = len(out)
        for de in m.DescripcionesEspecificas:
            leaf(out, cad, "<cce20:DescripcionesEspecificas", de, _S[DescripcionesEspecificas])
        end(out, mmark, "</cce20:Mercancia>")
    end(out, mark, "</cce20:Mercancias>")
    put("</cce20:ComercioExterior>")


# --- lxml elements ------------------------------------------------------------------------------


def _el(parent: etree._Element, tag: str, node: BaseModel) -> etree._Element:
    values = [(n, getattr(node, n)) for n in attribute_fields(type(node))]
    return etree.SubElement(parent, _N + tag, _xb._attrs(values))


def build(parent: etree._Element, cce: ComercioExterior) -> None:
    """The complement as an element under ``parent`` (cfdi:Complemento)."""
    root = _el(parent, "ComercioExterior", cce)
    if cce.Emisor is not None:
        emisor = _el(root, "Emisor", cce.Emisor)
        if cce.Emisor.Domicilio is not None:
            _el(emisor, "Domicilio", cce.Emisor.Domicilio)
    for p in cce.Propietario:
        _el(root, "Propietario", p)
    if cce.Receptor is not None:
        re_ = _el(root, "Receptor", cce.Receptor)
        if cce.Receptor.Domicilio is not None:
            _el(re_, "Domicilio", cce.Receptor.Domicilio)
    for d in cce.Destinatario:
        de = _el(root, "Destinatario", d)
        for dom in d.Domicilio:
            _el(de, "Domicilio", dom)
    ms = etree.SubElement(root, _N + "Mercancias")
    for m in cce.Mercancias:
        me = _el(ms, "Mercancia", m)
        for desc in m.DescripcionesEspecificas:
            _el(me, "DescripcionesEspecificas", desc)


# --- reading ------------------------------------------------------------------------------------


def _attrs_of(el: etree._Element, cls: type) -> dict[str, Any]:
    return _xr._a(el, attribute_fields(cls))


def read(el: etree._Element) -> dict[str, Any]:
    """A cce20:ComercioExterior element as plain data for the model."""
    d = _attrs_of(el, ComercioExterior)
    for child in el:
        tag = child.tag
        if tag == _N + "Emisor":
            emisor = _attrs_of(child, EmisorCCE)
            for dom in child.iterchildren(_N + "Domicilio"):
                emisor["Domicilio"] = _attrs_of(dom, Domicilio)
            d["Emisor"] = emisor
        elif tag == _N + "Propietario":
            d.setdefault("Propietario", []).append(_attrs_of(child, Propietario))
        elif tag == _N + "Receptor":
            receptor = _attrs_of(child, ReceptorCCE)
            for dom in child.iterchildren(_N + "Domicilio"):
                receptor["Domicilio"] = _attrs_of(dom, Domicilio)
            d["Receptor"] = receptor
        elif tag == _N + "Destinatario":
            dest = _attrs_of(child, Destinatario)
            dest["Domicilio"] = [
                _attrs_of(dom, Domicilio) for dom in child.iterchildren(_N + "Domicilio")
            ]
            d.setdefault("Destinatario", []).append(dest)
        elif tag == _N + "Mercancias":
            d["Mercancias"] = [
                {
                    **_attrs_of(m, Mercancia),
                    "DescripcionesEspecificas": [
                        _attrs_of(x, DescripcionesEspecificas)
                        for x in m.iterchildren(_N + "DescripcionesEspecificas")
                    ],
                }
                for m in child.iterchildren(_N + "Mercancia")
            ]
    return d


# --- cadena from an element (cadena.py's walk of a parsed document) -----------------------------

_CAD = {cls: cadena_spec(cls) for cls in _S}


def walk(out: list[str], el: etree._Element, fields: Any) -> None:
    """The cadena fields of a cce20:ComercioExterior element, in SAT's XSLT order; ``fields`` is
    ``cadena._fields``."""
    fields(out, el, _CAD[ComercioExterior])
    for e in el.iterchildren(_N + "Emisor"):
        fields(out, e, _CAD[EmisorCCE])
        for dom in e.iterchildren(_N + "Domicilio"):
            fields(out, dom, _CAD[Domicilio])
    for p in el.iterchildren(_N + "Propietario"):
        fields(out, p, _CAD[Propietario])
    for r in el.iterchildren(_N + "Receptor"):
        fields(out, r, _CAD[ReceptorCCE])
        for dom in r.iterchildren(_N + "Domicilio"):
            fields(out, dom, _CAD[Domicilio])
    for d in el.iterchildren(_N + "Destinatario"):
        fields(out, d, _CAD[Destinatario])
        for dom in d.iterchildren(_N + "Domicilio"):
            fields(out, dom, _CAD[Domicilio])
    for ms in el.iterchildren(_N + "Mercancias"):
        for m in ms.iterchildren(_N + "Mercancia"):
            fields(out, m, _CAD[Mercancia])
            for desc in m.iterchildren(_N + "DescripcionesEspecificas"):
                fields(out, desc, _CAD[DescripcionesEspecificas])


# xmlio writes, builds and reads the complement through its registry of typed complements
_xb.COMPLEMENTS.append(
    _xb.Complement(
        field="ComercioExterior",
        tag=_N + "ComercioExterior",
        prefix="cce20",
        namespace=NS_CCE20,
        schema=SCHEMA_CCE20,
        write_text=write_text,
        build=build,
        read=read,
    )
)
