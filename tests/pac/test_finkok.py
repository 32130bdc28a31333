"""Finkok driver over real HTTP against the sandbox PAC on 127.0.0.1."""

from __future__ import annotations

import logging
import uuid as uuidlib
from decimal import Decimal

import pytest

from connector.cfdi.seal import verify_tfd
from connector.pac import create_driver
from connector.pac.base import Timeouts
from connector.pac.errors import PacInvalid, PacNotFound, PacUnsupported
from connector.pac.finkok import FinkokDriver
from connector.pac.resilience import CircuitBreaker, ResilientPac, RetryPolicy
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, RECEPTOR, invoice, sealed

PASSWORD = "fk-Pa55word!"


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("finkok") / "pac.db"
    with SandboxPac(
        db, accounts=[SandboxAccount("fk", PASSWORD, "", 200, csds={EMISOR: csd})]
    ) as s:
        yield s


@pytest.fixture
def finkok(pac, csd_files):
    cer, key, _ = csd_files
    d = FinkokDriver(
        "fk",
        PASSWORD,
        stamp_url=pac.finkok_stamp_url,
        cancel_url=pac.finkok_cancel_url,
        rfc_emisor=EMISOR,
        cancel_cer_der=cer,
        cancel_key_pem=key,
        timeouts=Timeouts(2, 10),
    )
    yield d
    d.close()


def test_stamp_and_resend_gives_same_uuid(finkok, pac, csd):
    xml = sealed(csd, "K1")
    first = finkok.stamp(xml, "ignored-by-finkok")
    assert uuidlib.UUID(first.uuid) and not first.previously_stamped
    assert verify_tfd(first.xml, pac.certificate_der) == []
    again = finkok.stamp(xml, "ignored-by-finkok")
    assert again.uuid == first.uuid and again.previously_stamped and again.xml
    assert [s.uuid for s in pac.store.stamps() if s.uuid == first.uuid] == [first.uuid]


def test_stamped_recovers_by_content_and_not_found(finkok, csd):
    xml = sealed(csd, "K2")
    with pytest.raises(PacNotFound):
        finkok.stamped(xml)
    res = finkok.stamp(xml, "x")
    assert finkok.stamped(xml).uuid == res.uuid


def test_recover_by_referencia_is_unsupported_and_resilience_resends(finkok, pac, csd):
    with pytest.raises(PacUnsupported) as info:
        finkok.recover("R")
    assert "finkok" in str(info.value)
    xml = sealed(csd, "K3")
    first = finkok.stamp(xml, "R3")
    rp = ResilientPac(
        finkok,
        policy=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0),
        breaker=CircuitBreaker("fk", failure_threshold=100),
    )
    again = rp.submit(xml, "R3", maybe_sent=True)  # the journal says it may have been sent
    assert again.uuid == first.uuid and again.previously_stamped


def test_reply_lost_then_resend_identical_bytes_one_uuid(finkok, pac, csd):
    pac.faults.add("reply_lost", times=1, operations={"stamp"})
    rp = ResilientPac(
        finkok,
        policy=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0),
        breaker=CircuitBreaker("fk2", failure_threshold=100),
    )
    before = pac.store.count()
    res = rp.submit(sealed(csd, "K4"), "R4")
    assert res.previously_stamped
    assert pac.store.count() == before + 1


def test_invalid_seal_is_invalid(finkok, csd):
    xml = sealed(csd, "K5").replace(b'Folio="K5"', b'Folio="K6"')
    with pytest.raises(PacInvalid) as info:
        finkok.stamp(xml, "x")
    assert info.value.code == "302"


def test_cancel(finkok, csd):
    c = invoice("K7")
    res = finkok.stamp(sealed(csd, "K7"), "x")
    out = finkok.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    assert out.accepted and out.code == "201"
    assert out.acuse and res.uuid.encode() in out.acuse.upper()
    again = finkok.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    assert again.accepted and again.code == "202"
    with pytest.raises(PacNotFound):
        finkok.cancel(str(uuidlib.uuid4()).upper(), "02", None, RECEPTOR, Decimal("1"))


def test_sat_status_through_finkok(finkok, csd):
    c = invoice("K8")
    res = finkok.stamp(sealed(csd, "K8"), "x")
    st = finkok.sat_status(res.uuid, EMISOR, RECEPTOR, c.Total)
    assert st.found and st.estado == "Vigente"
    finkok.cancel(res.uuid, "02", None, RECEPTOR, c.Total)
    assert finkok.sat_status(res.uuid, EMISOR, RECEPTOR, c.Total).estado == "Cancelado"
    missing = finkok.sat_status(str(uuidlib.uuid4()).upper(), EMISOR, RECEPTOR, c.Total)
    assert not missing.found and missing.estado == "No Encontrado"


def test_unsupported_operations_name_the_pac(finkok):
    for op, args in (
        ("credits", ()),
        ("acuse_envio", ("U",)),
        ("change_password", ("NewPassword1",)),
        ("generate", (None, "R")),
    ):
        with pytest.raises(PacUnsupported) as info:
            getattr(finkok, op)(*args)
        assert "finkok" in info.value.message and op in info.value.message


def test_wrong_password_invalid_and_secret_never_leaks(pac, csd, caplog):
    secret = "Finkok-Wrong-Secret-77"
    caplog.set_level(logging.DEBUG)
    d = create_driver(
        "finkok",
        pac.finkok_stamp_url,
        usuario="fk",
        password=secret,
        cancel_url=pac.finkok_cancel_url,
        rfc_emisor=EMISOR,
    )
    assert isinstance(d, FinkokDriver)
    with pytest.raises(PacInvalid) as info:
        d.stamp(sealed(csd, "K9"), "x")
    assert info.value.code == "203"
    with pytest.raises(PacInvalid):
        d.sat_status(str(uuidlib.uuid4()), EMISOR, RECEPTOR, "1.00")
    d.close()
    assert secret not in str(info.value) + repr(info.value) + repr(d) + caplog.text
