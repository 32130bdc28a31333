"""Cadena original of a CFDI 4.0 and of its TimbreFiscalDigital 1.1.

SAT defines both by XSLT (``sat/cfd/4/cadenaoriginal_4_0/cadenaoriginal_4_0.xslt`` with its
included ``utilerias.xslt`` and ``Pagos20.xslt``; ``cadenaoriginal_TFD_1_1.xslt``). The fast path
here walks the same nodes in the same order in plain Python:

* ``Requerido`` writes ``|`` and the value, even when the attribute is missing;
* ``Opcional`` writes ``|`` and the value only when the attribute exists (even if empty);
* every value goes through XPath ``normalize-space`` (only space, tab, CR and LF are
  whitespace there, not Python's wider notion);
* the result is ``|`` + fields + ``||``.

A document carrying nodes the fast path does not know (complements other than Pagos 2.0,
Comercio Exterior 2.0 (``xml_cce20.walk``), Carta Porte 3.1 autotransporte (``xml_cp31.walk``)
and the TFD, ComplementoConcepto, Parte) falls back
to SAT's XSLT, compiled once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lxml import etree

from .cadena_spec import (  # noqa: F401 - normalize_space is part of this module's face
    _ACUENTA,
    _COMPROBANTE,
    _CONCEPTO,
    _DOCTO,
    _EMISOR,
    _INFO_GLOBAL,
    _O,
    _PAGO,
    _R,
    _RECEPTOR,
    _RETENCION,
    _RETENCION_DR,
    _RETENCION_P,
    _RETENCION_RES,
    _TFD,
    _TOTALES,
    _TRASLADO,
    _TRASLADO_DR,
    _TRASLADO_P,
    normalize_space,
)
from .cce20 import NS_CCE20
from .cp31 import NS_CP31
from .errors import XmlError
from .model import NS_CFDI, NS_PAGO20, NS_TFD, Comprobante, TimbreFiscalDigital

__all__ = [
    "cadena_original",
    "cadena_original_xslt",
    "cadena_tfd",
    "cadena_tfd_xslt",
    "normalize_space",
]

_SAT = Path(__file__).resolve().parent / "sat" / "cfd"
XSLT_CFDI = _SAT / "4" / "cadenaoriginal_4_0" / "cadenaoriginal_4_0.xslt"
XSLT_TFD = _SAT / "TimbreFiscalDigital" / "cadenaoriginal_TFD_1_1.xslt"

_C = "{" + NS_CFDI + "}"
_P = "{" + NS_PAGO20 + "}"
_T = "{" + NS_TFD + "}"
_CCE20 = "{" + NS_CCE20 + "}"
_CP31 = "{" + NS_CP31 + "}"


class _NeedsXslt(Exception):
    """The document has nodes only SAT's XSLT knows how to walk."""


def _fields(out: list[str], el: etree._Element, spec: tuple[tuple[str, bool], ...]) -> None:
    get, put = el.get, out.append
    for name, required in spec:
        v = get(name)
        if v is None:
            if required:
                put("")
        elif v and (
            v[0] == " " or v[-1] == " " or "  " in v or "\t" in v or "\n" in v or "\r" in v
        ):  # only then can normalize-space change it
            put(normalize_space(v))
        else:
            put(v)


def _children(el: etree._Element) -> dict[Any, list[etree._Element]]:
    """The children of ``el`` by tag, each list in document order: one pass over them instead
    of an ``iterchildren(tag)`` per tag (comments and processing instructions land under
    non-string tags that nobody asks for)."""
    groups: dict[Any, list[etree._Element]] = {}
    for child in el:
        tag = child.tag
        group = groups.get(tag)
        if group is None:
            groups[tag] = [child]
        else:
            group.append(child)
    return groups


def _under(nodes: list[etree._Element], *path: str) -> list[etree._Element]:
    """Descendants of ``nodes`` along a path, like the XPath ``./a/b`` from each of them."""
    for tag in path:
        nodes = [k for n in nodes for k in n.iterchildren(tag)]
    return nodes


def _kids(el: etree._Element, *path: str) -> list[etree._Element]:
    """Children along a path, like the XPath ``./a/b``."""
    return _under([el], *path)


def _items(
    groups: list[dict[Any, list[etree._Element]]], group: str, item: str
) -> list[etree._Element]:
    """``./group/item`` from each parent whose children (``_children``) are in ``groups``."""
    return [k for g in groups for n in g.get(group, ()) for k in n.iterchildren(item)]


def _walk_concepto(out: list[str], k: etree._Element) -> None:
    _fields(out, k, _CONCEPTO)
    kids = _children(k)
    impuestos = kids.get(_C + "Impuestos")
    if impuestos:
        groups = [_children(i) for i in impuestos]
        for t in _items(groups, _C + "Traslados", _C + "Traslado"):
            _fields(out, t, _TRASLADO)
        for r in _items(groups, _C + "Retenciones", _C + "Retencion"):
            _fields(out, r, _RETENCION)
    for a in kids.get(_C + "ACuentaTerceros", ()):
        _fields(out, a, _ACUENTA)
    for a in kids.get(_C + "InformacionAduanera", ()):
        _fields(out, a, (("NumeroPedimento", _R),))
    for a in kids.get(_C + "CuentaPredial", ()):
        _fields(out, a, (("Numero", _R),))
    if _C + "ComplementoConcepto" in kids or _C + "Parte" in kids:
        raise _NeedsXslt
    for _ in k.iter(_C + "Parte"):  # .//cfdi:Parte, anywhere below
        raise _NeedsXslt


def _walk_pagos(out: list[str], p: etree._Element) -> None:
    _fields(out, p, (("Version", _R),))
    for t in p.iterchildren(_P + "Totales"):
        _fields(out, t, _TOTALES)
    for pago in p.iterchildren(_P + "Pago"):
        _fields(out, pago, _PAGO)
        for d in pago.iterchildren(_P + "DoctoRelacionado"):
            _fields(out, d, _DOCTO)
            for r in _kids(d, _P + "ImpuestosDR", _P + "RetencionesDR", _P + "RetencionDR"):
                _fields(out, r, _RETENCION_DR)
            for t in _kids(d, _P + "ImpuestosDR", _P + "TrasladosDR", _P + "TrasladoDR"):
                _fields(out, t, _TRASLADO_DR)
        for ip in pago.iterchildren(_P + "ImpuestosP"):
            for r in _kids(ip, _P + "RetencionesP", _P + "RetencionP"):
                _fields(out, r, _RETENCION_P)
            for t in _kids(ip, _P + "TrasladosP", _P + "TrasladoP"):
                _fields(out, t, _TRASLADO_P)


def _walk(root: etree._Element) -> str:
    if root.tag != _C + "Comprobante":
        raise XmlError.one(
            "CONN-XML-NOT-CFDI",
            "No se puede calcular la cadena original: el elemento no es un cfdi:Comprobante 4.0.",
        )
    out: list[str] = []
    _fields(out, root, _COMPROBANTE)
    kids = _children(root)
    for el in kids.get(_C + "InformacionGlobal", ()):
        _fields(out, el, _INFO_GLOBAL)
    for el in kids.get(_C + "CfdiRelacionados", ()):
        _fields(out, el, (("TipoRelacion", _R),))
        for u in el.iterchildren(_C + "CfdiRelacionado"):
            _fields(out, u, (("UUID", _R),))
    for el in kids.get(_C + "Emisor", ()):
        _fields(out, el, _EMISOR)
    for el in kids.get(_C + "Receptor", ()):
        _fields(out, el, _RECEPTOR)
    for el in kids.get(_C + "Conceptos", ()):
        for k in el.iterchildren(_C + "Concepto"):
            _walk_concepto(out, k)
    for el in kids.get(_C + "Impuestos", ()):
        groups = [_children(el)]
        for r in _items(groups, _C + "Retenciones", _C + "Retencion"):
            _fields(out, r, _RETENCION_RES)
        _fields(out, el, (("TotalImpuestosRetenidos", _O),))
        for t in _items(groups, _C + "Traslados", _C + "Traslado"):
            _fields(out, t, _TRASLADO)
        _fields(out, el, (("TotalImpuestosTrasladados", _O),))
    for el in kids.get(_C + "Complemento", ()):
        for comp in el.iterchildren():
            tag = comp.tag
            if tag == _P + "Pagos":
                _walk_pagos(out, comp)
            elif tag == _CCE20 + "ComercioExterior":
                from .xml_cce20 import walk

                walk(out, comp, _fields)
            elif tag == _CP31 + "CartaPorte":
                from .xml_cp31 import walk as walk_cp31

                if not walk_cp31(out, comp, _fields):
                    raise _NeedsXslt
            elif tag == _T + "TimbreFiscalDigital":
                # The CFDI XSLT has no template for it and the built-in one prints text nodes.
                # (even whitespace-only text is printed: the XSLT does not strip spaces)
                if comp.text or len(comp):
                    raise _NeedsXslt
            elif isinstance(tag, str):
                raise _NeedsXslt
            # comments and processing instructions contribute nothing
    return "||" + "|".join(out) + "||"


def _as_element(x: Any) -> etree._Element:
    if isinstance(x, etree._ElementTree):
        return x.getroot()
    if isinstance(x, etree._Element):
        return x
    if isinstance(x, bytes | bytearray | memoryview):
        from .xmlio import parse_xml_bytes

        return parse_xml_bytes(bytes(x))
    raise TypeError(f"se esperaba un Comprobante, un elemento lxml o bytes, no {type(x)!r}")


# --- straight from the model (no tree): what sealing uses ----------------------------------------


def _model_cadena(c: Comprobante) -> str | None:
    """The cadena walked on the model, or None when only SAT's XSLT can do it.

    ``xmlio.xml_and_cadena`` walks the model once for both the XML text and the cadena (the
    field specs above give the cadena's order and Requerido/Opcional)."""
    from .xmlio import xml_and_cadena

    return xml_and_cadena(c, check=False)[1]


def cadena_original(c_or_element: Comprobante | etree._Element | etree._ElementTree | bytes) -> str:
    """The cadena original of a CFDI 4.0 (fast path, equal to SAT's XSLT)."""
    if isinstance(c_or_element, Comprobante):
        fast = _model_cadena(c_or_element)
        if fast is not None:
            return fast
        from .xmlio import build_tree

        root = build_tree(c_or_element)
    else:
        root = _as_element(c_or_element)
    try:
        return _walk(root)
    except _NeedsXslt:
        return cadena_original_xslt(root)


# --- SAT's XSLT -----------------------------------------------------------------------------------

_xslt_lock = threading.Lock()
_xslt: dict[str, etree.XSLT] = {}


def _transform(path: Path) -> etree.XSLT:
    key = str(path)
    t = _xslt.get(key)
    if t is None:
        with _xslt_lock:
            t = _xslt.get(key)
            if t is None:
                # SAT's stylesheets are package files; the XSLT may read only its own includes.
                access = etree.XSLTAccessControl(
                    read_file=True,
                    write_file=False,
                    create_dir=False,
                    read_network=False,
                    write_network=False,
                )
                t = etree.XSLT(etree.parse(key), access_control=access)
                _xslt[key] = t
    return t


def _run_xslt(path: Path, root: etree._Element) -> str:
    # The stylesheets match "/" and select the root by name: run them on a document whose root
    # is exactly this element.
    if root.getparent() is not None or root.getroottree().getroot() is not root:
        root = _copy_as_root(root)
    transform = _transform(path)
    with _xslt_lock:  # an XSLT object must not run in two threads at once
        result = transform(root.getroottree())
    text = str(result)
    return text


def _copy_as_root(el: etree._Element) -> etree._Element:
    from .xmlio import parse_xml_bytes

    return parse_xml_bytes(etree.tostring(el, with_tail=False, encoding="UTF-8"))


def cadena_original_xslt(element: etree._Element | etree._ElementTree | bytes) -> str:
    """The cadena original computed by SAT's own XSLT (slow; the reference)."""
    root = _as_element(element)
    return _run_xslt(XSLT_CFDI, root)


# --- TimbreFiscalDigital ------------------------------------------------------------------------


def _tfd_element(x: Any) -> etree._Element:
    el = _as_element(x)
    if el.tag == _T + "TimbreFiscalDigital":
        return el
    found = el.find(f"{_C}Complemento/{_T}TimbreFiscalDigital")
    if found is None:
        raise XmlError.one(
            "CONN-TFD-MISSING",
            "El comprobante no trae TimbreFiscalDigital (no está timbrado).",
            "Complemento.TimbreFiscalDigital",
        )
    return found


def cadena_tfd(
    tfd_or_element: TimbreFiscalDigital | Comprobante | etree._Element | bytes,
) -> str:
    """Cadena original of the TimbreFiscalDigital 1.1 (what the PAC's SelloSAT signs)."""
    if isinstance(tfd_or_element, Comprobante):
        if tfd_or_element.TimbreFiscalDigital is None:
            raise XmlError.one(
                "CONN-TFD-MISSING",
                "El comprobante no trae TimbreFiscalDigital (no está timbrado).",
                "Complemento.TimbreFiscalDigital",
            )
        tfd_or_element = tfd_or_element.TimbreFiscalDigital
    if isinstance(tfd_or_element, TimbreFiscalDigital):
        t = tfd_or_element
        out = [
            normalize_space(t.Version),
            normalize_space(t.UUID),
            normalize_space(t.FechaTimbrado),
            normalize_space(t.RfcProvCertif),
        ]
        if t.Leyenda is not None:
            out.append(normalize_space(t.Leyenda))
        out.append(normalize_space(t.SelloCFD))
        out.append(normalize_space(t.NoCertificadoSAT))
        return "||" + "|".join(out) + "||"
    el = _tfd_element(tfd_or_element)
    out2: list[str] = []
    _fields(out2, el, _TFD)
    return "||" + "|".join(out2) + "||"


def cadena_tfd_xslt(element: etree._Element | etree._ElementTree | bytes) -> str:
    """Cadena original of the TFD by SAT's XSLT (accepts the TFD or the whole stamped CFDI)."""
    return _run_xslt(XSLT_TFD, _tfd_element(element))
