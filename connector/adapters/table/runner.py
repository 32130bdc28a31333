"""The table source kind: its units of work are batches of claimed rows. Each poll claims a
batch (a guarded update, committed before any work), reads the rows and their lines, hands each
invoice to the invoice flow's admission, and writes each outcome back into its row: ``TIMBRADO``
with the UUID, the stamped XML and the acuse once the journal recorded the stamp (the flow's
delivery), ``ERROR`` with the coded Spanish error once the journal recorded the failure (or at
once for a row refused before the journal).

The row's ``referencia`` (written at claim time) is the one the invoice is sent under; a row
taken again after its lease expired (its holder died) is sent only after the PAC was asked by
that referencia. After a restart this instance takes back the rows it holds at once; its
invoices continue from the journal (a stamped one is only written back).

The database going away pauses that source (backoff up to a minute, in the log and in
``status``); nothing is lost: claims not written back stay with their lease, outcomes not
written are kept and written when the database is back. In the daemon's loop (``background``)
each source's polls run on a thread of its own and every database call on another
(``calls``): a database that stops answering (the network cut silently) pauses its source
(``CONN-BD-SIN-RESPUESTA``) and holds neither the loop, nor the folders, nor other tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from connector.flow.runtime import Admitted, SourceRuntime, entry_errors, item_errors
from connector.flow.sending import DeliveryError
from connector.journal import COMMITTED_STATES, FINAL_STATES, Entry, State, journal_retry
from connector.sinks import ItemError

from .access import TableAccess, _Db
from .calls import Caller
from .odbc import TableError
from .rows import fecha_timbrado, row_location, row_of
from .schema import ERROR
from .source import Claimed, Outcome

if TYPE_CHECKING:
    from connector.flow.sending import InvoiceFlow

log = structlog.get_logger("connector.pipeline")

BACKLOG_SECONDS = 15.0  # how often the rows waiting are counted


class TableUnits(TableAccess):
    """Every table source of one pipeline (``flow``)."""

    def __init__(self, flow: InvoiceFlow, instance: str) -> None:
        self.flow = flow
        self.instance = instance
        self._lock = threading.RLock()
        self._dbs: dict[str, _Db] = {}
        self._rows_of: dict[int, set[tuple[str, int]]] = {}  # invoice → rows waiting for it
        self._unwritten: dict[tuple[str, int], Outcome] = {}  # errors not yet written back
        self.errors_written = 0  # rows written back ERROR since start (run --once)
        self.rows_written = 0  # rows written back TIMBRADO since start
        self.more = False  # the last poll filled a batch, or found no room: poll again soon
        # rows waiting per source and the age in seconds of the oldest (/metrics), measured
        # every BACKLOG_SECONDS at a poll
        self.backlog: dict[str, tuple[int, float]] = {}
        self._backlog_at: dict[str, float] = {}
        # how long a group commit waits for more write-backs to join (fewer commits when the
        # PAC's answers come spread out; the row gets its outcome that much later)
        self.linger = 0.02
        # the daemon's loop (``Pipeline.run``): polls run on each source's own thread and the
        # loop does not wait for them; otherwise (``run --once``, tests) they run in the caller
        self.background = False

    # --- the loop ---------------------------------------------------------------------------

    def poll(self, src: SourceRuntime, stop: Callable[[], bool]) -> int:
        """Claim a batch of pending rows and admit their invoices. Returns rows taken (in the
        background: by the poll that ended since the last call; a poll still running is left
        to run, and its source's database calls are each bounded by ``calls``)."""
        if not self.background:
            return self._poll(src, stop)
        with self._lock:
            db = self._dbs.get(src.cfg.name)
        if db is None or db.table is not src.table:
            return 0
        job = db.poll_job
        if job is not None and not job.done():
            return 0
        db.poll_job = None
        taken = job.result() if job is not None else 0  # a poll's failure: the loop's handler
        assert src.cfg.table is not None
        room = self.flow.max_inflight - self.flow.in_flight()
        if taken or room < max(1, min(src.cfg.table.batch, self.flow.max_inflight) // 4):
            self.more = True  # the loop comes back soon (the poll's own ``more`` came earlier)
        if db.poller is None:
            db.poller = Caller(f"tabla-{src.cfg.name}-sondeo")

        def run() -> int:
            if db.retry_due:
                db.retry_due = False
                self._retry_one(src)
            taken = self._poll(src, stop)
            if taken:  # the loop counts them and polls again at once: more may wait
                self.flow.wake.set()
            return taken

        db.poll_job = db.poller.submit(run)
        return taken

    def _poll(self, src: SourceRuntime, stop: Callable[[], bool]) -> int:
        if self._paused(src):
            return 0
        self._write_unwritten(src)
        try:
            self._renew_due(src)
            self._measure_backlog(src)
        except TableError:
            return 0
        db = self._dbs[src.cfg.name]
        if db.take_back:
            db.take_back = False
            try:
                self._take_back(src, known=set(self._held(src.cfg.name)))
            except TableError:
                return 0
        assert src.cfg.table is not None
        room = self.flow.max_inflight - self.flow.in_flight()
        limit = min(src.cfg.table.batch, room)
        if limit < max(1, min(src.cfg.table.batch, self.flow.max_inflight) // 4):
            # a claim costs the same round trips whatever its size (candidates, claim, rows,
            # lines): while the invoices in flight nearly fill the queue, the workers have
            # plenty waiting, and the rows wait for room for a quarter of a batch
            limit = 0
        self.more = self.more or limit <= 0
        if limit <= 0 or stop():
            return 0
        lease = src.cfg.table.lease_seconds
        try:
            claimed = self._use(src, lambda t: t.claim_batch(limit, lease, self.instance))
        except TableError:
            return 0
        if claimed:
            self._take(src, claimed)
        self.more = self.more or len(claimed) >= limit
        return len(claimed)

    def _take(
        self, src: SourceRuntime, claimed: Sequence[Claimed], *, taken_back: bool = False
    ) -> None:
        """Admit the invoices of claimed rows; refused ones are written back at once.
        ``taken_back``: rows this instance held when it stopped; an invoice they committed
        (sealed or later) continues from its journal row, whatever the row says now."""
        journal = self.flow.journal
        assert journal is not None and src.cfg.table is not None
        table = self._dbs[src.cfg.name].table
        factura = src.cfg.table.factura
        try:
            with self.flow._stage("parse_map"):
                inputs = table.load(claimed)
        except Exception as exc:  # never crash the daemon on one batch
            log.exception("load_failed", source=src.cfg.name)
            problem = {"code": "CONN-ADAPTADOR", "path": "",
                       "message": f"Error interno al leer la fila: {type(exc).__name__}: {exc}"}  # fmt: skip
            admitted = [
                Admitted(row_location(factura, c.id), None, [{**problem,
                         "location": row_location(factura, c.id)}])  # fmt: skip
                for c in claimed
            ]
        else:
            admitted = []
            seen: dict[tuple[str, str, str], str] = {}
            with journal.batch():
                for c, inp in zip(claimed, inputs, strict=True):
                    where = row_location(factura, c.id)
                    try:
                        committed = self._committed(src, c, where) if taken_back else None
                        if committed is not None:
                            seen.setdefault(committed.key, where)
                            a = self.flow.resume_committed(committed, where, inp, f"tabla {where}")
                            admitted.append(a)
                            continue
                        with self.flow._stage("validate_seal"):
                            a = self.flow.admit(
                                src, inp, where, source_file=f"tabla {where}", seen=seen,
                                referencia=c.referencia or None, maybe_sent=c.attempt > 1,
                            )  # fmt: skip
                    except Exception as exc:
                        if journal_retry(exc):  # not the row's fault: the batch is redone
                            raise
                        log.exception("invoice_failed_internal", row=where)
                        a = Admitted(where, None, [
                            {"code": "CONN-INTERNO", "path": "", "location": where,
                             "message": f"Error interno al procesar la factura: {exc}"}])  # fmt: skip
                    admitted.append(a)
        errors: list[tuple[int, Outcome]] = []
        with self._lock:
            for c, a in zip(claimed, admitted, strict=True):
                if a.invoice_id is None:  # refused before the journal: status lists it
                    found = item_errors(a.problems, a.location, "")
                    errors.append((c.id, _error(found)))
                    for x in found[:1]:
                        journal.note_failure(src.cfg.name, a.location, x.code, x.message,
                                             location=a.location,
                                             once=f"row:{src.cfg.name}:{c.id}:{c.attempt}")  # fmt: skip
                    continue
                self._rows_of.setdefault(a.invoice_id, set()).add((src.cfg.name, c.id))
        self._write_errors(src, errors)
        self._keep_referencias(src, claimed, admitted)
        self.flow.dispatch_admitted(admitted)
        for a in admitted:  # failed already (invalid, same content again): written back now
            if a.invoice_id is not None and a.action is None:
                self.after_invoice(a.invoice_id)
        log.info("rows_taken", source=src.cfg.name, rows=len(claimed))

    def _committed(self, src: SourceRuntime, c: Claimed, where: str) -> Entry | None:
        """The journal's invoice of a row taken back, when the row committed it."""
        journal = self.flow.journal
        assert journal is not None
        serie, folio = c.record.fields.get("serie") or "", c.record.fields.get("folio") or ""
        e = journal.get((src.emisor.rfc, serie.strip(), folio.strip()))
        ok = e is not None and e.source == src.cfg.name and e.location == where
        return e if ok and e is not None and e.state in COMMITTED_STATES else None

    def _keep_referencias(
        self, src: SourceRuntime, claimed: Sequence[Claimed], admitted: list[Admitted]
    ) -> None:
        """A row whose invoice goes out under another referencia than the row's (the journal
        knew the invoice already) gets that referencia before anything is sent: whoever takes
        the row after a lease asks the PAC by the one really used."""
        other = [
            (c.id, a.entry.referencia)
            for c, a in zip(claimed, admitted, strict=True)
            if a.action == "send" and a.entry is not None and a.entry.referencia
            and a.entry.referencia != c.referencia
        ]  # fmt: skip
        if other:
            try:
                self._use(src, lambda t: t.set_referencias(other, self.instance))
            except TableError:  # paused; the journal still recovers by its referencia
                log.warning("row_referencia_not_written", source=src.cfg.name, rows=len(other))

    def after_invoice(self, invoice_id: int) -> None:
        """An invoice left flight: a failed one's rows get the error; a delivered one's rows
        were written by its delivery; one still waiting (retry) keeps its rows."""
        with self._lock:
            rows = self._rows_of.get(invoice_id)
        if not rows:
            return
        assert self.flow.journal is not None
        e = self.flow.journal.get_id(invoice_id)
        if e.state not in FINAL_STATES:
            return
        with self._lock:
            rows = self._rows_of.pop(invoice_id, set())
        by_source: dict[str, list[tuple[int, Outcome]]] = {}
        for source, row_id in rows:
            if e.state is State.DELIVERED:
                if source == e.source:
                    continue  # written by its delivery
                # a row of another source with the same invoice: it gets the same stamp
                assert e.uuid and e.stamped_xml is not None
                out = Outcome.stamped(e.uuid, fecha_timbrado(e.stamped_xml), e.stamped_xml,
                                      e.acuse)  # fmt: skip
            else:
                out = _error(entry_errors(e, e.location))
            by_source.setdefault(source, []).append((row_id, out))
        for source, items in by_source.items():
            src = self.flow.sources.get(source)
            if src is not None:
                self._write_errors(src, items)

    def _write_errors(self, src: SourceRuntime, items: list[tuple[int, Outcome]]) -> None:
        if not items:
            return
        try:
            self._write_rows(src, items)
        except TableError:  # kept: written when the database is back
            with self._lock:
                for row_id, out in items:
                    self._unwritten[(src.cfg.name, row_id)] = out
            return
        with self._lock:
            self.errors_written += len(items)
        for row_id, out in items:
            log.info("row_error_written", source=src.cfg.name, row=row_id, code=out.error_codigo)

    def _write_unwritten(self, src: SourceRuntime) -> None:
        with self._lock:
            items = [(r, o) for (s, r), o in self._unwritten.items() if s == src.cfg.name]
            for r, _ in items:
                self._unwritten.pop((src.cfg.name, r), None)
        self._write_errors(src, items)

    def idle(self) -> bool:
        with self._lock:
            polling = any(db.poll_job is not None and not db.poll_job.done()
                          for db in self._dbs.values())  # fmt: skip
            return not self._rows_of and not self._unwritten and not polling

    @property
    def settling(self) -> bool:
        return False

    def _measure_backlog(self, src: SourceRuntime) -> None:
        name = src.cfg.name
        if time.monotonic() - self._backlog_at.get(name, -BACKLOG_SECONDS) < BACKLOG_SECONDS:
            return
        self._backlog_at[name] = time.monotonic()
        n, oldest = self._use(src, lambda t: t.pending())
        age = 0.0
        if n and isinstance(oldest, datetime):  # the ERP's fecha: local time, or UTC in SQLite
            age = max(0.0, (datetime.now() - oldest.replace(tzinfo=None)).total_seconds())
        self.backlog[name] = (n, age)

    def _held(self, source: str) -> list[int]:
        """The rows of ``source`` this instance works on (their invoices not final yet)."""
        with self._lock:
            return sorted({r for rows in self._rows_of.values() for s, r in rows if s == source})

    def _renew_due(self, src: SourceRuntime) -> None:
        """The lease of the rows still waiting (a long PAC outage) renewed every third of it."""
        assert src.cfg.table is not None
        lease = src.cfg.table.lease_seconds
        db = self._dbs[src.cfg.name]
        if time.monotonic() - db.renewed_at < lease / 3:
            return
        ids = self._held(src.cfg.name)
        if ids:
            self._use(src, lambda t: t.renew(ids, lease, self.instance))
        db.renewed_at = time.monotonic()

    def retry_stuck(self) -> None:
        """Outcomes not written written, leases renewed when due, rows this instance holds
        and no invoice carries taken back."""
        for src in list(self.flow.sources.values()):
            if src.table is None or self._paused(src):
                continue
            if self.background:  # on the source's poll thread, before its next poll
                with self._lock:
                    db = self._dbs.get(src.cfg.name)
                if db is not None:
                    db.retry_due = True
                continue
            self._retry_one(src)

    def _retry_one(self, src: SourceRuntime) -> None:
        if self._paused(src):
            return
        self._write_unwritten(src)
        try:
            self._renew_due(src)
            self._take_back(src, known=set(self._held(src.cfg.name)))
            self._note_orphans(src)
        except TableError:
            return

    def resume(self) -> None:
        """The rows this instance held when it stopped (a crash, a kill): taken back now."""
        for src in list(self.flow.sources.values()):
            if src.table is not None:
                try:
                    self._take_back(src, known=set())
                    self._note_orphans(src)
                except TableError:
                    continue  # paused: taken back by the periodic tick

    def _note_orphans(self, src: SourceRuntime) -> None:
        """Lines whose invoice row does not exist (``CONN-BD-LINEA-HUERFANA``) have no error
        columns of their own: each is said once in the log and in ``status``."""
        assert self.flow.journal is not None and src.cfg.table is not None
        for p in self._use(src, lambda t: t.orphan_lines()):
            if self.flow.journal.note_failure(
                src.cfg.name, src.cfg.table.concepto, p.code, p.message,
                location=p.location, once=f"{src.cfg.name}:{p.code}:{p.location}",
            ):  # fmt: skip
                log.error("orphan_lines", source=src.cfg.name, code=p.code,
                          location=p.location, message=p.message)  # fmt: skip

    def _take_back(self, src: SourceRuntime, known: set[int]) -> None:
        claimed = self._use(src, lambda t: t.held(self.instance))
        claimed = [c for c in claimed if c.id not in known]
        if claimed:
            log.info("rows_taken_back", source=src.cfg.name, rows=len(claimed))
            self._take(src, claimed, taken_back=True)

    # --- the table way of delivering --------------------------------------------------------

    def wants_acuse(self, src: SourceRuntime) -> bool:
        return True  # the row has its acuse column

    def _rows(self, src: SourceRuntime, e: Entry) -> list[int]:
        """The rows an invoice is written back into: the row it was first admitted from and
        every row that brought it since (a duplicate row of the same invoice)."""
        with self._lock:
            rows = {r for s, r in self._rows_of.get(e.id, ()) if s == src.cfg.name}
        first = row_of(e.location)
        if first is not None and e.source == src.cfg.name:
            rows.add(first)
        return sorted(rows)

    def deliver(self, src: SourceRuntime, e: Entry, *, cancelled: bool) -> dict[str, str]:
        """The row gets TIMBRADO, the UUID, the stamped XML and the acuse; files too when the
        source has output folders."""
        assert e.uuid and e.stamped_xml is not None
        outputs: dict[str, str] = {}
        if src.cfg.output is not None:
            from connector.adapters.files.finishing import deliver_files

            outputs = deliver_files(src, e, cancelled=cancelled, renderer=self.flow.pdf)
        written = self._write_stamped(src, e, e.acuse)  # not `+=`: other workers write too
        with self._lock:
            self.rows_written += written
        rows = self._rows(src, e)
        return {**outputs, "fila": ",".join(str(r) for r in rows)}

    def write_acuse(self, src: SourceRuntime, e: Entry, acuse: bytes) -> dict[str, str]:
        """A late acuse into the invoice's rows (and beside its XML when the source writes
        files, as a folder source does)."""
        from connector.adapters.files.finishing import write_acuse_file

        self._write_stamped(src, e, acuse)
        return write_acuse_file(src, e, acuse)

    def _write_stamped(self, src: SourceRuntime, e: Entry, acuse: bytes | None) -> int:
        """TIMBRADO into the invoice's rows; how many were written."""
        rows = self._rows(src, e)
        if not rows:
            raise DeliveryError(
                "CONN-BD-FILA",
                f"{e.label} está timbrada (UUID {e.uuid}) pero no se sabe en qué fila de "
                f"{src.cfg.name} escribirla. Se reintenta sola.",
            )
        assert e.uuid and e.stamped_xml is not None
        out = Outcome.stamped(e.uuid, fecha_timbrado(e.stamped_xml), e.stamped_xml, acuse)
        try:
            written = self._write_rows(src, [(r, out) for r in rows])
        except TableError as exc:
            raise DeliveryError(
                exc.code,
                f"{e.label} está timbrada (UUID {e.uuid}) pero no se pudo escribir en su fila: "
                f"{exc.message} Se reintenta sola.",
            ) from None
        for r, ok in zip(rows, written, strict=True):
            if not ok:  # a row already TIMBRADO with another UUID: never overwritten
                log.error("row_not_written", source=src.cfg.name, row=r, uuid=e.uuid)
        return sum(written)


def _error(errors: list[ItemError]) -> Outcome:
    """The ERROR a row gets: every code, and each message with where it was found (the CFDI
    field, and the column, e.g. ``cfdi_concepto(factura_id=3):2:cantidad`` for a line's)."""
    codes = ", ".join(dict.fromkeys(x.code for x in errors)) or "CONN-ERROR"

    def where(x: ItemError) -> str:
        column = x.location if x.location and row_of(x.location) is None else ""
        found = "; ".join(w for w in (x.path, column) if w)
        return f" ({found})" if found else ""

    text = " | ".join(f"{x.code}: {x.message}{where(x)}" for x in errors)
    return Outcome(ERROR, error_codigo=codes, error_mensaje=text)
