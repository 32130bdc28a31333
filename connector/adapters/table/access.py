"""A table source's database as the daemon uses it: one connection per source, its calls on a
thread of its own (``calls``: a database that stops answering holds only its source), a pause
with backoff when the database fails or does not answer (noted in the log and in ``status``),
and the group commit that lets the write-backs of many workers share one transaction."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from connector.config import SourceConfig
from connector.flow.runtime import SourceRuntime

from .calls import MARGIN, Caller, Stuck
from .odbc import TableError
from .rows import table_source
from .source import Outcome, TableSource

if TYPE_CHECKING:
    from connector.flow.sending import InvoiceFlow

log = structlog.get_logger("connector.pipeline")

_MAX_PAUSE = 60.0
_GROUP = 16  # write-backs that make a group commit go at once
_STOP_WAIT = 5.0  # seconds a stop or a reload waits for a source's poll beyond its call limit


@dataclass
class _Writes:
    """Rows one caller wants written back, waiting for a group commit (``_write_rows``)."""

    items: list[tuple[int, Outcome]]
    done: bool = False
    written: list[bool] | None = None
    error: Exception | None = None


@dataclass
class _Db:
    """One table source's database: its connection (used only by ``caller``'s thread), the
    write-backs waiting for the next group commit, the state of its pause after a failure, and
    the thread its polls run on in the daemon's loop (``poller``, ``poll_job``)."""

    table: TableSource
    caller: Caller
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
    poller: Caller | None = None
    poll_job: Future[int] | None = None
    retry_due: bool = False  # the periodic second chance, done by the next poll job

    @property
    def limit(self) -> float:
        """How long a call may run before the source is paused (the engine's statement
        timeout and a margin)."""
        return float(getattr(self.table.spec, "timeout_seconds", 30.0)) + MARGIN

    def stuck(self) -> bool:
        return self.caller.running_for() > self.limit

    def settle(self) -> None:
        """The poll job running (if any) given its call limit and a margin to end."""
        job = self.poll_job
        if job is not None and not job.done():
            with contextlib.suppress(Exception):
                job.exception(timeout=self.limit + _STOP_WAIT)

    def close(self) -> None:
        """The connection closed on the caller's thread, after the calls queued; not waited
        for longer than a call's limit (a stuck call keeps it until it returns)."""
        self.settle()
        fut = self.caller.submit(self.table.close)
        self.caller.stop()
        if self.poller is not None:
            self.poller.stop()
        with contextlib.suppress(Exception):
            fut.exception(timeout=self.limit)


class TableAccess:
    """The database side of ``TableUnits``."""

    flow: InvoiceFlow
    _lock: threading.RLock
    _dbs: dict[str, _Db]
    linger: float

    # --- the source's database --------------------------------------------------------------

    def make_table(self, s: SourceConfig, emisor: Any, mapping: Any) -> TableSource:
        """A source's tables (not used until ``adopt``: a reload may still be refused)."""
        return table_source(s, emisor, mapping)

    def adopt(self, built: dict[str, SourceRuntime], *, removed: Sequence[str]) -> None:
        """The table sources of an accepted (re)configuration replace the old ones; removed
        sources' connections are closed."""
        old = []
        with self._lock:
            for name in [*removed, *built]:
                if name in self._dbs:
                    old.append(self._dbs[name])
        for db in old:  # a poll of the old source ends first (it uses its runtime)
            db.settle()
        with self._lock:
            for name in [*removed, *built]:
                self._dbs.pop(name, None)
            for name, src in built.items():
                if src.table is not None:
                    self._dbs[name] = _Db(src.table, Caller(f"tabla-{name}"))
        for db in old:
            db.close()

    def discard(self, built: dict[str, SourceRuntime]) -> None:
        """Tables made for a configuration that was refused: closed, never used."""
        for src in built.values():
            if src.table is not None:
                src.table.close()

    def close(self) -> None:
        with self._lock:
            dbs = list(self._dbs.values())
        for db in dbs:
            db.close()

    def clean(self, src: SourceRuntime, today: Any) -> None:
        """Nothing a kill leaves behind in a database (claims have leases)."""

    def _use(self, src: SourceRuntime, work: Callable[[TableSource], Any]) -> Any:
        """``work`` on the source's database, run on the source's caller thread; a failure
        pauses the source (``TableError`` raised again for the caller to keep what it could not
        write), and so does a call that does not return within the source's limit
        (``CONN-BD-SIN-RESPUESTA``: the call is left to return by itself)."""
        db = self._dbs[src.cfg.name]
        if db.stuck():  # a call still hangs: nothing more is sent until it returns
            assert db.error is not None
            raise db.error
        try:
            result = db.caller.wait(db.caller.submit(lambda: work(db.table)), db.limit)
        except TableError as exc:
            self._pause(src, db, exc)
            raise
        except Stuck:
            hung = TableError(
                "CONN-BD-SIN-RESPUESTA",
                f"La base de datos de la fuente {src.cfg.name!r} no responde: una llamada "
                f"lleva más de {db.limit:g} s sin respuesta (¿red cortada o servidor "
                "detenido sin cerrar la conexión?).",
                transient=True,
            )
            self._pause(src, db, hung)
            raise hung from None
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
        return db is None or time.monotonic() < db.paused_until or db.stuck()

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
