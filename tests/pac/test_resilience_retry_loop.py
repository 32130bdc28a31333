"""``retry_call`` / ``backoff`` do what the ``tenacity.Retrying`` that ResilientPac built per call
did: same attempts, same waits (same random draws), same retry log, same exception out.

tenacity stays the reference here: each scripted sequence of outcomes runs once through a
``Retrying`` configured as ResilientPac configured it, and once through ``retry_call``, from the
same random state.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connector.pac.errors import PacAmbiguous, PacCircuitOpen, PacInvalid, PacTransient
from connector.pac.resilience import RetryPolicy, _retryable, backoff, retry_call


class Interrupted(BaseException):
    """Not an Exception (like KeyboardInterrupt): never retried, always passed through."""


def _outcome(kind: str) -> Any:
    if kind == "ok":
        return "ok"
    if kind == "transient":
        return PacTransient("CONN-PAC-CONEXION", "x", maybe_sent=False)
    if kind == "ambiguous":
        return PacAmbiguous("CONN-PAC-TIMEOUT", "x")
    if kind == "final":
        err = PacAmbiguous("CONN-PAC-RECUPERACION", "x")
        err.final = True  # type: ignore[attr-defined]
        return err
    if kind == "open":
        return PacCircuitOpen("CONN-PAC-CIRCUITO", "x", maybe_sent=False)
    if kind == "invalid":
        return PacInvalid("302", "x")
    if kind == "bug":
        return KeyError("bug")
    return Interrupted()


def _scripted(kinds: list[str]) -> tuple[Any, list[Any]]:
    """An attempt function answering with the outcomes in order, and the list it uses."""
    script = [_outcome(k) for k in kinds] + ["ok"] * 40
    calls: list[Any] = []

    def attempt() -> Any:
        out = script[len(calls)]
        calls.append(out)
        if isinstance(out, BaseException):
            raise out
        return out

    return attempt, calls


def _described(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value).__name__, getattr(value, "code", None))
    return value


def _run(fn: Any, calls: list[Any]) -> Any:
    """("ok", value) or ("raised", the exception described, whether it is the very object the
    last attempt raised)."""
    try:
        return ("ok", fn())
    except BaseException as exc:  # noqa: BLE001 - the exception itself is the result
        return ("raised", _described(exc), exc is calls[-1])


def _with_tenacity(kinds: list[str], policy: RetryPolicy, seed: int) -> tuple[Any, ...]:
    attempt, calls = _scripted(kinds)
    sleeps: list[float] = []
    logged: list[tuple[int, str]] = []

    def before_sleep(rs: Any) -> None:  # what ResilientPac._log_retry read from tenacity
        exc = rs.outcome.exception() if rs.outcome else None
        logged.append((rs.attempt_number, getattr(exc, "code", type(exc).__name__)))

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay),
        retry=retry_if_exception(_retryable),
        reraise=True,
        sleep=sleeps.append,
        before_sleep=before_sleep,
    )
    random.seed(seed)
    result = _run(lambda: retrying(attempt), calls)
    return result, [_described(c) for c in calls], sleeps, logged, random.random()


def _with_loop(kinds: list[str], policy: RetryPolicy, seed: int) -> tuple[Any, ...]:
    attempt, calls = _scripted(kinds)
    sleeps: list[float] = []
    logged: list[tuple[int, str]] = []

    def on_retry(number: int, exc: BaseException) -> None:
        logged.append((number, getattr(exc, "code", type(exc).__name__)))

    random.seed(seed)
    result = _run(
        lambda: retry_call(
            attempt, _retryable, policy=policy, sleep=sleeps.append, on_retry=on_retry
        ),
        calls,
    )
    return result, [_described(c) for c in calls], sleeps, logged, random.random()


kinds = st.sampled_from(["ok", "transient", "ambiguous", "final", "open", "invalid", "bug", "stop"])
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 7),
    base_delay=st.sampled_from([0, 0.0, 0.01, 0.5, 1, 3.0]),
    max_delay=st.sampled_from([0, 0.0, 0.3, 4, 30.0, math.inf]),
)


@settings(max_examples=400, deadline=None)
@given(script=st.lists(kinds, max_size=9), policy=policies, seed=st.integers(0, 2**32))
def test_retry_call_behaves_as_tenacitys_retrying(script, policy, seed):
    theirs = _with_tenacity(script, policy, seed)
    ours = _with_loop(script, policy, seed)
    # the same result or exception (the last attempt's own object), the same attempts, waits,
    # log lines, and the random generator left in the same state (the same number of draws)
    assert ours == theirs


class _State:
    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


@pytest.mark.parametrize("base", [0, 0.0, 1e-9, 0.01, 0.5, 1, 2.5, 30.0, 1e300])
@pytest.mark.parametrize("cap", [0, 0.0, 0.3, 4, 30.0, 1e308, math.inf])
def test_backoff_draws_what_wait_random_exponential_draws(base, cap):
    policy = RetryPolicy(max_attempts=1, base_delay=base, max_delay=cap)
    wait = wait_random_exponential(multiplier=base, max=cap)

    def drawn(fn: Any) -> Any:  # absurd settings overflow in tenacity: the same error here
        try:
            value = fn()
        except ArithmeticError as exc:
            return type(exc)
        return "nan" if math.isnan(value) else value

    for attempt in [*range(1, 70), 1023, 1024, 1025, 5000]:
        random.seed(attempt)
        theirs = drawn(lambda: wait(_State(attempt)))  # type: ignore[arg-type]  # noqa: B023
        random.seed(attempt)
        ours = drawn(lambda: backoff(policy, attempt))  # noqa: B023
        assert ours == theirs, (attempt, ours, theirs)


def test_a_failed_call_does_not_chain_the_attempts_exceptions():
    errors = [PacTransient("CONN-PAC-CONEXION", f"{i}", maybe_sent=False) for i in range(3)]

    def attempt() -> None:
        raise errors.pop(0)

    with pytest.raises(PacTransient) as info:
        retry_call(attempt, _retryable, policy=RetryPolicy(3, 0, 0), sleep=lambda s: None)
    assert info.value.message == "2"
    assert info.value.__context__ is None and info.value.__cause__ is None
