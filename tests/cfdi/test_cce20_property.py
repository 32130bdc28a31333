"""Property: any Comercio Exterior 2.0 invoice the connector accepts (model loads, SAT's rules and
the complement's rules pass) is valid by SAT's XSD, its cadena is SAT's XSLT's, and it reads back
unchanged."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.cfdi import cadena, rules, xmlio
from connector.cfdi.amounts import complete
from connector.cfdi.cce20 import comext_catalogs
from connector.cfdi.model import load_invoice
from connector.cfdi.rules_cce20 import ESTADOS

from .base_invoice import cce_data
from .strategies import free_text

FRACCIONES = sorted(comext_catalogs().FraccionArancelaria)[:400]
UNIDADES = sorted(comext_catalogs().UnidadAduana - {"99"})
CENT = Decimal("0.01")


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def domicilios(draw: st.DrawFn) -> dict[str, Any]:
    pais = draw(st.sampled_from(["USA", "CAN"]))
    return {
        "Calle": draw(free_text(1, 100)),
        "NumeroExterior": draw(_opt(free_text(1, 55))),
        "Colonia": draw(_opt(free_text(1, 120))),
        "Municipio": draw(_opt(free_text(1, 120))),
        "Referencia": draw(_opt(free_text(1, 250))),
        "Estado": draw(st.sampled_from(sorted(ESTADOS[pais]))),
        "Pais": pais,
        "CodigoPostal": draw(st.from_regex(r"[0-9A-Z]{5,7}", fullmatch=True)),
    }


@st.composite
def exports(draw: st.DrawFn) -> dict[str, Any]:
    data = cce_data()
    template = data["Conceptos"][0]
    conceptos, mercancias = [], []
    for i in range(draw(st.integers(1, 4))):
        cantidad = Decimal(draw(st.integers(1, 500)))
        precio = Decimal(draw(st.integers(1, 500_000))) * CENT
        k = copy.deepcopy(template)
        k.update(NoIdentificacion=f"ART{i}", Cantidad=str(cantidad), ValorUnitario=str(precio))
        conceptos.append(k)
        descripciones = [
            {
                "Marca": draw(free_text(1, 35)),
                "Modelo": draw(_opt(free_text(1, 80))),
                "SubModelo": draw(_opt(free_text(1, 50))),
                "NumeroSerie": draw(_opt(free_text(1, 40))),
            }
            for _ in range(draw(st.integers(0, 2)))
        ]
        mercancias.append(
            {
                "NoIdentificacion": f"ART{i}",
                "FraccionArancelaria": draw(st.sampled_from(FRACCIONES)),
                "CantidadAduana": str(cantidad),
                "UnidadAduana": draw(st.sampled_from(UNIDADES)),
                "ValorUnitarioAduana": str(precio),
                "ValorDolares": str(cantidad * precio),
                "DescripcionesEspecificas": descripciones,
            }
        )
    data["Conceptos"] = conceptos
    cce = data["ComercioExterior"]
    cce["Mercancias"] = mercancias
    cce["TotalUSD"] = str(sum(Decimal(m["ValorDolares"]) for m in mercancias))
    cce["Incoterm"] = draw(st.sampled_from(sorted(comext_catalogs().INCOTERM)))
    cce["Observaciones"] = draw(_opt(free_text(1, 300)))
    cce["NumeroExportadorConfiable"] = draw(_opt(free_text(1, 50)))
    if draw(st.booleans()):
        cce.update(CertificadoOrigen="1", NumCertificadoOrigen=draw(st.from_regex(
            r"[A-Z0-9-]{6,40}", fullmatch=True)))  # fmt: skip
    cce["Receptor"]["Domicilio"] = draw(domicilios())
    cce["Destinatario"] = [
        {
            "NumRegIdTrib": draw(_opt(st.from_regex(r"[0-9]{6,12}", fullmatch=True))),
            "Nombre": draw(_opt(free_text(1, 300))),
            "Domicilio": draw(st.lists(domicilios(), min_size=1, max_size=2)),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_an_accepted_export_invoice_is_xsd_valid_with_sats_cadena(data: dict[str, Any]) -> None:
    c, problems = load_invoice(data)
    assert c is not None, problems
    c = complete(c)
    assert [p for p in rules.validate(c) if p.severity == "error"] == []
    assert xmlio.validate_limits(c) == []
    xml = xmlio.to_xml(c)
    assert cadena.cadena_original(c) == cadena.cadena_original_xslt(xml)
    assert xmlio.from_xml(xml) == c
