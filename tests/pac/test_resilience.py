"""Resilience logic: retries, recover-before-resend, circuit breaker.

The network behaviour is exercised against the real sandbox in test_fault_matrix.py; here a
scripted driver (a PAC whose answers the test lists in advance) pins down the decision logic
that must hold whatever the transport: what is retried, what is sent once, and in what order.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.pac.base import PacDriver, StampResult
from connector.pac.errors import (
    PacAmbiguous,
    PacCircuitOpen,
    PacInvalid,
    PacNotFound,
    PacTransient,
    PacUnsupported,
    error_for_code,
    kind_of,
)
from connector.pac.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    ResilientPac,
    RetryPolicy,
    breaker_for,
    breaker_states,
)

FAST = RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0)


def _result(uuid: str, previous: bool = False) -> StampResult:
    return StampResult(
        uuid=uuid,
        xml=b"<cfdi/>",
        fecha_timbrado="2026-01-01T00:00:00",
        no_certificado_sat="30001000000500003456",
        previously_stamped=previous,
    )


class ScriptedPac(PacDriver):
    """Answers each call with the next scripted outcome (an exception or a result)."""

    name = "scripted"

    def __init__(self, stamp_script: list, recover_script: list | None = None) -> None:
        self.stamp_script = list(stamp_script)
        self.recover_script = list(recover_script or [])
        self.calls: list[tuple[str, str]] = []
        self.sent: list[bytes] = []

    def _next(self, script: list) -> StampResult:
        outcome = script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
        self.calls.append(("stamp", referencia))
        self.sent.append(sealed_xml)
        return self._next(self.stamp_script)

    def generate(self, c, referencia: str) -> StampResult:  # type: ignore[override]
        self.calls.append(("generate", referencia))
        return self._next(self.stamp_script)

    def recover(self, referencia: str) -> StampResult:
        self.calls.append(("recover", referencia))
        if not self.recover_script:
            raise PacUnsupported(self.name, "recover")
        return self._next(self.recover_script)


def transient() -> PacTransient:
    return PacTransient("CONN-PAC-CONEXION", "sin conexión", maybe_sent=False)


def ambiguous() -> PacAmbiguous:
    return PacAmbiguous("CONN-PAC-TIMEOUT", "sin respuesta")


def not_found() -> PacNotFound:
    return PacNotFound("NO-ENCONTRADO", "no existe")


def wrap(driver: PacDriver, **kw) -> ResilientPac:
    return ResilientPac(
        driver, policy=FAST, breaker=CircuitBreaker("t", **kw), sleep=lambda s: None
    )


def test_invalid_is_sent_exactly_once():
    pac = ScriptedPac([PacInvalid("302", "Sello mal formado")])
    with pytest.raises(PacInvalid) as info:
        wrap(pac).submit(b"<a/>", "R1")
    assert pac.calls == [("stamp", "R1")]
    assert info.value.maybe_sent is False


def test_transient_is_retried_with_identical_bytes():
    pac = ScriptedPac([transient(), transient(), _result("U1")])
    res = wrap(pac).submit(b"<sealed/>", "R1")
    assert res.uuid == "U1"
    assert pac.calls == [("stamp", "R1")] * 3
    assert set(pac.sent) == {b"<sealed/>"}


def test_ambiguous_recovers_first_and_returns_existing_stamp():
    pac = ScriptedPac([ambiguous()], recover_script=[_result("U1", previous=True)])
    res = wrap(pac).submit(b"<a/>", "R1")
    assert res.uuid == "U1" and res.previously_stamped
    assert pac.calls == [("stamp", "R1"), ("recover", "R1")]


def test_ambiguous_not_found_resends_identical_bytes():
    pac = ScriptedPac([ambiguous(), _result("U2")], recover_script=[not_found()])
    res = wrap(pac).submit(b"<same/>", "R1")
    assert res.uuid == "U2"
    assert pac.calls == [("stamp", "R1"), ("recover", "R1"), ("stamp", "R1")]
    assert pac.sent == [b"<same/>", b"<same/>"]


def test_maybe_sent_from_journal_recovers_before_first_send():
    pac = ScriptedPac([], recover_script=[_result("U9", previous=True)])
    res = wrap(pac).submit(b"<a/>", "R1", maybe_sent=True)
    assert res.uuid == "U9"
    assert pac.calls == [("recover", "R1")]


def test_transient_during_recover_is_retried_then_resend():
    pac = ScriptedPac([_result("U3")], recover_script=[transient(), not_found()])
    res = wrap(pac).submit(b"<a/>", "R1", maybe_sent=True)
    assert res.uuid == "U3"
    assert pac.calls == [("recover", "R1"), ("recover", "R1"), ("stamp", "R1")]


def test_exhausted_retries_report_maybe_sent():
    pac = ScriptedPac([ambiguous()] + [transient()] * 10, recover_script=[not_found()] * 10)
    with pytest.raises(PacTransient) as info:
        wrap(pac, failure_threshold=100).submit(b"<a/>", "R1")
    # one attempt may have reached the PAC: the journal must know it
    assert info.value.maybe_sent is True
    assert sum(1 for c in pac.calls if c[0] == "stamp") == 5


def test_exhausted_pure_transient_is_not_maybe_sent():
    pac = ScriptedPac([transient()] * 10)
    with pytest.raises(PacTransient) as info:
        wrap(pac, failure_threshold=100).submit(b"<a/>", "R1")
    assert info.value.maybe_sent is False


def test_driver_without_recover_resends_identical_bytes_for_stamp():
    pac = ScriptedPac([ambiguous(), _result("U4", previous=True)])
    res = wrap(pac).submit(b"<x/>", "R1")
    assert res.previously_stamped
    assert pac.sent == [b"<x/>", b"<x/>"]


def test_generate_without_recover_never_resends():
    pac = ScriptedPac([ambiguous(), _result("U5")])
    with pytest.raises(PacAmbiguous) as info:
        wrap(pac).submit_generate(None, "R1")  # type: ignore[arg-type]
    assert [c[0] for c in pac.calls] == ["generate", "recover"]
    assert info.value.code == "CONN-PAC-SIN-RECUPERACION"
    assert info.value.maybe_sent is True


def test_generate_ambiguous_recovers():
    pac = ScriptedPac([ambiguous()], recover_script=[_result("U6", previous=True)])
    res = wrap(pac).submit_generate(None, "R1")  # type: ignore[arg-type]
    assert res.uuid == "U6"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_fails_fast_half_opens_and_closes():
    clock = Clock()
    b = CircuitBreaker("pac-x", failure_threshold=3, reset_timeout=10, clock=clock)
    pac = ScriptedPac([transient()] * 3 + [_result("U1")])
    rp = ResilientPac(pac, policy=RetryPolicy(max_attempts=1), breaker=b, sleep=lambda s: None)
    for _ in range(3):
        with pytest.raises(PacTransient):
            rp.submit(b"<a/>", "R1")
    assert b.state == OPEN
    with pytest.raises(PacCircuitOpen) as info:
        rp.submit(b"<a/>", "R1")
    assert "pac-x" in info.value.message and info.value.code == "CONN-PAC-CIRCUITO"
    assert len(pac.calls) == 3  # the open breaker did not call the PAC
    clock.now += 10
    assert b.state == HALF_OPEN
    assert rp.submit(b"<a/>", "R1").uuid == "U1"
    assert b.state == CLOSED
    assert b.snapshot()["opened_count"] == 1


def test_breaker_half_open_failure_reopens_and_limits_trials():
    clock = Clock()
    b = CircuitBreaker("pac-y", failure_threshold=1, reset_timeout=5, clock=clock)
    b.record_failure()
    assert b.state == OPEN
    clock.now += 5
    b.acquire()  # the one trial call
    with pytest.raises(PacCircuitOpen):
        b.acquire()  # a second concurrent trial is refused
    b.record_failure()
    assert b.state == OPEN
    clock.now += 4.9
    assert b.state == OPEN


def test_rejections_count_as_answers_for_the_breaker():
    b = CircuitBreaker("pac-z", failure_threshold=2, reset_timeout=60)
    pac = ScriptedPac([transient(), PacInvalid("302", "x"), transient()])
    rp = ResilientPac(pac, policy=RetryPolicy(max_attempts=1), breaker=b, sleep=lambda s: None)
    for _ in range(3):
        with pytest.raises((PacTransient, PacInvalid)):
            rp.submit(b"<a/>", "R")
    assert b.state == CLOSED


def test_breaker_registry_is_per_pac_and_reports_states():
    a = breaker_for("reg-a", failure_threshold=1)
    assert breaker_for("reg-a") is a
    a.record_failure()
    states = {s["pac"]: s["state"] for s in breaker_states()}
    assert states["reg-a"] == OPEN
    assert breaker_for("reg-b").state == CLOSED


def test_retry_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_backoff_waits_grow_and_stay_capped():
    waits: list[float] = []
    pac = ScriptedPac([transient()] * 6)
    rp = ResilientPac(
        pac,
        policy=RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=4.0),
        breaker=CircuitBreaker("w", failure_threshold=100),
        sleep=waits.append,
    )
    with pytest.raises(PacTransient):
        rp.submit(b"<a/>", "R")
    assert len(waits) == 5
    assert all(0 <= w <= 4.0 for w in waits)


outcomes = st.lists(
    st.sampled_from(["transient", "ambiguous", "ok", "invalid"]), min_size=1, max_size=8
)


@settings(max_examples=50, deadline=None)
@given(script=outcomes, recover_has_it=st.booleans())
def test_property_sent_once_when_invalid_and_no_resend_over_an_existing_stamp(
    script, recover_has_it
):
    """Whatever the sequence of failures: an invalid answer ends the call at once (never
    re-sent), and after an ambiguous failure the PAC is asked first, so a stamp that exists
    is returned and the invoice is not sent again."""
    factories = {
        "transient": transient,
        "ambiguous": ambiguous,
        "ok": lambda: _result("NEW"),
        "invalid": lambda: PacInvalid("302", "x"),
    }
    stamp_script = [factories[s]() for s in script] + [_result("NEW")] * 10
    recover = [_result("OLD", previous=True) if recover_has_it else not_found()] * 20
    pac = ScriptedPac(stamp_script, recover_script=recover)
    rp = ResilientPac(
        pac,
        policy=RetryPolicy(max_attempts=30, base_delay=0, max_delay=0),
        breaker=CircuitBreaker("p", failure_threshold=1000),
        sleep=lambda s: None,
    )
    padded = [*script, "ok"]
    end = next(i for i, s in enumerate(padded) if s in ("ok", "invalid"))
    prefix = padded[: end + 1]
    first_amb = prefix.index("ambiguous") if "ambiguous" in prefix else None
    stamps = lambda: sum(1 for c in pac.calls if c[0] == "stamp")  # noqa: E731
    if recover_has_it and first_amb is not None:
        res = rp.submit(b"<a/>", "R")
        assert res.uuid == "OLD"
        assert stamps() == first_amb + 1
        assert pac.calls[-1][0] == "recover"
    elif prefix[-1] == "invalid":
        with pytest.raises(PacInvalid):
            rp.submit(b"<a/>", "R")
        assert stamps() == len(prefix)
        assert pac.calls[-1][0] == "stamp"
    else:
        assert rp.submit(b"<a/>", "R").uuid == "NEW"
        assert stamps() == len(prefix)
    assert set(pac.sent) == {b"<a/>"}


def test_error_table_kinds():
    assert kind_of("307") == "previously_stamped"
    assert kind_of("708") == "transient"
    assert kind_of("CFDI40102") == "invalid"
    assert kind_of("999999") == "invalid"  # unknown rejections are never retried
    assert isinstance(error_for_code("708", "x", pac="p", operation="o", write=True), PacTransient)
    assert isinstance(error_for_code("301", "x", pac="p", operation="o", write=True), PacInvalid)
    e = error_for_code("708", "x", pac="p", operation="o", write=True)
    assert e.maybe_sent is True


def test_unsupported_message_names_pac_and_operation():
    class Minimal(PacDriver):
        name = "mini"

        def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
            raise AssertionError

    with pytest.raises(PacUnsupported) as info:
        Minimal().cancel("U", "02", None, "XAXX010101000", Decimal("1"))
    assert "mini" in str(info.value) and "cancel" in str(info.value)
    for op in ("credits", "acuse_envio", "acuse_cancelacion", "change_password"):
        with pytest.raises(PacUnsupported):
            getattr(Minimal(), op)(*(["x"] if op != "credits" else []))


def test_every_retry_is_logged_with_its_wait_reads_too():
    """tenacity runs the retries: each one (stamping and reads alike) is logged as
    ``pac_retry`` with the attempt, the error code and the wait drawn before it."""
    from structlog.testing import capture_logs

    class FlakyCredits(ScriptedPac):
        def __init__(self) -> None:
            super().__init__([transient(), _result("A")])
            self.credit_calls = 0

        def credits(self):  # type: ignore[override]
            self.credit_calls += 1
            if self.credit_calls < 3:
                raise transient()
            return "ok"

    pac = FlakyCredits()
    waits: list[float] = []
    rp = ResilientPac(
        pac,
        policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=2.0),
        breaker=CircuitBreaker("logged", failure_threshold=100),
        sleep=waits.append,
    )
    with capture_logs() as logs:
        assert rp.submit(b"<a/>", "R").uuid == "A"
        assert rp.credits() == "ok"
    retries = [e for e in logs if e["event"] == "pac_retry"]
    assert [(e["attempt"], e["error"]) for e in retries] == [
        (1, "CONN-PAC-CONEXION"),
        (1, "CONN-PAC-CONEXION"),
        (2, "CONN-PAC-CONEXION"),
    ]
    assert [e["wait"] for e in retries] == [round(w, 3) for w in waits]
    assert all(0 <= w <= 2.0 for w in waits)


def test_concurrent_calls_through_one_resilient_pac_keep_their_own_attempts():
    """The pipeline's workers share one ResilientPac: each call's retries are its own (the
    tenacity state of one call is never another thread's). Call i fails ``i % 5`` times; with
    four attempts, 0-3 failures end stamped after failures + 1 sends, 4 failures after 4."""
    calls: dict[str, int] = {}
    lock = threading.Lock()

    class Flaky(PacDriver):
        name = "flaky"

        def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
            with lock:
                calls[referencia] = n = calls.get(referencia, 0) + 1
            time.sleep(0.002)  # the threads' attempts interleave
            if n <= int(referencia.split("-")[1]) % 5:
                raise transient()
            return _result(referencia)

    rp = ResilientPac(
        Flaky(),
        policy=RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0),
        breaker=CircuitBreaker("flaky", failure_threshold=10_000),
        sleep=lambda s: time.sleep(0.001),
    )
    outcome: dict[str, str] = {}

    def one(ref: str) -> None:
        try:
            outcome[ref] = rp.submit(b"<cfdi/>", ref).uuid
        except PacTransient as exc:
            outcome[ref] = exc.code

    refs = [f"R-{i}" for i in range(40)]
    threads = [threading.Thread(target=one, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for r in refs:
        fails = int(r.split("-")[1]) % 5
        assert calls[r] == min(fails + 1, 4), (r, calls[r])
        assert outcome[r] == (r if fails < 4 else "CONN-PAC-CONEXION"), (r, outcome[r])
