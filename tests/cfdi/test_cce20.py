"""Comercio Exterior 2.0 as mapped data: the model, its XML (SAT's XSD), its cadena (SAT's XSLT),
the seal, and the complement's rules, each invalid case rejected with its code."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from connector.cfdi import cadena, rules, xmlio, xmlio_xsd
from connector.cfdi.amounts import complete
from connector.cfdi.cce20 import NS_CCE20, comext_catalogs
from connector.cfdi.model import Comprobante
from connector.cfdi.rules_cce20 import MESSAGES_CCE, validate_cce20
from connector.cfdi.seal import seal_invoice, verify_seal

from .base_invoice import cce_data, load
from .strategies import shared_test_csd


def _invoice(data: dict[str, Any] | None = None) -> Comprobante:
    return complete(load(data if data is not None else cce_data()))


def test_the_valid_export_invoice_passes_every_rule_and_the_xsd() -> None:
    c = _invoice()
    assert rules.validate(c) == []
    assert xmlio.validate_limits(c) == []


def test_xml_has_the_namespace_schema_location_and_sat_order() -> None:
    c = _invoice()
    root = etree.fromstring(xmlio.to_xml(c))
    assert root.nsmap["cce20"] == NS_CCE20
    loc = root.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation")
    assert "ComercioExterior20/ComercioExterior20.xsd" in loc
    (cce,) = root.iter(f"{{{NS_CCE20}}}ComercioExterior")
    assert [etree.QName(e).localname for e in cce] == ["Emisor", "Receptor", "Mercancias"]
    assert list(cce.attrib) == [
        "Version", "ClaveDePedimento", "CertificadoOrigen", "Incoterm", "TipoCambioUSD",
        "TotalUSD",
    ]  # fmt: skip


def test_text_path_equals_element_path_and_reads_back_unchanged() -> None:
    c = _invoice()
    text = xmlio.to_xml(c)
    assert text == xmlio.serialize(xmlio.build_tree(c))
    assert xmlio.from_xml(text) == c


def test_cadena_fast_paths_equal_sats_xslt() -> None:
    data = cce_data()
    cce = data["ComercioExterior"]
    # every node and optional attribute of the complement, with spaces to normalize
    cce.update(NumeroExportadorConfiable="EXP 123", Observaciones="  Entrega  en\tfrontera ")
    cce["Emisor"]["Curp"] = None
    cce["Destinatario"] = [
        {
            "NumRegIdTrib": "987654321",
            "Nombre": "ACME  Warehouse",
            "Domicilio": [
                {"Calle": "Dock 4", "Colonia": "Port", "Localidad": "Laredo", "Municipio": "Webb",
                 "Referencia": "Gate B", "NumeroInterior": "2", "Estado": "TX", "Pais": "USA",
                 "CodigoPostal": "78040"},
            ],
        }
    ]  # fmt: skip
    c = _invoice(data)
    xml = xmlio.to_xml(c)
    want = cadena.cadena_original_xslt(xml)
    assert "|EXP 123|FOB|Entrega en frontera|" in want and "|ACME Warehouse|" in want
    assert cadena.cadena_original(c) == want  # from the model (what sealing uses)
    assert cadena.cadena_original(xml) == want  # walking a parsed document


def test_sealed_export_invoice_verifies() -> None:
    xml = seal_invoice(_invoice(), shared_test_csd())
    assert verify_seal(xml) == []
    assert xmlio.validate_xsd(xml) == []
    assert f"{{{NS_CCE20}}}ComercioExterior" in {e.tag for e in etree.fromstring(xml).iter()}


def test_typed_complement_counts_for_the_cfdi40_rules() -> None:
    # CFDI40222: Exportacion 01 with the complement (the typed one, not only verbatim XML)
    data = cce_data()
    data["Exportacion"] = "01"
    assert "CFDI40222" in {p.code for p in rules.validate(_invoice(data))}
    data = cce_data()
    data["Conceptos"][0]["InformacionAduanera"] = ["23  47  3807  3000123"]
    assert "CFDI40195" in {p.code for p in rules.validate(_invoice(data))}


def test_catalogs_come_from_catcomext() -> None:
    cats = comext_catalogs()
    assert len(cats.FraccionArancelaria) > 20000
    assert "99" in cats.UnidadAduana and "FOB" in cats.INCOTERM
    assert cats.ClavePedimento == {"A1"} and "05" in cats.MotivoTraslado


# --- invalid cases, one per code --------------------------------------------------------------

Edit = Callable[[dict[str, Any]], None]


def _merc(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["ComercioExterior"]["Mercancias"][i]


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], **values: Any) -> Edit:
    return lambda d: path(d).update(values)


def _root(d: dict[str, Any]) -> dict[str, Any]:
    return d["ComercioExterior"]


def _traslado(d: dict[str, Any], motivo: str | None) -> None:
    d.update(TipoDeComprobante="T", FormaPago=None, MetodoPago=None, Moneda="XXX")
    d.pop("TipoCambio")
    d["Receptor"]["UsoCFDI"] = "S01"
    for k in d["Conceptos"]:
        k.update(ObjetoImp="01", ValorUnitario="0")
        k.pop("Impuestos")
    d["ComercioExterior"]["MotivoTraslado"] = motivo


def _tipo_t_moneda_usd(d: dict[str, Any], motivo: str | None) -> None:
    _traslado(d, motivo)
    d.update(Moneda="MXN")


def _drop_emisor(d: dict[str, Any]) -> None:
    del d["ComercioExterior"]["Emisor"]


def _drop_receptor(d: dict[str, Any]) -> None:
    del d["ComercioExterior"]["Receptor"]


def _no_mercancias(d: dict[str, Any]) -> None:
    d["ComercioExterior"]["Mercancias"] = []


def _duplicate(d: dict[str, Any]) -> None:
    m = d["ComercioExterior"]["Mercancias"]
    m.append(copy.deepcopy(m[0]))


def _propietario_on_i(d: dict[str, Any]) -> None:
    d["ComercioExterior"]["Propietario"] = [
        {"NumRegIdTrib": "121585958", "ResidenciaFiscal": "USA"}
    ]


def _egreso(d: dict[str, Any]) -> None:
    d.update(TipoDeComprobante="E")


def _concepto_sin_mercancia(d: dict[str, Any]) -> None:
    d["Conceptos"][1]["NoIdentificacion"] = "OTRO"


def _curp_moral(d: dict[str, Any]) -> None:
    d["ComercioExterior"]["Emisor"]["Curp"] = "CACX760510MGTSHC04"


def _receptor_domicilio_mex_bad(d: dict[str, Any]) -> None:
    dom = d["ComercioExterior"]["Receptor"]["Domicilio"]
    dom.update(Pais="MEX", Estado="TX", CodigoPostal="00001")


CASES: list[tuple[str, Edit, str]] = [
    ("CONN-CCE-001", _egreso, "TipoDeComprobante"),
    ("CONN-CCE-002", lambda d: d.update(Exportacion="04"), "Exportacion"),
    ("CONN-CCE-003", lambda d: _traslado(d, "01"), "Moneda"),
    ("CONN-CCE-004", _set(_root, TipoCambioUSD="17.4000"), "ComercioExterior.TipoCambioUSD"),
    ("CONN-CCE-005", _set(_root, TotalUSD="2252.60"), "ComercioExterior.TotalUSD"),
    ("CONN-CCE-006", _set(_merc(0), ValorUnitarioAduana="99.00"),
     "ComercioExterior.Mercancias[0].ValorDolares"),
    ("CONN-CCE-007", _set(_merc(0), UnidadAduana=None),
     "ComercioExterior.Mercancias[0].UnidadAduana"),
    ("CONN-CCE-008", _set(_merc(1), NoIdentificacion="NOEXISTE"),
     "ComercioExterior.Mercancias[1].NoIdentificacion"),
    ("CONN-CCE-009", _concepto_sin_mercancia, "Conceptos[1].NoIdentificacion"),
    ("CONN-CCE-010", _duplicate, "ComercioExterior.Mercancias[2]"),
    ("CONN-CCE-011", _set(_merc(0), FraccionArancelaria="8471300100"),
     "ComercioExterior.Mercancias[0].FraccionArancelaria"),
    ("CONN-CCE-012", _set(_merc(0), UnidadAduana="55"),
     "ComercioExterior.Mercancias[0].UnidadAduana"),
    ("CONN-CCE-013", lambda d: _tipo_t_moneda_usd(d, None), "ComercioExterior.MotivoTraslado"),
    ("CONN-CCE-014", _set(_root, MotivoTraslado="01"), "ComercioExterior.MotivoTraslado"),
    ("CONN-CCE-015", _propietario_on_i, "ComercioExterior.Propietario[0]"),
    ("CONN-CCE-016", _set(_root, NumCertificadoOrigen="CO-123456"),
     "ComercioExterior.NumCertificadoOrigen"),
    ("CONN-CCE-017", _drop_emisor, "ComercioExterior.Emisor"),
    ("CONN-CCE-018", lambda d: _root(d)["Emisor"]["Domicilio"].update(Pais="USA", Estado="TX"),
     "ComercioExterior.Emisor.Domicilio.Pais"),
    ("CONN-CCE-019", lambda d: _root(d)["Receptor"]["Domicilio"].update(Estado="ON"),
     "ComercioExterior.Receptor.Domicilio.Estado"),
    ("CONN-CCE-020", _receptor_domicilio_mex_bad, "ComercioExterior.Receptor.Domicilio.CodigoPostal"),
    ("CONN-CCE-021", _curp_moral, "ComercioExterior.Emisor.Curp"),
    ("CONN-CCE-022", _drop_receptor, "ComercioExterior.Receptor.Domicilio"),
    ("CONN-CCE-023", _set(_root, ClaveDePedimento="V1"), "ComercioExterior.ClaveDePedimento"),
    ("CONN-CCE-024", _set(_root, Incoterm="XYZ"), "ComercioExterior.Incoterm"),
    ("CONN-CCE-025", lambda d: _tipo_t_moneda_usd(d, "07"), "ComercioExterior.MotivoTraslado"),
    ("CONN-CCE-026", _no_mercancias, "ComercioExterior.Mercancias"),
    ("CONN-CCE-027", lambda d: d["Conceptos"][0].update(ValorUnitario="101.00"),
     "ComercioExterior.Mercancias[0].ValorDolares"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "edit", "path"), CASES, ids=[c[0] for c in CASES])
def test_invalid_case_is_rejected_with_its_code(code: str, edit: Edit, path: str) -> None:
    data = cce_data()
    edit(data)
    problems = rules.validate(_invoice(data))
    hits = [p for p in problems if p.code == code]
    assert hits, problems
    assert hits[0].path == path
    assert hits[0].message.startswith(MESSAGES_CCE[code])
    # the complement's rules alone (what the sandbox PAC applies) say it too
    assert code in {p.code for p in validate_cce20(_invoice(data))}


def test_every_code_has_a_case_and_a_spanish_message() -> None:
    assert sorted(MESSAGES_CCE) == sorted(c[0] for c in CASES)
    assert len(CASES) >= 15


def test_a_traslado_with_motivo_05_needs_a_propietario() -> None:
    data = cce_data()
    _tipo_t_moneda_usd(data, "05")
    problems = rules.validate(_invoice(data))
    assert [p.path for p in problems if p.code == "CONN-CCE-015"] == [
        "ComercioExterior.Propietario"
    ]
    _propietario_on_i(data)
    assert "CONN-CCE-015" not in {p.code for p in rules.validate(_invoice(data))}


def test_fraccion_arancelaria_is_checked_as_a_set_not_by_the_compiled_schema() -> None:
    # c_FraccionArancelaria (~26,000 codes) is taken out of the compiled schema like catCFDI's
    # big catalogs (libxml2 walked it per Mercancia: ~29 ms for 20 of them) and checked here
    data = cce_data()
    data["ComercioExterior"]["Mercancias"][1]["FraccionArancelaria"] = "8471300100"
    (p,) = xmlio.validate_limits(_invoice(data))
    assert p.code == "CONN-XSD"
    assert p.path == "ComercioExterior.Mercancias[1].FraccionArancelaria"
    assert "'8471300100'" in p.message and "c_FraccionArancelaria" in p.message
    assert len(xmlio_xsd._catalog_values["c_FraccionArancelaria"]) > 20000


def test_fel_conexion_remota_refuses_the_complement_instead_of_dropping_it() -> None:
    # GenerarCFDI40's contract has no Comercio Exterior: sending the invoice would stamp it
    # without the complement
    from connector.cfdi.errors import CfdiError
    from connector.pac.fel_remote_types import to_comprobante40r

    with pytest.raises(CfdiError) as info:
        to_comprobante40r(_invoice())
    (p,) = info.value.problems
    assert p.code == "CONN-REMOTE-UNSUPPORTED" and p.path == "ComercioExterior"
