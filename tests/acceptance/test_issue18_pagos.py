"""Issue 18, item 1, end to end over real HTTP to the sandbox PAC on 127.0.0.1: a Pagos 2.0
document whose amounts break SAT's rules, sealed by us as an ERP's XML drop would be (sealing
does not validate), is refused by the PAC (FEL and Finkok) with SAT's CRP20xxx code and message
and nothing is stamped; through FEL's Conexión Remota an ImporteDR out of its limits is refused
too (ImpuestosP is not in that contract: the PAC derives it); a valid partial payment in two
currencies still stamps."""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from connector.cfdi.amounts import complete
from connector.cfdi.csd import Csd
from connector.cfdi.model import Comprobante
from connector.cfdi.rules_pagos import MATRIX_PAGOS
from connector.cfdi.seal import seal_xml, verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml, to_xml, validate_xsd
from connector.pac.base import Timeouts
from connector.pac.errors import PacInvalid
from connector.pac.fel import FelDriver
from connector.pac.finkok import FinkokDriver
from connector.pac.sandbox import SandboxPac
from tests.acceptance.conftest import PASSWORD, USUARIO
from tests.cfdi.base_invoice import load, pago_one_document, pago_usd_data


def _payment(data: dict[str, Any]) -> Comprobante:
    fecha = (datetime.now() - timedelta(minutes=2)).replace(microsecond=0).isoformat()
    data.update(Serie="P", Folio=uuidlib.uuid4().hex[:10], Fecha=fecha)
    return complete(load(data))


def _xml_drop(c: Comprobante, csd: Csd) -> bytes:
    """The ERP's XML drop sealed by us (``seal_xml`` seals it as it is)."""
    return seal_xml(to_xml(c), csd)


@pytest.mark.parametrize(
    ("data", "code"),
    [({"importe_dr": "100.00"}, "CRP20261"), ({"importe_p": "600.00"}, "CRP20274")],
    ids=["CRP20261_importe_dr_100", "CRP20274_impuestos_p_600"],
)
def test_invalid_payment_is_refused_by_the_pac_with_its_crp_code(
    pac: SandboxPac, fel: FelDriver, csd: Csd, data: dict[str, str], code: str
) -> None:
    c = _payment(pago_one_document(**data))
    xml = _xml_drop(c, csd)
    assert validate_xsd(xml) == [] and verify_seal(xml) == []  # only SAT's Pagos rules refuse it
    before = pac.store.count()
    with pytest.raises(PacInvalid) as info:
        fel.stamp(xml, f"R18-{uuidlib.uuid4().hex}")
    assert info.value.code == code, info.value.message
    assert MATRIX_PAGOS[code] in info.value.message
    finkok = FinkokDriver(
        USUARIO, PASSWORD, stamp_url=pac.finkok_stamp_url, timeouts=Timeouts(2, 20)
    )
    try:
        with pytest.raises(PacInvalid) as info:
            finkok.stamp(xml, "x")
        assert info.value.code == code, info.value.message
    finally:
        finkok.close()
    if code == "CRP20261":  # Conexión Remota carries ImporteDR (ImpuestosP is derived there)
        with pytest.raises(PacInvalid) as info:
            fel.generate(c, f"G18-{uuidlib.uuid4().hex}")
        assert info.value.code == code, info.value.message
    assert pac.store.count() == before


def test_valid_two_currency_partial_payment_stamps(
    pac: SandboxPac, fel: FelDriver, csd: Csd
) -> None:
    c = _payment(pago_usd_data("100.00", "1750.00"))
    res = fel.stamp(_xml_drop(c, csd), f"R18-{uuidlib.uuid4().hex}")
    assert validate_xsd(res.xml) == [] and verify_seal(res.xml) == []
    assert verify_tfd(res.xml, pac.certificate_der) == []
    stamped = from_xml(res.xml)
    assert stamped.uuid == res.uuid
    assert (
        stamped.Pagos is not None
        and stamped.Pagos.Totales.MontoTotalPagos == c.Pagos.Totales.MontoTotalPagos
    )  # type: ignore[union-attr]
    gen = fel.generate(_payment(pago_usd_data("100.00", "1750.00")), f"G18-{uuidlib.uuid4().hex}")
    assert verify_tfd(gen.xml, pac.certificate_der) == []
