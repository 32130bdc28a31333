"""The invoice flow after admission: many PAC round trips in flight, retries, recovery by
referencia, the reply's checks, delivery and the acuses fetched later.

``InvoiceFlow`` works on journal rows (``Entry``) and their outcomes; it does not know whether
an invoice came from a file or a table row. Two hooks reach the source kinds: ``src.kind``
writes a stamped invoice's outputs its own way (``deliver``, ``write_acuse``), and
``_after_invoice`` tells the kinds that an invoice left flight (its unit may be finished).

One module a little over 500 lines: the steps of a round trip (send, wait, check, deliver,
late acuse) share the in-flight state and read best together.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from connector.cfdi.errors import Problem
from connector.config import PacConfig
from connector.journal import (
    ACUSE_MISSING,
    FINAL_STATES,
    PAC_DOCUMENT,
    Entry,
    Journal,
    JournalError,
    NotOwner,
    State,
    journal_retry,
)
from connector.pac.errors import ACCOUNT_CODES
from connector.rendering import PdfRenderer
from connector.sinks import atomic_write, safe_part

from . import admission
from .runtime import Admitted, PacRuntime, SourceRuntime, as_problem

log = structlog.get_logger("connector.pipeline")

# an invoice waiting with one of these codes waits for the PAC account (password, credits),
# not for its own sake: sent again at once when the daemon starts (the configuration may be
# fixed) and when the paused PAC accepts the account again
ACCOUNT_WAIT_CODES = (*sorted(ACCOUNT_CODES), "CONN-PAC-CUENTA", "CONN-PAC-RECUPERACION")


class DeliveryError(Exception):
    """A stamped invoice's outputs could not be written (a folder, a database): it stays
    ``stamped`` and is delivered again by the periodic tick; ``message`` shows in status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvoiceFlow:
    """Invoices from admission to delivery. The daemon's ``Pipeline`` is one, with the source
    kinds around it."""

    journal: Journal | None
    sources: dict[str, SourceRuntime]
    now: Callable[[], datetime]
    pdf: PdfRenderer
    # called by the loop on every turn and by recovery at every step (the service's
    # watchdog and health check: connector.service.notify.Heartbeat.tick)
    tick: Callable[[], None]

    def _init_flow(self, workers: int, max_inflight: int | None) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: dict[int, Future[None]] = {}
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)  # notified when an invoice leaves flight
        self._acuses: Future[None] | None = None  # the missing acuses being fetched
        self._fresh: set[int] = set()  # sealed in this run, attempt 1 recorded, not sent yet
        self._elsewhere: set[int] = set()  # another instance finishes them for our units
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.max_inflight = max_inflight or max(64, workers * 4)
        self.metrics: Any | None = None  # connector.service.metrics.Metrics, when served

    def journal_away(self, exc: BaseException) -> None:
        """The shared journal cannot be reached now (the pipeline says it once), or its
        server rolled a transaction back in favour of another's: the work is done again."""
        log.warning("journal_unreachable", code="CONN-DIARIO-CAIDO", error=str(exc).strip())

    def _start_workers(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pac")

    def _after_invoice(self, invoice_id: int) -> None:
        """An invoice left flight: the source kinds finish what carried it (overridden)."""

    # --- admission --------------------------------------------------------------------------

    def admit(
        self,
        src: SourceRuntime,
        inp: Any,
        location: str,
        *,
        source_file: str,
        seen: dict[tuple[str, str, str], str] | None = None,
        referencia: str | None = None,
        maybe_sent: bool = False,
    ) -> Admitted:
        """One invoice of a unit into the journal (``admission.admit``). ``maybe_sent``: the
        source says an earlier holder may have sent it (a table row taken again after its
        lease): its first send asks the PAC by the referencia first."""
        assert self.journal is not None
        a = admission.admit(
            self.journal,
            src,
            inp,
            location,
            source_file=source_file,
            now=self.now(),
            busy=self._inflight,
            seen=seen,
            referencia=referencia,
        )
        if a.sealed_now and not maybe_sent and a.entry is not None:
            with self._lock:
                self._fresh.add(a.entry.id)
        if a.action == "deliver" and self.metrics is not None:  # a duplicate export
            self.metrics.delivered_again(src.cfg.name)
        return a

    def resume_committed(self, e: Entry, location: str, inp: Any | None, unit: str) -> Admitted:
        return admission.resume_committed(e, location, inp, unit=unit, busy=self._inflight)

    def dispatch_admitted(self, admitted: list[Admitted]) -> None:
        """Hand over what admission decided: sends to the PAC, stamps to delivery."""
        for a in admitted:
            if a.entry is not None and a.action == "send":
                # sealed by this admission: the worker starts from the row as committed
                self._dispatch(a.entry, as_committed=a.sealed_now)
        for a in admitted:
            if a.entry is not None and a.action == "deliver":
                self._dispatch(a.entry, deliver_only=True)
            elif a.entry is not None and a.action == "elsewhere":
                with self._lock:
                    self._elsewhere.add(a.entry.id)

    def _check_elsewhere(self) -> None:
        """The invoices other instances were finishing for units of this one: those now final
        end their units here (written back, moved to archive/ or failed/)."""
        assert self.journal is not None
        with self._lock:
            waiting = list(self._elsewhere)
        for invoice_id in waiting:
            if self.journal.get_id(invoice_id).state in FINAL_STATES:
                with self._lock:
                    self._elsewhere.discard(invoice_id)
                self._after_invoice(invoice_id)

    # --- in flight --------------------------------------------------------------------------

    def _stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Times one stage for the metrics (``Metrics.stage``) when they are served."""
        return self.metrics.stage(name) if self.metrics is not None else contextlib.nullcontext()

    def _reap(self) -> None:
        with self._lock:
            for iid in [i for i, f in self._inflight.items() if f.done()]:
                self._inflight.pop(iid, None)

    def any_in_flight(self, invoice_ids: set[int]) -> bool:
        """Whether a worker holds (or is about to take) one of ``invoice_ids``."""
        with self._lock:
            # a future still listed but done was cancelled (a stop): it will never come
            return any(not f.done() for i, f in self._inflight.items() if i in invoice_ids)

    def in_flight(self) -> int:
        """PAC round trips (and their deliveries) queued or running."""
        self._reap()
        return len(self._inflight)

    def stop_taking_work(self) -> int:
        """The first step of a clean stop: no more claims or sends; the sends queued but not
        started are cancelled (their invoices stay sealed in the journal: resumable). Returns
        how many sends are still running (``in_flight``)."""
        self.stopping.set()
        with self._lock:
            for fut in self._inflight.values():
                fut.cancel()  # only those not yet running
        return self.in_flight()

    def _wait_for_room(self, tick: Callable[[], None]) -> None:
        """Back-pressure before more work is taken: the PAC is the bottleneck."""
        with self._room:
            while len(self._inflight) >= self.max_inflight and not self.stopping.is_set():
                self._room.wait(0.2)  # a worker that ends notifies
                self._reap()
                tick()  # waiting for the PAC is not a hang

    def _next_retry_in(self) -> float | None:
        assert self.journal is not None
        due = self.journal.next_retry_at()
        return None if due is None else due - time.time()

    def _dispatch_due_retries(self) -> None:
        assert self.journal is not None
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for e in self.journal.due_retries(limit=room + len(self._inflight)):
            if e.id not in self._inflight:
                self._dispatch(e)

    def _dispatch_unfinished(self) -> None:
        """Every invoice the journal holds sealed, in ``sending`` or stamped goes to the PAC
        (or to delivery) whatever became of its file or row: an invoice whose send may have
        reached the PAC is recovered by its ``referencia`` and delivered, never left behind."""
        assert self.journal is not None
        for e in self.journal.in_state(State.SEALED, State.SENDING):
            if e.id not in self._inflight and e.source in self.sources:
                log.info("resume_invoice", invoice=e.label, state=str(e.state))
                self._dispatch(e)
        for e in self.journal.in_state(State.STAMPED):
            if e.id not in self._inflight and e.source in self.sources:
                self._dispatch(e, deliver_only=True)

    def fenced(self) -> bool:
        """Whether no send may leave now (``Pipeline``: an instance whose heartbeats fail)."""
        return False

    def _dispatch(
        self, e: Entry, *, deliver_only: bool = False, as_committed: bool = False
    ) -> None:
        """``e`` to a worker; ``as_committed``: ``e`` is the row as its commit left it a
        moment ago (the worker does not read it again), else the worker reads it."""
        if self._executor is None or self.stopping.is_set():
            return
        if not deliver_only and self.fenced():  # left for later (or for its taker)
            return
        with self._lock:
            if e.id in self._inflight:
                return
            try:
                given = e if as_committed else None
                fut = self._executor.submit(self._work, e.id, deliver_only, given)
            except RuntimeError:  # shutting down
                return
            self._inflight[e.id] = fut

    def _work(self, invoice_id: int, deliver_only: bool, given: Entry | None = None) -> None:
        assert self.journal is not None
        try:
            if given is not None and self.fenced():  # its heartbeats failed while it waited
                given = None  # (it may have been taken over): read what the journal says
            e = given if given is not None else self.journal.get_id(invoice_id)
            src = self.sources.get(e.source)
            if src is None:
                return
            if not deliver_only and e.state in (State.SEALED, State.SENDING, State.RETRY_WAIT):
                e = self._send(src, e)
            if e.state in (State.STAMPED, State.DELIVERED):
                with self._stage("write_back"):
                    e = self._deliver(src, e)
        except DeliveryError as exc:  # expected while a folder or a database is away: retried
            log.warning("delivery_later", invoice_id=invoice_id, code=exc.code)
        except NotOwner as exc:  # another instance took this one's work over: it finishes it
            log.warning("invoice_taken_over", invoice_id=invoice_id, owner=exc.owner)
        except JournalError as exc:
            if journal_retry(exc):  # cut by the shared journal's outage (JournalAway)
                self.journal_away(exc)
            elif not self.journal.shared:
                log.exception("worker_error", invoice_id=invoice_id)
            else:  # the shared journal's server crashed and undid a step it had not yet
                # written to its disk (see Durability in connector.journal): the row is back
                # where repeating repairs it (recovered by referencia, delivered again)
                log.warning("journal_rewound", invoice_id=invoice_id, error=str(exc))
        except Exception as exc:
            if journal_retry(exc):  # the shared journal's outage: resumed when it is back
                self.journal_away(exc)
            else:
                log.exception("worker_error", invoice_id=invoice_id)
        finally:
            with self._lock:
                self._inflight.pop(invoice_id, None)
                self._room.notify()
            try:
                self._after_invoice(invoice_id)
            except Exception:  # e.g. the archive is not writable: the file stays in work/
                log.exception("finish_failed", invoice_id=invoice_id)

    # --- the PAC round trip (worker threads) ------------------------------------------------

    def _send(self, src: SourceRuntime, e: Entry) -> Entry:
        from connector.pac.errors import PacAccount, PacCircuitOpen, PacInvalid

        assert self.journal is not None and e.payload is not None and e.referencia
        with self._lock:
            fresh = e.id in self._fresh
            self._fresh.discard(e.id)
        if fresh and e.state is State.SENDING and e.attempts == 1:
            maybe_sent = False  # attempt 1 recorded with the seal, nothing sent yet
        else:
            maybe_sent = e.attempts > 0  # a previous attempt may have reached the PAC
            e = self.journal.mark_sending(e.id)
        ilog = log.bind(file=e.source_file, invoice=e.label, referencia=e.referencia)
        pac = src.pac
        paused = pac.breaker is not None and pac.breaker.account_error is not None
        try:
            with self._stage("pac_call"):
                result = self._call(pac, e, maybe_sent)
        except PacAccount as exc:
            return self._account_wait(pac, e, exc, refused=True)
        except PacCircuitOpen as exc:
            if exc.code == "CONN-PAC-CUENTA":  # paused earlier for the account
                return self._account_wait(pac, e, exc, refused=False)
            return self._transient_wait(pac, e, exc, ilog)  # an ordinary open circuit
        except PacInvalid as exc:
            ilog.info("pac_rejected", code=exc.code)
            # the document itself refused, and no earlier try could have been stamped under
            # these bytes: a replay may seal it anew (e.g. with a replaced CSD)
            clean = not (maybe_sent or exc.maybe_sent) and exc.code not in ACCOUNT_CODES
            return self.journal.mark_failed(
                e.id,
                exc.code,
                exc.message,
                origin=PAC_DOCUMENT if clean else "pac",
                problems=[
                    {"code": exc.code, "path": "", "message": exc.message, "location": e.location}
                ],
            )
        except Exception as exc:
            return self._transient_wait(pac, e, exc, ilog)
        if paused and pac.breaker.account_error is None:
            self._account_accepted(pac)
        reply_problems = self._check_reply(pac, e, result)
        if reply_problems:
            return self._reply_failed(src, e, result, reply_problems)
        # journal first: the stamp is recorded before any other round trip (the acuse is
        # fetched at delivery)
        e = self.journal.mark_stamped(e.id, result.uuid, result.xml)
        ilog.info("stamped", uuid=result.uuid, previously=result.previously_stamped)
        return e

    def _call(self, pac: PacRuntime, e: Entry, maybe_sent: bool) -> Any:
        """One submission through the resilience layer (retries, breaker, recover first)."""
        assert e.payload is not None and e.referencia
        if e.mode == "remote":
            from connector.cfdi.model import Comprobante

            c = Comprobante.model_validate_json(e.payload)
            return pac.submitter.submit_generate(c, e.referencia, maybe_sent=maybe_sent)
        return pac.submitter.submit(e.payload, e.referencia, maybe_sent=maybe_sent)

    def _retry_delay(self, pac: PacConfig, attempts: int) -> float:
        base = pac.retry.wait_seconds * (2 ** max(0, attempts - 1))
        return min(pac.retry.wait_max_seconds, base) * (0.5 + random.random() / 2)

    def _transient_wait(self, pac: PacRuntime, e: Entry, exc: Exception, ilog: Any) -> Entry:
        """No answer (or not asked: open circuit): the invoice waits and is sent again."""
        from connector.pac.errors import PacAmbiguous

        assert self.journal is not None
        code = getattr(exc, "code", "CONN-PAC")
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        delay = self._retry_delay(pac.cfg, e.attempts)
        ilog.warning(
            "pac_retry_wait",
            code=code,
            ambiguous=isinstance(exc, PacAmbiguous),
            retry_in=round(delay, 2),
        )
        return self.journal.mark_retry_wait(e.id, time.time() + delay, str(code), message)

    def _account_wait(self, pac: PacRuntime, e: Entry, exc: Exception, *, refused: bool) -> Entry:
        """The PAC refused the account (wrong or expired password, suspended, no credits;
        ``refused``) or is paused because it did: nothing was stamped and the invoice is not
        at fault. It waits (``retry_wait``, never failed) while the breaker keeps the PAC
        paused and probes it; a restart with a fixed configuration or the PAC accepting the
        account again sends it. The refusal itself is logged at error level."""
        assert self.journal is not None
        code = str(getattr(exc, "code", "CONN-PAC-CUENTA"))
        detail = getattr(exc, "message", str(exc))
        message = (
            f"{detail} La factura espera (no se da por fallida) y se envía sola cuando el PAC "
            f"'{pac.cfg.name}' acepte la cuenta: corrija el usuario o la contraseña en la "
            "configuración y reinicie el servicio, o revise la cuenta y sus créditos en el "
            "portal del PAC."
        )
        delay = self._retry_delay(pac.cfg, e.attempts)
        if refused:
            snap = pac.state().get("paused") or {}
            log.error(
                "pac_account_refused",
                pac=pac.cfg.name,
                code=code,
                message=detail,
                file=e.source_file,
                invoice=e.label,
                probe_in=snap.get("probe_in_seconds"),
            )
        else:
            log.info("pac_paused_wait", pac=pac.cfg.name, invoice=e.label, retry_in=delay)
        return self.journal.mark_retry_wait(e.id, time.time() + delay, code, message)

    def _account_accepted(self, pac: PacRuntime) -> None:
        """The paused PAC accepted the account again: what waited for it goes now."""
        assert self.journal is not None
        n = self.journal.retry_now(ACCOUNT_WAIT_CODES)
        log.info("pac_account_accepted", pac=pac.cfg.name, released=n)
        self.wake.set()

    def _check_reply(self, pac: PacRuntime, e: Entry, result: Any) -> list[Problem]:
        """What the PAC returned, before anything is delivered: a CFDI 4.0 whose seal verifies,
        whose TFD matches it and the UUID reported; in stamp mode the cadena we sealed; with
        ``sat_cert`` the SelloSAT."""
        from connector.cfdi.seal import verify_stamped

        try:
            return verify_stamped(
                result.xml,
                uuid=result.uuid,
                sealed=None if e.mode == "remote" else e.payload,
                pac_cert_der=pac.sat_cert_der,
            )
        except Exception as exc:  # never lose the stamp to a bug in a check
            return [as_problem(exc, "", "CONN-PAC-XML")]

    def _reply_failed(
        self, src: SourceRuntime, e: Entry, result: Any, problems: list[Problem]
    ) -> Entry:
        """The PAC stamped (the UUID exists at SAT) but its document failed our checks: failed
        with CONN-PAC-XML, never re-sent; the journal keeps the UUID and the XML, a copy goes to
        the errors folder (when the source has one) for support."""
        assert self.journal is not None
        folder = src.cfg.output.errors or src.cfg.failed if src.cfg.output else src.cfg.failed
        name = f"{safe_part(e.serie)}{safe_part(e.folio)}_{safe_part(result.uuid)}_pac.xml"
        detail = "; ".join(f"{p.code} {p.message}" for p in problems)
        kept = f"el XML guardado en {folder / name}" if folder else "el XML que guarda el diario"
        message = (
            f"El PAC timbró {e.label} con el UUID {result.uuid}, pero el XML que devolvió no "
            f"pasó la verificación ({detail}). El CFDI existe en el SAT: no se reenvía. Revise "
            f"con su PAC {kept}."
        )
        e = self.journal.mark_failed(
            e.id,
            "CONN-PAC-XML",
            message,
            origin="pac",
            problems=[
                {"code": "CONN-PAC-XML", "path": "", "message": message, "location": e.location}
            ],
            uuid=result.uuid,
            stamped_xml=result.xml,
        )
        log.error(
            "pac_reply_invalid",
            file=e.source_file,
            invoice=e.label,
            uuid=result.uuid,
            codes=[p.code for p in problems],
        )
        if folder:
            try:
                atomic_write(Path(folder) / name, result.xml)
            except OSError as exc:  # the journal keeps the XML
                log.error("pac_reply_not_written", invoice=e.label, error=str(exc))
        return e

    # --- delivery ---------------------------------------------------------------------------

    def _deliver(self, src: SourceRuntime, e: Entry) -> Entry:
        """The stamp recorded, its outputs are written the source's way (files; the row's
        columns); the acuse is fetched first when the source keeps it."""
        assert self.journal is not None and e.stamped_xml is not None and e.uuid
        fetched = None
        missing: tuple[str, str] | None = None
        if e.state is State.STAMPED and e.acuse is None and src.kind.wants_acuse(src):
            try:
                fetched = src.pac.submitter.acuse_envio(e.uuid)
                e = replace(e, acuse=fetched)
            except Exception as exc:  # the XML goes out now; the acuse is asked for later
                missing = (ACUSE_MISSING, acuse_missing(e, exc))
                log.warning("acuse_unavailable", file=e.source_file, invoice=e.label,
                            uuid=e.uuid, error=str(exc))  # fmt: skip
        try:
            outputs = src.kind.deliver(
                src, e, cancelled=self.journal.cancellation(str(e.uuid)) is not None
            )
        except DeliveryError as exc:
            # stays STAMPED (redelivered by the periodic tick); the reason shows in `status`
            self.journal.note_delivery_error(
                e.id, exc.code, exc.message, fetched  # kept: not asked for again every retry
            )
            raise
        if e.state is State.STAMPED:
            e = self.journal.mark_delivered(e.id, outputs, fetched, acuse_missing=missing)
        log.info(
            "delivered", file=e.source_file, invoice=e.label, uuid=e.uuid, xml=outputs.get("xml")
        )
        return e

    def _fetch_missing_acuses_soon(self) -> None:
        """Acuses missing are asked for on a worker thread, never the scanner's; one batch at
        a time."""
        if self._executor is not None and not self.stopping.is_set():
            with self._lock:
                if self._acuses is None or self._acuses.done():
                    with contextlib.suppress(RuntimeError):  # shutting down
                        self._acuses = self._executor.submit(self._fetch_missing_acuses)

    def _fetch_missing_acuses(self, limit: int = 20) -> None:
        """Acuses that could not be had at delivery (PAC busy, not ready yet): asked for
        again, a few per source and tick, and written beside their XML (or into their row). A
        PAC that still fails is left alone until the next tick (the invoice goes to the back of
        its source's queue); an acuse fetched but not written is kept and only written next
        time."""
        failed_pacs: set[str] = set()
        try:
            assert self.journal is not None
            for name, src in list(self.sources.items()):  # a reload may change them
                for e in self.journal.acuses_pending([name], limit):
                    if self.stopping.is_set():
                        return
                    if src.cfg.pac in failed_pacs:
                        break
                    self._fetch_acuse(src, e, failed_pacs)
        except Exception:  # e.g. the journal is closing: the next tick tries again
            log.exception("acuse_fetch_failed")

    def _fetch_acuse(self, src: SourceRuntime, e: Entry, failed_pacs: set[str]) -> None:
        assert self.journal is not None and e.uuid is not None
        if not src.kind.wants_acuse(src):  # no longer wanted
            self.journal.mark_delivered(e.id, e.outputs)
            return
        acuse = e.acuse
        try:
            acuse = acuse or src.pac.submitter.acuse_envio(e.uuid)
            written = src.kind.write_acuse(src, e, acuse)
        except Exception as exc:  # tried again at the next tick, after the others
            if acuse is None:
                failed_pacs.add(src.cfg.pac)
                msg = acuse_missing(e, exc)
            else:
                msg = acuse_unwritten(e, exc)
            self.journal.acuse_still_missing(e.id, msg, acuse)
            log.info("acuse_still_missing", invoice=e.label, error=str(exc))
            return
        self.journal.mark_delivered(e.id, {**e.outputs, **written}, acuse)
        log.info("acuse_fetched", file=e.source_file, invoice=e.label, uuid=e.uuid)


def acuse_missing(e: Entry, exc: Exception) -> str:
    """Why an acuse is missing (``ACUSE_MISSING``), for the people reading ``status``."""
    detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return (
        f"{e.label} está timbrada y entregada (UUID {e.uuid}), pero su acuse no se pudo "
        f"obtener del PAC ({getattr(exc, 'code', 'error')}: {detail}). El conector lo vuelve "
        "a pedir solo y lo escribe junto al XML en cuanto lo obtiene."
    )


def acuse_unwritten(e: Entry, exc: Exception) -> str:
    where = getattr(exc, "filename", None)
    place = f" en {Path(where).parent}" if where else ""
    detail = getattr(exc, "strerror", None) or getattr(exc, "message", None) or exc
    return (
        f"{e.label} está timbrada y entregada (UUID {e.uuid}); su acuse ya se obtuvo pero no "
        f"se pudo escribir{place}: {detail}. Se reintenta sola."
    )
