"""Carta Porte 3.1 (autotransporte federal) as mapped data: the model in the Comprobante, its XML
(SAT's namespace, schemaLocation and XSD), its cadena (SAT's XSLT), the seal, the IdCCP and the
totals ``amounts.complete`` fills in."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from connector.cfdi import cadena, rules, xmlio, xmlio_xsd
from connector.cfdi.amounts import complete
from connector.cfdi.cp31 import NS_CP31, cp_catalogs, id_ccp
from connector.cfdi.model import Comprobante
from connector.cfdi.seal import seal_invoice, verify_seal

from .base_invoice import cp_data, load
from .strategies import shared_test_csd

IDCCP = re.compile(r"^CCC[0-9a-f]{5}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CP = f"{{{NS_CP31}}}"


def _invoice(data: dict[str, Any] | None = None) -> Comprobante:
    return complete(load(data if data is not None else cp_data()))


def ingreso_data() -> dict[str, Any]:
    """A transportista's tipo I invoice for the freight (IVA 16 %, retención 4 %) with the
    same Carta Porte."""
    data = cp_data()
    data.update(TipoDeComprobante="I", FormaPago="03", MetodoPago="PUE")
    data["Receptor"]["UsoCFDI"] = "G03"
    data["Conceptos"] = [
        {
            "ClaveProdServ": "78101802",
            "Cantidad": "1",
            "ClaveUnidad": "E48",
            "Descripcion": "Flete Villahermosa - Celaya",
            "ValorUnitario": "18500.00",
            "ObjetoImp": "02",
            "Impuestos": {
                "Traslados": [{"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}],
                "Retenciones": [{"Impuesto": "002", "TipoFactor": "Tasa",
                                 "TasaOCuota": "0.040000"}],
            },
        }
    ]  # fmt: skip
    return data


def full_data() -> dict[str, Any]:
    """Every autotransporte node and many optional attributes, values with spaces to normalize."""
    data = cp_data()
    cp = data["CartaPorte"]
    cp.update(TranspInternac="Sí", EntradaSalidaMerc="Salida", PaisOrigenDestino="USA",
              ViaEntradaSalida="01", RegimenesAduaneros=["EXD", "ITE"])  # fmt: skip
    cp["Ubicaciones"][1]["NombreRemitenteDestinatario"] = "  XOCHILT   CASAS\tCHAVEZ "
    m0 = cp["Mercancias"]["Mercancia"][0]
    m0.update(Dimensiones="30/40/50cm", ValorMercancia="3824.16", Moneda="MXN",
              FraccionArancelaria="8523510100")  # fmt: skip
    m0["DocumentacionAduanera"] = [
        {"TipoDocumento": "01", "NumPedimento": "23  47  3807  3000123", "RFCImpo": "EKU9003173C9"}
    ]
    m0["GuiasIdentificacion"] = [
        {"NumeroGuiaIdentificacion": "GUIA000001", "DescripGuiaIdentificacion": "Caja  1",
         "PesoGuiaIdentificacion": "2.400"}
    ]  # fmt: skip
    m0["DetalleMercancia"] = {"UnidadPesoMerc": "KGM", "PesoBruto": "2.400", "PesoNeto": "2.000",
                              "PesoTara": "0.400", "NumPiezas": "4"}  # fmt: skip
    auto = cp["Mercancias"]["Autotransporte"]
    auto["IdentificacionVehicular"]["ConfigVehicular"] = "T3S2"
    auto["Seguros"].update(AseguraCarga="Carga Segura", PolizaCarga="C-998877",
                           PrimaSeguro="1500.00")  # fmt: skip
    auto["Remolques"] = [{"SubTipoRem": "CTR004", "Placa": "ABC1234"}]
    cp["FiguraTransporte"].append(
        {"TipoFigura": "02", "RFCFigura": "EKU9003173C9", "NombreFigura": "ESCUELA KEMPER URGATE",
         "PartesTransporte": ["PT01", "PT05"],
         "Domicilio": {"Calle": "Av. Paseo Tabasco", "Estado": "TAB", "Pais": "MEX",
                       "CodigoPostal": "86000"}}
    )  # fmt: skip
    return data


@pytest.mark.parametrize("make", [cp_data, ingreso_data, full_data], ids=["T", "I", "full"])
def test_valid_carta_porte_passes_every_rule_and_the_xsd(make: Any) -> None:
    c = _invoice(make())
    assert rules.validate(c) == []
    assert xmlio.validate_limits(c) == []


def test_xml_has_the_namespace_schema_location_and_sat_order() -> None:
    root = etree.fromstring(xmlio.to_xml(_invoice(full_data())))
    assert root.nsmap["cartaporte31"] == NS_CP31
    loc = root.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation")
    assert f"{NS_CP31} http://www.sat.gob.mx/sitio_internet/cfd/CartaPorte/CartaPorte31.xsd" in loc
    (cp,) = root.iter(_CP + "CartaPorte")
    assert [etree.QName(e).localname for e in cp] == [
        "RegimenesAduaneros", "Ubicaciones", "Mercancias", "FiguraTransporte"
    ]  # fmt: skip
    assert list(cp.attrib)[:4] == ["Version", "IdCCP", "TranspInternac", "EntradaSalidaMerc"]
    regimenes = [e.get("RegimenAduanero") for e in cp.iter(_CP + "RegimenAduaneroCCP")]
    assert regimenes == ["EXD", "ITE"]
    auto = next(cp.iter(_CP + "Autotransporte"))
    assert [etree.QName(e).localname for e in auto] == [
        "IdentificacionVehicular", "Seguros", "Remolques"
    ]  # fmt: skip
    partes = [e.get("ParteTransporte") for e in cp.iter(_CP + "PartesTransporte")]
    assert partes == ["PT01", "PT05"]


@pytest.mark.parametrize("make", [cp_data, ingreso_data, full_data], ids=["T", "I", "full"])
def test_text_path_equals_element_path_and_reads_back_unchanged(make: Any) -> None:
    c = _invoice(make())
    text = xmlio.to_xml(c)
    assert text == xmlio.serialize(xmlio.build_tree(c))
    assert xmlio.from_xml(text) == c


@pytest.mark.parametrize("make", [cp_data, ingreso_data, full_data], ids=["T", "I", "full"])
def test_cadena_fast_paths_equal_sats_xslt(make: Any) -> None:
    c = _invoice(make())
    xml = xmlio.to_xml(c)
    want = cadena.cadena_original_xslt(xml)
    assert f"|3.1|{c.CartaPorte.IdCCP}|" in want
    assert cadena.cadena_original(c) == want  # from the model (what sealing uses)
    assert cadena.cadena_original(xml) == want  # walking a parsed document
    if make is full_data:
        assert "|XOCHILT CASAS CHAVEZ|" in want and "|EXD|ITE|" in want and "|PT01|PT05|" in want


def test_sealed_carta_porte_verifies_and_is_xsd_valid() -> None:
    xml = seal_invoice(_invoice(full_data()), shared_test_csd())
    assert verify_seal(xml) == []
    assert xmlio.validate_xsd(xml) == []
    assert _CP + "CartaPorte" in {e.tag for e in etree.fromstring(xml).iter()}


def test_idccp_is_generated_in_sats_format_stable_per_invoice() -> None:
    c = _invoice()
    assert IDCCP.match(c.CartaPorte.IdCCP)
    assert _invoice().CartaPorte.IdCCP == c.CartaPorte.IdCCP  # the same invoice read again
    other = cp_data()
    other["Folio"] = "1002"
    assert _invoice(other).CartaPorte.IdCCP != c.CartaPorte.IdCCP
    assert id_ccp("eku9003173c9", "A", "1001", c.Fecha) == c.CartaPorte.IdCCP
    given = cp_data()
    given["CartaPorte"]["IdCCP"] = "CCCBCD94-870A-4332-A52A-A52AA52AA52A"
    assert _invoice(given).CartaPorte.IdCCP == "CCCBCD94-870A-4332-A52A-A52AA52AA52A"


def test_totals_are_computed_when_missing_and_kept_when_given() -> None:
    c = _invoice()
    assert c.CartaPorte.TotalDistRec == Decimal("1050.5")
    m = c.CartaPorte.Mercancias
    assert (m.PesoBrutoTotal, m.UnidadPeso, m.NumTotalMercancias) == (Decimal("7.200"), "KGM", "2")
    data = cp_data()
    data["CartaPorte"]["Mercancias"].update(PesoBrutoTotal="8.000", NumTotalMercancias="3")
    m = _invoice(data).CartaPorte.Mercancias
    assert (m.PesoBrutoTotal, m.NumTotalMercancias) == (Decimal("8.000"), "3")


def test_big_cartaporte_catalogs_are_checked_as_sets() -> None:
    data = cp_data()
    data["CartaPorte"]["Mercancias"]["Mercancia"][1]["BienesTransp"] = "99999999"
    (p,) = xmlio.validate_limits(_invoice(data))
    assert p.code == "CONN-XSD"
    assert p.path == "CartaPorte.Mercancias.Mercancia[1].BienesTransp"
    assert "'99999999'" in p.message and "c_ClaveProdServCP" in p.message
    assert len(xmlio_xsd._catalog_values["c_ClaveProdServCP"]) > 40000
    assert xmlio_xsd._catalog_values["c_ClaveProdServCP"] == cp_catalogs()["c_ClaveProdServCP"]


def test_a_maritime_carta_porte_is_kept_verbatim_and_its_cadena_is_sats() -> None:
    xml = xmlio.to_xml(_invoice())
    root = etree.fromstring(xml)
    mercancias = next(root.iter(_CP + "Mercancias"))
    maritimo = etree.SubElement(mercancias, _CP + "TransporteMaritimo", {"TipoEmbarcacion": "B01"})
    mercancias.remove(next(mercancias.iter(_CP + "Autotransporte")))
    assert maritimo.getparent() is mercancias
    text = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    c = xmlio.from_xml(text)
    assert c.CartaPorte is None and len(c.OtrosComplementos) == 1
    assert cadena.cadena_original(text) == cadena.cadena_original_xslt(text)


def test_fel_conexion_remota_refuses_the_complement_instead_of_dropping_it() -> None:
    from connector.cfdi.errors import CfdiError
    from connector.pac.fel_remote_types import to_comprobante40r

    with pytest.raises(CfdiError) as info:
        to_comprobante40r(_invoice())
    (p,) = info.value.problems
    assert p.code == "CONN-REMOTE-UNSUPPORTED" and p.path == "CartaPorte"


def test_twenty_mercancias_stay_xsd_valid() -> None:
    data = cp_data()
    m = data["CartaPorte"]["Mercancias"]["Mercancia"]
    m.extend(copy.deepcopy(m[0]) for _ in range(18))
    c = _invoice(data)
    assert c.CartaPorte.Mercancias.NumTotalMercancias == "20"
    assert xmlio.validate_limits(c) == []
