"""Issue 15 (Comercio Exterior 2.0 and Carta Porte 3.1), over real HTTP to the sandbox PAC on
127.0.0.1: an invoice with the complement, sealed as an ERP's XML drop would be (sealing does not
validate), stamps when valid; one that breaks a rule of the complement (SAT's XSD is still met)
is refused by the PAC with the rule's code and message, and nothing is stamped."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from connector.cfdi.amounts import complete
from connector.cfdi.csd import Csd
from connector.cfdi.model import Comprobante
from connector.cfdi.rules import MESSAGES
from connector.cfdi.seal import seal_xml, verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml, to_xml, validate_xsd
from connector.pac.errors import PacInvalid
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxPac
from tests.cfdi.base_invoice import cce_data, cp_data, load
from tests.cfdi.test_cp31 import ingreso_data

Data = Callable[[], dict[str, Any]]


def _invoice(data: dict[str, Any]) -> Comprobante:
    fecha = (datetime.now() - timedelta(minutes=2)).replace(microsecond=0).isoformat()
    data.update(Serie="EX", Folio=uuidlib.uuid4().hex[:10], Fecha=fecha)
    return complete(load(data))


VALID: dict[str, tuple[Data, str]] = {
    "cce20-export": (cce_data, "ComercioExterior"),
    "cp31-traslado": (cp_data, "CartaPorte"),
    "cp31-ingreso": (ingreso_data, "CartaPorte"),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_invoice_with_the_complement_stamps(
    pac: SandboxPac, fel: FelDriver, csd: Csd, case: str
) -> None:
    make, field = VALID[case]
    c = _invoice(make())
    res = fel.stamp(seal_xml(to_xml(c), csd), f"R15-{uuidlib.uuid4().hex}")
    assert validate_xsd(res.xml) == [] and verify_seal(res.xml) == []
    assert verify_tfd(res.xml, pac.certificate_der) == []
    stamped = from_xml(res.xml)
    assert getattr(stamped, field) == getattr(c, field)


def _total_usd(d: dict[str, Any]) -> None:
    d["ComercioExterior"]["TotalUSD"] = "2252.60"  # not the sum of ValorDolares


def _total_dist(d: dict[str, Any]) -> None:
    d["CartaPorte"]["TotalDistRec"] = "999"  # not the sum of DistanciaRecorrida


BROKEN: dict[str, tuple[Data, Callable[[dict[str, Any]], None], str]] = {
    "cce20": (cce_data, _total_usd, "CONN-CCE-005"),
    "cp31": (cp_data, _total_dist, "CONN-CP-008"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_invoice_breaking_a_complement_rule_is_refused_with_its_code(
    pac: SandboxPac, fel: FelDriver, csd: Csd, case: str
) -> None:
    make, edit, code = BROKEN[case]
    data = make()
    edit(data)
    xml = seal_xml(to_xml(_invoice(data)), csd)
    assert validate_xsd(xml) == [] and verify_seal(xml) == []  # only the complement's rules
    before = pac.store.count()
    with pytest.raises(PacInvalid) as info:
        fel.stamp(xml, f"R15-{uuidlib.uuid4().hex}")
    assert info.value.code == code, info.value.message
    assert MESSAGES[code] in info.value.message
    assert pac.store.count() == before


def test_payroll_with_nomina12_stamps_and_a_broken_one_is_refused_by_the_pac(
    pac: SandboxPac, fel: FelDriver, csd: Csd
) -> None:
    """Nómina 1.2 as payroll software drops it, sealed (sealing does not validate) and sent
    straight to the sandbox PAC: the PAC validates the complement by SAT's nomina12.xsd as a PAC
    would, stamps the valid document and refuses the broken one naming the field."""
    from tests.daemon.test_daemon_nomina12 import VALID as PAYROLL

    for name, text in PAYROLL.items():
        text = text.replace('Folio="', f'Folio="{uuidlib.uuid4().hex[:6]}', 1)
        res = fel.stamp(seal_xml(text.encode(), csd), f"R15-{uuidlib.uuid4().hex}")
        assert validate_xsd(res.xml) == [] and verify_tfd(res.xml, pac.certificate_der) == []
        assert b"<nomina12:Nomina" in res.xml, name
    broken = PAYROLL["ordinaria"].replace(' NumEmpleado="120"', "")
    xml = seal_xml(broken.encode(), csd)
    assert verify_seal(xml) == []
    before = pac.store.count()
    with pytest.raises(PacInvalid) as info:
        fel.stamp(xml, f"R15-{uuidlib.uuid4().hex}")
    assert info.value.code == "301", info.value.message
    assert "NumEmpleado" in info.value.message
    assert pac.store.count() == before
