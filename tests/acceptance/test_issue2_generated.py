"""Issue 2, first "How we will know", as one property: an invoice of any generated shape
(several conceptos, IVA 16/8/0/exento, IEPS, retenciones ISR/IVA, discounts, USD with
TipoCambio, público en general, tipo E/T, Pagos 2.0) passes SAT's rules, comes out XSD-valid
once sealed, its seal verifies, and its cadena equals SAT's XSLT — all on the same document,
and again after a parse → model → XML round trip."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from connector.cfdi import rules
from connector.cfdi.cadena import cadena_original, cadena_original_xslt
from connector.cfdi.model import Comprobante
from connector.cfdi.seal import seal_invoice, verify_seal
from connector.cfdi.xmlio import from_xml, parse_xml_bytes, to_xml, validate_xsd
from tests.cfdi.strategies import comprobantes, shared_test_csd


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(c=comprobantes())
def test_generated_invoice_is_valid_sealed_and_its_cadena_is_sats(c: Comprobante) -> None:
    assert [str(p) for p in rules.validate(c)] == []
    sealed = seal_invoice(c, shared_test_csd())
    root = parse_xml_bytes(sealed)
    assert validate_xsd(root) == []
    assert verify_seal(root) == []
    assert cadena_original(root) == cadena_original_xslt(root)
    again = from_xml(sealed)
    assert rules.validate(again) == []
    assert verify_seal(to_xml(again)) == []  # the model keeps everything the seal covers
