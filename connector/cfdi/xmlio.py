"""CFDI 4.0 XML: safe parsing, building from the model, reading into the model, XSD validation.

* ``parse_xml_bytes`` is the only way bytes from outside become an lxml tree: no DTD, no
  entities, no network, no file system, a size limit; anything else is an ``XmlError``.
* ``to_xml`` writes attributes in the order SAT's XSD declares them, and each ``Decimal`` as it
  was given (``Decimal("0.160000")`` stays ``0.160000``). It writes text straight from the model
  (``xml_and_cadena``, which also gives the cadena original in the same walk: what sealing
  uses); ``build_tree`` builds the same document element by element.
* ``from_xml`` reads any CFDI 4.0 (stamped or not, Pagos 2.0, other software's output); the
  complements the model does not type are kept verbatim in ``OtrosComplementos``.
* ``validate_xsd`` validates against SAT's schemas (compiled once per process).
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from lxml import etree

from . import cadena_spec as _cad
from . import xsd_messages as _xm
from .cadena_spec import normalize_space
from .cce20 import NS_CCE20
from .errors import Problem, XmlError
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
    load_invoice,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "NS_CFDI3",
    "build_tree",
    "check_root",
    "from_element",
    "from_xml",
    "parse_xml_bytes",
    "serialize",
    "to_xml",
    "validate_limits",
    "validate_xsd",
    "xml_and_cadena",
    "xml_text",
]

SAT_DIR = Path(__file__).resolve().parent / "sat"
XSD_WRAPPER = SAT_DIR / "cfdi40_validation_wrapper.xsd"

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # a CFDI with thousands of conceptos stays well below

NS_CFDI3 = "http://www.sat.gob.mx/cfd/3"
SCHEMA_CFDI = "http://www.sat.gob.mx/cfd/4 http://www.sat.gob.mx/sitio_internet/cfd/4/cfdv40.xsd"
SCHEMA_PAGOS = (
    "http://www.sat.gob.mx/Pagos20 http://www.sat.gob.mx/sitio_internet/cfd/Pagos/Pagos20.xsd"
)
SCHEMA_TFD = (
    "http://www.sat.gob.mx/TimbreFiscalDigital "
    "http://www.sat.gob.mx/sitio_internet/cfd/TimbreFiscalDigital/TimbreFiscalDigitalv11.xsd"
)

_C = "{" + NS_CFDI + "}"
_P = "{" + NS_PAGO20 + "}"
_T = "{" + NS_TFD + "}"
_XSI_SCHEMA = "{" + NS_XSI + "}schemaLocation"

# --- safe parsing -------------------------------------------------------------------------------


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


class _NoResolver(etree.Resolver):
    """Refuses every external resource: nothing is ever read from disk or the network."""

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        return self.resolve_string("", context)


_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe: one per thread, reused (creating one costs more than
    # parsing a small CFDI).
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _new_parser()
        parser.resolvers.add(_NoResolver())
        _local.parser = parser
    return parser


def parse_xml_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an lxml element, or raise ``XmlError``.

    Refused: empty input, more than ``max_bytes``, anything that is not well-formed XML, and any
    document with a DOCTYPE (which is where entities, entity bombs and external references
    live). Never touches the network or the file system.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise XmlError.one(
            "CONN-XML-MALFORMED", "El contenido XML debe llegar como bytes, no como texto."
        )
    data = bytes(data)
    if not data.strip():
        raise XmlError.one("CONN-XML-EMPTY", "El archivo XML está vacío.")
    if len(data) > max_bytes:
        raise XmlError.one(
            "CONN-XML-TOO-BIG",
            f"El archivo XML mide {len(data)} bytes; el máximo permitido es {max_bytes} bytes.",
        )
    # A DOCTYPE is never legitimate in a CFDI: refuse it before the parser sees it. (Checked
    # again on the parsed tree for encodings where this byte scan cannot see it.)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _dtd_error()
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (getattr(exc, "lineno", 0) or 0, 0)
        where = f"línea {line}, columna {column}" if column else f"línea {line}"
        raise XmlError.one(
            "CONN-XML-MALFORMED",
            f"El archivo no es un XML bien formado ({where}): {_syntax_es(exc)}.",
        ) from None
    except (ValueError, etree.LxmlError) as exc:
        raise XmlError.one(
            "CONN-XML-MALFORMED",
            f"El archivo no es un XML bien formado ({type(exc).__name__}).",
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _dtd_error()
    return root


# libxml2's syntax errors (lxml's ``ErrorTypes`` names) said in Spanish, with the names libxml2
# quotes (tags, prefixes, attributes, entities) taken from its message; others by their name
_SYNTAX_ES: dict[str, tuple[str, str]] = {
    "ERR_DOCUMENT_EMPTY": ("no empieza con una etiqueta '<'", ""),
    "ERR_DOCUMENT_END": ("hay contenido después del elemento raíz", ""),
    "ERR_TAG_NOT_FINISHED": ("el archivo termina antes de cerrar <{0}>", r"in tag (\S+)"),
    "ERR_TAG_NAME_MISMATCH": (
        "<{0}> se cierra con </{1}>",
        r"mismatch: (\S+) line \d+ and ([^\s,]+)",
    ),
    "ERR_GT_REQUIRED": ("a la etiqueta <{0}> le falta su '>'", r"Start Tag (\S+)"),
    "NS_ERR_UNDEFINED_NAMESPACE": (
        "el prefijo {0} no tiene declarado su espacio de nombres (xmlns:{0})",
        r"prefix (\S+) on",
    ),
    "ERR_ATTRIBUTE_NOT_STARTED": ("el valor de un atributo debe ir entre comillas", ""),
    "ERR_ATTRIBUTE_REDEFINED": ("el atributo {0} aparece dos veces", r"Attribute (\S+) redefined"),
    "ERR_ATTRIBUTE_WITHOUT_VALUE": ("un atributo no tiene valor", ""),
    "ERR_LT_IN_ATTRIBUTE": ("un valor de atributo contiene '<' sin escapar (use &lt;)", ""),
    "ERR_UNDECLARED_ENTITY": (
        "la entidad &{0}; no existe (escriba '&' como &amp;)",
        r"Entity '([^']+)'",
    ),
    "ERR_ENTITYREF_SEMICOL_MISSING": (
        "a una referencia '&' le falta el ';' (escriba '&' como &amp;)",
        "",
    ),
    "ERR_NAME_REQUIRED": ("hay un '&' o '<' sin escapar (use &amp; y &lt;)", ""),
    "ERR_INVALID_CHAR": ("hay un carácter que XML no admite (p. ej. un byte de control)", ""),
    "ERR_INVALID_ENCODING": (
        "hay bytes que no son de la codificación declarada (UTF-8 si no declara otra)",
        "",
    ),
    "ERR_UNSUPPORTED_ENCODING": ("la codificación declarada no se reconoce", ""),
}
_ERROR_NAMES = {v: k for k, v in vars(etree.ErrorTypes).items() if isinstance(v, int)}


def _syntax_es(exc: etree.XMLSyntaxError) -> str:
    name = _ERROR_NAMES.get(exc.code, "")
    template, pattern = _SYNTAX_ES.get(name, ("", ""))
    if not template:
        return f"error de sintaxis XML ({name or exc.code})"
    found = re.search(pattern, exc.msg or "") if pattern else None
    if pattern and found is None:
        return template.split("{", 1)[0].rstrip(" <&") + " (ver la línea)"
    return template.format(*found.groups()) if found else template


def _dtd_error() -> XmlError:
    return XmlError.one(
        "CONN-XML-DTD",
        "El XML trae una declaración DOCTYPE/ENTITY; por seguridad no se aceptan DTD ni "
        "entidades en un CFDI.",
    )


# --- model → XML --------------------------------------------------------------------------------


def _d(value: Decimal) -> str:
    """A Decimal as SAT wants it: plain notation, keeping the given exponent (0.160000)."""
    text = str(value)
    if "E" in text or "e" in text:
        text = format(value, "f")
    return text


def _attrs(pairs: list[tuple[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, Decimal):
            out[name] = _d(value)
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


_SE = etree.SubElement


class Complement(NamedTuple):
    """A typed complement other than Pagos 2.0, written and read by its own module, which
    registers it in ``COMPLEMENTS`` (Comercio Exterior 2.0: ``xml_cce20``; Carta Porte 3.1:
    ``xml_cp31``)."""

    field: str  # its Comprobante field
    tag: str  # its element's Clark name
    prefix: str
    namespace: str
    schema: str  # its part of xsi:schemaLocation
    write_text: Callable[[Any, list[str], Any], None]  # (out, cadena fields, node)
    build: Callable[[etree._Element, Any], None]  # (cfdi:Complemento, node)
    read: Callable[[etree._Element], dict[str, Any] | None]  # None: keep it verbatim


COMPLEMENTS: list[Complement] = []


def _typed(c: Comprobante) -> list[Complement]:
    """The registered complements ``c`` carries."""
    return [k for k in COMPLEMENTS if getattr(c, k.field) is not None]


def _concepto(parent: etree._Element, k: Concepto) -> None:
    el = _SE(
        parent,
        _C + "Concepto",
        _attrs(
            [
                ("ClaveProdServ", k.ClaveProdServ),
                ("NoIdentificacion", k.NoIdentificacion),
                ("Cantidad", k.Cantidad),
                ("ClaveUnidad", k.ClaveUnidad),
                ("Unidad", k.Unidad),
                ("Descripcion", k.Descripcion),
                ("ValorUnitario", k.ValorUnitario),
                ("Importe", k.Importe),
                ("Descuento", k.Descuento),
                ("ObjetoImp", k.ObjetoImp),
            ]
        ),
    )
    imp = k.Impuestos
    if imp is not None:
        ie = _SE(el, _C + "Impuestos")
        if imp.Traslados:
            te = _SE(ie, _C + "Traslados")
            for t in imp.Traslados:
                _SE(
                    te,
                    _C + "Traslado",
                    _attrs(
                        [
                            ("Base", t.Base),
                            ("Impuesto", t.Impuesto),
                            ("TipoFactor", t.TipoFactor),
                            ("TasaOCuota", t.TasaOCuota),
                            ("Importe", t.Importe),
                        ]
                    ),
                )
        if imp.Retenciones:
            re_ = _SE(ie, _C + "Retenciones")
            for r in imp.Retenciones:
                _SE(
                    re_,
                    _C + "Retencion",
                    _attrs(
                        [
                            ("Base", r.Base),
                            ("Impuesto", r.Impuesto),
                            ("TipoFactor", r.TipoFactor),
                            ("TasaOCuota", r.TasaOCuota),
                            ("Importe", r.Importe),
                        ]
                    ),
                )
    act = k.ACuentaTerceros
    if act is not None:
        _SE(
            el,
            _C + "ACuentaTerceros",
            _attrs(
                [
                    ("RfcACuentaTerceros", act.RfcACuentaTerceros),
                    ("NombreACuentaTerceros", act.NombreACuentaTerceros),
                    ("RegimenFiscalACuentaTerceros", act.RegimenFiscalACuentaTerceros),
                    ("DomicilioFiscalACuentaTerceros", act.DomicilioFiscalACuentaTerceros),
                ]
            ),
        )
    for numero in k.InformacionAduanera:
        _SE(el, _C + "InformacionAduanera", {"NumeroPedimento": numero})
    for numero in k.CuentaPredial:
        _SE(el, _C + "CuentaPredial", {"Numero": numero})
    if k.ComplementoConcepto:
        cc = _SE(el, _C + "ComplementoConcepto")
        for i, raw in enumerate(k.ComplementoConcepto):
            cc.append(_verbatim(raw, f"ComplementoConcepto[{i}]"))
    for parte in k.Parte:
        pe = _SE(
            el,
            _C + "Parte",
            _attrs(
                [
                    ("ClaveProdServ", parte.ClaveProdServ),
                    ("NoIdentificacion", parte.NoIdentificacion),
                    ("Cantidad", parte.Cantidad),
                    ("Unidad", parte.Unidad),
                    ("Descripcion", parte.Descripcion),
                    ("ValorUnitario", parte.ValorUnitario),
                    ("Importe", parte.Importe),
                ]
            ),
        )
        for numero in parte.InformacionAduanera:
            _SE(pe, _C + "InformacionAduanera", {"NumeroPedimento": numero})


def _verbatim(raw: bytes, where: str) -> etree._Element:
    """An element kept as serialized XML (an untyped complement), parsed safely again."""
    try:
        return parse_xml_bytes(raw)
    except XmlError as exc:
        raise XmlError.one(
            exc.code,
            f"{where} no es un elemento XML utilizable: {exc.problems[0].message}",
            where,
        ) from None


def _pagos(parent: etree._Element, pagos: Pagos) -> None:
    el = _SE(parent, _P + "Pagos", {"Version": pagos.Version})
    t = pagos.Totales
    _SE(
        el,
        _P + "Totales",
        _attrs(
            [
                ("TotalRetencionesIVA", t.TotalRetencionesIVA),
                ("TotalRetencionesISR", t.TotalRetencionesISR),
                ("TotalRetencionesIEPS", t.TotalRetencionesIEPS),
                ("TotalTrasladosBaseIVA16", t.TotalTrasladosBaseIVA16),
                ("TotalTrasladosImpuestoIVA16", t.TotalTrasladosImpuestoIVA16),
                ("TotalTrasladosBaseIVA8", t.TotalTrasladosBaseIVA8),
                ("TotalTrasladosImpuestoIVA8", t.TotalTrasladosImpuestoIVA8),
                ("TotalTrasladosBaseIVA0", t.TotalTrasladosBaseIVA0),
                ("TotalTrasladosImpuestoIVA0", t.TotalTrasladosImpuestoIVA0),
                ("TotalTrasladosBaseIVAExento", t.TotalTrasladosBaseIVAExento),
                ("MontoTotalPagos", t.MontoTotalPagos),
            ]
        ),
    )
    for p in pagos.Pago:
        pe = _SE(
            el,
            _P + "Pago",
            _attrs(
                [
                    ("FechaPago", p.FechaPago),
                    ("FormaDePagoP", p.FormaDePagoP),
                    ("MonedaP", p.MonedaP),
                    ("TipoCambioP", p.TipoCambioP),
                    ("Monto", p.Monto),
                    ("NumOperacion", p.NumOperacion),
                    ("RfcEmisorCtaOrd", p.RfcEmisorCtaOrd),
                    ("NomBancoOrdExt", p.NomBancoOrdExt),
                    ("CtaOrdenante", p.CtaOrdenante),
                    ("RfcEmisorCtaBen", p.RfcEmisorCtaBen),
                    ("CtaBeneficiario", p.CtaBeneficiario),
                    ("TipoCadPago", p.TipoCadPago),
                    ("CertPago", p.CertPago),
                    ("CadPago", p.CadPago),
                    ("SelloPago", p.SelloPago),
                ]
            ),
        )
        for d in p.DoctoRelacionado:
            de = _SE(
                pe,
                _P + "DoctoRelacionado",
                _attrs(
                    [
                        ("IdDocumento", d.IdDocumento),
                        ("Serie", d.Serie),
                        ("Folio", d.Folio),
                        ("MonedaDR", d.MonedaDR),
                        ("EquivalenciaDR", d.EquivalenciaDR),
                        ("NumParcialidad", d.NumParcialidad),
                        ("ImpSaldoAnt", d.ImpSaldoAnt),
                        ("ImpPagado", d.ImpPagado),
                        ("ImpSaldoInsoluto", d.ImpSaldoInsoluto),
                        ("ObjetoImpDR", d.ObjetoImpDR),
                    ]
                ),
            )
            idr = d.ImpuestosDR
            if idr is not None:
                ie = _SE(de, _P + "ImpuestosDR")
                if idr.RetencionesDR:
                    re_ = _SE(ie, _P + "RetencionesDR")
                    for r in idr.RetencionesDR:
                        _SE(
                            re_,
                            _P + "RetencionDR",
                            _attrs(
                                [
                                    ("BaseDR", r.BaseDR),
                                    ("ImpuestoDR", r.ImpuestoDR),
                                    ("TipoFactorDR", r.TipoFactorDR),
                                    ("TasaOCuotaDR", r.TasaOCuotaDR),
                                    ("ImporteDR", r.ImporteDR),
                                ]
                            ),
                        )
                if idr.TrasladosDR:
                    te = _SE(ie, _P + "TrasladosDR")
                    for t2 in idr.TrasladosDR:
                        _SE(
                            te,
                            _P + "TrasladoDR",
                            _attrs(
                                [
                                    ("BaseDR", t2.BaseDR),
                                    ("ImpuestoDR", t2.ImpuestoDR),
                                    ("TipoFactorDR", t2.TipoFactorDR),
                                    ("TasaOCuotaDR", t2.TasaOCuotaDR),
                                    ("ImporteDR", t2.ImporteDR),
                                ]
                            ),
                        )
        ip = p.ImpuestosP
        if ip is not None:
            ie = _SE(pe, _P + "ImpuestosP")
            if ip.RetencionesP:
                re_ = _SE(ie, _P + "RetencionesP")
                for r2 in ip.RetencionesP:
                    _SE(
                        re_,
                        _P + "RetencionP",
                        _attrs([("ImpuestoP", r2.ImpuestoP), ("ImporteP", r2.ImporteP)]),
                    )
            if ip.TrasladosP:
                te = _SE(ie, _P + "TrasladosP")
                for t3 in ip.TrasladosP:
                    _SE(
                        te,
                        _P + "TrasladoP",
                        _attrs(
                            [
                                ("BaseP", t3.BaseP),
                                ("ImpuestoP", t3.ImpuestoP),
                                ("TipoFactorP", t3.TipoFactorP),
                                ("TasaOCuotaP", t3.TasaOCuotaP),
                                ("ImporteP", t3.ImporteP),
                            ]
                        ),
                    )


def _tfd(parent: etree._Element, t: TimbreFiscalDigital) -> None:
    attrs = {_XSI_SCHEMA: SCHEMA_TFD}
    attrs.update(
        _attrs(
            [
                ("Version", t.Version),
                ("UUID", t.UUID),
                ("FechaTimbrado", t.FechaTimbrado),
                ("RfcProvCertif", t.RfcProvCertif),
                ("Leyenda", t.Leyenda),
                ("SelloCFD", t.SelloCFD),
                ("NoCertificadoSAT", t.NoCertificadoSAT),
                ("SelloSAT", t.SelloSAT),
            ]
        )
    )
    _SE(parent, _T + "TimbreFiscalDigital", attrs, nsmap={"tfd": NS_TFD})


def build_tree(c: Comprobante) -> etree._Element:
    """The lxml tree of a Comprobante (what ``to_xml`` serializes), built element by element
    (no source lines: XSD messages about it carry none). Sealing and ``to_xml`` write text
    instead (``xml_and_cadena``)."""
    try:
        return _build(c)
    except ValueError:  # lxml refuses characters XML cannot carry (NUL, control chars)
        raise _chars_error(c) from None


def _build(c: Comprobante) -> etree._Element:
    nsmap = {"cfdi": NS_CFDI, "xsi": NS_XSI}
    schema = SCHEMA_CFDI
    if c.Pagos is not None:
        nsmap["pago20"] = NS_PAGO20
        schema += " " + SCHEMA_PAGOS
    for k in _typed(c):
        nsmap[k.prefix] = k.namespace
        schema += " " + k.schema
    attrs = {_XSI_SCHEMA: schema}
    attrs.update(
        _attrs(
            [
                ("Version", c.Version),
                ("Serie", c.Serie),
                ("Folio", c.Folio),
                ("Fecha", c.Fecha),
                ("Sello", c.Sello),
                ("FormaPago", c.FormaPago),
                ("NoCertificado", c.NoCertificado),
                ("Certificado", c.Certificado),
                ("CondicionesDePago", c.CondicionesDePago),
                ("SubTotal", c.SubTotal),
                ("Descuento", c.Descuento),
                ("Moneda", c.Moneda),
                ("TipoCambio", c.TipoCambio),
                ("Total", c.Total),
                ("TipoDeComprobante", c.TipoDeComprobante),
                ("Exportacion", c.Exportacion),
                ("MetodoPago", c.MetodoPago),
                ("LugarExpedicion", c.LugarExpedicion),
                ("Confirmacion", c.Confirmacion),
            ]
        )
    )
    root = etree.Element(_C + "Comprobante", attrs, nsmap=nsmap)
    ig = c.InformacionGlobal
    if ig is not None:
        _SE(
            root,
            _C + "InformacionGlobal",
            {"Periodicidad": ig.Periodicidad, "Meses": ig.Meses, "Año": str(ig.Anio)},
        )
    for rel in c.CfdiRelacionados:
        re_ = _SE(root, _C + "CfdiRelacionados", {"TipoRelacion": rel.TipoRelacion})
        for uuid in rel.UUIDs:
            _SE(re_, _C + "CfdiRelacionado", {"UUID": uuid})
    e = c.Emisor
    _SE(
        root,
        _C + "Emisor",
        _attrs(
            [
                ("Rfc", e.Rfc),
                ("Nombre", e.Nombre),
                ("RegimenFiscal", e.RegimenFiscal),
                ("FacAtrAdquirente", e.FacAtrAdquirente),
            ]
        ),
    )
    r = c.Receptor
    _SE(
        root,
        _C + "Receptor",
        _attrs(
            [
                ("Rfc", r.Rfc),
                ("Nombre", r.Nombre),
                ("DomicilioFiscalReceptor", r.DomicilioFiscalReceptor),
                ("ResidenciaFiscal", r.ResidenciaFiscal),
                ("NumRegIdTrib", r.NumRegIdTrib),
                ("RegimenFiscalReceptor", r.RegimenFiscalReceptor),
                ("UsoCFDI", r.UsoCFDI),
            ]
        ),
    )
    conceptos = _SE(root, _C + "Conceptos")
    for k in c.Conceptos:
        _concepto(conceptos, k)
    imp = c.Impuestos
    if imp is not None:
        ie = _SE(
            root,
            _C + "Impuestos",
            _attrs(
                [
                    ("TotalImpuestosRetenidos", imp.TotalImpuestosRetenidos),
                    ("TotalImpuestosTrasladados", imp.TotalImpuestosTrasladados),
                ]
            ),
        )
        if imp.Retenciones:
            re_ = _SE(ie, _C + "Retenciones")
            for rr in imp.Retenciones:
                _SE(
                    re_,
                    _C + "Retencion",
                    _attrs([("Impuesto", rr.Impuesto), ("Importe", rr.Importe)]),
                )
        if imp.Traslados:
            te = _SE(ie, _C + "Traslados")
            for tr in imp.Traslados:
                _SE(
                    te,
                    _C + "Traslado",
                    _attrs(
                        [
                            ("Base", tr.Base),
                            ("Impuesto", tr.Impuesto),
                            ("TipoFactor", tr.TipoFactor),
                            ("TasaOCuota", tr.TasaOCuota),
                            ("Importe", tr.Importe),
                        ]
                    ),
                )
    typed = _typed(c)
    if c.Pagos is not None or typed or c.OtrosComplementos or c.TimbreFiscalDigital is not None:
        comp = _SE(root, _C + "Complemento")
        if c.Pagos is not None:
            _pagos(comp, c.Pagos)
        for k in typed:
            k.build(comp, getattr(c, k.field))
        for i, raw in enumerate(c.OtrosComplementos):
            comp.append(_verbatim(raw, f"OtrosComplementos[{i}]"))
        if c.TimbreFiscalDigital is not None:
            _tfd(comp, c.TimbreFiscalDigital)
    return root


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
# what lxml refuses in a value: control characters, U+FFFE, U+FFFF and lone surrogates
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

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
    for k in typed:
        out.append(f' xmlns:{k.prefix}="{k.namespace}"')
        schema += " " + k.schema
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
        for k in typed:
            k.write_text(out, cad, getattr(c, k.field))
        t = c.TimbreFiscalDigital
        if t is not None:
            out.append(
                f'<tfd:TimbreFiscalDigital xmlns:tfd="{NS_TFD}" xsi:schemaLocation="{SCHEMA_TFD}"'
            )
            _put(out, cad, t, _S_TFD)
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


def _chars_error(c: Comprobante) -> XmlError:
    """CONN-XML-CHARS at the first field whose value has a character XML cannot carry."""
    path, char = _bad_char(c.model_dump(by_alias=True), "")
    what = f"el carácter U+{ord(char):04X}" if char else "un carácter"
    field = f"El valor de {path}" if path else "Un valor del comprobante"
    return XmlError.one(
        "CONN-XML-CHARS",
        f"{field} contiene {what}, que XML no admite (caracteres de control como NUL; "
        "tabulador y saltos de línea sí se admiten): quítelo del dato en el ERP.",
        path,
    )


def _bad_char(value: Any, path: str) -> tuple[str, str]:
    if isinstance(value, str):
        m = _NOT_XML.search(value)
        return (path, m.group()) if m else ("", "")
    items = (
        value.items() if isinstance(value, dict)
        else ((f"[{i}]", v) for i, v in enumerate(value)) if isinstance(value, list)
        else ()
    )  # fmt: skip
    for key, v in items:
        sub = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        found = _bad_char(v, sub)
        if found[1]:
            return found
    return "", ""


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
                etree.tostring(x, with_tail=False) for x in child if isinstance(x.tag, str)
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
                    otros.append(etree.tostring(comp, with_tail=False))
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


# --- XSD validation -----------------------------------------------------------------------------
#
# libxml2 checks an xs:enumeration facet by walking the whole list, and SAT's catalogs put
# ~52,000 codes in c_ClaveProdServ, ~96,000 in c_CodigoPostal and ~2,400 in c_ClaveUnidad: that
# alone costs tens of milliseconds per invoice. The schema is therefore compiled with those three
# enumerations taken out (everything else exactly SAT's), and the same membership check is done
# here against the very same code lists, as sets. Errors read like libxml2's.

_UNKNOWN_COMPLEMENT = "No matching global element declaration available, but demanded by the strict"
_BIG_CATALOGS = ("c_ClaveProdServ", "c_CodigoPostal", "c_ClaveUnidad")
# catComExt.xsd's ~26,000 fracciones arancelarias: ~1.3 ms per Mercancia walked by libxml2
_BIG_COMEXT = ("c_FraccionArancelaria",)
# catCartaPorte.xsd's ~48,700 c_ClaveProdServCP, ~4,700 c_MaterialPeligroso and ~8,400
# c_Estaciones: ~2 ms per Mercancia walked by libxml2
_BIG_CP = ("c_ClaveProdServCP", "c_MaterialPeligroso", "c_Estaciones")
_XS = "{http://www.w3.org/2001/XMLSchema}"
_CP31 = "{http://www.sat.gob.mx/CartaPorte31}"
_CCE20 = "{" + NS_CCE20 + "}"
_CAT_CFDI = SAT_DIR / "cfd" / "catalogos" / "catCFDI.xsd"
_CAT_COMEXT = SAT_DIR / "cfd" / "catalogos" / "ComExt" / "catComExt.xsd"
_CAT_CP = SAT_DIR / "cfd" / "catalogos" / "CartaPorte" / "catCartaPorte.xsd"
_LIGHTENED = {_CAT_CFDI: _BIG_CATALOGS, _CAT_COMEXT: _BIG_COMEXT, _CAT_CP: _BIG_CP}
_catalog_values: dict[str, frozenset[str]] = {}
_schema: etree.XMLSchema | None = None
_schema_lock = threading.Lock()


def _light_schema_files(tmp: Path) -> Path:
    """Write to ``tmp`` the schema documents that lead to catCFDI.xsd, catComExt.xsd or
    catCartaPorte.xsd, with their big enumerations (``_LIGHTENED``) taken out (their codes go to
    ``_catalog_values``) and every schemaLocation made absolute; returns the wrapper to compile. Files, not an lxml resolver: libxml2 may
    load a schema's imports without asking the resolver while another thread parses a file,
    and the full catalogs would then come back silently."""
    written: dict[Path, Path] = {}

    def light(src: Path) -> bool:
        """True when ``src`` is, or imports, a lightened catalog (then its copy is in
        ``written``)."""
        if src in written:
            return True
        tree = etree.parse(str(src), etree.XMLParser(no_network=True))
        if src in _LIGHTENED:
            for st in tree.getroot().iterchildren(_XS + "simpleType"):
                if st.get("name") in _LIGHTENED[src]:
                    values = []
                    for enum in list(st.iter(_XS + "enumeration")):
                        values.append(enum.get("value", ""))
                        enum.getparent().remove(enum)
                    _catalog_values[st.get("name", "")] = frozenset(values)
        else:
            changed = False
            for ref in tree.getroot().iterchildren(_XS + "import", _XS + "include"):
                location = ref.get("schemaLocation", "")
                if not location or "://" in location:
                    continue
                target = (src.parent / location).resolve()
                if light(target):
                    ref.set("schemaLocation", written[target].as_uri())
                    changed = True
                else:
                    ref.set("schemaLocation", target.as_uri())
            if not changed:
                return False
        written[src] = tmp / f"{len(written)}-{src.name}"
        tree.write(str(written[src]), xml_declaration=True, encoding="UTF-8")
        return True

    if not light(XSD_WRAPPER.resolve()):  # pragma: no cover - only if SAT's files were changed
        raise RuntimeError("catCFDI.xsd no se encuentra entre los esquemas del SAT")
    return written[XSD_WRAPPER.resolve()]


def _get_schema() -> etree.XMLSchema:
    global _schema
    if _schema is None:
        with _schema_lock:
            if _schema is None:
                # SAT's schemas are package files: trusted, imports made absolute above.
                with tempfile.TemporaryDirectory(prefix="cfdi-xsd-") as tmp:
                    wrapper = _light_schema_files(Path(tmp))
                    parser = etree.XMLParser(no_network=True)
                    schema = etree.XMLSchema(etree.parse(str(wrapper), parser))
                missing = [
                    n for n in _BIG_CATALOGS + _BIG_COMEXT + _BIG_CP if not _catalog_values.get(n)
                ]
                if missing:  # pragma: no cover - only if SAT's files were changed
                    raise RuntimeError(f"catálogos no encontrados en catCFDI.xsd: {missing}")
                _schema = schema
    return _schema


def _collapse(value: str) -> str:
    """XSD whiteSpace="collapse" (the catalogs' facet)."""
    spaced = value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return " ".join(part for part in spaced.split(" ") if part)


def _catalog_problems(root: etree._Element, lines: bool) -> list[Problem]:
    if root.tag != _C + "Comprobante":
        return []
    problems: list[Problem] = []
    values = _catalog_values

    def check(el: etree._Element, attr: str, catalog: str) -> None:
        v = el.get(attr)
        if v is None or v in values[catalog] or _collapse(v) in values[catalog]:
            return
        where = f" (línea {el.sourceline})" if lines and el.sourceline else ""
        xpath = el.getroottree().getpath(el)
        tag = etree.QName(el).localname
        detail = _xm.facet_detail("enumeration", f"{attr} de {tag}", v, {"type": catalog})
        problems.append(
            Problem("CONN-XSD", _xm.model_path(xpath, attr), f"{_xm.PREFIX}{where}: {detail}.")
        )

    check(root, "LugarExpedicion", "c_CodigoPostal")
    for conceptos in root.iterchildren(_C + "Conceptos"):
        for k in conceptos.iterchildren(_C + "Concepto"):
            check(k, "ClaveProdServ", "c_ClaveProdServ")
            check(k, "ClaveUnidad", "c_ClaveUnidad")
            for parte in k.iterchildren(_C + "Parte"):
                check(parte, "ClaveProdServ", "c_ClaveProdServ")
    for comp in root.iterchildren(_C + "Complemento"):
        for m in comp.iter(_CP31 + "Mercancia"):
            check(m, "ClaveUnidad", "c_ClaveUnidad")
            check(m, "BienesTransp", "c_ClaveProdServCP")
            check(m, "CveMaterialPeligroso", "c_MaterialPeligroso")
        for u in comp.iter(_CP31 + "Ubicacion"):
            check(u, "NumEstacion", "c_Estaciones")
        for d in comp.iterfind(f"{_CCE20}ComercioExterior/{_CCE20}Emisor/{_CCE20}Domicilio"):
            check(d, "CodigoPostal", "c_CodigoPostal")
        for m in comp.iterfind(f"{_CCE20}ComercioExterior/{_CCE20}Mercancias/{_CCE20}Mercancia"):
            check(m, "FraccionArancelaria", "c_FraccionArancelaria")
    return problems


def validate_xsd(
    xml: bytes | etree._Element | etree._ElementTree, *, lines: bool = True
) -> list[Problem]:
    """Validate against SAT's CFDI 4.0 XSD (with TFD 1.1, Pagos 2.0, Carta Porte 3.1,
    Comercio Exterior 2.0 and Nómina 1.2).

    Returns one ``Problem`` (code ``CONN-XSD``) per schema error and attribute, with its model
    path and a Spanish message naming the field, SAT's limit and the value cut short
    (``xsd_messages``), and the line in the document unless ``lines`` is false; bytes
    that are not XML give the parsing problem instead. A complement whose XSD is not shipped
    gives a ``CONN-XSD-COMPLEMENTO`` warning.
    """
    if isinstance(xml, bytes | bytearray | memoryview):
        try:
            doc: Any = parse_xml_bytes(bytes(xml))
        except XmlError as exc:
            return list(exc.problems)
    else:
        doc = xml
    schema = _get_schema()
    # XMLSchema objects are not safe to share between threads while validating.
    with _schema_lock:
        ok = schema.validate(doc)
        errors = [] if ok else list(schema.error_log)
    root = doc.getroot() if isinstance(doc, etree._ElementTree) else doc
    problems = []
    reported: set[tuple[str, str]] = set()
    for err in errors:
        if _UNKNOWN_COMPLEMENT in err.message:
            # A complement whose XSD is not shipped: it cannot be checked here (the PAC will).
            where = f" (línea {err.line})" if err.line else ""
            problems.append(
                Problem(
                    code="CONN-XSD-COMPLEMENTO",
                    path=err.path or "",
                    message=f"No se validó el complemento{where}: su esquema XSD no se incluye "
                    f"en este conector ({err.message})",
                    severity="warning",
                )
            )
            continue
        problem, about = _xm.xsd_problem(err, root, XSD_WRAPPER, lines=lines)
        if about[1] and about in reported:
            continue  # libxml2 reports a value once per facet and again for its type
        reported.add(about)
        problems.append(problem)
    problems.extend(_catalog_problems(root, lines))
    return problems


_SEAL_PLACEHOLDERS = {"NoCertificado": "0" * 20, "Certificado": "-", "Sello": "-"}


def validate_limits(doc: Comprobante | bytes) -> list[Problem]:
    """SAT's schema checked on an invoice before it is sealed or sent (the document a
    Comprobante builds, or an ERP's unsealed XML): every length, pattern and catalog of the
    XSD, so an invoice the PAC would reject (301) is never sent. Seal attributes not there yet
    get valid placeholders."""
    if isinstance(doc, bytes):
        try:
            root = parse_xml_bytes(doc)
        except XmlError as exc:
            return list(exc.problems)
        for name, placeholder in _SEAL_PLACEHOLDERS.items():
            if not root.get(name):
                root.set(name, placeholder)
        return validate_xsd(root)
    unsealed = {k: v for k, v in _SEAL_PLACEHOLDERS.items() if not getattr(doc, k, None)}
    c = doc.model_copy(update=unsealed) if unsealed else doc
    try:
        text = xml_text(c)
    except XmlError as exc:
        return list(exc.problems)
    return validate_xsd(parse_own(text) if text is not None else build_tree(c), lines=False)
