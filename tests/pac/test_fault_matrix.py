"""Fault matrix: every network failure the sandbox can simulate, for stamp and remote modes.

For each fault kind, five valid invoices go through ``ResilientPac`` the way the pipeline
sends them (``maybe_sent`` carried between rounds, as the journal would), while the sandbox
misbehaves on the stamping and recovery operations. Whatever happens on the wire, the
sandbox's own store must show exactly ONE UUID per referencia, and invalid invoices must be
sent exactly once and never retried. Backoff is tiny so the matrix runs in seconds.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timedelta

import pytest

from connector.cfdi.seal import seal_invoice
from connector.pac.base import Timeouts
from connector.pac.errors import PacAmbiguous, PacCircuitOpen, PacInvalid, PacTransient
from connector.pac.fel import FelDriver
from connector.pac.resilience import CLOSED, OPEN, CircuitBreaker, ResilientPac, RetryPolicy
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, invoice

SHORT_READ = 0.5  # read timeout when the fault is a slow reply
BEYOND = 1.5  # seconds a slow/held reply takes: longer than SHORT_READ
NORMAL_READ = 10.0
N_VALID = 5

OPS = {
    "stamp": ("TimbrarCFDI", "ConsultarTimbrePorReferencia"),
    "remote": ("GenerarCFDI40", "ObtenerXMLPorReferencia40"),
}


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("matrix") / "pac.db"
    account = SandboxAccount("mx", "mx-password", "MX", 10_000, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account]) as sandbox:
        warm = make_driver(sandbox, NORMAL_READ)  # first calls load schemas and catalogs
        warm.stamp(seal_invoice(invoice("WARM"), csd), "warm-up")
        warm.generate(invoice("WARM2"), "warm-up-2")
        warm.close()
        yield sandbox


def make_driver(pac: SandboxPac, read: float) -> FelDriver:
    return FelDriver(
        "mx",
        "mx-password",
        cuenta="MX",
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
        timeouts=Timeouts(connect=1.0, read=read),
    )


@pytest.fixture
def driver(pac, request):
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("kind", "") if callspec else ""
    d = make_driver(pac, SHORT_READ if kind in ("latency", "timeout") else NORMAL_READ)
    yield d
    d.close()
    pac.faults.clear()


def resilient(driver: FelDriver, **breaker: object) -> ResilientPac:
    return ResilientPac(
        driver,
        policy=RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05),
        breaker=CircuitBreaker("fel-matrix", **{"failure_threshold": 1000, **breaker}),
    )


def send(rp: ResilientPac, mode: str, payload, referencia: str, rounds: int = 6):
    """What the pipeline does: retry later, remembering that a try may have been sent."""
    maybe_sent = False
    last: Exception | None = None
    for _ in range(rounds):
        try:
            if mode == "stamp":
                return rp.submit(payload, referencia, maybe_sent=maybe_sent)
            return rp.submit_generate(payload, referencia, maybe_sent=maybe_sent)
        except (PacTransient, PacAmbiguous) as exc:
            maybe_sent = maybe_sent or exc.maybe_sent
            last = exc
    raise AssertionError(f"{referencia} no quedó timbrada: {last!r}")


def payload_for(mode: str, csd, folio: str, **kw):
    c = invoice(folio, **kw)
    return seal_invoice(c, csd) if mode == "stamp" else c


def arm(pac: SandboxPac, kind: str, mode: str) -> list:
    write_op, recover_op = OPS[mode]
    seconds = BEYOND if kind in ("latency", "timeout") else None
    rules = [pac.faults.add(kind, times=3, operations={write_op}, seconds=seconds)]
    if kind != "latency":  # recovery fails once too: it must be retried, not trusted
        rules.append(pac.faults.add(kind, times=1, operations={recover_op}, seconds=seconds))
    return rules


@pytest.mark.parametrize("mode", ["stamp", "remote"])
@pytest.mark.parametrize("kind", ["latency", "timeout", "http500", "drop", "garbage", "reply_lost"])
def test_each_invoice_stamped_exactly_once_and_invalid_sent_once(pac, driver, csd, kind, mode):
    rp = resilient(driver)
    tag = uuidlib.uuid4().hex[:8]
    rules = arm(pac, kind, mode)
    results = {}
    for i in range(N_VALID):
        ref = f"{kind}-{mode}-{tag}-{i}"
        results[ref] = send(rp, mode, payload_for(mode, csd, f"{tag}{i}"), ref)

    # the faults really happened
    assert all(r.fired == r.times for r in rules), [(r.kind, r.fired) for r in rules]
    # one invoice, one UUID — in the PAC's own books
    for ref, res in results.items():
        assert pac.store.uuids_for_referencia(ref) == [res.uuid], ref
    assert len({r.uuid for r in results.values()}) == N_VALID

    # invalid invoices (Fecha older than 72 h): one request each, PacInvalid, no retry
    write_op = OPS[mode][0]
    for j in range(2):
        ref = f"bad-{kind}-{mode}-{tag}-{j}"
        old = datetime.now() - timedelta(days=5)
        with pytest.raises(PacInvalid) as info:
            send(rp, mode, payload_for(mode, csd, f"B{tag}{j}", fecha=old), ref)
        assert info.value.code == "401"
        assert info.value.maybe_sent is False
        assert len(pac.store.requests(operation=write_op, referencia=ref)) == 1
        assert pac.store.requests(referencia=ref)[0].code == "401"
        assert pac.store.uuids_for_referencia(ref) == []
    # slow requests the client gave up on may land late: they never add a UUID
    for ref, res in results.items():
        assert pac.store.uuids_for_referencia(ref) == [res.uuid], ref


@pytest.mark.parametrize("mode", ["stamp", "remote"])
def test_reply_lost_then_journal_retry_recovers_without_resending(pac, driver, csd, mode):
    """The PAC stamped it, the reply was lost and this process gave up: the next run (the
    journal says maybe_sent) asks by referencia and never sends the invoice again."""
    write_op, _ = OPS[mode]
    pac.faults.add("reply_lost", times=1, operations={write_op})
    rp = ResilientPac(
        driver,
        policy=RetryPolicy(max_attempts=1, base_delay=0, max_delay=0),
        breaker=CircuitBreaker("fel-lost", failure_threshold=1000),
    )
    ref = f"lost-{mode}-{uuidlib.uuid4().hex[:8]}"
    payload = payload_for(mode, csd, f"L{ref[-8:]}")
    with pytest.raises(PacAmbiguous) as info:
        send_once = rp.submit if mode == "stamp" else rp.submit_generate
        send_once(payload, ref)
    assert info.value.maybe_sent is True
    [uuid] = pac.store.uuids_for_referencia(ref)  # it was stamped
    sent_before = len(pac.store.requests(operation=write_op, referencia=ref))
    res = (rp.submit if mode == "stamp" else rp.submit_generate)(payload, ref, maybe_sent=True)
    assert res.uuid == uuid and res.previously_stamped
    assert len(pac.store.requests(operation=write_op, referencia=ref)) == sent_before


@pytest.mark.parametrize("outage", ["stopped", "http500"])
def test_breaker_opens_while_pac_down_and_closes_when_back(pac, driver, csd, outage):
    clock = [0.0]
    rp = resilient(driver, failure_threshold=3, reset_timeout=30.0, clock=lambda: clock[0])
    tag = uuidlib.uuid4().hex[:8]
    invoices = {
        f"down-{outage}-{tag}-{i}": payload_for("stamp", csd, f"D{tag}{i}") for i in range(4)
    }
    pending = dict.fromkeys(invoices, False)  # referencia -> maybe_sent

    if outage == "stopped":
        pac.stop()
    else:
        pac.faults.add("http500", times=None)
    try:
        first = next(iter(invoices))
        with pytest.raises(PacCircuitOpen):
            for _ in range(5):
                try:
                    rp.submit(invoices[first], first, maybe_sent=pending[first])
                except PacTransient as exc:
                    if isinstance(exc, PacCircuitOpen):
                        raise
                    pending[first] = pending[first] or exc.maybe_sent
        assert rp.state == OPEN
        seen = len(pac.store.requests_log)
        for ref, xml in invoices.items():  # fail fast: the PAC is not called at all
            with pytest.raises(PacCircuitOpen):
                rp.submit(xml, ref, maybe_sent=pending[ref])
        assert len(pac.store.requests_log) == seen
    finally:
        if outage == "stopped":
            pac.start()
        else:
            pac.faults.clear()

    clock[0] += 30.0  # reset timeout elapsed: half-open, one trial call
    for ref, xml in invoices.items():
        res = rp.submit(xml, ref, maybe_sent=pending[ref])
        assert pac.store.uuids_for_referencia(ref) == [res.uuid]
    assert rp.state == CLOSED
    assert rp.breaker.snapshot()["opened_count"] == 1
