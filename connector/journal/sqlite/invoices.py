"""Invoices in the SQLite journal: admission by business key and every transition of the
state machine (``connector.journal.model.TRANSITIONS``), each with its event, committed before
the side effect it announces; replay (``reset``) and making waiting rows due."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from connector.journal.model import (
    ACUSE_MISSING,
    COMMITTED_STATES,
    PAC_DOCUMENT,
    TRANSITIONS,
    Admission,
    BusinessKey,
    Entry,
    JournalError,
    State,
    ever_sent,
    payload_to_keep,
    to_send,
    with_changes,
)
from connector.journal.sqlite.base import EVENT, SqliteBase
from connector.journal.sqlite.schema import INVOICE_COLS, entry_of, written


class InvoiceStore(SqliteBase):
    """The ``invoices`` table and its ``events``."""

    def get(self, key: BusinessKey) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {INVOICE_COLS} FROM invoices WHERE emisor_rfc=? AND serie=? AND folio=?",
                (key[0].upper(), key[1], key[2]),
            ).fetchone()
        return entry_of(row) if row else None

    def get_id(self, invoice_id: int) -> Entry:
        with self._lock:
            return self._get_locked(invoice_id)

    def admit(
        self,
        key: BusinessKey,
        content_hash: str,
        *,
        mode: str,
        source: str,
        source_file: str,
        location: str,
    ) -> tuple[Admission, Entry]:
        """Record that an invoice arrived; decide what to do with it by its business key.

        - no row: a new row in ``received``;
        - same content: RESUME (in progress), DELIVERED (stamped/delivered), FAILED (rejected by
          the PAC: invalid is permanent until replay), RESTART (failed, or never sealed: redone
          from ``received``);
        - different content: CONFLICT when the key is committed (sealed or later, never
          re-stamped), otherwise the row is reset to ``received`` with the new content.

        A RESTART of a row that was ever sent (``attempts`` > 0) keeps its ``referencia`` and
        ``attempts`` (it may be stamped: the next send recovers by that referencia first) and,
        for the same content, its sealed bytes.
        """
        rfc, serie, folio = key[0].upper(), key[1], key[2]
        now = time.time()
        # the row locked until the commit (PostgreSQL: ``FOR UPDATE``; SQLite's write
        # transaction holds the whole file)
        find = (
            f"SELECT {INVOICE_COLS} FROM invoices WHERE emisor_rfc=? AND serie=? AND folio=?"
            + self._FOR_UPDATE
        )
        with self._tx() as db:
            # a new key inserted at once; another journal sharing the database may insert
            # it meanwhile: then nothing is inserted here and its row is read (committed)
            new = self._insert_new(
                db,
                (rfc, serie, folio, content_hash, State.RECEIVED, mode, source, source_file,
                 location, now, now, self.owner),
                source_file,
            )  # fmt: skip
            if new is not None:
                # the row as just written (the table's defaults are the dataclass's)
                e = Entry(
                    id=new[0],
                    emisor_rfc=rfc,
                    serie=serie,
                    folio=folio,
                    content_hash=content_hash,
                    state=State.RECEIVED,
                    mode=mode,
                    source=source,
                    source_file=source_file,
                    location=location,
                    created_at=now,
                    updated_at=now,
                    owner=self.owner,
                )
                self._wrote(e, new)
                return Admission.NEW, e
            row = db.execute(find, (rfc, serie, folio)).fetchone()
            if row is None:  # nothing deletes an invoice's row
                raise JournalError(f"{serie}{folio}: no row, yet its key is taken")
            e = entry_of(row)
            if self.owner is not None and e.owner != self.owner:
                # carried: a referencia at the PAC that a worker or a retry of its owner
                # advances (a RECEIVED/VALIDATED row is never left so by a live batch: a
                # replay's reset, an internal error; nobody would advance it)
                carried = e.state in COMMITTED_STATES and e.state is not State.DELIVERED
                if carried and e.owner is not None and self._alive(db, e.owner):
                    if e.content_hash != content_hash:  # as with one instance: never twice
                        return Admission.CONFLICT, e
                    return Admission.ELSEWHERE, e  # it advances the invoice; never both
                # its instance is gone (or it needs nobody): this one carries it from now
                db.execute("UPDATE invoices SET owner=? WHERE id=?", (self.owner, e.id))
                e = with_changes(e, owner=self.owner)
            same = e.content_hash == content_hash
            if e.state in (State.STAMPED, State.DELIVERED):
                return (Admission.DELIVERED if same else Admission.CONFLICT), e
            if e.state in COMMITTED_STATES:
                if same:
                    return Admission.RESUME, e
                return Admission.CONFLICT, e
            if e.state == State.FAILED and e.uuid:  # stamped at SAT, reply failed our checks
                return (Admission.FAILED if same else Admission.CONFLICT), e
            if same and e.state == State.FAILED and e.error_origin in ("pac", PAC_DOCUMENT):
                return Admission.FAILED, e
            if ever_sent(e):  # it may be stamped: recover by its referencia, never a new one
                db.execute(
                    "UPDATE invoices SET content_hash=?, state=?, mode=?, source=?, "
                    "source_file=?, location=?, payload=?, next_retry_at=NULL, error_code=NULL, "
                    "error_message=NULL, error_origin=NULL, problems='[]', updated_at=? "
                    "WHERE id=?",
                    (content_hash, State.RECEIVED, mode, source, source_file, location,
                     payload_to_keep(e, same), now, e.id),
                )  # fmt: skip
                detail = f"restart from {source_file}, keeps referencia {e.referencia}"
                self._event(db, e.id, e.state, State.RECEIVED, detail)
                return Admission.RESTART, self._get_locked(e.id)
            # received / validated / failed and never sent: nothing reached the PAC, redo
            db.execute(
                "UPDATE invoices SET content_hash=?, state=?, mode=?, source=?, source_file=?, "
                "location=?, referencia=NULL, payload=NULL, attempts=0, next_retry_at=NULL, "
                "error_code=NULL, error_message=NULL, error_origin=NULL, problems='[]', "
                "updated_at=? WHERE id=?",
                (content_hash, State.RECEIVED, mode, source, source_file, location, now, e.id),
            )
            self._event(db, e.id, e.state, State.RECEIVED, f"restart from {source_file}")
            return Admission.RESTART, self._get_locked(e.id)

    def _advance(
        self,
        invoice_id: int,
        steps: tuple[State, ...],
        change: Callable[[Entry], tuple[dict[str, Any], list[str | None]]],
        *,
        flush: bool = True,
    ) -> Entry:
        """Move the invoice through ``steps`` (each allowed from the one before, starting at
        its state), writing ``change(e)``'s columns (and its detail for each step's event)
        computed from the row as it is. Written in one guarded statement from the version
        this journal last wrote when it knows it (PostgreSQL: ``_known``), else from the row
        read under its lock."""
        e = self._known(invoice_id)
        if e is not None and self._may_advance(e, steps):
            new = self._write_if_unchanged(e, *self._changes(e, steps, change))
            if new is not None:
                return new
        with self._tx(flush=flush) as db:
            e = self._own_locked(invoice_id)
            bad = self._path_problem(e, steps)
            if bad:
                raise JournalError(bad)
            cols, events = self._changes(e, steps, change)
            sets = ", ".join(f"{k}=?" for k in cols)
            db.execute(f"UPDATE invoices SET {sets} WHERE id=?", (*cols.values(), invoice_id))
            db.executemany(EVENT, events)
            return written(e, cols)

    @staticmethod
    def _path_problem(e: Entry, steps: tuple[State, ...]) -> str | None:
        frm = e.state
        for to in steps:
            if to not in TRANSITIONS[frm]:
                return f"transition {frm} → {to} not allowed for {e.label}"
            frm = to
        return None

    def _may_advance(self, e: Entry, steps: tuple[State, ...]) -> bool:
        """Whether the known version ``e`` may be advanced through ``steps`` here (else the
        row is read under its lock, which says why not)."""
        mine = self.owner is None or e.owner is None or e.owner == self.owner
        return mine and self._path_problem(e, steps) is None

    @staticmethod
    def _changes(
        e: Entry,
        steps: tuple[State, ...],
        change: Callable[[Entry], tuple[dict[str, Any], list[str | None]]],
    ) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        """The columns to write (with the final state and ``updated_at``) and the events'
        rows, one per step."""
        cols, details = change(e)
        now = time.time()
        cols = {**cols, "state": str(steps[-1]), "updated_at": now}
        frms = (e.state, *steps[:-1])
        events = [
            (e.id, now, str(f), str(t), d) for f, t, d in zip(frms, steps, details, strict=True)
        ]
        return cols, events

    def _transition(
        self,
        invoice_id: int,
        to: State,
        detail: str | None = None,
        *,
        flush: bool = True,
        **cols: Any,
    ) -> Entry:
        return self._advance(invoice_id, (to,), lambda e: (cols, [detail]), flush=flush)

    def mark_validated(self, invoice_id: int) -> Entry:
        return self._transition(invoice_id, State.VALIDATED)

    def mark_sealed(self, invoice_id: int, payload: bytes, referencia: str) -> Entry:
        """Store the exact bytes to send and their referencia, before the first send.

        A row that was ever sent (replayed or exported again, see ``admit``/``reset``) keeps
        the referencia it may be stamped under, and its sealed bytes when it still has them;
        ``referencia`` and ``payload`` are used only when there is nothing to keep."""

        def change(e: Entry) -> tuple[dict[str, Any], list[str | None]]:
            kept, ref = to_send(e, payload, referencia)
            return {"payload": kept, "referencia": ref}, [ref]

        return self._advance(invoice_id, (State.SEALED,), change)

    def mark_sealed_sending(self, invoice_id: int, payload: bytes, referencia: str) -> Entry:
        """received → validated → sealed → sending in one write, what the pipeline does once an
        invoice passed the rules and is sealed: the bytes to send and their referencia stored
        and the first attempt counted together (the request leaves only after the commit),
        the three events recorded. A once-sent row keeps its referencia and sealed bytes, as
        in :meth:`mark_sealed`."""

        def change(e: Entry) -> tuple[dict[str, Any], list[str | None]]:
            kept, ref = to_send(e, payload, referencia)
            cols = {"payload": kept, "referencia": ref, "attempts": e.attempts + 1,
                    "next_retry_at": None}  # fmt: skip
            return cols, [None, ref, f"attempt {e.attempts + 1}"]

        return self._advance(invoice_id, (State.VALIDATED, State.SEALED, State.SENDING), change)

    def mark_sending(self, invoice_id: int) -> Entry:
        """Count the attempt before the request leaves."""
        return self._advance(
            invoice_id,
            (State.SENDING,),
            lambda e: (
                {"attempts": e.attempts + 1, "next_retry_at": None},
                [f"attempt {e.attempts + 1}"],
            ),
        )

    def mark_stamped(
        self, invoice_id: int, uuid: str, stamped_xml: bytes, acuse: bytes | None = None
    ) -> Entry:
        """The PAC's stamp, recorded before the outputs are written; committed without
        waiting for the disk (see Durability in ``connector.journal``)."""
        return self._transition(
            invoice_id,
            State.STAMPED,
            uuid,
            flush=False,
            uuid=uuid,
            stamped_xml=stamped_xml,
            acuse=acuse,
            error_code=None,
            error_message=None,
            error_origin=None,
        )

    def mark_delivered(
        self,
        invoice_id: int,
        outputs: dict[str, str],
        acuse: bytes | None = None,
        *,
        acuse_missing: tuple[str, str] | None = None,
    ) -> Entry:
        """Outputs written; ``acuse`` when it was fetched at delivery (after the stamp was
        recorded). Clears a delivery error noted while the outputs could not be written;
        ``acuse_missing`` (code, message): the acuse could not be had, it is asked for again
        later (``acuses_pending``), and the reason shows in ``status`` meanwhile. Committed
        without waiting for the disk (see Durability in ``connector.journal``)."""
        code, message = acuse_missing or (None, None)
        cols: dict[str, Any] = {"outputs": json.dumps(outputs), "error_code": code}
        if acuse is not None:
            cols["acuse"] = acuse
        return self._transition(
            invoice_id, State.DELIVERED, code, flush=False, **cols, error_message=message
        )

    def acuse_still_missing(
        self, invoice_id: int, message: str, acuse: bytes | None = None
    ) -> None:
        """Another failed attempt at a missing acuse: the newest reason kept (and the acuse,
        when it was fetched but could not be written), and the row goes to the back of
        ``acuses_pending`` (no event: the first one says it)."""
        with self._tx(flush=False) as db:
            db.execute(
                "UPDATE invoices SET error_message=?, acuse=COALESCE(?, acuse), updated_at=? "
                "WHERE id=? AND state=? AND error_code=?",
                (message, acuse, time.time(), invoice_id, State.DELIVERED, ACUSE_MISSING),
            )

    def note_delivery_error(
        self, invoice_id: int, code: str, message: str, acuse: bytes | None = None
    ) -> Entry:
        """A stamped invoice whose outputs could not be written (folder missing, permissions,
        disk full): the reason is kept on the row for ``status`` (one event when it changes,
        not one per retry), with the acuse if it was fetched meanwhile; the state stays
        STAMPED and delivery is retried."""
        with self._tx() as db:
            e = self._own_locked(invoice_id)
            if e.state is not State.STAMPED:
                return e
            acuse = e.acuse if acuse is None else acuse
            db.execute(
                "UPDATE invoices SET error_code=?, error_message=?, acuse=?, updated_at=? "
                "WHERE id=?",
                (code, message, acuse, time.time(), invoice_id),
            )
            if (e.error_code, e.error_message) != (code, message):
                self._event(db, invoice_id, e.state, e.state, code)
            return with_changes(e, error_code=code, error_message=message, acuse=acuse)

    def mark_retry_wait(
        self, invoice_id: int, next_retry_at: float, code: str, message: str
    ) -> Entry:
        return self._transition(
            invoice_id,
            State.RETRY_WAIT,
            code,
            next_retry_at=next_retry_at,
            error_code=code,
            error_message=message,
            error_origin="pac",
        )

    def mark_failed(
        self,
        invoice_id: int,
        code: str,
        message: str,
        *,
        origin: str,
        problems: list[dict[str, Any]] | None = None,
        uuid: str | None = None,
        stamped_xml: bytes | None = None,
    ) -> Entry:
        """``uuid``/``stamped_xml``: the PAC stamped it but its reply did not pass our checks;
        the UUID exists at SAT, so the row is never re-sent, restarted or reset."""
        extra: dict[str, Any] = {}
        if uuid is not None:
            extra = {"uuid": uuid, "stamped_xml": stamped_xml}
        return self._transition(
            invoice_id,
            State.FAILED,
            code,
            error_code=code,
            error_message=message,
            error_origin=origin,
            problems=json.dumps(problems or [], ensure_ascii=False),
            **extra,
        )

    def reset(self, invoice_id: int) -> Entry:
        """Replay: put a non-delivered invoice back so it is processed again.

        A committed invoice (sealed, sending, retry_wait) keeps its sealed bytes and referencia
        (never re-sealed); a failed one starts over from ``received`` — keeping its referencia
        and attempts if it was ever sent (it may be stamped: the next attempt recovers by that
        referencia first), and its sealed bytes unless the PAC refused the document itself
        (``payload_to_keep``). Stamped and delivered invoices are never reset.
        """
        with self._tx() as db:
            e = self._get_locked(invoice_id)
            if e.state in (State.STAMPED, State.DELIVERED):
                raise JournalError(f"{e.serie}{e.folio} is {e.state}: never reset")
            if e.uuid:  # failed after the PAC stamped it: a replay would stamp a second UUID
                raise JournalError(f"{e.serie}{e.folio} has UUID {e.uuid} at SAT: never reset")
            if e.state == State.FAILED and ever_sent(e):
                to = State.RECEIVED
                db.execute(
                    "UPDATE invoices SET state=?, payload=?, next_retry_at=NULL, error_code=NULL, "
                    "error_message=NULL, error_origin=NULL, problems='[]', updated_at=? "
                    "WHERE id=?",
                    (to, payload_to_keep(e, True), time.time(), invoice_id),
                )
            elif e.state == State.FAILED:
                to = State.RECEIVED
                db.execute(
                    "UPDATE invoices SET state=?, referencia=NULL, payload=NULL, attempts=0, "
                    "next_retry_at=NULL, error_code=NULL, error_message=NULL, error_origin=NULL, "
                    "problems='[]', updated_at=? WHERE id=?",
                    (to, time.time(), invoice_id),
                )
            else:
                to = e.state
                db.execute(  # due at once
                    "UPDATE invoices SET next_retry_at=0, updated_at=? WHERE id=?",
                    (time.time(), invoice_id),
                )
            self._event(db, invoice_id, e.state, to, "replay")
            return self._get_locked(invoice_id)

    def retry_now(self, codes: Iterable[str], now: float | None = None) -> int:
        """Make the invoices waiting to retry because of one of ``codes`` due now (e.g. the
        PAC accepts the account again); returns how many."""
        codes = list(codes)
        if not codes:
            return 0
        now = time.time() if now is None else now
        marks = ",".join("?" * len(codes))
        mine, me = self._mine()
        with self._tx(flush=False) as db:
            cur = db.execute(
                f"UPDATE invoices SET next_retry_at=? WHERE state=? AND next_retry_at>? "
                f"AND error_code IN ({marks}){mine}",
                (now, State.RETRY_WAIT, now, *codes, *me),
            )
            return cur.rowcount
