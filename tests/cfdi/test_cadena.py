"""Cadena original (connector.cfdi.cadena): the fast path equals SAT's XSLT."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.cfdi.cadena import (
    cadena_original,
    cadena_original_xslt,
    cadena_tfd,
    cadena_tfd_xslt,
    normalize_space,
)
from connector.cfdi.errors import XmlError
from connector.cfdi.model import Comprobante
from connector.cfdi.xmlio import from_xml, parse_xml_bytes, to_xml

from .strategies import SAMPLES, comprobantes, comprobantes_raw, free_text

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
SAMPLE_I = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
SAMPLE_P = SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml"

# What SAT's XSLT produces for the first sample (checked against the XSLT in the test below).
EXPECTED_I = (
    "||4.0|2025-02-19T08:32:29|01|30001000000500003416|3824.15|956.04|MXN|3327.01|I|01|PUE|86000"
    "|EKU9003173C9|ESCUELA KEMPER URGATE|601|MCI7306249Y1|MUNICIPIO DE CUAUTITLAN IZCALLI|54700"
    "|603|G03|52161557|GAMEPAD007|4|H87|PIEZA|Portable tetris gamepad pro++ ⏻|956.04|3824.15"
    "|956.04|02|2868.11|002|Tasa|0.160000|458.90|2868.11|002|Tasa|0.160000|458.90|458.90||"
)


def test_sample_cadena_fast_equals_xslt() -> None:
    root = parse_xml_bytes(SAMPLE_I.read_bytes())
    assert cadena_original_xslt(root) == EXPECTED_I
    assert cadena_original(root) == EXPECTED_I
    assert cadena_original(from_xml(SAMPLE_I.read_bytes())) == EXPECTED_I
    assert cadena_original(SAMPLE_I.read_bytes()) == EXPECTED_I


def test_pagos_sample_cadena_fast_equals_xslt() -> None:
    root = parse_xml_bytes(SAMPLE_P.read_bytes())
    fast = cadena_original(root)
    assert fast == cadena_original_xslt(root)
    assert "|2.0|12931.04|2068.96|15000.00|2023-06-12T17:18:19|03|MXN|1|15000.00|" in fast
    assert fast.endswith("|12931.040000|002|Tasa|0.160000|2068.960000||")
    assert cadena_original(from_xml(SAMPLE_P.read_bytes())) == fast


def test_tfd_cadena_fast_equals_xslt() -> None:
    data = SAMPLE_I.read_bytes()
    root = parse_xml_bytes(data)
    expected = cadena_tfd_xslt(root)
    assert expected.startswith("||1.1|6F35D3B5-3651-5370-BC2C-14CDBE384CD7|2025-02-19T08:37:30|")
    assert expected.endswith("|30001000000500003456||")
    assert cadena_tfd(root) == expected
    c = from_xml(data)
    assert cadena_tfd(c) == expected
    assert cadena_tfd(c.TimbreFiscalDigital) == expected
    leyenda = c.TimbreFiscalDigital.model_copy(update={"Leyenda": "  Una  leyenda\t "})
    tfd_xml = to_xml(c.model_copy(update={"TimbreFiscalDigital": leyenda}))
    assert cadena_tfd(leyenda) == cadena_tfd_xslt(tfd_xml) == cadena_tfd(tfd_xml)
    assert "|CVD110412TF6|Una leyenda|" in cadena_tfd(leyenda)


def test_tfd_cadena_of_an_unstamped_cfdi_is_an_error() -> None:
    with pytest.raises(XmlError) as info:
        cadena_tfd(parse_xml_bytes(SAMPLE_P.read_bytes()))
    assert info.value.code == "CONN-TFD-MISSING"
    with pytest.raises(XmlError):
        cadena_tfd(from_xml(SAMPLE_P.read_bytes()))


def test_normalize_space_is_xpath_not_python() -> None:
    assert normalize_space("  a \t\r\n b  ") == "a b"
    assert normalize_space("a\xa0 b") == "a\xa0 b"  # NBSP is not XPath whitespace
    assert normalize_space("\u2003x\u2003") == "\u2003x\u2003"
    assert normalize_space("") == ""
    assert normalize_space(" ") == ""
    assert normalize_space("sin cambios") == "sin cambios"


def test_empty_optional_attribute_still_writes_its_separator() -> None:
    data = SAMPLE_I.read_bytes().replace(b'Version="4.0"', b'Version="4.0" Serie="" Folio="  7  "')
    root = parse_xml_bytes(data)
    fast = cadena_original(root)
    assert fast == cadena_original_xslt(root)
    assert fast.startswith("||4.0||7|2025-02-19")


def test_missing_required_attribute_writes_an_empty_field() -> None:
    data = SAMPLE_I.read_bytes().replace(b' NoCertificado="30001000000500003416"', b"")
    root = parse_xml_bytes(data)
    assert cadena_original(root) == cadena_original_xslt(root)
    assert "|01||3824.15|" in cadena_original(root)


def test_unknown_complement_falls_back_to_the_xslt() -> None:
    data = SAMPLE_I.read_bytes().replace(
        b"<cfdi:Complemento>",
        b'<cfdi:Complemento><leyendasFisc:LeyendasFiscales xmlns:leyendasFisc="http://www.sat.gob.mx/leyendasFiscales" Version="1.0">\n'
        b'  <leyendasFisc:Leyenda disposicionFiscal="RESDERAUTH" norma="Art. 2" textoLeyenda="Texto  con  espacios"/>\n'
        b"</leyendasFisc:LeyendasFiscales>"
        b'<otro:Desconocido xmlns:otro="urn:otro">texto suelto</otro:Desconocido>',
    )
    root = parse_xml_bytes(data)
    expected = cadena_original_xslt(root)
    assert "|RESDERAUTH|Art. 2|Texto con espacios" in expected
    assert "texto suelto" in expected  # XSLT's built-in template prints unknown text
    assert cadena_original(root) == expected
    c = from_xml(data)
    assert len(c.OtrosComplementos) == 2
    assert cadena_original(c) == expected


def test_parte_and_complemento_concepto_use_the_xslt() -> None:
    data = SAMPLE_I.read_bytes().replace(
        b"</cfdi:Impuestos>\n    </cfdi:Concepto>",
        b'</cfdi:Impuestos>\n      <cfdi:Parte ClaveProdServ="52161557" Cantidad="1" Descripcion="Pieza  A"/>\n    </cfdi:Concepto>',
    )
    root = parse_xml_bytes(data)
    assert b"cfdi:Parte" in data
    expected = cadena_original_xslt(root)
    assert "|52161557|1|Pieza A|" in expected
    assert cadena_original(root) == expected


def test_children_in_any_order_with_comments_and_repeats_match_the_xslt() -> None:
    # the fast path groups each element's children by tag in one pass: the XSLT's order must
    # win over the document's, repeats keep document order, comments count for nothing
    from lxml import etree

    C = "{http://www.sat.gob.mx/cfd/4}"
    root = parse_xml_bytes(SAMPLE_I.read_bytes())
    emisor, receptor = root.find(C + "Emisor"), root.find(C + "Receptor")
    emisor.addprevious(receptor)  # Receptor before Emisor
    receptor.addprevious(etree.Comment(" a comment "))
    concepto = root.find(f"{C}Conceptos/{C}Concepto")
    impuestos = concepto.find(C + "Impuestos")
    for i, numero in enumerate(("111", "222")):
        concepto.insert(i, etree.Element(C + "CuentaPredial", Numero=numero))
    concepto.insert(1, etree.Element(C + "InformacionAduanera", NumeroPedimento=" 23  47 "))
    concepto.insert(0, etree.Comment("x"))
    retenciones = etree.Element(C + "Retenciones")
    etree.SubElement(
        retenciones, C + "Retencion", Base="1", Impuesto="001", TipoFactor="Tasa",
        TasaOCuota="0.100000", Importe="0.10",
    )  # fmt: skip
    second = etree.Element(C + "Impuestos")
    second.append(retenciones)
    impuestos.addprevious(second)  # a second Impuestos, with the retención, first
    impuestos.insert(0, etree.Element(C + "Retenciones"))
    impuestos[0].append(etree.Element(C + "Retencion", Base="2", Impuesto="002"))
    expected = cadena_original_xslt(root)
    assert "|1|001|Tasa|0.100000|0.10|2|002|||" in expected and "|111|222|" in expected
    assert "|23 47|111|" in expected
    assert cadena_original(root) == expected


def test_cadena_of_something_else_is_refused() -> None:
    with pytest.raises(XmlError) as info:
        cadena_original(parse_xml_bytes(b"<a/>"))
    assert info.value.code == "CONN-XML-NOT-CFDI"


@PROPS
@given(comprobantes())
def test_generated_cadena_fast_equals_xslt(c: Comprobante) -> None:
    root = parse_xml_bytes(to_xml(c))
    expected = cadena_original_xslt(root)
    assert cadena_original(root) == expected
    assert cadena_original(c) == expected


@PROPS
@given(comprobantes(), free_text(0, 30), st.sampled_from(["Nombre", "Descripcion", "Unidad"]))
def test_whitespace_in_any_text_matches_the_xslt(c: Comprobante, text: str, where: str) -> None:
    if where == "Nombre":
        c = c.model_copy(update={"Receptor": c.Receptor.model_copy(update={"Nombre": text})})
    else:
        conceptos = [k.model_copy(update={where: text}) for k in c.Conceptos]
        c = c.model_copy(update={"Conceptos": conceptos})
    root = parse_xml_bytes(to_xml(c))
    assert cadena_original(c) == cadena_original_xslt(root)


def test_text_inside_the_timbre_is_printed_like_the_xslt_does() -> None:
    data = SAMPLE_I.read_bytes().replace(
        b"/>\n  </cfdi:Complemento>", b">\n  </tfd:TimbreFiscalDigital>\n  </cfdi:Complemento>"
    )
    assert b"</tfd:TimbreFiscalDigital>" in data
    root = parse_xml_bytes(data)
    expected = cadena_original_xslt(root)
    assert expected.endswith("|458.90\n  ||")
    assert cadena_original(root) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(comprobantes_raw())
def test_missing_amounts_give_the_same_cadena_from_model_and_xslt(c: Comprobante) -> None:
    # required attributes that are absent still write their '|' (Requerido)
    root = parse_xml_bytes(to_xml(c))
    assert cadena_original(c) == cadena_original_xslt(root)
