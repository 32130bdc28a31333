"""Carta Porte 3.1 in XML: written as text with its cadena (the fast path of
``xmlio.xml_and_cadena``), built as lxml elements (``xmlio.build_tree``), read back
(``xmlio.from_element``) and walked for the cadena of a parsed document (``cadena``), through
``xmlio.COMPLEMENTS`` (this module registers itself there, like ``xml_cce20``).

The complement's shape is one table (``_CHILDREN``): per node class, its children in SAT's XSD
order, which is also the order of SAT's ``CartaPorte31.xslt``. The four walks read that table, so
the XML, the model and the cadena cannot disagree. A Carta Porte with maritime, air or rail
transport (not modelled yet) is not read into the model: ``read`` returns None and xmlio keeps
the element verbatim (``OtrosComplementos``), which ``rules_cp31`` refuses (``CONN-CP-002``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lxml import etree
from pydantic import BaseModel

from . import xmlio_base as _xb
from . import xmlio_read as _xr
from . import xmlio_text as _xt
from .cp31 import (
    CADENA_REQUIRED,
    NS_CP31,
    SCHEMA_CP31,
    Autotransporte,
    CantidadTransporta,
    CartaPorte,
    DetalleMercancia,
    DocumentacionAduanera,
    DomicilioCP,
    GuiasIdentificacion,
    IdentificacionVehicular,
    MercanciaCP,
    MercanciasCP,
    Remolque,
    Seguros,
    TiposFigura,
    Ubicacion,
)
from .model import attribute_fields

_N = "{" + NS_CP31 + "}"
_PREFIX = "cartaporte31:"
UNSUPPORTED_TRANSPORT = ("TransporteMaritimo", "TransporteAereo", "TransporteFerroviario")


class _Child(NamedTuple):
    field: str
    wrapper: str | None  # a wrapper element without attributes (Ubicaciones, Remolques…)
    tag: str
    cls: type[BaseModel] | None  # None: a list of codes, each an element with one attribute
    many: bool
    attr: str = ""  # the attribute of a code element


_CHILDREN: dict[type[BaseModel], tuple[_Child, ...]] = {
    CartaPorte: (
        _Child("RegimenesAduaneros", "RegimenesAduaneros", "RegimenAduaneroCCP", None, True,
               "RegimenAduanero"),
        _Child("Ubicaciones", "Ubicaciones", "Ubicacion", Ubicacion, True),
        _Child("Mercancias", None, "Mercancias", MercanciasCP, False),
        _Child("FiguraTransporte", "FiguraTransporte", "TiposFigura", TiposFigura, True),
    ),
    Ubicacion: (_Child("Domicilio", None, "Domicilio", DomicilioCP, False),),
    MercanciasCP: (
        _Child("Mercancia", None, "Mercancia", MercanciaCP, True),
        _Child("Autotransporte", None, "Autotransporte", Autotransporte, False),
    ),
    MercanciaCP: (
        _Child("DocumentacionAduanera", None, "DocumentacionAduanera", DocumentacionAduanera, True),
        _Child("GuiasIdentificacion", None, "GuiasIdentificacion", GuiasIdentificacion, True),
        _Child("CantidadTransporta", None, "CantidadTransporta", CantidadTransporta, True),
        _Child("DetalleMercancia", None, "DetalleMercancia", DetalleMercancia, False),
    ),
    Autotransporte: (
        _Child("IdentificacionVehicular", None, "IdentificacionVehicular",
               IdentificacionVehicular, False),
        _Child("Seguros", None, "Seguros", Seguros, False),
        _Child("Remolques", "Remolques", "Remolque", Remolque, True),
    ),
    TiposFigura: (
        _Child("PartesTransporte", None, "PartesTransporte", None, True, "ParteTransporte"),
        _Child("Domicilio", None, "Domicilio", DomicilioCP, False),
    ),
}  # fmt: skip


def cadena_spec(cls: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(attribute, required) in XSD order: the cadena's fields of a node of this class."""
    required = CADENA_REQUIRED[cls]
    return tuple((n, n in required) for n in attribute_fields(cls))


_CAD = {cls: cadena_spec(cls) for cls in CADENA_REQUIRED}
_S = {cls: _xt._spec(attribute_fields(cls), _CAD[cls]) for cls in CADENA_REQUIRED}


def _items(node: BaseModel, ch: _Child) -> list[Any]:
    value = getattr(node, ch.field)
    if ch.many:
        return list(value)
    return [] if value is None else [value]


# --- text and cadena ----------------------------------------------------------------------------


def _write_node(out: Any, cad: list[str], tag: str, node: BaseModel) -> None:
    cls = type(node)
    out.append("<" + _PREFIX + tag)
    _xt._put(out, cad, node, _S[cls])
    out.append(">")
    mark = len(out)
    for ch in _CHILDREN.get(cls, ()):
        items = _items(node, ch)
        if not items:
            continue
        if ch.wrapper is not None:
            out.append(f"<{_PREFIX}{ch.wrapper}>")
        for item in items:
            if ch.cls is None:
                out.append(f'<{_PREFIX}{ch.tag} {ch.attr}="{_xt._text(out, item)}"/>')
                cad.append(_xt._cadena_value(item))
            else:
                _write_node(out, cad, ch.tag, item)
        if ch.wrapper is not None:
            out.append(f"</{_PREFIX}{ch.wrapper}>")
    _xt._end(out, mark, f"</{_PREFIX}{tag}>")


def write_text(out: Any, cad: list[str], cp: CartaPorte) -> None:
    """The complement's XML into ``out`` and its cadena fields into ``cad`` (one walk)."""
    _write_node(out, cad, "CartaPorte", cp)


# --- lxml elements ------------------------------------------------------------------------------


def _build_node(parent: etree._Element, tag: str, node: BaseModel) -> None:
    cls = type(node)
    values = [(n, getattr(node, n)) for n in attribute_fields(cls)]
    el = etree.SubElement(parent, _N + tag, _xb._attrs(values))
    for ch in _CHILDREN.get(cls, ()):
        items = _items(node, ch)
        if not items:
            continue
        holder = el if ch.wrapper is None else etree.SubElement(el, _N + ch.wrapper)
        for item in items:
            if ch.cls is None:
                etree.SubElement(holder, _N + ch.tag, {ch.attr: item})
            else:
                _build_node(holder, ch.tag, item)


def build(parent: etree._Element, cp: CartaPorte) -> None:
    """The complement as an element under ``parent`` (cfdi:Complemento)."""
    _build_node(parent, "CartaPorte", cp)


# --- reading ------------------------------------------------------------------------------------


def _under(el: etree._Element, ch: _Child) -> list[etree._Element]:
    holders = [el] if ch.wrapper is None else list(el.iterchildren(_N + ch.wrapper))
    return [k for h in holders for k in h.iterchildren(_N + ch.tag)]


def _read_node(el: etree._Element, cls: type[BaseModel]) -> dict[str, Any]:
    d = _xr._a(el, attribute_fields(cls))
    for ch in _CHILDREN.get(cls, ()):
        kids = _under(el, ch)
        if ch.cls is None:
            d[ch.field] = [k.get(ch.attr, "") for k in kids]
        elif ch.many:
            d[ch.field] = [_read_node(k, ch.cls) for k in kids]
        elif kids:
            d[ch.field] = _read_node(kids[0], ch.cls)
    return d


def read(el: etree._Element) -> dict[str, Any] | None:
    """A cartaporte31:CartaPorte element as plain data for the model; None when it carries a
    transport the model does not have (xmlio then keeps it verbatim)."""
    return None if read_unsupported(el) else _read_node(el, CartaPorte)


# --- cadena from an element (cadena.py's walk of a parsed document) -----------------------------


def _walk_node(out: list[str], el: etree._Element, cls: type[BaseModel], fields: Any) -> None:
    fields(out, el, _CAD[cls])
    for ch in _CHILDREN.get(cls, ()):
        for k in _under(el, ch):
            if ch.cls is None:
                fields(out, k, ((ch.attr, True),))
            else:
                _walk_node(out, k, ch.cls, fields)


def walk(out: list[str], el: etree._Element, fields: Any) -> bool:
    """The cadena fields of a cartaporte31:CartaPorte element, in SAT's XSLT order; ``fields`` is
    ``cadena._fields``. False (nothing written) when only SAT's XSLT can walk it (a transport
    not modelled here)."""
    if read_unsupported(el):
        return False
    _walk_node(out, el, CartaPorte, fields)
    return True


def read_unsupported(el: etree._Element) -> list[str]:
    """The transports of ``el`` the model does not have (TransporteMaritimo…)."""
    return [
        name
        for m in el.iterchildren(_N + "Mercancias")
        for name in UNSUPPORTED_TRANSPORT
        if m.find(_N + name) is not None
    ]


# xmlio writes, builds and reads the complement through its registry of typed complements
# (Complement's fields: field, tag, prefix, namespace, schema, write_text, build, read)
_xb.COMPLEMENTS.append(
    _xb.Complement("CartaPorte", _N + "CartaPorte", "cartaporte31", NS_CP31, SCHEMA_CP31,
                  write_text, build, read)
)  # fmt: skip
