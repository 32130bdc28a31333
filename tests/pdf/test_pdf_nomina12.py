"""The Nómina 1.2 section of the PDF: a payroll CFDI dropped by payroll software (its complement
kept verbatim) is printed with every attribute of every node of the complement — period and
totals, patrón, trabajador, each percepción, deducción, otro pago and incapacidad with their
details — under the section's title, and nothing of it is left out."""

from __future__ import annotations

import io
import re

import pypdf
import pytest
from lxml import etree

from connector.cfdi.pdf import render_pdf
from connector.cfdi.pdf_nomina12 import NS_NOMINA12, is_nomina
from connector.cfdi.xmlio import from_xml
from tests.daemon.test_daemon_nomina12 import VALID


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_value_of_the_payroll_complement_is_on_the_page(kind: str) -> None:
    xml = VALID[kind].encode()
    c = from_xml(xml)
    (raw,) = c.OtrosComplementos
    assert is_nomina(raw)
    text = _text(render_pdf(c))
    flat = _flat(text)
    assert "COMPLEMENTO DE NÓMINA 1.2" in text
    nomina = etree.fromstring(raw)
    assert nomina.tag == f"{{{NS_NOMINA12}}}Nomina"
    checked = 0
    for el in nomina.iter(etree.Element):
        for attr, value in el.attrib.items():
            assert _flat(value) in flat, (kind, etree.QName(el).localname, attr, value)
            assert _flat(attr).upper() in flat.upper(), (kind, attr)  # labels: upper case
            checked += 1
    assert checked >= 25
    assert "TRABAJADOR: CURP" in text and "PERCEPCIÓN 1: TIPOPERCEPCION" in text
    if kind == "subsidio_e_imss":
        assert "SUBSIDIO PARA EL EMPLEO: SUBSIDIOCAUSADO" in text and "OTRO PAGO 1:" in text
    if kind == "horas_extra_e_incapacidad":
        assert "HORAS EXTRA 1: DIAS" in text and "INCAPACIDAD 1:" in text
        assert "PERCEPCIÓN 2: TIPOPERCEPCION" in text
    assert "O-Ordinaria" in flat or "E-Extraordinaria" in flat


def test_other_unknown_complements_are_not_drawn_as_payroll() -> None:
    assert not is_nomina(b'<x:Otro xmlns:x="urn:x" A="1"/>')
    assert is_nomina(f'<n:Nomina xmlns:n="{NS_NOMINA12}" Version="1.2"/>'.encode())


def test_a_payroll_complement_read_and_written_again_keeps_its_non_ascii_names() -> None:
    """The complement kept verbatim is UTF-8 XML: its attribute Antigüedad (a non-ASCII name
    that no character reference may stand for) survives reading and writing the CFDI again."""
    from connector.cfdi.xmlio import to_xml, validate_limits

    c = from_xml(VALID["ordinaria"].encode())
    (raw,) = c.OtrosComplementos
    assert 'Antigüedad="P315W"'.encode() in raw
    again = to_xml(c)
    assert 'Antigüedad="P315W"'.encode() in again
    assert from_xml(again).OtrosComplementos == [raw]
    assert validate_limits(again) == []


def test_a_payroll_value_outside_the_latin_font_is_drawn_with_the_fallback_font() -> None:
    """A Puesto with a character the Latin subset lacks (→) is printed, not dropped."""
    xml = VALID["ordinaria"].replace('Puesto="Vendedora"', 'Puesto="Ventas → Norte"').encode()
    text = _text(render_pdf(from_xml(xml)))
    assert "Ventas → Norte" in text
