"""FEL Conexión Remota data contract ``Comprobante40R`` ⇄ ``connector.cfdi.model.Comprobante``.

One mapping for both directions: the FEL driver builds the ``cfdi`` argument of
``GenerarCFDI40`` with :func:`to_comprobante40r`, and the sandbox PAC reads it back with
:func:`from_comprobante40r`.

The dict shape is the one zeep takes and gives (``zeep.helpers.serialize_object``): WCF arrays are
wrappers, e.g. ``{"Conceptos": {"Concepto40R": [...]}}``. :func:`from_comprobante40r` also accepts
plain lists for arrays and the ``cfdi`` lxml element of a request.

What Comprobante40R does not carry and how it is filled:

* ``Emisor/@Rfc``: the RFC of the CSD stored in the account (argument ``rfc_emisor``);
* ``TipoDeComprobante``: from ``ClaveCFDI`` (FAC/HON/ARR/DON → I, CRE/NCR → E, POR/TRA → T,
  NOM → N, PAG → P; a bare I/E/T/N/P is accepted too);
* comprobante-level ``Impuestos``: derived from the conceptos by ``connector.cfdi.amounts``;
* ``Sello``/``NoCertificado``/``Certificado``: FEL seals with the account's CSD.

* Pagos 2.0 (``Pagos20R``): every Pago and DoctoRelacionado field is carried; ``ImpuestosP``
  and ``Totales`` are not in the contract and are derived again by ``amounts.complete``.

Not mapped: the other complements (Nómina, Carta Porte, Comercio Exterior… and anything in
``OtrosComplementos``); a Comprobante carrying them is refused with ``CONN-REMOTE-UNSUPPORTED``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from lxml import etree

from connector.cfdi.errors import CfdiError, Problem
from connector.cfdi.model import (
    ACuentaTerceros,
    Comprobante,
    Concepto,
    Pago,
    Receptor,
    Traslado,
    TrasladoDR,
    attribute_fields,
    load_invoice,
)

NS_CR = "http://schemas.datacontract.org/2004/07/TES.V33.CFDI.Negocios"

CLAVE_TO_TIPO = {
    "FAC": "I",
    "HON": "I",
    "ARR": "I",
    "DON": "I",
    "CRE": "E",
    "NCR": "E",
    "POR": "T",
    "TRA": "T",
    "NOM": "N",
    "PAG": "P",
}
TIPO_TO_CLAVE = {"I": "FAC", "E": "CRE", "T": "POR", "N": "NOM", "P": "PAG"}

# array fields of the contract → the WCF item element name
ARRAYS = {
    "Conceptos": "Concepto40R",
    "CfdiRelacionados": "CfdiRelacionados40R",
    "CfdiRelacionado": "CfdiRelacionado40R",
    "Traslados": "TrasladoConcepto40R",
    "Retenciones": "RetencionConcepto40R",
    "InformacionAduanera": "InformacionAduanera40R",
    "CuentaPredial": "CuentaPredial40R",
    "Pago": "PagosPago20R",
    "DoctoRelacionado": "PagosPagoDoctoRelacionado20R",
    "TrasladosDR": "PagosPagoDoctoRelacionadoImpuestosDRTrasladoDR20R",
    "RetencionesDR": "PagosPagoDoctoRelacionadoImpuestosDRRetencionDR20R",
}

_SIMPLE = (
    "Serie",
    "Folio",
    "FormaPago",
    "CondicionesDePago",
    "SubTotal",
    "Descuento",
    "Moneda",
    "TipoCambio",
    "Total",
    "Exportacion",
    "MetodoPago",
    "LugarExpedicion",
    "Confirmacion",
)
_CONCEPTO = attribute_fields(Concepto)
_TAX = attribute_fields(Traslado)
_RECEPTOR = attribute_fields(Receptor)
_TERCEROS = attribute_fields(ACuentaTerceros)
_PAGO = attribute_fields(Pago)
_DOCTO = (
    "IdDocumento",
    "Serie",
    "Folio",
    "MonedaDR",
    "EquivalenciaDR",
    "ImpSaldoAnt",
    "ImpPagado",
    "ImpSaldoInsoluto",
    "ObjetoImpDR",
)
_TAX_DR = attribute_fields(TrasladoDR)
_UNSUPPORTED = (
    "Nomina",
    "CartaPorte20",
    "CartaPorte30",
    "CartaPorte31",
    "ComercioExterior",
    "ComercioExterior20",
)


# --- Comprobante → Comprobante40R ----------------------------------------------------------------


def _pick(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            out[name] = value
    return out


def to_comprobante40r(
    c: Comprobante, *, referencia: str | None = None, clave_cfdi: str | None = None
) -> dict[str, Any]:
    """The ``cfdi`` argument of ``GenerarCFDI40`` (zeep dict shape) for a Comprobante."""
    unsupported = [
        Problem(
            code="CONN-REMOTE-UNSUPPORTED",
            path=name,
            message=f"Conexión Remota: el complemento {name} no está soportado por este conector.",
        )
        for name, present in (
            ("ComercioExterior", c.ComercioExterior is not None),
            ("CartaPorte", c.CartaPorte is not None),
            ("OtrosComplementos", c.OtrosComplementos),
        )
        if present
    ]
    if unsupported:
        raise CfdiError(unsupported)
    data: dict[str, Any] = _pick(c, _SIMPLE)
    data["Fecha"] = c.Fecha
    data["ClaveCFDI"] = clave_cfdi or TIPO_TO_CLAVE.get(c.TipoDeComprobante, c.TipoDeComprobante)
    if referencia:
        data["Referencia"] = referencia
    if c.InformacionGlobal is not None:
        ig = c.InformacionGlobal
        data["InformacionGlobal"] = {
            "Año": ig.Anio,
            "Meses": ig.Meses,
            "Periodicidad": ig.Periodicidad,
        }
    if c.CfdiRelacionados:
        data["CfdiRelacionados"] = {
            "CfdiRelacionados40R": [
                {
                    "CfdiRelacionado": {"CfdiRelacionado40R": [{"UUID": u} for u in rel.UUIDs]},
                    "TipoRelacion": rel.TipoRelacion,
                }
                for rel in c.CfdiRelacionados
            ]
        }
    data["Emisor"] = _pick(c.Emisor, ("Nombre", "RegimenFiscal", "FacAtrAdquirente"))
    data["Receptor"] = _pick(c.Receptor, _RECEPTOR)
    conceptos = []
    for k in c.Conceptos:
        item = _pick(k, _CONCEPTO)
        if k.Impuestos is not None:
            imp: dict[str, Any] = {}
            if k.Impuestos.Traslados:
                imp["Traslados"] = {
                    "TrasladoConcepto40R": [_pick(t, _TAX) for t in k.Impuestos.Traslados]
                }
            if k.Impuestos.Retenciones:
                imp["Retenciones"] = {
                    "RetencionConcepto40R": [_pick(r, _TAX) for r in k.Impuestos.Retenciones]
                }
            item["Impuestos"] = imp
        if k.ACuentaTerceros is not None:
            item["ACuentaTerceros"] = _pick(k.ACuentaTerceros, _TERCEROS)
        if k.InformacionAduanera:
            item["InformacionAduanera"] = {
                "InformacionAduanera40R": [{"NumeroPedimento": n} for n in k.InformacionAduanera]
            }
        if k.CuentaPredial:
            item["CuentaPredial"] = {"CuentaPredial40R": [{"Numero": n} for n in k.CuentaPredial]}
        conceptos.append(item)
    data["Conceptos"] = {"Concepto40R": conceptos}
    if c.Pagos is not None:
        data["Pagos"] = {
            "Version": c.Pagos.Version,
            "Pago": {"PagosPago20R": [_pago_to_r(p) for p in c.Pagos.Pago]},
        }
    return data


def _pago_to_r(p: Any) -> dict[str, Any]:
    """A Pago 2.0 as ``PagosPago20R`` (ImpuestosP and Totales are derived by the service)."""
    out = _pick(p, _PAGO)
    doctos = []
    for d in p.DoctoRelacionado:
        item = _pick(d, _DOCTO)
        item["NumParcialidad"] = str(d.NumParcialidad)
        if d.ImpuestosDR is not None:
            imp: dict[str, Any] = {}
            if d.ImpuestosDR.TrasladosDR:
                imp["TrasladosDR"] = {
                    ARRAYS["TrasladosDR"]: [_pick(t, _TAX_DR) for t in d.ImpuestosDR.TrasladosDR]
                }
            if d.ImpuestosDR.RetencionesDR:
                imp["RetencionesDR"] = {
                    ARRAYS["RetencionesDR"]: [
                        _pick(r, _TAX_DR) for r in d.ImpuestosDR.RetencionesDR
                    ]
                }
            item["ImpuestosDR"] = imp
        doctos.append(item)
    out["DoctoRelacionado"] = {ARRAYS["DoctoRelacionado"]: doctos}
    return out


# --- Comprobante40R → Comprobante ----------------------------------------------------------------


def _pago_from_r(p: dict[str, Any]) -> dict[str, Any]:
    out = _some(p, _PAGO)
    doctos = []
    for d in _items(p.get("DoctoRelacionado"), "DoctoRelacionado"):
        item = _some(d, _DOCTO)
        if d.get("NumParcialidad") is not None:
            item["NumParcialidad"] = d["NumParcialidad"]
        imp = d.get("ImpuestosDR")
        if imp:
            item["ImpuestosDR"] = {
                "TrasladosDR": [
                    _some(t, _TAX_DR) for t in _items(imp.get("TrasladosDR"), "TrasladosDR")
                ],
                "RetencionesDR": [
                    _some(r, _TAX_DR) for r in _items(imp.get("RetencionesDR"), "RetencionesDR")
                ],
            }
        doctos.append(item)
    out["DoctoRelacionado"] = doctos
    return out


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def element_to_dict(el: etree._Element) -> dict[str, Any]:
    """A ``Comprobante40R`` element (any prefix) as plain data; arrays become lists."""
    out: dict[str, Any] = {}
    for child in el:
        name = _local(child.tag)
        if not name:
            continue
        if child.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true":
            out[name] = None
        elif name in ARRAYS:
            out[name] = [element_to_dict(item) for item in child if _local(item.tag)]
        elif len(child):
            out[name] = element_to_dict(child)
        else:
            out[name] = child.text or ""
    return out


def _items(value: Any, field: str) -> list[Any]:
    """Array value in either shape: a list, or a zeep wrapper ``{item_name: [...]}``."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        inner = value.get(ARRAYS[field])
        if inner is None and len(value) == 1:
            inner = next(iter(value.values()))
        if inner is None:
            return []
        return inner if isinstance(inner, list) else [inner]
    return [value]


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _fecha(value: Any) -> Any:
    text = _text(value)
    if isinstance(text, str) and len(text) > 19 and text[10:11] == "T":
        return text[:19]  # drop fractions / zone: CFDI 4.0 Fecha is local time to the second
    return text


def _some(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {n: _text(data[n]) for n in names if data.get(n) is not None}


def from_comprobante40r(
    data: dict[str, Any] | etree._Element, *, rfc_emisor: str = ""
) -> Comprobante:
    """Map a ``Comprobante40R`` to a Comprobante (derived amounts left for ``amounts.complete``).

    Raises ``CfdiError`` with Spanish problems when the data cannot be represented.
    """
    if isinstance(data, etree._Element):
        data = element_to_dict(data)
    if not isinstance(data, dict):
        raise CfdiError.one("CONN-DATA", "Comprobante40R vacío o con una forma no válida.")
    problems = [
        Problem(
            code="CONN-REMOTE-UNSUPPORTED",
            path=name,
            message=f"Conexión Remota: el complemento {name} no está soportado por el sandbox.",
        )
        for name in _UNSUPPORTED
        if data.get(name)
    ]
    if problems:
        raise CfdiError(problems)
    out: dict[str, Any] = _some(data, _SIMPLE)
    out["Fecha"] = _fecha(data.get("Fecha"))
    clave = str(data.get("ClaveCFDI") or "").strip().upper()
    out["TipoDeComprobante"] = CLAVE_TO_TIPO.get(clave, clave)
    ig = data.get("InformacionGlobal")
    if ig:
        out["InformacionGlobal"] = {
            "Periodicidad": ig.get("Periodicidad"),
            "Meses": ig.get("Meses"),
            "Año": ig.get("Año"),
        }
    relacionados = []
    for rel in _items(data.get("CfdiRelacionados"), "CfdiRelacionados"):
        uuids = [u.get("UUID") for u in _items(rel.get("CfdiRelacionado"), "CfdiRelacionado") if u]
        relacionados.append({"TipoRelacion": rel.get("TipoRelacion"), "UUIDs": uuids})
    if relacionados:
        out["CfdiRelacionados"] = relacionados
    emisor = data.get("Emisor") or {}
    out["Emisor"] = {
        "Rfc": rfc_emisor,
        **_some(emisor, ("Nombre", "RegimenFiscal", "FacAtrAdquirente")),
    }
    out["Receptor"] = _some(data.get("Receptor") or {}, _RECEPTOR)
    conceptos = []
    for k in _items(data.get("Conceptos"), "Conceptos"):
        item = _some(k, _CONCEPTO)
        imp = k.get("Impuestos")
        if imp:
            traslados = [_some(t, _TAX) for t in _items(imp.get("Traslados"), "Traslados")]
            retenciones = [_some(r, _TAX) for r in _items(imp.get("Retenciones"), "Retenciones")]
            if traslados or retenciones:
                item["Impuestos"] = {"Traslados": traslados, "Retenciones": retenciones}
        if k.get("ACuentaTerceros"):
            item["ACuentaTerceros"] = _some(k["ACuentaTerceros"], _TERCEROS)
        pedimentos = _items(k.get("InformacionAduanera"), "InformacionAduanera")
        if pedimentos:
            item["InformacionAduanera"] = [p.get("NumeroPedimento") for p in pedimentos]
        cuentas = _items(k.get("CuentaPredial"), "CuentaPredial")
        if cuentas:
            item["CuentaPredial"] = [p.get("Numero") for p in cuentas]
        conceptos.append(item)
    out["Conceptos"] = conceptos
    pagos = data.get("Pagos")
    if pagos:
        out["Pagos"] = {
            "Version": pagos.get("Version") or "2.0",
            "Pago": [_pago_from_r(p) for p in _items(pagos.get("Pago"), "Pago")],
        }
    comprobante, load_problems = load_invoice(out)
    if comprobante is None:
        raise CfdiError(load_problems)
    return comprobante


__all__ = [
    "ARRAYS",
    "CLAVE_TO_TIPO",
    "NS_CR",
    "TIPO_TO_CLAVE",
    "element_to_dict",
    "from_comprobante40r",
    "to_comprobante40r",
]
