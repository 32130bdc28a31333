"""SAT status client over real HTTP against the sandbox's ConsultaCFDIService."""

from __future__ import annotations

import uuid as uuidlib
from decimal import Decimal

import pytest

from connector.pac.base import Timeouts
from connector.pac.errors import PacInvalid, PacTransient
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac
from connector.pac.sat_status import SatStatusClient, expresion_impresa

from .drivers_support import EMISOR, RECEPTOR, invoice, sealed


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("sat") / "pac.db"
    with SandboxPac(
        db, accounts=[SandboxAccount("st", "st-pass", "ST", 50, csds={EMISOR: csd})]
    ) as s:
        yield s


@pytest.fixture(scope="module")
def stamped(pac, csd):
    fel = FelDriver(
        "st",
        "st-pass",
        cuenta="ST",
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
    )
    c = invoice("S1")
    res = fel.stamp(sealed(csd, "S1"), "sat-1")
    yield fel, res, c
    fel.close()


@pytest.fixture
def sat(pac):
    client = SatStatusClient(pac.sat_status_url, timeouts=Timeouts(2, 5))
    yield client
    client.close()


def test_vigente_then_cancelado(sat, stamped):
    fel, res, c = stamped
    st = sat.consulta(res.uuid, EMISOR, RECEPTOR, c.Total)
    assert st.found
    assert st.codigo_estatus.startswith("S")
    assert st.estado == "Vigente"
    assert st.es_cancelable and "Cancelable" in st.es_cancelable
    fel.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    after = sat.consulta(res.uuid, EMISOR, RECEPTOR, c.Total)
    assert after.estado == "Cancelado" and after.found


def test_unknown_or_mismatched_is_not_found(sat, stamped):
    _, res, c = stamped
    other = sat.consulta(str(uuidlib.uuid4()), EMISOR, RECEPTOR, c.Total)
    assert not other.found and other.estado == "No Encontrado"
    wrong_total = sat.consulta(res.uuid, EMISOR, RECEPTOR, c.Total + 1)
    assert not wrong_total.found


def test_expresion_impresa_format():
    u = "ad662d33-6934-459c-a128-bdf0393e0f44"
    assert expresion_impresa(u, "eku9003173c9", "XAXX010101000", Decimal("1160")) == (
        "?re=EKU9003173C9&rr=XAXX010101000&tt=1160.000000&id=AD662D33-6934-459C-A128-BDF0393E0F44"
    )
    assert "&amp;" in expresion_impresa(u, "A&B010101AB1", RECEPTOR, "1.5")


@pytest.mark.parametrize(
    ("uuid", "re", "tt"),
    [
        ("no-es-uuid", EMISOR, "1"),
        (str(uuidlib.uuid4()), "MAL", "1"),
        (str(uuidlib.uuid4()), EMISOR, "x"),
    ],
)
def test_bad_input_is_a_clear_spanish_error_without_a_request(pac, sat, uuid, re, tt):
    before = len(pac.store.requests(operation="Consulta"))
    with pytest.raises(PacInvalid) as info:
        sat.consulta(uuid, re, RECEPTOR, tt)
    assert info.value.code == "CONN-SAT-DATOS"
    assert "No se puede consultar" in info.value.message
    assert len(pac.store.requests(operation="Consulta")) == before


@pytest.mark.parametrize(
    ("kind", "code"),
    [("http500", "HTTP-500"), ("drop", "CONN-PAC-CORTE"), ("garbage", "CONN-PAC-RESPUESTA")],
)
def test_faults_are_transient_for_a_read(pac, sat, stamped, kind, code):
    _, res, c = stamped
    pac.faults.add(kind, times=1, operations={"Consulta"})
    try:
        with pytest.raises(PacTransient) as info:
            sat.consulta(res.uuid, EMISOR, RECEPTOR, c.Total)
        assert info.value.code == code
        assert info.value.maybe_sent is False  # a read: nothing to recover
        assert sat.consulta(res.uuid, EMISOR, RECEPTOR, c.Total).found  # next call works
    finally:
        pac.faults.clear()


def test_read_timeout_is_transient(pac, stamped):
    _, res, c = stamped
    pac.faults.add("timeout", times=1, operations={"Consulta"}, seconds=1.0)
    client = SatStatusClient(pac.sat_status_url, timeouts=Timeouts(1, 0.3))
    try:
        with pytest.raises(PacTransient) as info:
            client.consulta(res.uuid, EMISOR, RECEPTOR, c.Total)
        assert info.value.code == "CONN-PAC-TIMEOUT"
    finally:
        client.close()
        pac.faults.clear()
