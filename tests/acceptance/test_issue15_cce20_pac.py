"""Issue 15 (Comercio Exterior 2.0), over real HTTP to the sandbox PAC on 127.0.0.1: an export
invoice with the complement, sealed as an ERP's XML drop would be (sealing does not validate),
stamps when valid; one that breaks a rule of the complement (SAT's XSD is still met) is refused
by the PAC with the rule's code and message, and nothing is stamped."""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from connector.cfdi.amounts import complete
from connector.cfdi.csd import Csd
from connector.cfdi.model import Comprobante
from connector.cfdi.rules_cce20 import MESSAGES_CCE
from connector.cfdi.seal import seal_xml, verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml, to_xml, validate_xsd
from connector.pac.errors import PacInvalid
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxPac
from tests.cfdi.base_invoice import cce_data, load


def _export(data: dict[str, Any]) -> Comprobante:
    fecha = (datetime.now() - timedelta(minutes=2)).replace(microsecond=0).isoformat()
    data.update(Serie="EX", Folio=uuidlib.uuid4().hex[:10], Fecha=fecha)
    return complete(load(data))


def test_valid_export_invoice_stamps(pac: SandboxPac, fel: FelDriver, csd: Csd) -> None:
    c = _export(cce_data())
    res = fel.stamp(seal_xml(to_xml(c), csd), f"R15-{uuidlib.uuid4().hex}")
    assert validate_xsd(res.xml) == [] and verify_seal(res.xml) == []
    assert verify_tfd(res.xml, pac.certificate_der) == []
    stamped = from_xml(res.xml)
    assert stamped.ComercioExterior == c.ComercioExterior


def test_export_invoice_breaking_a_cce_rule_is_refused_with_its_code(
    pac: SandboxPac, fel: FelDriver, csd: Csd
) -> None:
    data = cce_data()
    data["ComercioExterior"]["TotalUSD"] = "2252.60"  # not the sum of ValorDolares
    xml = seal_xml(to_xml(_export(data)), csd)
    assert validate_xsd(xml) == [] and verify_seal(xml) == []  # only the CCE rules refuse it
    before = pac.store.count()
    with pytest.raises(PacInvalid) as info:
        fel.stamp(xml, f"R15-{uuidlib.uuid4().hex}")
    assert info.value.code == "CONN-CCE-005", info.value.message
    assert MESSAGES_CCE["CONN-CCE-005"] in info.value.message
    assert pac.store.count() == before
