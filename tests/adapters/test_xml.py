"""XML adapter: the ERP's own CFDI XML, one per file."""

from __future__ import annotations

from connector.adapters import load_invoices
from tests.conftest import SAMPLES


def test_sealed_sample_is_read_with_its_bytes() -> None:
    data = (SAMPLES / "cfdi40-valid_CfdiUtils.xml").read_bytes()
    (inv,) = load_invoices(data, "f.xml", adapter="xml", mapping=None)
    assert inv.problems == [] and inv.xml == data and inv.index == 0
    assert inv.comprobante is not None and inv.comprobante.Emisor.Rfc == "EKU9003173C9"
    assert inv.comprobante.Sello


def test_pagos_sample() -> None:
    data = (SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml").read_bytes()
    (inv,) = load_invoices(data, "p.xml", adapter="xml", mapping=None)
    assert inv.problems == [] and inv.comprobante.TipoDeComprobante == "P"
    assert inv.comprobante.Pagos is not None


def test_bad_xml_gives_the_parser_problems_located_at_the_file() -> None:
    for data in (b"", b"<a>", b"not xml at all", b"<?xml version='1.0'?><root/>"):
        (inv,) = load_invoices(data, "bad.xml", adapter="xml", mapping=None)
        assert inv.comprobante is None and inv.xml == data
        assert inv.problems and all(
            p.location and p.location.startswith("bad.xml") for p in inv.problems
        )


def test_entities_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<cfdi:Comprobante xmlns:cfdi="http://www.sat.gob.mx/cfd/4" Version="&b;"/>'
    )
    (inv,) = load_invoices(bomb, "e.xml", adapter="xml", mapping=None)
    assert inv.comprobante is None and inv.problems
