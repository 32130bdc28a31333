"""Retries, a circuit breaker per PAC, and the ambiguous case: recover before resending.

A little over 500 lines for a reason: the retry policy, the circuit breaker and recovery
before a resend act on the same call and are read together; apart they would hide the order.

``ResilientPac(driver)`` wraps any :class:`~connector.pac.base.PacDriver`:

* **Retries with backoff and jitter** by tenacity (``stop_after_attempt(max_attempts)``,
  ``wait_random_exponential(base_delay, max_delay)``: full jitter, capped) on ``PacTransient``
  and ``PacAmbiguous``. ``PacInvalid`` is raised at once: the request was sent exactly once.
  ``PacCircuitOpen`` is raised at once too (the breaker already decided), and so is an error
  marked ``final`` (a refused recover: the same answer again, wait instead of hammering).
* **Ambiguous handling** — ``submit(sealed_xml, referencia, maybe_sent=...)``: when the journal
  says an earlier attempt may have reached the PAC, or after any failure in this call that may
  have reached it (``PacAmbiguous``, a 5xx), the next attempt first asks the PAC for
  ``referencia`` (``driver.recover``) and re-sends the IDENTICAL bytes only on
  ``PacNotFound``. A driver without recover by referencia (Finkok) re-sends the identical bytes,
  which that PAC answers with the existing stamp (307). ``submit_generate`` does the same for
  remote generation, but never re-sends without a recover (a PAC building the XML itself
  could stamp twice): it raises ``PacAmbiguous`` instead. Any other answer of the PAC to that
  recover (an account or authentication code such as FEL 203, any ``PacInvalid``) does not say
  whether ``referencia`` was stamped, so it is never final for the invoice: it leaves as
  ``PacAmbiguous`` ``CONN-PAC-RECUPERACION`` (``maybe_sent``, not retried inside the call),
  which the pipeline turns into ``retry_wait``; the invoice is asked for by the same
  ``referencia`` again later and never re-sent under a new one.
* **Circuit breaker** per PAC name: ``closed`` → (``failure_threshold`` consecutive transient
  or ambiguous failures) → ``open`` (calls fail fast with ``PacCircuitOpen``) → after
  ``reset_timeout`` seconds ``half_open`` (``half_open_max_calls`` trial calls) → ``closed``
  on success, ``open`` again on failure. A PAC rejection (``PacInvalid``, ``PacNotFound``) is
  an answer, so it counts as success. ``breaker_states()`` reports every breaker for
  ``cfdi-connector status``.
* **Account pause**: a ``PacAccount`` (wrong or expired password, suspended account, no
  credits) opens the breaker at once with that error (``account_error``; calls fail fast with
  ``PacCircuitOpen`` ``CONN-PAC-CUENTA``) and probes slowly: one trial call after
  ``reset_timeout``, doubling with each refused probe up to ``ACCOUNT_PROBE_MAX`` seconds. The
  first call the PAC accepts closes it.

Every exception that leaves ``submit*`` has ``maybe_sent`` set to whether ANY attempt of the
call may have reached the PAC; the pipeline records it in the journal and passes it back on
the next try.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from connector.cfdi.model import Comprobante

from .base import CancelResult, Credits, PacDriver, StampResult
from .errors import (
    NETWORK_SETUP_CODES,
    PacAccount,
    PacAmbiguous,
    PacCircuitOpen,
    PacError,
    PacInvalid,
    PacNotFound,
    PacTransient,
    PacUnsupported,
)

log = structlog.get_logger("connector.pac")
T = TypeVar("T")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
ACCOUNT_PROBE_MAX = 600.0  # a paused account is probed at least every 10 minutes


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts per call and how long to wait between them (seconds)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts debe ser al menos 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("los tiempos de espera no pueden ser negativos")


class CircuitBreaker:
    """closed / open / half-open, per PAC. ``clock`` is injectable (monotonic seconds)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or reset_timeout < 0:
            raise ValueError("umbrales del circuito no válidos")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        self.opened_count = 0
        self.last_error: str | None = None
        self.account_error: PacAccount | None = None  # the PAC refused the account: paused
        self._account_refusals = 0

    def _open_seconds(self) -> float:
        if self.account_error is None:
            return self.reset_timeout
        wait = self.reset_timeout * 2 ** min(self._account_refusals - 1, 20)
        return min(max(ACCOUNT_PROBE_MAX, self.reset_timeout), wait)

    def _refresh(self) -> None:
        if self._state == OPEN and self._clock() - self._opened_at >= self._open_seconds():
            self._state = HALF_OPEN
            self._trials = 0

    @property
    def state(self) -> str:
        with self._lock:
            self._refresh()
            return self._state

    def acquire(self) -> None:
        """Permission for one call; ``PacCircuitOpen`` when the PAC is being left alone."""
        with self._lock:
            self._refresh()
            if self._state == CLOSED:
                return
            if self._state == HALF_OPEN and self._trials < self.half_open_max_calls:
                self._trials += 1
                return
            wait = max(0.0, self._open_seconds() - (self._clock() - self._opened_at))
            account = self.account_error
        if account is not None and account.code in NETWORK_SETUP_CODES:
            raise PacCircuitOpen(
                "CONN-PAC-CUENTA",
                f"El PAC '{self.name}' está en pausa por la configuración de red ({account.code} "
                f"{account.message}). Las facturas esperan; se vuelve a probar en {wait:.0f} s.",
                pac=self.name,
                maybe_sent=False,
            )
        if account is not None:
            raise PacCircuitOpen(
                "CONN-PAC-CUENTA",
                f"El PAC '{self.name}' está en pausa: rechazó la cuenta ({account.code} "
                f"{account.message}). Las facturas esperan; se vuelve a probar en {wait:.0f} s "
                "(revise el usuario, la contraseña o los créditos de la cuenta).",
                pac=self.name,
                maybe_sent=False,
            )
        raise PacCircuitOpen(
            "CONN-PAC-CIRCUITO",
            f"El PAC '{self.name}' falló {self.failure_threshold} veces seguidas; "
            f"se deja de llamar por {wait:.0f} s antes de volver a probar.",
            pac=self.name,
            maybe_sent=False,
        )

    def release(self) -> None:
        """A permitted call that did not reach the PAC (e.g. unsupported operation)."""
        with self._lock:
            if self._state == HALF_OPEN and self._trials > 0:
                self._trials -= 1

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            if self._state != CLOSED:
                log.info("pac_circuit_closed", pac=self.name, was=self._state)
            self._state = CLOSED
            self._trials = 0
            self.account_error = None
            self._account_refusals = 0

    def record_account(self, error: PacAccount) -> None:
        """The PAC refused the account: pause at once (see the module docstring)."""
        with self._lock:
            self._refresh()
            if self._state != OPEN:
                self.opened_count += 1
            self._state = OPEN
            self._opened_at = self._clock()
            self._trials = 0
            self.last_error = error.code
            self.account_error = error
            self._account_refusals += 1

    def record_failure(self, error: PacError | None = None) -> None:
        with self._lock:
            self._refresh()
            self.last_error = error.code if error else None
            self._failures += 1
            if self._state == HALF_OPEN or (
                self._state == CLOSED and self._failures >= self.failure_threshold
            ):
                self._state = OPEN
                self._opened_at = self._clock()
                self._trials = 0
                self.opened_count += 1
                log.warning(
                    "pac_circuit_opened",
                    pac=self.name,
                    failures=self._failures,
                    last_error=self.last_error,
                    reopen_seconds=self._open_seconds(),
                )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._refresh()
            snap: dict[str, Any] = {
                "pac": self.name,
                "state": self._state,
                "consecutive_failures": self._failures,
                "opened_count": self.opened_count,
                "last_error": self.last_error,
                "failure_threshold": self.failure_threshold,
                "reset_timeout": self.reset_timeout,
            }
            if self.account_error is not None:
                wait = self._open_seconds() - (self._clock() - self._opened_at)
                snap["paused"] = {
                    "code": self.account_error.code,
                    "message": self.account_error.message,
                    "probe_in_seconds": round(max(0.0, wait), 1),
                }
            return snap

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.acquire()
        try:
            result = fn(*args, **kwargs)
        except PacUnsupported:
            self.release()
            raise
        except PacCircuitOpen:
            self.release()
            raise
        except (PacTransient, PacAmbiguous) as exc:
            self.record_failure(exc)
            raise
        except PacAccount as exc:
            self.record_account(exc)
            raise
        except PacError:
            self.record_success()  # the PAC answered (a rejection is an answer)
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()
        return result


_registry_lock = threading.Lock()
_breakers: dict[str, CircuitBreaker] = {}


def breaker_for(name: str, **settings: Any) -> CircuitBreaker:
    """The process-wide breaker of PAC ``name`` (created with ``settings`` the first time)."""
    with _registry_lock:
        b = _breakers.get(name)
        if b is None:
            b = _breakers[name] = CircuitBreaker(name, **settings)
        return b


def breaker_states() -> list[dict[str, Any]]:
    """Snapshots of every breaker, for ``cfdi-connector status``."""
    with _registry_lock:
        items = list(_breakers.values())
    return [b.snapshot() for b in items]


def _recover_unanswered(exc: PacInvalid, pac: str, referencia: str) -> PacAmbiguous:
    """The PAC refused the recover of a request that may have been stamped (e.g. 203: the
    password changed, the account is suspended): the invoice may exist, so it is not failed."""
    err = PacAmbiguous(
        "CONN-PAC-RECUPERACION",
        f"No se pudo consultar en el PAC '{pac}' la referencia '{referencia}', que pudo "
        f"timbrarse en un envío anterior: el PAC respondió {exc.code} - {exc.message}. "
        "La factura no se reenvía ni se da por fallida; se volverá a consultar por la misma "
        "referencia (revise el usuario, la contraseña y el estado de la cuenta del PAC).",
        pac=pac,
        operation="recover",
        maybe_sent=True,
    )
    err.final = True  # type: ignore[attr-defined]  # the same answer again: wait, do not hammer
    return err


def _retryable(exc: BaseException) -> bool:
    """Stamping and remote generation: transient and ambiguous failures (the next attempt
    recovers by referencia first), never an open circuit or a final answer."""
    if isinstance(exc, PacCircuitOpen) or getattr(exc, "final", False):
        return False
    return isinstance(exc, PacTransient | PacAmbiguous)


def _retryable_read(exc: BaseException) -> bool:
    """Reads: transient failures only."""
    return isinstance(exc, PacTransient) and not isinstance(exc, PacCircuitOpen)


def _retryable_idempotent(exc: BaseException) -> bool:
    """Writes the PAC answers the same way twice (cancel: 202): ambiguous failures too."""
    return _retryable_read(exc) or (
        isinstance(exc, PacAmbiguous) and not getattr(exc, "final", False)
    )


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.info(
        "pac_retry",
        attempt=state.attempt_number,
        error=getattr(exc, "code", type(exc).__name__),
        wait=round(state.upcoming_sleep, 3),
    )


class ResilientPac:
    """A driver with retries, a circuit breaker and recover-before-resend."""

    def __init__(
        self,
        driver: PacDriver,
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.driver = driver
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or breaker_for(driver.name)
        # one tenacity.Retrying per rule, as a template: every call runs on its own copy
        # (Retrying keeps the running call's state on the object; worker threads share self)
        self._retry_stamp = self._retrying(_retryable, sleep)
        self._retry_read = self._retrying(_retryable_read, sleep)
        self._retry_idempotent = self._retrying(_retryable_idempotent, sleep)

    def _retrying(
        self, retryable: Callable[[BaseException], bool], sleep: Callable[[float], None]
    ) -> Retrying:
        p = self.policy
        return Retrying(
            stop=stop_after_attempt(p.max_attempts),
            wait=wait_random_exponential(multiplier=p.base_delay, max=p.max_delay),
            retry=retry_if_exception(retryable),
            reraise=True,  # the PacError itself leaves, never tenacity's RetryError
            sleep=sleep,
            before_sleep=_log_retry,
        )

    @property
    def state(self) -> str:
        return self.breaker.state

    def _run(self, attempt: Callable[[], T], flags: dict[str, bool]) -> T:
        try:
            return self._retry_stamp.copy()(attempt)
        except PacError as exc:
            exc.maybe_sent = flags["maybe_sent"] or exc.maybe_sent
            raise

    # --- stamping ----------------------------------------------------------------------------

    def submit(
        self, sealed_xml: bytes, referencia: str, *, maybe_sent: bool = False
    ) -> StampResult:
        """Stamp ``sealed_xml`` once, whatever the network does (see module docstring)."""
        flags = {"maybe_sent": maybe_sent}

        def attempt() -> StampResult:
            if flags["maybe_sent"]:
                try:
                    return self.breaker.call(self.driver.recover, referencia)
                except PacNotFound:
                    pass
                except PacUnsupported:
                    pass  # the PAC recognises the identical bytes (307) instead
                except PacInvalid as exc:
                    raise _recover_unanswered(exc, self.driver.name, referencia) from exc
            try:
                return self.breaker.call(self.driver.stamp, sealed_xml, referencia)
            except PacError as exc:
                if exc.maybe_sent:
                    flags["maybe_sent"] = True
                raise

        return self._run(attempt, flags)

    def submit_generate(
        self, c: Comprobante, referencia: str, maybe_sent: bool = False
    ) -> StampResult:
        """Remote generation with the same guarantees; never re-sends without a recover."""
        flags = {"maybe_sent": maybe_sent}

        def attempt() -> StampResult:
            if flags["maybe_sent"]:
                try:
                    return self.breaker.call(self.driver.recover_generated, referencia)
                except PacNotFound:
                    pass
                except PacUnsupported:
                    err = PacAmbiguous(
                        "CONN-PAC-SIN-RECUPERACION",
                        f"El PAC '{self.driver.name}' no permite consultar por referencia; "
                        f"'{referencia}' pudo generarse y no se reenvía: revíselo en el portal "
                        "del PAC.",
                        pac=self.driver.name,
                        operation="recover",
                    )
                    err.final = True  # type: ignore[attr-defined]
                    raise err from None
                except PacInvalid as exc:
                    raise _recover_unanswered(exc, self.driver.name, referencia) from exc
            try:
                return self.breaker.call(self.driver.generate, c, referencia)
            except PacError as exc:
                if exc.maybe_sent:
                    flags["maybe_sent"] = True
                raise

        return self._run(attempt, flags)

    # --- other operations (retried on transient failures only) ---------------------------------

    def _read(
        self,
        fn: Callable[..., T],
        *args: Any,
        idempotent_write: bool = False,
        breaker: bool = True,
    ) -> T:
        """``breaker=False``: a secondary call whose failures must not open the circuit that
        guards stamping (the acuse de envío, asked for only after a stamp succeeded)."""
        flags = {"maybe_sent": False}

        def attempt() -> T:
            try:
                return self.breaker.call(fn, *args) if breaker else fn(*args)
            except PacError as exc:
                flags["maybe_sent"] = flags["maybe_sent"] or exc.maybe_sent
                raise

        retrying = self._retry_idempotent if idempotent_write else self._retry_read
        try:
            return retrying.copy()(attempt)
        except PacError as exc:
            exc.maybe_sent = flags["maybe_sent"] or exc.maybe_sent
            raise

    def recover(self, referencia: str) -> StampResult:
        return self._read(self.driver.recover, referencia)

    def cancel(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        rfc_receptor: str,
        total: Decimal,
    ) -> CancelResult:
        """Retried on transient and ambiguous failures: cancelling twice is harmless (202)."""
        return self._read(
            self.driver.cancel,
            uuid,
            motivo,
            folio_sustitucion,
            rfc_receptor,
            total,
            idempotent_write=True,
        )

    def credits(self) -> Credits:
        return self._read(self.driver.credits)

    def acuse_envio(self, uuid: str) -> bytes:
        """Outside the breaker's count (its failures never stop stamping), but not asked for
        while the circuit is open or probing: the PAC is being left alone."""
        if self.breaker.state != CLOSED:
            raise PacCircuitOpen(
                "CONN-PAC-CIRCUITO",
                f"El PAC '{self.breaker.name}' está en pausa; el acuse se pide después.",
                pac=self.breaker.name,
                maybe_sent=False,
            )
        return self._read(self.driver.acuse_envio, uuid, breaker=False)

    def acuse_cancelacion(self, uuid: str) -> bytes:
        return self._read(self.driver.acuse_cancelacion, uuid)
