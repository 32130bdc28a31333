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
written are kept and written when the database is back.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from connector.config import SourceConfig, table_spec
from connector.flow.runtime import Admitted, SourceRuntime, entry_errors, item_errors
from connector.flow.sending import DeliveryError
from connector.journal import COMMITTED_STATES, FINAL_STATES, Entry, State
from connector.sinks import ItemError

from .odbc import TableError
from .schema import ERROR
from .source import Claimed, Outcome, TableSource

if TYPE_CHECKING:
    from connector.flow.sending import InvoiceFlow

log = structlog.get_logger("connector.pipeline")

_ROW = re.compile(r" id=(\d+)$")
_MAX_PAUSE = 60.0
_GROUP = 16  # write-backs that make a group commit go at once
BACKLOG_SECONDS = 15.0  # how often the rows waiting are counted


def instance_name(config_path: object) -> str:
    """This connector's name in the rows it claims: the host and its configuration file, the
    same across restarts (a restart takes its rows back at once)."""
    digest = hashlib.sha256(str(config_path).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{digest}"[:100]


def row_location(table: str, row_id: int) -> str:
    return f"{table} id={row_id}"


def row_of(location: str | None) -> int | None:
    """The row id in a location ``row_location`` wrote (None: not a row's)."""
    m = _ROW.search(location or "")
    return int(m.group(1)) if m else None


def table_source(s: SourceConfig, emisor: Any = None, mapping: Any = None) -> TableSource:
    """A table source's ``TableSource`` (``ResultsTableSource`` in results-table mode);
    ``emisor``: what its invoices take from the configuration (None: a command that only
    writes, replay or find --redeliver)."""
    t = s.table
    assert t is not None
    kw: dict[str, Any] = {
        "factura_table": t.factura,
        "concepto_table": t.concepto,
        "skip_locked": t.skip_locked,
        "mapping": mapping,
    }
    if emisor is not None:
        kw["emisor"] = {
            "Rfc": emisor.rfc,
            "Nombre": emisor.nombre or "",
            "RegimenFiscal": emisor.regimen_fiscal or "",
            "LugarExpedicion": emisor.lugar_expedicion or "",
        }
    if t.resultados:
        from .results import ResultsTableSource

        return ResultsTableSource(table_spec(s), results_table=t.resultados,
                                  factura_query=t.factura_query,
                                  concepto_query=t.concepto_query, **kw)  # fmt: skip
    return TableSource(table_spec(s), **kw)


def _one_table(s: SourceConfig) -> TableSource:
    """A source's tables for one command (replay, find --redeliver): not the daemon's."""
    return table_source(s)


def rewrite_row(s: SourceConfig, e: Entry) -> str:
    """``find --redeliver`` of a stamped invoice from a table: its row written back again
    (TIMBRADO, UUID, XML, acuse). The row's id; ``OSError`` when it cannot be written."""
    row_id = row_of(e.location)
    if row_id is None or e.uuid is None or e.stamped_xml is None:
        raise OSError(f"no se sabe en qué fila de {s.name!r} va {e.label}")
    table = _one_table(s)
    try:
        out = Outcome.stamped(e.uuid, fecha_timbrado(e.stamped_xml), e.stamped_xml, e.acuse)
        if not table.write_back(row_id, out):
            raise OSError(f"la fila id={row_id} ya está TIMBRADO con otro UUID")
    except TableError as exc:
        raise OSError(f"{exc.code} {exc.message}") from None
    finally:
        table.close()
    return str(row_id)


def reset_row(s: SourceConfig, location: str | None) -> str:
    """``replay --item`` of an invoice from a table: its ERROR row back to PENDIENTE (the
    daemon claims it again; its referencia stays). What was done, in Spanish."""
    row_id = row_of(location)
    if row_id is None:
        return "no se encontró su fila"
    assert s.table is not None
    table = _one_table(s)
    try:
        done = table.reset(row_id)
    finally:
        table.close()
    where = f"{s.table.factura} id={row_id}"
    return f"fila {where} regresada a PENDIENTE" if done else f"la fila {where} no está en ERROR"


@dataclass
class _Writes:
    """Rows one caller wants written back, waiting for a group commit (``_write_rows``)."""

    items: list[tuple[int, Outcome]]
    done: bool = False
    written: list[bool] | None = None
    error: Exception | None = None


@dataclass
class _Db:
    """One table source's database: its connection (one at a time, under ``lock``), the
    write-backs waiting for the next group commit, and the state of its pause after a
    failure."""

    table: TableSource
    lock: threading.Lock
    paused_until: float = 0.0
    delay: float = 0.0
    error: TableError | None = None
    writes: threading.Condition = field(default_factory=threading.Condition)
    waiting: list[_Writes] = field(default_factory=list)
    flushing: bool = False
    renewed_at: float = field(default_factory=time.monotonic)
    # a failure may have come between a claim's commit and the read of its rows: the rows
    # this instance holds are taken back as soon as the database answers again
    take_back: bool = False


class TableUnits:
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

    # --- the source's database --------------------------------------------------------------

    def make_table(self, s: SourceConfig, emisor: Any, mapping: Any) -> TableSource:
        """A source's tables (not used until ``adopt``: a reload may still be refused)."""
        return table_source(s, emisor, mapping)

    def adopt(self, built: dict[str, SourceRuntime], *, removed: Sequence[str]) -> None:
        """The table sources of an accepted (re)configuration replace the old ones; removed
        sources' connections are closed."""
        old = []
        with self._lock:
            for name in removed:
                if name in self._dbs:
                    old.append(self._dbs.pop(name))
            for name, src in built.items():
                if name in self._dbs:
                    old.append(self._dbs.pop(name))
                if src.table is not None:
                    self._dbs[name] = _Db(src.table, threading.Lock())
        for db in old:
            with db.lock:
                db.table.close()

    def discard(self, built: dict[str, SourceRuntime]) -> None:
        """Tables made for a configuration that was refused: closed, never used."""
        for src in built.values():
            if src.table is not None:
                src.table.close()

    def close(self) -> None:
        with self._lock:
            dbs = list(self._dbs.values())
        for db in dbs:
            with db.lock:
                db.table.close()

    def clean(self, src: SourceRuntime, today: Any) -> None:
        """Nothing a kill leaves behind in a database (claims have leases)."""

    def _use(self, src: SourceRuntime, work: Callable[[TableSource], Any]) -> Any:
        """``work`` on the source's database; a failure pauses the source (``TableError``
        raised again for the caller to keep what it could not write)."""
        db = self._dbs[src.cfg.name]
        with db.lock:
            try:
                result = work(db.table)
            except TableError as exc:
                self._pause(src, db, exc)
                raise
        if db.error is not None:
            log.info("table_source_resumed", source=src.cfg.name)
            # the pause ends now too (a write-back got through first): claims at once
            db.error, db.delay, db.paused_until = None, 0.0, 0.0
        return result

    def _pause(self, src: SourceRuntime, db: _Db, exc: TableError) -> None:
        db.delay = min(_MAX_PAUSE, max(1.0, db.delay * 2))
        db.paused_until = time.monotonic() + db.delay
        first = db.error is None or db.error.code != exc.code
        db.error, db.take_back = exc, True
        if first:
            log.error("table_source_paused", source=src.cfg.name, code=exc.code,
                      message=exc.message, retry_in=db.delay)  # fmt: skip
            assert self.flow.journal is not None
            self.flow.journal.note_failure(
                src.cfg.name,
                src.cfg.table.factura if src.cfg.table else "",
                exc.code,
                f"{exc.message} La fuente de tablas {src.cfg.name!r} queda en pausa y lo "
                "intenta de nuevo sola (las demás fuentes siguen); no se pierde nada.",
                location=exc.where,
            )

    def _paused(self, src: SourceRuntime) -> bool:
        db = self._dbs.get(src.cfg.name)
        return db is None or time.monotonic() < db.paused_until

    def paused(self) -> list[tuple[str, TableError]]:
        """The table sources paused now, with the failure that paused them."""
        return [(n, db.error) for n, db in list(self._dbs.items()) if db.error is not None]

    def state(self) -> dict[str, Any]:
        """Each table source's state for the status file."""
        out = {}
        for name, db in list(self._dbs.items()):
            out[name] = (
                {"estado": "en pausa", "codigo": db.error.code, "mensaje": db.error.message}
                if db.error is not None
                else {"estado": "activa"}
            )
        return out

    # --- the loop ---------------------------------------------------------------------------

    def poll(self, src: SourceRuntime, stop: Callable[[], bool]) -> int:
        """Claim a batch of pending rows and admit their invoices. Returns rows taken."""
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

    def _write_rows(self, src: SourceRuntime, items: list[tuple[int, Outcome]]) -> list[bool]:
        """Write outcomes back with a group commit: the write-backs of every worker that
        arrive while one transaction is being committed go together in the next one (one
        commit for many rows). Whether each row was written; ``TableError`` when the database
        failed (nothing of this call was written)."""
        db = self._dbs[src.cfg.name]
        if db.error is not None and time.monotonic() < db.paused_until:
            raise db.error  # paused: not asked again before its backoff ends
        mine = _Writes(items)
        with db.writes:
            db.waiting.append(mine)
            while not mine.done and db.flushing:
                db.writes.wait()
            if not mine.done:  # this caller commits for everyone waiting
                db.flushing = True
                if len(db.waiting) < _GROUP:  # a moment for more write-backs to join
                    db.writes.wait(self.linger)
                batch, db.waiting = db.waiting, []
        if not mine.done:
            try:
                every = [it for w in batch for it in w.items]
                written = self._use(src, lambda t: t.write_back_many(every))
                at = 0
                for w in batch:
                    w.written, at = written[at : at + len(w.items)], at + len(w.items)
            except Exception as exc:  # every caller of the batch learns it
                for w in batch:
                    w.error = exc
            finally:
                with db.writes:
                    for w in batch:
                        w.done = True
                    db.flushing = False
                    db.writes.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.written is not None
        return mine.written

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
            return not self._rows_of and not self._unwritten

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
            self._write_unwritten(src)
            try:
                self._renew_due(src)
                self._take_back(src, known=set(self._held(src.cfg.name)))
                self._note_orphans(src)
            except TableError:
                continue

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
            from connector.adapters.files.finishing import deliver_outputs

            try:
                outputs = deliver_outputs(
                    src.cfg, src.emisor, e, cancelled=cancelled, renderer=self.flow.pdf
                )
            except OSError as exc:
                raise DeliveryError(
                    "CONN-ENTREGA",
                    f"{e.label} está timbrada (UUID {e.uuid}) pero no se pudieron escribir sus "
                    f"archivos: {exc.strerror or exc}. Se reintenta sola.",
                ) from exc
        written = self._write_stamped(src, e, e.acuse)  # not `+=`: other workers write too
        with self._lock:
            self.rows_written += written
        rows = self._rows(src, e)
        return {**outputs, "fila": ",".join(str(r) for r in rows)}

    def write_acuse(self, src: SourceRuntime, e: Entry, acuse: bytes) -> dict[str, str]:
        self._write_stamped(src, e, acuse)
        return {}

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


_TFD = "{http://www.sat.gob.mx/TimbreFiscalDigital}TimbreFiscalDigital"


def fecha_timbrado(stamped_xml: bytes) -> str | None:
    """The TFD's FechaTimbrado of a stamped CFDI (None when it has none)."""
    from lxml import etree

    root = etree.fromstring(stamped_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    tfd = next(root.iter(_TFD), None)
    return (tfd.get("FechaTimbrado") or None) if tfd is not None else None


def _error(errors: list[ItemError]) -> Outcome:
    """The ERROR a row gets: every code, and each message with where it was found (the CFDI
    field, and the column, e.g. ``cfdi_concepto(factura_id=3):2:cantidad`` for a line's)."""
    codes = ", ".join(dict.fromkeys(x.code for x in errors)) or "CONN-ERROR"

    def where(x: ItemError) -> str:
        column = x.location if x.location and not _ROW.search(x.location) else ""
        found = "; ".join(w for w in (x.path, column) if w)
        return f" ({found})" if found else ""

    text = " | ".join(f"{x.code}: {x.message}{where(x)}" for x in errors)
    return Outcome(ERROR, error_codigo=codes, error_mensaje=text)
