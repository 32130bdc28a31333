"""Issue 17.10: an account refusal (203, no credits, HTTP 401) pauses the PAC at once and is
probed slowly; the first accepted call resumes it."""

from __future__ import annotations

import pytest

from connector.pac.errors import PacAccount, PacCircuitOpen, PacInvalid, error_for_code
from connector.pac.resilience import ACCOUNT_PROBE_MAX, CircuitBreaker


def test_account_codes_are_account_errors_not_document_rejections() -> None:
    for code in ("203", "905", "703", "HTTP-401"):
        err = error_for_code(code, "x", pac="p", operation="TimbrarCFDI", write=True)
        assert isinstance(err, PacAccount), code
    err = error_for_code("301", "x", pac="p", operation="TimbrarCFDI", write=True)
    assert isinstance(err, PacInvalid) and not isinstance(err, PacAccount)


def test_account_refusal_pauses_at_once_and_probes_slowly() -> None:
    now = [0.0]
    b = CircuitBreaker("p", failure_threshold=5, reset_timeout=30.0, clock=lambda: now[0])
    refused = PacAccount("203", "Usuario o contraseña inválidos", pac="p")

    def call_refused() -> None:
        def fail() -> None:
            raise refused

        with pytest.raises(PacAccount):
            b.call(fail)

    call_refused()  # one refusal is enough: not failure_threshold
    with pytest.raises(PacCircuitOpen) as info:
        b.call(lambda: None)
    assert info.value.code == "CONN-PAC-CUENTA" and "203" in info.value.message
    assert b.snapshot()["paused"]["code"] == "203"
    waits = []
    for _ in range(8):  # each refused probe doubles the pause, up to ACCOUNT_PROBE_MAX
        start = now[0]
        while b.state != "half_open":
            now[0] += 1.0
        waits.append(now[0] - start)
        call_refused()
    assert waits[:4] == [30.0, 60.0, 120.0, 240.0] and max(waits) == ACCOUNT_PROBE_MAX
    while b.state != "half_open":
        now[0] += 1.0
    assert b.call(lambda: "ok") == "ok"  # the account works again
    assert b.state == "closed" and "paused" not in b.snapshot()
