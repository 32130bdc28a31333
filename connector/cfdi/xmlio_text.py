"""Model → XML text without lxml elements (the fast path): ``xml_and_cadena`` writes the
document and its cadena original in one walk; ``to_xml``, ``xml_text``, ``serialize``."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from lxml import etree

from . import cadena_spec as _cad
from .cadena_spec import normalize_space
from .model import (
    NS_CFDI,
    NS_PAGO20,
    NS_TFD,
    NS_XSI,
    ACuentaTerceros,
    Comprobante,
    Concepto,
    DoctoRelacionado,
    Emisor,
    Pago,
    Pagos,
    PagosTotales,
    Parte,
    Receptor,
    TimbreFiscalDigital,
    attribute_fields,
)
from .xmlio_base import (
    _NOT_XML,
    SCHEMA_CFDI,
    SCHEMA_PAGOS,
    SCHEMA_TFD,
    _chars_error,
    _d,
    _parser,
    _typed,
)
from .xmlio_build import build_tree

# --- model → XML text without lxml elements (the fast path) --------------------------------------
#
# Building ~30 lxml elements attribute by attribute costs more than writing the same document as
# text and letting libxml2 parse it once. ``xml_and_cadena`` writes exactly what ``serialize(_build(c))``
# writes (same declaration, namespace declarations, attribute order and escaping); documents
# with verbatim parts (OtrosComplementos, ComplementoConcepto) take the element path.

_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
# libxml2's escaping of attribute values
_ESCAPE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
# one search per value finds both (tab, LF and CR are in \x00-\x1f)
_SPECIAL = re.compile('[&<>"\x00-\x1f\ufffe\uffff\ud800-\udfff]')

_Spec = tuple[tuple[str, str, int], ...]
_NOT_IN_CADENA, _OPTIONAL, _REQUIRED = 0, 1, 2


def _spec(names: tuple[str, ...], cadena: tuple[tuple[str, bool], ...] = ()) -> _Spec:
    """(field, ' Name="', how the cadena takes it) per attribute, in XSD order. Where a node is
    in the cadena, SAT's XSLT walks its attributes in this same order (Sello and Certificado
    left out)."""
    required = dict(cadena)
    return tuple(
        (
            n,
            f' {n}="',
            _NOT_IN_CADENA if n not in required else (_REQUIRED if required[n] else _OPTIONAL),
        )
        for n in names
    )


_IMPUESTO_NAMES = ("Base", "Impuesto", "TipoFactor", "TasaOCuota", "Importe")
_S_COMPROBANTE = _spec(
    attribute_fields(Comprobante),
    _cad._COMPROBANTE,
)
_S_EMISOR = _spec(attribute_fields(Emisor), _cad._EMISOR)
_S_RECEPTOR = _spec(
    attribute_fields(Receptor),
    _cad._RECEPTOR,
)
_S_CONCEPTO = _spec(
    attribute_fields(Concepto),
    _cad._CONCEPTO,
)
_S_TRASLADO = _spec(_IMPUESTO_NAMES, _cad._TRASLADO)
_S_RETENCION = _spec(_IMPUESTO_NAMES, _cad._RETENCION)
_S_ACUENTA = _spec(
    attribute_fields(ACuentaTerceros),
    _cad._ACUENTA,
)
# Parte: the cadena of a document with Parte comes from SAT's XSLT
_S_PARTE = _spec(attribute_fields(Parte))
# the summary's totals come after its children in the cadena: written there by hand
_S_IMPUESTOS = _spec(("TotalImpuestosRetenidos", "TotalImpuestosTrasladados"))
_S_RETENCION_RES = _spec(("Impuesto", "Importe"), _cad._RETENCION_RES)
_S_TOTALES = _spec(
    attribute_fields(PagosTotales),
    _cad._TOTALES,
)
_S_PAGO = _spec(
    attribute_fields(Pago),
    _cad._PAGO,
)
_S_DOCTO = _spec(
    attribute_fields(DoctoRelacionado),
    _cad._DOCTO,
)
_IMPUESTO_DR_NAMES = ("BaseDR", "ImpuestoDR", "TipoFactorDR", "TasaOCuotaDR", "ImporteDR")
_S_RETENCION_DR = _spec(_IMPUESTO_DR_NAMES, _cad._RETENCION_DR)
_S_TRASLADO_DR = _spec(_IMPUESTO_DR_NAMES, _cad._TRASLADO_DR)
_S_RETENCION_P = _spec(("ImpuestoP", "ImporteP"), _cad._RETENCION_P)
_S_TRASLADO_P = _spec(
    ("BaseP", "ImpuestoP", "TipoFactorP", "TasaOCuotaP", "ImporteP"), _cad._TRASLADO_P
)
# the TFD is not part of the comprobante's cadena
_S_TFD = _spec(attribute_fields(TimbreFiscalDigital))
_XMLNS_ROOT = f' xmlns:cfdi="{NS_CFDI}" xmlns:xsi="{NS_XSI}"'
_XMLNS_PAGO20 = f' xmlns:pago20="{NS_PAGO20}"'


class _Out(list[str]):
    """The pieces of a document being written; ``bad`` once a value has characters XML cannot
    carry."""

    __slots__ = ("bad",)

    def __init__(self, *pieces: str) -> None:
        super().__init__(pieces)
        self.bad = False


def _value(value: Any) -> str:
    """An attribute value as written (before escaping)."""
    return _d(value) if type(value) is Decimal else value if isinstance(value, str) else str(value)


def _escape(out: _Out, text: str) -> str:
    if _NOT_XML.search(text) is not None:
        out.bad = True
    return text.translate(_ESCAPE)


def _text(out: _Out, value: Any) -> str:
    """An attribute value escaped for XML."""
    text = _value(value)
    return text if _SPECIAL.search(text) is None else _escape(out, text)


def _put(out: _Out, cad: list[str], node: Any, spec: _Spec) -> None:
    """The attributes of ``node`` in ``spec`` order (None left out), escaped, into ``out``; its
    cadena fields into ``cad``."""
    values = node.__dict__
    special = _SPECIAL.search
    put, put_cadena = out.append, cad.append
    for name, prefix, how in spec:
        value = values[name]
        if value is None:
            if how == _REQUIRED:
                put_cadena("")
            continue
        if type(value) is Decimal:
            text = str(value)
            if "E" in text or "e" in text:
                text = format(value, "f")
            if how:
                put_cadena(text)
        else:
            text = value if isinstance(value, str) else str(value)
            if special(text) is None:  # no tab, CR or LF: only spaces can need normalizing
                if how:
                    put_cadena(
                        normalize_space(text)
                        if text and (text[0] == " " or text[-1] == " " or "  " in text)
                        else text
                    )
            else:
                if how:
                    put_cadena(normalize_space(text))
                text = _escape(out, text)
        put(prefix)
        put(text)
        put('"')


def _leaf(out: _Out, cad: list[str], tag: str, node: Any, spec: _Spec) -> None:
    out.append(tag)
    _put(out, cad, node, spec)
    out.append("/>")


def _end(out: _Out, mark: int, close: str) -> None:
    """Close an element opened at ``mark`` (its ``>`` is ``out[mark - 1]``): ``/>`` when empty."""
    if len(out) == mark:
        out[-1] = "/>"
    else:
        out.append(close)


def _cadena_value(value: Any) -> str:
    text = _value(value)
    return normalize_space(text) if text and type(value) is not Decimal else text


def xml_and_cadena(c: Comprobante, *, check: bool = True) -> tuple[str | None, str | None]:
    """In one walk of the model: the document as ``serialize(build_tree(c))`` writes it, and
    its cadena original as SAT's XSLT computes it. Either is None when only the element path
    (verbatim ComplementoConcepto, OtrosComplementos) or SAT's XSLT (those, and Parte) can
    produce it. ``XmlError`` CONN-XML-CHARS for characters XML cannot carry (unless
    ``check=False``: the cadena alone)."""
    out = _Out()
    text, cadena = _write(c, out)
    if check and out.bad:
        raise _chars_error(c)
    return text, cadena


def _write(c: Comprobante, out: _Out) -> tuple[str | None, str | None]:
    if c.OtrosComplementos:
        return None, None
    out += (_DECLARATION, "<cfdi:Comprobante", _XMLNS_ROOT)
    cad: list[str] = []
    schema = SCHEMA_CFDI
    if c.Pagos is not None:
        out.append(_XMLNS_PAGO20)
        schema += " " + SCHEMA_PAGOS
    typed = _typed(c)
    for ext in typed:
        out.append(f' xmlns:{ext.prefix}="{ext.namespace}"')
        schema += " " + ext.schema
    out.append(f' xsi:schemaLocation="{schema}"')
    _put(out, cad, c, _S_COMPROBANTE)
    out.append(">")
    ig = c.InformacionGlobal
    if ig is not None:
        out.append(
            f'<cfdi:InformacionGlobal Periodicidad="{_text(out, ig.Periodicidad)}" '
            f'Meses="{_text(out, ig.Meses)}" Año="{_text(out, ig.Anio)}"/>'
        )
        cad += (_cadena_value(ig.Periodicidad), _cadena_value(ig.Meses), str(ig.Anio))
    for rel in c.CfdiRelacionados:
        out.append(f'<cfdi:CfdiRelacionados TipoRelacion="{_text(out, rel.TipoRelacion)}">')
        cad.append(_cadena_value(rel.TipoRelacion))
        mark = len(out)
        for uuid in rel.UUIDs:
            out.append(f'<cfdi:CfdiRelacionado UUID="{_text(out, uuid)}"/>')
            cad.append(_cadena_value(uuid))
        _end(out, mark, "</cfdi:CfdiRelacionados>")
    _leaf(out, cad, "<cfdi:Emisor", c.Emisor, _S_EMISOR)
    _leaf(out, cad, "<cfdi:Receptor", c.Receptor, _S_RECEPTOR)
    out.append("<cfdi:Conceptos>")
    conceptos_mark = len(out)
    with_parte = False
    for k in c.Conceptos:
        if k.ComplementoConcepto:
            return None, None
        out.append("<cfdi:Concepto")
        _put(out, cad, k, _S_CONCEPTO)
        out.append(">")
        mark = len(out)
        imp = k.Impuestos
        if imp is not None:
            out.append("<cfdi:Impuestos>")
            imark = len(out)
            if imp.Traslados:
                out.append("<cfdi:Traslados>")
                for t in imp.Traslados:
                    _leaf(out, cad, "<cfdi:Traslado", t, _S_TRASLADO)
                out.append("</cfdi:Traslados>")
            if imp.Retenciones:
                out.append("<cfdi:Retenciones>")
                for r in imp.Retenciones:
                    _leaf(out, cad, "<cfdi:Retencion", r, _S_RETENCION)
                out.append("</cfdi:Retenciones>")
            _end(out, imark, "</cfdi:Impuestos>")
        if k.ACuentaTerceros is not None:
            _leaf(out, cad, "<cfdi:ACuentaTerceros", k.ACuentaTerceros, _S_ACUENTA)
        for numero in k.InformacionAduanera:
            out.append(f'<cfdi:InformacionAduanera NumeroPedimento="{_text(out, numero)}"/>')
            cad.append(_cadena_value(numero))
        for numero in k.CuentaPredial:
            out.append(f'<cfdi:CuentaPredial Numero="{_text(out, numero)}"/>')
            cad.append(_cadena_value(numero))
        for parte in k.Parte:
            with_parte = True
            out.append("<cfdi:Parte")
            _put(out, cad, parte, _S_PARTE)
            out.append(">")
            pmark = len(out)
            for numero in parte.InformacionAduanera:
                out.append(f'<cfdi:InformacionAduanera NumeroPedimento="{_text(out, numero)}"/>')
            _end(out, pmark, "</cfdi:Parte>")
        _end(out, mark, "</cfdi:Concepto>")
    _end(out, conceptos_mark, "</cfdi:Conceptos>")
    imp2 = c.Impuestos
    if imp2 is not None:
        out.append("<cfdi:Impuestos")
        _put(out, cad, imp2, _S_IMPUESTOS)
        out.append(">")
        mark = len(out)
        if imp2.Retenciones:
            out.append("<cfdi:Retenciones>")
            for rr in imp2.Retenciones:
                _leaf(out, cad, "<cfdi:Retencion", rr, _S_RETENCION_RES)
            out.append("</cfdi:Retenciones>")
        if imp2.TotalImpuestosRetenidos is not None:
            cad.append(_d(imp2.TotalImpuestosRetenidos))
        if imp2.Traslados:
            out.append("<cfdi:Traslados>")
            for tr in imp2.Traslados:
                _leaf(out, cad, "<cfdi:Traslado", tr, _S_TRASLADO)
            out.append("</cfdi:Traslados>")
        if imp2.TotalImpuestosTrasladados is not None:
            cad.append(_d(imp2.TotalImpuestosTrasladados))
        _end(out, mark, "</cfdi:Impuestos>")
    if c.Pagos is not None or typed or c.TimbreFiscalDigital is not None:
        out.append("<cfdi:Complemento>")
        if c.Pagos is not None:
            _pagos_text(out, cad, c.Pagos)
        for ext in typed:
            ext.write_text(out, cad, getattr(c, ext.field))
        tfd = c.TimbreFiscalDigital
        if tfd is not None:
            out.append(
                f'<tfd:TimbreFiscalDigital xmlns:tfd="{NS_TFD}" xsi:schemaLocation="{SCHEMA_TFD}"'
            )
            _put(out, cad, tfd, _S_TFD)
            out.append("/>")
        out.append("</cfdi:Complemento>")
    out.append("</cfdi:Comprobante>")
    return "".join(out), None if with_parte else "||" + "|".join(cad) + "||"


def _pagos_text(out: _Out, cad: list[str], pagos: Pagos) -> None:
    out.append(f'<pago20:Pagos Version="{_text(out, pagos.Version)}">')
    cad.append(_cadena_value(pagos.Version))
    _leaf(out, cad, "<pago20:Totales", pagos.Totales, _S_TOTALES)
    for p in pagos.Pago:
        out.append("<pago20:Pago")
        _put(out, cad, p, _S_PAGO)
        out.append(">")
        mark = len(out)
        for d in p.DoctoRelacionado:
            out.append("<pago20:DoctoRelacionado")
            _put(out, cad, d, _S_DOCTO)
            out.append(">")
            dmark = len(out)
            idr = d.ImpuestosDR
            if idr is not None:
                out.append("<pago20:ImpuestosDR>")
                imark = len(out)
                if idr.RetencionesDR:
                    out.append("<pago20:RetencionesDR>")
                    for r in idr.RetencionesDR:
                        _leaf(out, cad, "<pago20:RetencionDR", r, _S_RETENCION_DR)
                    out.append("</pago20:RetencionesDR>")
                if idr.TrasladosDR:
                    out.append("<pago20:TrasladosDR>")
                    for t in idr.TrasladosDR:
                        _leaf(out, cad, "<pago20:TrasladoDR", t, _S_TRASLADO_DR)
                    out.append("</pago20:TrasladosDR>")
                _end(out, imark, "</pago20:ImpuestosDR>")
            _end(out, dmark, "</pago20:DoctoRelacionado>")
        ip = p.ImpuestosP
        if ip is not None:
            out.append("<pago20:ImpuestosP>")
            imark = len(out)
            if ip.RetencionesP:
                out.append("<pago20:RetencionesP>")
                for r2 in ip.RetencionesP:
                    _leaf(out, cad, "<pago20:RetencionP", r2, _S_RETENCION_P)
                out.append("</pago20:RetencionesP>")
            if ip.TrasladosP:
                out.append("<pago20:TrasladosP>")
                for t3 in ip.TrasladosP:
                    _leaf(out, cad, "<pago20:TrasladoP", t3, _S_TRASLADO_P)
                out.append("</pago20:TrasladosP>")
            _end(out, imark, "</pago20:ImpuestosP>")
        _end(out, mark, "</pago20:Pago>")
    out.append("</pago20:Pagos>")


def xml_text(c: Comprobante) -> str | None:
    """The serialized document as text (fast path), None when only the element path can write
    it; ``XmlError`` CONN-XML-CHARS for characters XML cannot carry."""
    return xml_and_cadena(c)[0]


def parse_own(text: str) -> etree._Element:
    """The tree of a document this module wrote (trusted, well-formed): one libxml2 parse."""
    return etree.fromstring(text.encode("utf-8"), _parser())


def serialize(root: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration, as SAT and the PACs expect."""
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def to_xml(c: Comprobante) -> bytes:
    """Serialize a Comprobante as CFDI 4.0 XML (UTF-8, attributes in SAT's XSD order)."""
    text = xml_text(c)
    if text is not None:
        return text.encode("utf-8")
    return serialize(build_tree(c))
