"""XML → model: ``from_xml`` / ``from_element`` read any CFDI 4.0 (stamped or not, Pagos 2.0,
other software's output); complements the model does not type are kept verbatim in
``OtrosComplementos``."""

from __future__ import annotations

from typing import Any

from lxml import etree

from .errors import Problem, XmlError
from .model import (
    NS_CFDI,
    Comprobante,
    Concepto,
    DoctoRelacionado,
    Pago,
    PagosTotales,
    Parte,
    TimbreFiscalDigital,
    attribute_fields,
    load_invoice,
)
from .xmlio_base import _C, _P, _T, COMPLEMENTS, DEFAULT_MAX_BYTES, NS_CFDI3, parse_xml_bytes

# --- XML → model --------------------------------------------------------------------------------


def check_root(root: etree._Element) -> None:
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag == "{" + NS_CFDI3 + "}Comprobante":
        raise XmlError.one(
            "CONN-XML-VERSION",
            "El documento es un CFDI 3.3; sólo se aceptan comprobantes CFDI 4.0.",
            "Comprobante",
        )
    if tag != _C + "Comprobante":
        raise XmlError.one(
            "CONN-XML-NOT-CFDI",
            f"El documento no es un CFDI 4.0: el elemento raíz es {tag or root.tag!r} y debe ser "
            f"cfdi:Comprobante del espacio de nombres {NS_CFDI}.",
            "Comprobante",
        )
    version = root.get("Version")
    if version != "4.0":
        raise XmlError.one(
            "CONN-XML-VERSION",
            f"El atributo Version del comprobante es {version!r}; debe ser '4.0'.",
            "Comprobante.Version",
        )


def _a(el: etree._Element, names: tuple[str, ...]) -> dict[str, Any]:
    get = el.get
    out: dict[str, Any] = {}
    for n in names:
        v = get(n)
        if v is not None:
            out[n] = v
    return out


_COMPROBANTE_ATTRS = attribute_fields(Comprobante)
_CONCEPTO_ATTRS = attribute_fields(Concepto)
_PARTE_ATTRS = attribute_fields(Parte)
_IMP_ATTRS = ("Base", "Impuesto", "TipoFactor", "TasaOCuota", "Importe")
_TOTALES_ATTRS = attribute_fields(PagosTotales)
_PAGO_ATTRS = attribute_fields(Pago)
_DOCTO_ATTRS = attribute_fields(DoctoRelacionado)
_IMPDR_ATTRS = ("BaseDR", "ImpuestoDR", "TipoFactorDR", "TasaOCuotaDR", "ImporteDR")
_IMPP_ATTRS = ("BaseP", "ImpuestoP", "TipoFactorP", "TasaOCuotaP", "ImporteP")
_TFD_ATTRS = attribute_fields(TimbreFiscalDigital)


def _read_concepto(el: etree._Element) -> dict[str, Any]:
    d = _a(el, _CONCEPTO_ATTRS)
    adu: list[str] = []
    pred: list[str] = []
    complementos: list[bytes] = []
    partes: list[dict[str, Any]] = []
    for child in el:
        tag = child.tag
        if tag == _C + "Impuestos":
            d["Impuestos"] = {
                "Traslados": [
                    _a(x, _IMP_ATTRS)
                    for g in child.iterchildren(_C + "Traslados")
                    for x in g.iterchildren(_C + "Traslado")
                ],
                "Retenciones": [
                    _a(x, _IMP_ATTRS)
                    for g in child.iterchildren(_C + "Retenciones")
                    for x in g.iterchildren(_C + "Retencion")
                ],
            }
        elif tag == _C + "ACuentaTerceros":
            d["ACuentaTerceros"] = dict(child.attrib)
        elif tag == _C + "InformacionAduanera":
            adu.append(child.get("NumeroPedimento", ""))
        elif tag == _C + "CuentaPredial":
            pred.append(child.get("Numero", ""))
        elif tag == _C + "ComplementoConcepto":
            complementos.extend(
                etree.tostring(x, with_tail=False, encoding="UTF-8") for x in child if isinstance(x.tag, str)
            )
        elif tag == _C + "Parte":
            parte = _a(child, _PARTE_ATTRS)
            parte["InformacionAduanera"] = [
                x.get("NumeroPedimento", "") for x in child.iterchildren(_C + "InformacionAduanera")
            ]
            partes.append(parte)
    if complementos:
        d["ComplementoConcepto"] = complementos
    if partes:
        d["Parte"] = partes
    if adu:
        d["InformacionAduanera"] = adu
    if pred:
        d["CuentaPredial"] = pred
    return d


def _read_pagos(el: etree._Element) -> dict[str, Any]:
    d: dict[str, Any] = {"Version": el.get("Version", "")}
    pagos: list[dict[str, Any]] = []
    for child in el:
        if child.tag == _P + "Totales":
            d["Totales"] = _a(child, _TOTALES_ATTRS)
        elif child.tag == _P + "Pago":
            p = _a(child, _PAGO_ATTRS)
            doctos = []
            for sub in child:
                if sub.tag == _P + "DoctoRelacionado":
                    dd = _a(sub, _DOCTO_ATTRS)
                    for idr in sub.iterchildren(_P + "ImpuestosDR"):
                        dd["ImpuestosDR"] = {
                            "RetencionesDR": [
                                _a(x, _IMPDR_ATTRS)
                                for g in idr.iterchildren(_P + "RetencionesDR")
                                for x in g.iterchildren(_P + "RetencionDR")
                            ],
                            "TrasladosDR": [
                                _a(x, _IMPDR_ATTRS)
                                for g in idr.iterchildren(_P + "TrasladosDR")
                                for x in g.iterchildren(_P + "TrasladoDR")
                            ],
                        }
                    doctos.append(dd)
                elif sub.tag == _P + "ImpuestosP":
                    p["ImpuestosP"] = {
                        "RetencionesP": [
                            _a(x, ("ImpuestoP", "ImporteP"))
                            for g in sub.iterchildren(_P + "RetencionesP")
                            for x in g.iterchildren(_P + "RetencionP")
                        ],
                        "TrasladosP": [
                            _a(x, _IMPP_ATTRS)
                            for g in sub.iterchildren(_P + "TrasladosP")
                            for x in g.iterchildren(_P + "TrasladoP")
                        ],
                    }
            p["DoctoRelacionado"] = doctos
            pagos.append(p)
    d["Pago"] = pagos
    return d


def from_element(root: etree._Element) -> Comprobante:
    """Read a parsed CFDI 4.0 tree into the model (``XmlError`` when it cannot be represented)."""
    check_root(root)
    d = _a(root, _COMPROBANTE_ATTRS)
    conceptos: list[dict[str, Any]] = []
    relacionados: list[dict[str, Any]] = []
    otros: list[bytes] = []
    for child in root:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments, processing instructions
        if tag == _C + "Conceptos":
            conceptos.extend(_read_concepto(k) for k in child.iterchildren(_C + "Concepto"))
        elif tag == _C + "Emisor":
            d["Emisor"] = dict(child.attrib)
        elif tag == _C + "Receptor":
            d["Receptor"] = dict(child.attrib)
        elif tag == _C + "InformacionGlobal":
            d["InformacionGlobal"] = dict(child.attrib)
        elif tag == _C + "CfdiRelacionados":
            relacionados.append(
                {
                    "TipoRelacion": child.get("TipoRelacion", ""),
                    "UUIDs": [
                        u.get("UUID", "") for u in child.iterchildren(_C + "CfdiRelacionado")
                    ],
                }
            )
        elif tag == _C + "Impuestos":
            imp = _a(child, ("TotalImpuestosRetenidos", "TotalImpuestosTrasladados"))
            imp["Retenciones"] = [
                _a(x, ("Impuesto", "Importe"))
                for g in child.iterchildren(_C + "Retenciones")
                for x in g.iterchildren(_C + "Retencion")
            ]
            imp["Traslados"] = [
                _a(x, _IMP_ATTRS)
                for g in child.iterchildren(_C + "Traslados")
                for x in g.iterchildren(_C + "Traslado")
            ]
            d["Impuestos"] = imp
        elif tag == _C + "Complemento":
            by_tag = {k.tag: k for k in COMPLEMENTS}
            for comp in child:
                ctag = comp.tag
                if not isinstance(ctag, str):
                    continue
                if ctag == _P + "Pagos" and "Pagos" not in d:
                    d["Pagos"] = _read_pagos(comp)
                elif (
                    ctag in by_tag
                    and by_tag[ctag].field not in d
                    and (typed := by_tag[ctag].read(comp)) is not None
                ):  # None: a form the model does not type, kept verbatim
                    d[by_tag[ctag].field] = typed
                elif ctag == _T + "TimbreFiscalDigital" and "TimbreFiscalDigital" not in d:
                    d["TimbreFiscalDigital"] = _a(comp, _TFD_ATTRS)
                else:
                    otros.append(etree.tostring(comp, with_tail=False, encoding="UTF-8"))
        # Addenda and unknown nodes are not part of the fiscal document: not kept in the model.
    d["Conceptos"] = conceptos
    if relacionados:
        d["CfdiRelacionados"] = relacionados
    if otros:
        d["OtrosComplementos"] = otros
    c, problems = load_invoice(d)
    if c is None:
        raise XmlError(
            [
                Problem(
                    code="CONN-XML-DATA",
                    path=p.path,
                    message=p.message.replace("El campo", "En el XML, el campo", 1),
                )
                for p in problems
            ]
        )
    return c


def from_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Comprobante:
    """Parse CFDI 4.0 bytes into a ``Comprobante`` (``XmlError`` when it is not one)."""
    return from_element(parse_xml_bytes(data, max_bytes=max_bytes))
