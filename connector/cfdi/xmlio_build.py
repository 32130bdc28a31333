"""Model → XML as lxml elements (``build_tree``), attribute by attribute in the order SAT's XSD
declares them; the path for documents with verbatim parts (``OtrosComplementos``,
``ComplementoConcepto``) and what ``xmlio_text``'s fast path must equal."""

from __future__ import annotations

from lxml import etree

from .errors import XmlError
from .model import (
    NS_CFDI,
    NS_PAGO20,
    NS_TFD,
    NS_XSI,
    Comprobante,
    Concepto,
    Pagos,
    TimbreFiscalDigital,
)
from .xmlio_base import (
    _C,
    _P,
    _T,
    _XSI_SCHEMA,
    SCHEMA_CFDI,
    SCHEMA_PAGOS,
    SCHEMA_TFD,
    _attrs,
    _chars_error,
    _typed,
    parse_xml_bytes,
)

_SE = etree.SubElement


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
    for ext in _typed(c):
        nsmap[ext.prefix] = ext.namespace
        schema += " " + ext.schema
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
        for ext in typed:
            ext.build(comp, getattr(c, ext.field))
        for i, raw in enumerate(c.OtrosComplementos):
            comp.append(_verbatim(raw, f"OtrosComplementos[{i}]"))
        if c.TimbreFiscalDigital is not None:
            _tfd(comp, c.TimbreFiscalDigital)
    return root
