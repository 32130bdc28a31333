"""The Carta Porte 3.1 rules (``rules_cp31``): each invalid case rejected locally with its code,
its path and its Spanish message, by ``rules.validate`` and by ``validate_cp31`` alone (what the
sandbox PAC applies)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from connector.cfdi import rules, xmlio
from connector.cfdi.amounts import complete
from connector.cfdi.cp31 import NS_CP31
from connector.cfdi.model import Comprobante
from connector.cfdi.rules_cp31 import MESSAGES_CP, validate_cp31

from .base_invoice import cp_data, load

Edit = Callable[[dict[str, Any]], None]


def _invoice(data: dict[str, Any]) -> Comprobante:
    return complete(load(data))


def _cp(d: dict[str, Any]) -> dict[str, Any]:
    return d["CartaPorte"]


def _ub(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["CartaPorte"]["Ubicaciones"][i]


def _merc(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["CartaPorte"]["Mercancias"]["Mercancia"][i]


def _mercs(d: dict[str, Any]) -> dict[str, Any]:
    return d["CartaPorte"]["Mercancias"]


def _auto(d: dict[str, Any]) -> dict[str, Any]:
    return d["CartaPorte"]["Mercancias"]["Autotransporte"]


def _fig(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["CartaPorte"]["FiguraTransporte"][i]


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], **values: Any) -> Edit:
    return lambda d: path(d).update(values)


def _egreso(d: dict[str, Any]) -> None:
    d.update(TipoDeComprobante="E", FormaPago="03", MetodoPago="PUE")


def _no_auto(d: dict[str, Any]) -> None:
    del d["CartaPorte"]["Mercancias"]["Autotransporte"]


def _two_origenes(d: dict[str, Any]) -> None:
    dest = _ub(1)(d)
    dest.update(TipoUbicacion="Origen", IDUbicacion="OR000002")
    dest.pop("DistanciaRecorrida")


def _duplicate_id(d: dict[str, Any]) -> None:
    ubs = d["CartaPorte"]["Ubicaciones"]
    ubs.append(copy.deepcopy(ubs[1]))


def _extranjero(d: dict[str, Any]) -> None:
    _ub(1)(d).update(RFCRemitenteDestinatario="XEXX010101000", ResidenciaFiscal="USA")


def _peligroso(d: dict[str, Any]) -> None:
    _merc(0)(d).update(MaterialPeligroso="Sí", CveMaterialPeligroso="1266", Embalaje="4G")


def _trailer(d: dict[str, Any]) -> None:
    _auto(d)["IdentificacionVehicular"]["ConfigVehicular"] = "T3S2"


def _propietario_sin_partes(d: dict[str, Any]) -> None:
    d["CartaPorte"]["FiguraTransporte"].append(
        {"TipoFigura": "02", "RFCFigura": "EKU9003173C9", "NombreFigura": "ESCUELA KEMPER URGATE"}
    )


def _figura_extranjera(d: dict[str, Any]) -> None:
    d["CartaPorte"]["FiguraTransporte"].append(
        {"TipoFigura": "04", "NombreFigura": "ACME Freight", "PartesTransporte": ["PT01"]}
    )


def _entrada(d: dict[str, Any]) -> None:
    _cp(d).update(TranspInternac="Sí", EntradaSalidaMerc="Entrada", PaisOrigenDestino="USA",
                  ViaEntradaSalida="01")  # fmt: skip


def _doc(d: dict[str, Any]) -> None:
    _merc(0)(d)["DocumentacionAduanera"] = [{"TipoDocumento": "01", "RFCImpo": "EKU9003173C9"}]


def _detalle(d: dict[str, Any]) -> None:
    _merc(0)(d)["DetalleMercancia"] = {"UnidadPesoMerc": "KGM", "PesoBruto": "2.400",
                                       "PesoNeto": "2.000", "PesoTara": "0.300"}  # fmt: skip


def _maritimo(d: dict[str, Any]) -> None:
    _merc(1)(d)["CantidadTransporta"][0]["CvesTransporte"] = "02"


M0, M1 = "CartaPorte.Mercancias.Mercancia[0]", "CartaPorte.Mercancias.Mercancia[1]"
AUTO = "CartaPorte.Mercancias.Autotransporte"

CASES: list[tuple[str, Edit, str]] = [
    ("CONN-CP-001", _egreso, "TipoDeComprobante"),
    ("CONN-CP-002", _maritimo, f"{M1}.CantidadTransporta[0].CvesTransporte"),
    ("CONN-CP-003", _no_auto, AUTO),
    ("CONN-CP-004", _set(_cp, IdCCP="ABC12345-1234-1234-1234-123456789012"), "CartaPorte.IdCCP"),
    ("CONN-CP-005", _two_origenes, "CartaPorte.Ubicaciones"),
    ("CONN-CP-006", _set(_ub(1), IDUbicacion="OR000009"), "CartaPorte.Ubicaciones[1].IDUbicacion"),
    ("CONN-CP-007", _set(_ub(0), DistanciaRecorrida="10"),
     "CartaPorte.Ubicaciones[0].DistanciaRecorrida"),
    ("CONN-CP-008", _set(_cp, TotalDistRec="1000"), "CartaPorte.TotalDistRec"),
    ("CONN-CP-009", _set(_ub(1), FechaHoraSalidaLlegada="2025-01-15T08:00:00"),
     "CartaPorte.Ubicaciones[1].FechaHoraSalidaLlegada"),
    ("CONN-CP-010", _set(_cp, PaisOrigenDestino="USA"), "CartaPorte.PaisOrigenDestino"),
    ("CONN-CP-011", _extranjero, "CartaPorte.Ubicaciones[1].NumRegIdTrib"),
    ("CONN-CP-012", lambda d: _ub(1)(d)["Domicilio"].update(Estado="TX"),
     "CartaPorte.Ubicaciones[1].Domicilio.Estado"),
    ("CONN-CP-013", lambda d: _ub(0)(d)["Domicilio"].update(CodigoPostal="00001"),
     "CartaPorte.Ubicaciones[0].Domicilio.CodigoPostal"),
    ("CONN-CP-014", _set(_mercs, PesoBrutoTotal="9.000"), "CartaPorte.Mercancias.PesoBrutoTotal"),
    ("CONN-CP-015", _set(_mercs, NumTotalMercancias="3"),
     "CartaPorte.Mercancias.NumTotalMercancias"),
    ("CONN-CP-016", _set(_merc(0), CveMaterialPeligroso="1266"), f"{M0}.CveMaterialPeligroso"),
    ("CONN-CP-017", _peligroso, f"{AUTO}.Seguros.AseguraMedAmbiente"),
    ("CONN-CP-018", _trailer, f"{AUTO}.IdentificacionVehicular.ConfigVehicular"),
    ("CONN-CP-019", _set(_fig(0), NumLicencia=None), "CartaPorte.FiguraTransporte"),
    ("CONN-CP-020", _propietario_sin_partes, "CartaPorte.FiguraTransporte[1].PartesTransporte"),
    ("CONN-CP-021", _figura_extranjera, "CartaPorte.FiguraTransporte[1].RFCFigura"),
    ("CONN-CP-022", lambda d: _merc(1)(d)["CantidadTransporta"][0].update(IDDestino="DE000077"),
     f"{M1}.CantidadTransporta[0]"),
    ("CONN-CP-023", lambda d: _auto(d)["IdentificacionVehicular"].update(ConfigVehicular="X9"),
     f"{AUTO}.IdentificacionVehicular.ConfigVehicular"),
    ("CONN-CP-024", _set(_auto, PermSCT="TPTM01"), f"{AUTO}.PermSCT"),
    ("CONN-CP-025", _entrada, f"{M0}.DocumentacionAduanera"),
    ("CONN-CP-026", _doc, f"{M0}.DocumentacionAduanera[0].NumPedimento"),
    ("CONN-CP-027", _set(_cp, RegistroISTMO="Sí", UbicacionPoloOrigen="01"),
     "CartaPorte.RegistroISTMO"),
    ("CONN-CP-028", _detalle, f"{M0}.DetalleMercancia.PesoBruto"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "edit", "path"), CASES, ids=[c[0] for c in CASES])
def test_invalid_case_is_rejected_with_its_code(code: str, edit: Edit, path: str) -> None:
    data = cp_data()
    edit(data)
    c = _invoice(data)
    problems = rules.validate(c)
    hits = [p for p in problems if p.code == code]
    assert hits, problems
    assert hits[0].path == path
    assert hits[0].message.startswith(MESSAGES_CP[code])
    assert code in {p.code for p in validate_cp31(c)}


def test_every_code_has_a_case_and_a_spanish_message() -> None:
    assert sorted(MESSAGES_CP) == sorted(c[0] for c in CASES)
    assert len(CASES) >= 15


def test_the_valid_document_and_its_fixes_pass() -> None:
    data = cp_data()
    _peligroso(data)
    assert "CONN-CP-017" in {p.code for p in rules.validate(_invoice(data))}
    _auto(data)["Seguros"].update(AseguraMedAmbiente="Eco Seguros", PolizaMedAmbiente="MA-1234")
    assert rules.validate(_invoice(data)) == []
    _trailer(data)
    _auto(data)["Remolques"] = [{"SubTipoRem": "CTR004", "Placa": "ABC1234"}]
    assert rules.validate(_invoice(data)) == []


@pytest.mark.parametrize("transport", ["TransporteMaritimo", "TransporteAereo",
                                       "TransporteFerroviario"])  # fmt: skip
def test_maritime_air_and_rail_are_refused_with_a_code(transport: str) -> None:
    root = etree.fromstring(xmlio.to_xml(_invoice(cp_data())))
    mercancias = next(root.iter(f"{{{NS_CP31}}}Mercancias"))
    mercancias.remove(next(mercancias.iter(f"{{{NS_CP31}}}Autotransporte")))
    etree.SubElement(mercancias, f"{{{NS_CP31}}}{transport}")
    c = xmlio.from_element(root)
    (p,) = [p for p in rules.validate(c) if p.code.startswith("CONN-CP")]
    assert (p.code, p.path) == ("CONN-CP-002", "OtrosComplementos[0]")
    assert p.message.startswith(MESSAGES_CP["CONN-CP-002"])


def test_via_entrada_salida_other_than_autotransporte_is_refused() -> None:
    data = cp_data()
    _cp(data).update(TranspInternac="Sí", EntradaSalidaMerc="Salida", PaisOrigenDestino="USA",
                     ViaEntradaSalida="04")  # fmt: skip
    problems = [p for p in rules.validate(_invoice(data)) if p.code == "CONN-CP-002"]
    assert [p.path for p in problems] == ["CartaPorte.ViaEntradaSalida"]
