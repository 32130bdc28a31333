"""The PAC refuses the recover of a send that may have been stamped (203: the password was
changed at its portal): ``ResilientPac`` reports it as ambiguous (``CONN-PAC-RECUPERACION``,
``maybe_sent``), never as a permanent rejection, and never sends again. Once the account works,
the same referencia is recovered: one UUID. Real FEL driver, real sandbox over HTTP."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from connector.cfdi.seal import seal_invoice
from connector.pac.base import Timeouts
from connector.pac.errors import PacAmbiguous
from connector.pac.fel import FelDriver
from connector.pac.resilience import CircuitBreaker, ResilientPac, RetryPolicy
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, invoice

OPS = {
    "stamp": ("TimbrarCFDI", "ConsultarTimbrePorReferencia"),
    "remote": ("GenerarCFDI40", "ObtenerXMLPorReferencia40"),
}


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("refused") / "pac.db"
    account = SandboxAccount("mx", "mx-password", "MX", 1_000, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account]) as sandbox:
        yield sandbox


def submit(rp: ResilientPac, mode: str, payload, referencia: str, maybe_sent: bool):
    if mode == "stamp":
        return rp.submit(payload, referencia, maybe_sent=maybe_sent)
    return rp.submit_generate(payload, referencia, maybe_sent=maybe_sent)


@pytest.mark.parametrize("mode", ["stamp", "remote"])
def test_recover_refused_after_a_lost_reply_is_ambiguous_and_nothing_is_resent(pac, csd, mode):
    write_op, recover_op = OPS[mode]
    driver = FelDriver(
        "mx",
        "mx-password",
        cuenta="MX",
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
        timeouts=Timeouts(connect=1.0, read=10.0),
    )
    # the refusal pauses the PAC (account error); probed again at once here
    breaker = CircuitBreaker(f"fel-refused-{mode}", failure_threshold=1000, reset_timeout=0.0)
    once = ResilientPac(driver, policy=RetryPolicy(max_attempts=1), breaker=breaker)
    rp = ResilientPac(
        driver, policy=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05), breaker=breaker
    )
    tag = uuidlib.uuid4().hex[:8]
    ref = f"refused-{mode}-{tag}"
    c = invoice(tag)
    payload = seal_invoice(c, csd) if mode == "stamp" else c
    try:
        # stamped at the PAC, the reply lost; then the password is changed at the PAC
        pac.faults.add("reply_lost", times=1, operations={write_op})
        with pytest.raises(PacAmbiguous) as info:
            submit(once, mode, payload, ref, maybe_sent=False)
        assert info.value.maybe_sent is True
        [uuid] = pac.store.uuids_for_referencia(ref)
        pac.engine.store.set_password("mx", "rotated")
        recovers = len(pac.store.requests(operation=recover_op))

        with pytest.raises(PacAmbiguous) as info:
            submit(rp, mode, payload, ref, maybe_sent=True)
        err = info.value
        assert err.code == "CONN-PAC-RECUPERACION" and err.maybe_sent is True
        assert "203" in err.message and ref in err.message
        # asked once (the same refusal is not hammered within the call), never re-sent
        assert len(pac.store.requests(operation=recover_op)) == recovers + 1
        assert pac.store.requests(operation=recover_op)[-1].code == "203"
        assert len(pac.store.requests(operation=write_op, referencia=ref)) == 1
        assert pac.store.uuids_for_referencia(ref) == [uuid]
        assert breaker.snapshot()["paused"]["code"] == "203"

        pac.engine.store.set_password("mx", "mx-password")
        result = submit(rp, mode, payload, ref, maybe_sent=True)
        assert result.uuid == uuid
        assert len(pac.store.requests(operation=write_op, referencia=ref)) == 1
        assert pac.store.uuids_for_referencia(ref) == [uuid]
        assert "paused" not in breaker.snapshot()
    finally:
        pac.engine.store.set_password("mx", "mx-password")
        pac.faults.clear()
        driver.close()
