"""Property: any Carta Porte 3.1 the connector accepts (model loads, SAT's rules and the
complement's rules pass) is valid by SAT's XSD, its cadena is SAT's XSLT's, and it reads back
unchanged; IdCCP and totals computed by the connector."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.cfdi import cadena, rules, xmlio
from connector.cfdi.amounts import complete
from connector.cfdi.cp31 import cp_catalogs
from connector.cfdi.model import load_invoice
from connector.cfdi.rules_cce20 import ESTADOS

from .base_invoice import cp_data
from .strategies import free_text

CLAVES = sorted(cp_catalogs()["c_ClaveProdServCP"])[:500]
EMBALAJES = sorted(cp_catalogs()["c_TipoEmbalaje"])
PELIGROSOS = sorted(cp_catalogs()["c_MaterialPeligroso"])[:200]
SUBTIPOS = sorted(cp_catalogs()["c_SubTipoRem"])
CODIGOS_POSTALES = ["86000", "36257", "76000", "64000", "44100"]
PLACA = r"[A-Z0-9]{5,7}"


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _dec(low: int, high: int, places: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: str(Decimal(n).scaleb(-places)))


@st.composite
def domicilios(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "Calle": draw(_opt(free_text(1, 100))),
        "NumeroExterior": draw(_opt(free_text(1, 55))),
        "Colonia": draw(_opt(free_text(1, 120))),
        "Municipio": draw(_opt(free_text(1, 120))),
        "Referencia": draw(_opt(free_text(1, 250))),
        "Estado": draw(st.sampled_from(sorted(ESTADOS["MEX"]))),
        "Pais": "MEX",
        "CodigoPostal": draw(st.sampled_from(CODIGOS_POSTALES)),
    }


@st.composite
def mercancias(draw: st.DrawFn, destinos: list[str]) -> dict[str, Any]:
    peligroso = draw(st.booleans())
    m: dict[str, Any] = {
        "BienesTransp": draw(st.sampled_from(CLAVES)),
        "Descripcion": draw(free_text(1, 1000)),
        "Cantidad": draw(_dec(1, 10**8, 3)),
        "ClaveUnidad": "H87",
        "Unidad": draw(_opt(free_text(1, 20))),
        "MaterialPeligroso": "Sí" if peligroso else draw(st.sampled_from([None, "No"])),
        "PesoEnKg": draw(_dec(1, 10**9, 3)),
    }
    if peligroso:
        m.update(CveMaterialPeligroso=draw(st.sampled_from(PELIGROSOS)),
                 Embalaje=draw(st.sampled_from(EMBALAJES)))  # fmt: skip
    m["CantidadTransporta"] = [
        {"Cantidad": draw(_dec(1, 10**6, 2)), "IDOrigen": "OR000001", "IDDestino": d}
        for d in draw(st.lists(st.sampled_from(destinos), max_size=2, unique=True))
    ]
    if draw(st.booleans()):
        neto, tara = draw(_dec(1, 10**6, 3)), draw(_dec(1, 10**5, 3))
        m["DetalleMercancia"] = {"UnidadPesoMerc": "KGM", "PesoNeto": neto, "PesoTara": tara,
                                 "PesoBruto": str(Decimal(neto) + Decimal(tara))}  # fmt: skip
    return m


@st.composite
def cartas_porte(draw: st.DrawFn) -> dict[str, Any]:
    data = cp_data()
    cp = data["CartaPorte"]
    n_destinos = draw(st.integers(1, 3))
    destinos = [f"DE{i:06d}" for i in range(1, n_destinos + 1)]
    ubicaciones = [cp["Ubicaciones"][0]]
    ubicaciones[0]["Domicilio"] = draw(domicilios())
    ubicaciones[0]["NombreRemitenteDestinatario"] = draw(_opt(free_text(1, 254)))
    for i, ident in enumerate(destinos):
        ubicaciones.append({
            "TipoUbicacion": "Destino", "IDUbicacion": ident,
            "RFCRemitenteDestinatario": "CACX7605101P8",
            "NombreRemitenteDestinatario": draw(_opt(free_text(1, 254))),
            "FechaHoraSalidaLlegada": f"2025-01-1{6 + i}T09:30:00",
            "DistanciaRecorrida": draw(_dec(1, 3_000_000, 2)), "Domicilio": draw(domicilios()),
        })  # fmt: skip
    cp["Ubicaciones"] = ubicaciones
    merc = [draw(mercancias(destinos)) for _ in range(draw(st.integers(1, 4)))]
    cp["Mercancias"]["Mercancia"] = merc
    auto = cp["Mercancias"]["Autotransporte"]
    if any(m["MaterialPeligroso"] == "Sí" for m in merc):
        # minLength 3 after whiteSpace collapse: three visible characters at least
        auto["Seguros"].update(AseguraMedAmbiente=draw(st.from_regex(r"[A-Za-zñÑ0-9]{3,50}", fullmatch=True)),
                               PolizaMedAmbiente=draw(st.from_regex(r"[A-Z0-9-]{3,30}", fullmatch=True)))  # fmt: skip
    if draw(st.booleans()):
        auto["IdentificacionVehicular"]["ConfigVehicular"] = "T3S2"
        auto["Remolques"] = [
            {"SubTipoRem": draw(st.sampled_from(SUBTIPOS)),
             "Placa": draw(st.from_regex(PLACA, fullmatch=True))}
            for _ in range(draw(st.integers(1, 2)))
        ]  # fmt: skip
    auto["IdentificacionVehicular"]["PlacaVM"] = draw(st.from_regex(PLACA, fullmatch=True))
    figura = cp["FiguraTransporte"][0]
    figura["NombreFigura"] = draw(free_text(1, 254))
    if draw(st.booleans()):
        figura["Domicilio"] = draw(domicilios())
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cartas_porte())
def test_an_accepted_carta_porte_is_xsd_valid_with_sats_cadena(data: dict[str, Any]) -> None:
    c, problems = load_invoice(data)
    assert c is not None, problems
    c = complete(c)
    assert [p for p in rules.validate(c) if p.severity == "error"] == []
    assert xmlio.validate_limits(c) == []
    xml = xmlio.to_xml(c)
    assert cadena.cadena_original(c) == cadena.cadena_original_xslt(xml)
    assert xmlio.from_xml(xml) == c
