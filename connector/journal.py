"""The journal: a SQLite (WAL) state store, one row per invoice, keyed by (emisor RFC, serie, folio).

Every transition is recorded (and committed) BEFORE the side effect it announces:

    received → validated → sealed → sending → stamped → delivered
                  │           │        │  ▲
                  ▼           ▼        ▼  │
                failed     failed   retry_wait / failed

``sealed`` stores the sealed XML (or, in remote mode, the request data) and its ``referencia``
before the first send, so a retry resends the identical bytes and never re-seals. ``sending``
counts the attempt before the request leaves; a row found in ``sending`` after a restart was
maybe sent, so the PAC is asked by referencia before any resend.

The ``files`` table follows each claimed input file to exactly one final place (archive or
failed), and ``file_items`` links each file to the invoices it carried (or to the problems of
records that never became an invoice).

The ``cancellations`` table records each cancellation that took effect (SAT says
``Cancelado``, or the PAC cancelled it without the receptor's acceptance), before the PDF with
the CANCELADO mark and the acuse are written; the invoice stays ``delivered``. The
``cancel_requests`` table records every request the PAC accepted with where it stands at SAT
(``CancelState``): a CFDI "Cancelable con aceptación" is only ``en_proceso`` after the PAC's
201, until the receptor accepts, rejects or lets the deadline pass; it is not cancelled (nor
counted as such) meanwhile. A ``failed`` row that carries a UUID was stamped but the PAC's reply failed our
checks (CONN-PAC-XML): the UUID exists at SAT, so it is never restarted, reset or re-sent.

A row that was ever sent (``attempts`` > 0) may be stamped at the PAC even when it ended
``failed`` without a UUID (e.g. the PAC refused the recover of an ambiguous send). Replay
(``reset``) and a new export of the same key (``admit`` → RESTART) therefore keep its
``referencia`` and its attempt count: ``mark_sealed`` keeps that referencia, so the next
attempt is counted as maybe sent and recovers by it before any send, and never stamps a second
UUID under a new referencia. The same content also keeps its sealed bytes (never re-sealed);
new content is sealed again and sent under the old referencia only if the PAC has nothing for
it (if it has, the stamped XML does not match the new bytes and the pipeline reports it with
its UUID, never stamping again). Rows never sent start over with nothing kept.

Durability. Every commit is visible to other processes and survives the process being killed.
Most also wait for the disk (``synchronous=FULL``): above all the sealed bytes, referencia and
attempt before a send leaves, and a file's decision before it is moved to archive/ or failed/.
``stamped`` and ``delivered`` do not wait (two fsyncs less per invoice, and the workers no
longer hold the journal lock through them): the next flushed commit makes them durable too, the
WAL being written in order — at the latest the decision on their file. A power cut before that
can undo only what repeating repairs: the row is back in ``sending`` (or ``stamped``), the next
send recovers the same UUID (by referencia, or the PAC recognises the identical bytes) and the
outputs are written again, whole, under the same names; never a second stamp. Nor do a file's
claim, its final items and its end (``file_claimed``, ``set_file_items``, ``file_done``): a
flushed commit follows the first two (its invoices' seals, its decision), and a file whose end
is undone is found already in its place and finished again.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

BusinessKey = tuple[str, str, str]


class State(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    SEALED = "sealed"
    SENDING = "sending"
    RETRY_WAIT = "retry_wait"
    STAMPED = "stamped"
    DELIVERED = "delivered"
    FAILED = "failed"


FINAL_STATES = frozenset({State.DELIVERED, State.FAILED})
# states in which the invoice owns a referencia at the PAC (the key is taken)
COMMITTED_STATES = frozenset(
    {State.SEALED, State.SENDING, State.RETRY_WAIT, State.STAMPED, State.DELIVERED}
)

TRANSITIONS: dict[State, frozenset[State]] = {
    State.RECEIVED: frozenset({State.VALIDATED, State.FAILED}),
    State.VALIDATED: frozenset({State.SEALED, State.FAILED}),
    State.SEALED: frozenset({State.SENDING, State.FAILED}),
    State.SENDING: frozenset({State.SENDING, State.STAMPED, State.RETRY_WAIT, State.FAILED}),
    State.RETRY_WAIT: frozenset({State.SENDING, State.FAILED}),
    State.STAMPED: frozenset({State.DELIVERED}),
    State.DELIVERED: frozenset({State.DELIVERED}),
    State.FAILED: frozenset(),
}


class FileState(StrEnum):
    CLAIMED = "claimed"  # in work/, being processed
    ARCHIVING = "archiving"  # decided: archive (final_path recorded), move pending
    FAILING = "failing"  # decided: failed/ (final_path recorded), error file + move pending
    ARCHIVED = "archived"
    FAILED = "failed"
    REPLAYED = "replayed"  # moved back to the inbox by replay


class JournalError(Exception):
    """A transition the state machine does not allow, or an unknown row."""


class Admission(StrEnum):
    NEW = "new"  # a fresh row was created (state received)
    RESUME = "resume"  # same content, not final yet: continue from the stored state
    DELIVERED = "delivered"  # same content already stamped/delivered: deliver it again
    FAILED = "failed"  # same content already failed permanently at the PAC: report again
    RESTART = "restart"  # the row was not committed (failed or before sealing): redone
    # (a row ever sent keeps its referencia and attempts: the redo recovers by it first)
    CONFLICT = "conflict"  # different content under a key that is taken: CONN-FOLIO-USADO


@dataclass
class Entry:
    id: int
    emisor_rfc: str
    serie: str
    folio: str
    content_hash: str
    state: State
    mode: str
    source: str
    source_file: str
    location: str
    referencia: str | None = None
    payload: bytes | None = None  # sealed XML (stamp mode) or request data (remote mode)
    uuid: str | None = None
    stamped_xml: bytes | None = None
    acuse: bytes | None = None
    attempts: int = 0
    next_retry_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_origin: str | None = None  # "rules", "pac", PAC_DOCUMENT, "csd", "connector"
    problems: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def key(self) -> BusinessKey:
        return (self.emisor_rfc, self.serie, self.folio)

    @property
    def label(self) -> str:
        return f"{self.serie}{self.folio}"


@dataclass
class Cancellation:
    """A cancellation the PAC accepted (201/202) for a stamped UUID; the invoice row keeps its
    state (delivered), this record says it no longer counts at SAT."""

    uuid: str
    invoice_id: int | None  # None: a UUID this journal never stamped
    motivo: str
    folio_sustitucion: str | None
    code: str | None
    estatus: str | None
    acuse: bytes | None
    at: float


_CANCEL_COLS = "uuid, invoice_id, motivo, folio_sustitucion, code, estatus, acuse, at"


class CancelState(StrEnum):
    """Where a cancellation request stands at SAT (``cancel_requests``)."""

    REQUESTED = "solicitada"  # recorded before sending; a send that may or may not have
    # reached the PAC stays here (SAT is asked before it is sent again)
    SENT = "enviada"  # the PAC accepted the request; SAT's answer not known yet
    IN_PROCESS = "en_proceso"  # "Cancelable con aceptación": the receptor has not answered
    REJECTED = "rechazada"  # the receptor said no: still vigente, a new request is allowed
    CANCELLED = "cancelada"  # SAT (or the PAC, sin aceptación) says cancelled
    NOT_CANCELLABLE = "no_cancelable"  # SAT: "No cancelable" (e.g. related documents)
    INVALID = "invalida"  # the PAC refused the request itself: never sent again as is


# followed up by the daemon (SAT's consulta service) until one of the others
CANCEL_OPEN = (CancelState.REQUESTED, CancelState.SENT, CancelState.IN_PROCESS)


@dataclass
class CancelRequest:
    """A cancellation request the PAC accepted and what SAT last said of it; only a
    ``CANCELLED`` one also has a ``Cancellation`` (and counts as cancelled)."""

    uuid: str
    invoice_id: int | None
    motivo: str
    folio_sustitucion: str | None
    code: str | None
    state: CancelState
    es_cancelable: str | None
    estatus_cancelacion: str | None
    acuse: bytes | None
    requested_at: float
    updated_at: float
    # the follow-up (connector.cancellations): SAT's query data, what SAT last said, when
    # SAT is asked next, how often it was asked, how many requests were sent
    rfc_emisor: str | None = None
    rfc_receptor: str | None = None
    total: str | None = None
    estado: str | None = None
    next_poll_at: float | None = None
    polls: int = 0
    requests: int = 0
    error_code: str | None = None
    error_message: str | None = None
    origin: str | None = None  # "cli", "folder", "sat" (noticed at SAT: cancelled outside)


_REQUEST_COLS = (
    "uuid, invoice_id, motivo, folio_sustitucion, code, state, es_cancelable, "
    "estatus_cancelacion, acuse, requested_at, updated_at, rfc_emisor, rfc_receptor, total, "
    "estado, next_poll_at, polls, requests, error_code, error_message, origin"
)
# columns added after the table first shipped (ALTER TABLE on an older journal)
_REQUEST_ADDED = {
    "rfc_emisor": "TEXT",
    "rfc_receptor": "TEXT",
    "total": "TEXT",
    "estado": "TEXT",
    "next_poll_at": "REAL",
    "polls": "INTEGER NOT NULL DEFAULT 0",
    "requests": "INTEGER NOT NULL DEFAULT 0",
    "error_code": "TEXT",
    "error_message": "TEXT",
    "origin": "TEXT",
}


def _invoice_of(db: sqlite3.Connection, uuid: str) -> tuple[int] | None:
    """The (id,) of the invoice stamped with ``uuid`` (stored in either letter case)."""
    return db.execute(
        "SELECT id FROM invoices WHERE uuid IN (?,?) ORDER BY id LIMIT 1",
        (uuid.upper(), uuid.lower()),
    ).fetchone()


def _request(row: tuple[Any, ...]) -> CancelRequest:
    values = list(row)
    values[5] = CancelState(values[5])
    return CancelRequest(*values)


@dataclass
class Failure:
    """One line of ``status``'s recent failures (``Journal.recent_failures``)."""

    at: float  # when it failed (epoch seconds)
    code: str
    message: str
    file: str  # the file it came from (or the item's name)
    source: str = ""
    location: str = ""  # file:line:Field when known
    invoice: str = ""  # serie+folio; "" for a file or record that never became an invoice
    state: str = ""  # the invoice's journal state; "" when there is no invoice row


@dataclass
class FileRecord:
    id: int
    source: str
    name: str
    work_path: str
    state: FileState
    final_path: str | None
    claimed_at: float
    finished_at: float | None
    error_count: int


@dataclass
class FileItem:
    file_id: int
    idx: int
    location: str
    invoice_id: int | None
    problems: list[dict[str, Any]]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY,
    emisor_rfc TEXT NOT NULL,
    serie TEXT NOT NULL,
    folio TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT NOT NULL,
    source TEXT NOT NULL,
    source_file TEXT NOT NULL,
    location TEXT NOT NULL,
    referencia TEXT,
    payload BLOB,
    uuid TEXT,
    stamped_xml BLOB,
    acuse BLOB,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at REAL,
    error_code TEXT,
    error_message TEXT,
    error_origin TEXT,
    problems TEXT NOT NULL DEFAULT '[]',
    outputs TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (emisor_rfc, serie, folio)
);
CREATE INDEX IF NOT EXISTS invoices_state ON invoices(state);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    invoice_id INTEGER NOT NULL,
    at REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_invoice ON events(invoice_id);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    work_path TEXT NOT NULL,
    state TEXT NOT NULL,
    final_path TEXT,
    claimed_at REAL NOT NULL,
    finished_at REAL,
    error_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
CREATE INDEX IF NOT EXISTS files_work ON files(work_path);
CREATE TABLE IF NOT EXISTS file_items (
    file_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    location TEXT NOT NULL,
    invoice_id INTEGER,
    problems TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (file_id, idx)
);
CREATE INDEX IF NOT EXISTS file_items_invoice ON file_items(invoice_id);
CREATE TABLE IF NOT EXISTS file_reports (
    file_id INTEGER PRIMARY KEY,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cancellations (
    uuid TEXT PRIMARY KEY,
    invoice_id INTEGER,
    motivo TEXT NOT NULL,
    folio_sustitucion TEXT,
    code TEXT,
    estatus TEXT,
    acuse BLOB,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cancel_requests (
    uuid TEXT PRIMARY KEY,
    invoice_id INTEGER,
    motivo TEXT NOT NULL,
    folio_sustitucion TEXT,
    code TEXT,
    state TEXT NOT NULL,
    es_cancelable TEXT,
    estatus_cancelacion TEXT,
    acuse BLOB,
    requested_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sat_checks (
    uuid TEXT PRIMARY KEY,
    checked_at REAL NOT NULL,
    estado TEXT
);
CREATE INDEX IF NOT EXISTS invoices_uuid ON invoices(uuid);
CREATE TABLE IF NOT EXISTS failure_notes (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    location TEXT NOT NULL DEFAULT '',
    once TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS failure_notes_at ON failure_notes(at);
CREATE TABLE IF NOT EXISTS claim_names (
    work_name TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
"""

_COLS = (
    "id, emisor_rfc, serie, folio, content_hash, state, mode, source, source_file, location, "
    "referencia, payload, uuid, stamped_xml, acuse, attempts, next_retry_at, error_code, "
    "error_message, error_origin, problems, outputs, created_at, updated_at"
)


def _entry(row: tuple[Any, ...]) -> Entry:
    (
        id_,
        rfc,
        serie,
        folio,
        h,
        state,
        mode,
        source,
        source_file,
        location,
        ref,
        payload,
        uuid,
        stamped,
        acuse,
        attempts,
        nra,
        ecode,
        emsg,
        eorigin,
        problems,
        outputs,
        created,
        updated,
    ) = row
    return Entry(
        id=id_,
        emisor_rfc=rfc,
        serie=serie,
        folio=folio,
        content_hash=h,
        state=State(state),
        mode=mode,
        source=source,
        source_file=source_file,
        location=location,
        referencia=ref,
        payload=payload,
        uuid=uuid,
        stamped_xml=stamped,
        acuse=acuse,
        attempts=attempts,
        next_retry_at=nra,
        error_code=ecode,
        error_message=emsg,
        error_origin=eorigin,
        problems=json.loads(problems),
        outputs=json.loads(outputs),
        created_at=created,
        updated_at=updated,
    )


# error_origin of a PAC refusal of the document (not the account) to a send under which nothing
# can have been stamped: a replay seals it anew (still under its referencia)
PAC_DOCUMENT = "pac-documento"


def _ever_sent(e: Entry) -> bool:
    """An attempt was counted under a referencia: the PAC may have stamped it."""
    return e.attempts > 0 and e.referencia is not None


def _with(e: Entry, **changes: Any) -> Entry:
    """``dataclasses.replace`` for the row as just written (the names are the columns'),
    without its per-call introspection: a copy with ``changes`` set."""
    out = copy.copy(e)
    out.__dict__.update(changes)
    return out


# error_code of a delivered invoice whose acuse is still to be fetched
ACUSE_MISSING = "CONN-ACUSE"


def _to_send(e: Entry, payload: bytes, referencia: str) -> tuple[bytes, str]:
    """The bytes and referencia a row is sent with once sealed: a row that was ever sent keeps
    its referencia (it may be stamped under it) and its sealed bytes when it still has them."""
    if _ever_sent(e):
        assert e.referencia is not None
        return (e.payload if e.payload is not None else payload), e.referencia
    return payload, referencia


def _payload_to_keep(e: Entry, same_content: bool) -> bytes | None:
    """The sealed bytes a once-sent row keeps when it starts over (replay, export again): those
    of the same content — unless the pipeline recorded that the PAC refused the document itself
    when nothing could have been stamped under those bytes (origin ``pac-documento``): then
    they are sealed anew (e.g. after the CSD was replaced)."""
    return e.payload if same_content and e.error_origin != PAC_DOCUMENT else None


_FILE_COLS = "id, source, name, work_path, state, final_path, claimed_at, finished_at, error_count"


def _file(row: tuple[Any, ...]) -> FileRecord:
    id_, source, name, work, state, final, claimed, finished, errors = row
    return FileRecord(id_, source, name, work, FileState(state), final, claimed, finished, errors)


def _create_private(path: Path) -> None:
    """A new journal is readable by its owner only (0600): it holds every invoice's data.
    SQLite gives its -wal and -shm files the same mode. An existing file is left as it is."""
    if str(path) == ":memory:":
        return
    with suppress(OSError):  # exists already, or the folder is missing: sqlite3 says so
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Journal:
    """Thread-safe (one connection, one lock); every method commits before it returns."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        _create_private(self.path)
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL is set around the commits that wait for the disk (``_tx``); between them the
        # connection rests at NORMAL, so the commits that need not wait pay nothing extra
        self._full = synchronous != "NORMAL"
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._tx() as db:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            have = {r[1] for r in db.execute("PRAGMA table_info(cancel_requests)")}
            for col, decl in _REQUEST_ADDED.items():
                if col not in have:
                    db.execute(f"ALTER TABLE cancel_requests ADD COLUMN {col} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, flush: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction (or part of the enclosing ``batch``). ``flush=False``: committed —
        visible, and kept if the process is killed — without waiting for the disk; the next
        flushed commit makes it durable with it (the WAL is written in order). Only for a
        step that a power cut may undo because repeating it is safe (see Durability in the
        module docstring)."""
        with self._lock:
            if self._depth:  # inside batch(): part of the enclosing transaction
                yield self._db
                return
            strict = self._full and flush
            if strict:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._depth += 1
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # the block failed, or COMMIT did (disk full)
                        self._db.execute("ROLLBACK")
                    raise
                finally:
                    self._depth -= 1
            finally:
                if strict and not self._db.in_transaction:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several steps committed together (one fsync): nothing inside may be a side effect
        outside the journal — the caller acts on the results only after the block exits."""
        with self._tx():
            yield

    # --- invoices ---------------------------------------------------------------------------

    def get(self, key: BusinessKey) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE emisor_rfc=? AND serie=? AND folio=?",
                (key[0].upper(), key[1], key[2]),
            ).fetchone()
        return _entry(row) if row else None

    def get_id(self, invoice_id: int) -> Entry:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE id=?", (invoice_id,)
            ).fetchone()
        if not row:
            raise JournalError(f"no invoice with id {invoice_id}")
        return _entry(row)

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
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_COLS} FROM invoices WHERE emisor_rfc=? AND serie=? AND folio=?",
                (rfc, serie, folio),
            ).fetchone()
            if row is None:
                cur = db.execute(
                    "INSERT INTO invoices (emisor_rfc, serie, folio, content_hash, state, mode, "
                    "source, source_file, location, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (rfc, serie, folio, content_hash, State.RECEIVED, mode, source, source_file,
                     location, now, now),
                )  # fmt: skip
                assert cur.lastrowid is not None
                self._event(db, cur.lastrowid, None, State.RECEIVED, source_file)
                # the row as just written (the table's defaults are the dataclass's)
                return Admission.NEW, Entry(
                    id=cur.lastrowid,
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
                )
            e = _entry(row)
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
            if _ever_sent(e):  # it may be stamped: recover by its referencia, never a new one
                db.execute(
                    "UPDATE invoices SET content_hash=?, state=?, mode=?, source=?, "
                    "source_file=?, location=?, payload=?, next_retry_at=NULL, error_code=NULL, "
                    "error_message=NULL, error_origin=NULL, problems='[]', updated_at=? "
                    "WHERE id=?",
                    (content_hash, State.RECEIVED, mode, source, source_file, location,
                     _payload_to_keep(e, same), now, e.id),
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

    def _get_locked(self, invoice_id: int | None) -> Entry:
        row = self._db.execute(f"SELECT {_COLS} FROM invoices WHERE id=?", (invoice_id,)).fetchone()
        if not row:
            raise JournalError(f"no invoice with id {invoice_id}")
        return _entry(row)

    def _event(
        self,
        db: sqlite3.Connection,
        invoice_id: int | None,
        frm: State | None,
        to: State,
        detail: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO events (invoice_id, at, from_state, to_state, detail) VALUES (?,?,?,?,?)",
            (invoice_id, time.time(), frm, to, detail),
        )

    def _transition(
        self, invoice_id: int, to: State, detail: str | None = None, **cols: Any
    ) -> Entry:
        with self._tx() as db:
            e = self._get_locked(invoice_id)
            if to not in TRANSITIONS[e.state]:
                raise JournalError(
                    f"transition {e.state} → {to} not allowed for {e.serie}{e.folio}"
                )
            cols["state"] = str(to)
            cols["updated_at"] = time.time()
            sets = ", ".join(f"{k}=?" for k in cols)
            db.execute(f"UPDATE invoices SET {sets} WHERE id=?", (*cols.values(), invoice_id))
            self._event(db, invoice_id, e.state, to, detail)
            # the row as just written (no second read inside our own transaction)
            cols["state"] = to
            for k in ("problems", "outputs"):
                if k in cols:
                    cols[k] = json.loads(cols[k])
            return _with(e, **cols)

    def mark_validated(self, invoice_id: int) -> Entry:
        return self._transition(invoice_id, State.VALIDATED)

    def mark_sealed(self, invoice_id: int, payload: bytes, referencia: str) -> Entry:
        """Store the exact bytes to send and their referencia, before the first send.

        A row that was ever sent (replayed or exported again, see ``admit``/``reset``) keeps
        the referencia it may be stamped under, and its sealed bytes when it still has them;
        ``referencia`` and ``payload`` are used only when there is nothing to keep."""
        with self._tx():
            payload, referencia = _to_send(self._get_locked(invoice_id), payload, referencia)
            return self._transition(
                invoice_id, State.SEALED, referencia, payload=payload, referencia=referencia
            )

    def mark_sealed_sending(self, invoice_id: int, payload: bytes, referencia: str) -> Entry:
        """received → validated → sealed → sending in one write, what the pipeline does once an
        invoice passed the rules and is sealed: the bytes to send and their referencia stored
        and the first attempt counted together (the request leaves only after the commit),
        the three events recorded. A once-sent row keeps its referencia and sealed bytes, as
        in :meth:`mark_sealed`."""
        with self._tx() as db:
            e = self._get_locked(invoice_id)
            frm = e.state
            for to in (State.VALIDATED, State.SEALED, State.SENDING):
                if to not in TRANSITIONS[frm]:
                    raise JournalError(f"transition {frm} → {to} not allowed for {e.label}")
                frm = to
            payload, referencia = _to_send(e, payload, referencia)
            now = time.time()
            db.execute(
                "UPDATE invoices SET state=?, payload=?, referencia=?, attempts=attempts+1, "
                "next_retry_at=NULL, updated_at=? WHERE id=?",
                (State.SENDING, payload, referencia, now, invoice_id),
            )
            db.execute(
                "INSERT INTO events (invoice_id, at, from_state, to_state, detail) VALUES "
                "(?,?,?,?,NULL), (?,?,?,?,?), (?,?,?,?,?)",
                (invoice_id, now, e.state, State.VALIDATED,
                 invoice_id, now, State.VALIDATED, State.SEALED, referencia,
                 invoice_id, now, State.SEALED, State.SENDING, f"attempt {e.attempts + 1}"),
            )  # fmt: skip
            return _with(
                e,
                state=State.SENDING,
                payload=payload,
                referencia=referencia,
                attempts=e.attempts + 1,
                next_retry_at=None,
                updated_at=now,
            )

    def mark_sending(self, invoice_id: int) -> Entry:
        """Count the attempt before the request leaves."""
        with self._tx() as db:
            e = self._get_locked(invoice_id)
            if State.SENDING not in TRANSITIONS[e.state]:
                raise JournalError(f"transition {e.state} → sending not allowed for {e.label}")
            now = time.time()
            db.execute(
                "UPDATE invoices SET state=?, attempts=attempts+1, next_retry_at=NULL, "
                "updated_at=? WHERE id=?",
                (State.SENDING, now, invoice_id),
            )
            self._event(db, invoice_id, e.state, State.SENDING, f"attempt {e.attempts + 1}")
            return _with(
                e, state=State.SENDING, attempts=e.attempts + 1, next_retry_at=None, updated_at=now
            )

    def mark_stamped(
        self, invoice_id: int, uuid: str, stamped_xml: bytes, acuse: bytes | None = None
    ) -> Entry:
        """The PAC's stamp, recorded before the outputs are written; committed without
        waiting for the disk (see Durability in the module docstring)."""
        with self._tx(flush=False):
            return self._transition(
                invoice_id,
                State.STAMPED,
                uuid,
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
        without waiting for the disk (see Durability in the module docstring)."""
        code, message = acuse_missing or (None, None)
        cols: dict[str, Any] = {"outputs": json.dumps(outputs), "error_code": code}
        if acuse is not None:
            cols["acuse"] = acuse
        with self._tx(flush=False):
            return self._transition(
                invoice_id, State.DELIVERED, code, **cols, error_message=message
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

    def acuses_pending(self, sources: Iterable[str], limit: int = 50) -> list[Entry]:
        """Delivered invoices of these sources whose acuse is still to be fetched
        (``acuse_missing``), the longest waiting first."""
        names = list(sources)
        q = ",".join("?" for _ in names)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE state=? AND error_code=? "
                f"AND source IN ({q}) ORDER BY updated_at, id LIMIT ?",
                (State.DELIVERED, ACUSE_MISSING, *names, limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def note_delivery_error(
        self, invoice_id: int, code: str, message: str, acuse: bytes | None = None
    ) -> Entry:
        """A stamped invoice whose outputs could not be written (folder missing, permissions,
        disk full): the reason is kept on the row for ``status`` (one event when it changes,
        not one per retry), with the acuse if it was fetched meanwhile; the state stays
        STAMPED and delivery is retried."""
        with self._tx() as db:
            e = self._get_locked(invoice_id)
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
            return _with(e, error_code=code, error_message=message, acuse=acuse)

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
        (``_payload_to_keep``). Stamped and delivered invoices are never reset.
        """
        with self._tx() as db:
            e = self._get_locked(invoice_id)
            if e.state in (State.STAMPED, State.DELIVERED):
                raise JournalError(f"{e.serie}{e.folio} is {e.state}: never reset")
            if e.uuid:  # failed after the PAC stamped it: a replay would stamp a second UUID
                raise JournalError(f"{e.serie}{e.folio} has UUID {e.uuid} at SAT: never reset")
            if e.state == State.FAILED and _ever_sent(e):
                to = State.RECEIVED
                db.execute(
                    "UPDATE invoices SET state=?, payload=?, next_retry_at=NULL, error_code=NULL, "
                    "error_message=NULL, error_origin=NULL, problems='[]', updated_at=? "
                    "WHERE id=?",
                    (to, _payload_to_keep(e, True), time.time(), invoice_id),
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

    def in_state(self, *states: State) -> list[Entry]:
        q = ",".join("?" for _ in states)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE state IN ({q}) ORDER BY id", states
            ).fetchall()
        return [_entry(r) for r in rows]

    def due_retries(self, now: float | None = None, limit: int = 1_000_000) -> list[Entry]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE state=? AND next_retry_at<=? "
                "ORDER BY next_retry_at, id LIMIT ?",
                (State.RETRY_WAIT, now, limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def retry_now(self, codes: Iterable[str], now: float | None = None) -> int:
        """Make the invoices waiting to retry because of one of ``codes`` due now (e.g. the
        PAC accepts the account again); returns how many."""
        codes = list(codes)
        if not codes:
            return 0
        now = time.time() if now is None else now
        marks = ",".join("?" * len(codes))
        with self._tx(flush=False) as db:
            cur = db.execute(
                f"UPDATE invoices SET next_retry_at=? WHERE state=? AND next_retry_at>? "
                f"AND error_code IN ({marks})",
                (now, State.RETRY_WAIT, now, *codes),
            )
            return cur.rowcount

    def next_retry_at(self) -> float | None:
        """When the earliest invoice waiting for a retry is due (None: none waits)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_retry_at) FROM invoices WHERE state=?", (State.RETRY_WAIT,)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM invoices GROUP BY state"
            ).fetchall()
        out = {str(s): 0 for s in State}
        out.update({s: n for s, n in rows})
        return out

    def source_counts(self) -> list[tuple[str, str, str | None, int]]:
        """(source, state, error code of the failed ones, how many): the monitoring's
        figures (``connector.service.metrics``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, state, CASE WHEN state=? THEN error_code END, COUNT(*) "
                "FROM invoices GROUP BY 1, 2, 3",
                (State.FAILED,),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def recent_failures(self, limit: int = 10) -> list[Failure]:
        """Everything that failed, newest first: invoices failed, waiting to retry, stamped
        with a delivery error or delivered with the acuse still missing; records refused
        before they became invoices (a file that cannot be read or decoded, malformed XML, a
        CSV header, a lookup, ``CONN-FOLIO-USADO``, a folio repeated in the file…) of every
        file not replayed since; and whatever ``note_failure`` recorded."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE state IN (?,?) "
                "OR (state IN (?,?) AND error_code IS NOT NULL) "
                "ORDER BY updated_at DESC, id DESC LIMIT ?",
                (State.FAILED, State.RETRY_WAIT, State.STAMPED, State.DELIVERED, limit),
            ).fetchall()
            refused = self._db.execute(
                "SELECT COALESCE(f.finished_at, f.claimed_at), f.source, f.name, i.location, "
                "i.problems FROM file_items i JOIN files f ON f.id=i.file_id "
                "WHERE i.invoice_id IS NULL AND f.state != ? "
                "ORDER BY COALESCE(f.finished_at, f.claimed_at) DESC, f.id DESC, i.idx LIMIT ?",
                (FileState.REPLAYED, limit),
            ).fetchall()
            noted = self._db.execute(
                "SELECT at, source, name, code, message, location FROM failure_notes "
                "ORDER BY at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        out = [
            Failure(e.updated_at, e.error_code or "", e.error_message or "", e.source_file,
                    e.source, e.location, e.label, str(e.state))
            for e in map(_entry, rows)
        ]  # fmt: skip
        for at, source, name, location, problems in refused:
            found = [p for p in json.loads(problems or "[]") if p.get("severity") != "warning"]
            first = found[0] if found else {}
            out.append(
                Failure(
                    at,
                    str(first.get("code") or "CONN-ERROR"),
                    str(first.get("message") or ""),
                    name,
                    source,
                    str(first.get("location") or location),
                    str(first.get("invoice") or ""),
                )
            )
        for at, source, name, code, message, location in noted:
            out.append(Failure(at, code, message, name, source, location))
        out.sort(key=lambda f: f.at, reverse=True)  # stable: each query's order kept on ties
        return out[:limit]

    def note_failure(
        self,
        source: str,
        name: str,
        code: str,
        message: str,
        *,
        location: str = "",
        once: str | None = None,
    ) -> bool:
        """Record a failure that is neither an invoice nor a record of a claimed file (an inbox
        item that is skipped, a file that can never be claimed…) for ``recent_failures``.
        With ``once`` (a key such as the item's path), a second note with the same key is
        ignored; returns whether this one was recorded."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO failure_notes (at, source, name, code, message, location, "
                "once) VALUES (?,?,?,?,?,?,?)",
                (time.time(), source, name, code, message, location, once),
            )
            return cur.rowcount > 0

    def events(self, invoice_id: int) -> list[tuple[str | None, str, str | None]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT from_state, to_state, detail FROM events WHERE invoice_id=? ORDER BY id",
                (invoice_id,),
            ).fetchall()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    # --- cancellations ----------------------------------------------------------------------

    def find_uuid(self, uuid: str) -> Entry | None:
        """The invoice stamped with ``uuid`` (any letter case), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE uuid IN (?,?) ORDER BY id LIMIT 1",
                (uuid.upper(), uuid.lower()),
            ).fetchone()
        return _entry(row) if row else None

    def mark_cancelled(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None = None,
        *,
        code: str | None = None,
        estatus: str | None = None,
        acuse: bytes | None = None,
    ) -> Cancellation:
        """Record that the PAC accepted the cancellation of ``uuid`` (before writing any file).

        Idempotent: a second call keeps the first record (motivo, when) and only fills in an
        acuse that was missing."""
        uuid = uuid.upper()
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_CANCEL_COLS} FROM cancellations WHERE uuid=?", (uuid,)
            ).fetchone()
            if row is None:
                found = db.execute(
                    "SELECT id FROM invoices WHERE uuid IN (?,?) ORDER BY id LIMIT 1",
                    (uuid, uuid.lower()),
                ).fetchone()
                invoice_id = found[0] if found else None
                db.execute(
                    f"INSERT INTO cancellations ({_CANCEL_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                    (uuid, invoice_id, motivo, folio_sustitucion, code, estatus, acuse,
                     time.time()),
                )  # fmt: skip
                if invoice_id is not None:
                    db.execute(
                        "INSERT INTO events (invoice_id, at, from_state, to_state, detail) "
                        "VALUES (?,?,?,?,?)",
                        (invoice_id, time.time(), None, "cancelled", f"motivo {motivo}"),
                    )
            elif acuse and not row[6]:
                db.execute("UPDATE cancellations SET acuse=? WHERE uuid=?", (acuse, uuid))
            row = db.execute(
                f"SELECT {_CANCEL_COLS} FROM cancellations WHERE uuid=?", (uuid,)
            ).fetchone()
        return Cancellation(*row)

    def record_cancel_request(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None = None,
        *,
        state: CancelState,
        code: str | None = None,
        es_cancelable: str | None = None,
        estatus_cancelacion: str | None = None,
        acuse: bytes | None = None,
    ) -> CancelRequest:
        """A request the PAC accepted, with what SAT says of it now (a later call updates
        the state and SAT's words; the first request time and a known acuse are kept)."""
        uuid = uuid.upper()
        now = time.time()
        with self._tx() as db:
            found = _invoice_of(db, uuid)
            db.execute(
                f"INSERT INTO cancel_requests ({_REQUEST_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(uuid) DO UPDATE SET motivo=excluded.motivo, "
                "folio_sustitucion=excluded.folio_sustitucion, code=excluded.code, "
                "state=excluded.state, es_cancelable=excluded.es_cancelable, "
                "estatus_cancelacion=excluded.estatus_cancelacion, "
                "acuse=COALESCE(excluded.acuse, acuse), updated_at=excluded.updated_at",
                (uuid, found[0] if found else None, motivo, folio_sustitucion, code, state,
                 es_cancelable, estatus_cancelacion, acuse, now, now),
            )  # fmt: skip
            if found is not None:
                db.execute(
                    "INSERT INTO events (invoice_id, at, from_state, to_state, detail) "
                    "VALUES (?,?,?,?,?)",
                    (found[0], now, None, f"cancelacion_{state}", f"motivo {motivo}"),
                )
            row = db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
        return _request(row)

    def cancel_request(self, uuid: str) -> CancelRequest | None:
        """The last cancellation request of ``uuid`` (any letter case), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid.upper(),)
            ).fetchone()
        return _request(row) if row else None

    def cancel_request_counts(self) -> dict[str, int]:
        """Cancellation requests per state (``CancelState`` values)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM cancel_requests GROUP BY state"
            ).fetchall()
        return {str(state): n for state, n in rows}

    def open_cancel_request(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        *,
        rfc_emisor: str | None,
        rfc_receptor: str | None,
        total: str | None,
        origin: str,
    ) -> CancelRequest:
        """Journal first: a request is recorded (``REQUESTED``, one more in ``requests``, its
        age counted from now, polls reset) before it is sent to the PAC."""
        uuid = uuid.upper()
        now = time.time()
        with self._tx() as db:
            found = _invoice_of(db, uuid)
            db.execute(
                "INSERT INTO cancel_requests (uuid, invoice_id, motivo, folio_sustitucion, "
                "state, requested_at, updated_at, rfc_emisor, rfc_receptor, total, polls, "
                "requests, origin) VALUES (?,?,?,?,?,?,?,?,?,?,0,1,?) "
                "ON CONFLICT(uuid) DO UPDATE SET motivo=excluded.motivo, "
                "folio_sustitucion=excluded.folio_sustitucion, state=excluded.state, "
                "code=NULL, error_code=NULL, error_message=NULL, next_poll_at=NULL, polls=0, "
                "requests=requests+1, requested_at=excluded.requested_at, "
                "updated_at=excluded.updated_at, rfc_emisor=excluded.rfc_emisor, "
                "rfc_receptor=excluded.rfc_receptor, total=excluded.total, "
                "origin=excluded.origin",
                (uuid, found[0] if found else None, motivo, folio_sustitucion,
                 CancelState.REQUESTED, now, now, rfc_emisor, rfc_receptor, total, origin),
            )  # fmt: skip
            if found is not None:
                db.execute(
                    "INSERT INTO events (invoice_id, at, from_state, to_state, detail) "
                    "VALUES (?,?,?,?,?)",
                    (found[0], now, None, f"cancelacion_{CancelState.REQUESTED}",
                     f"motivo {motivo}"),
                )  # fmt: skip
            row = db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
        return _request(row)

    _UPDATABLE = frozenset(
        {"state", "code", "es_cancelable", "estatus_cancelacion", "acuse", "estado",
         "next_poll_at", "polls", "error_code", "error_message", "motivo",
         "folio_sustitucion", "rfc_emisor", "rfc_receptor", "total", "origin"}
    )  # fmt: skip

    def update_cancel_request(self, uuid: str, **fields: Any) -> CancelRequest:
        """Change a recorded request (``_UPDATABLE`` columns; an acuse of None keeps the
        known one). A new state is an event of the invoice."""
        bad = set(fields) - self._UPDATABLE
        if bad:
            raise JournalError(f"cancel_requests: columnas desconocidas {sorted(bad)}")
        uuid = uuid.upper()
        if "acuse" in fields and fields["acuse"] is None:
            del fields["acuse"]
        now = time.time()
        with self._tx() as db:
            old = db.execute(
                "SELECT state, invoice_id, motivo FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
            if old is None:
                raise JournalError(f"no hay solicitud de cancelación de {uuid}")
            sets = ", ".join(f"{k}=?" for k in fields)
            db.execute(
                f"UPDATE cancel_requests SET {sets + ', ' if sets else ''}updated_at=? "
                "WHERE uuid=?",
                (*fields.values(), now, uuid),
            )
            state = fields.get("state")
            if state is not None and state != old[0] and old[1] is not None:
                db.execute(
                    "INSERT INTO events (invoice_id, at, from_state, to_state, detail) "
                    "VALUES (?,?,?,?,?)",
                    (old[1], now, f"cancelacion_{old[0]}", f"cancelacion_{state}",
                     fields.get("estatus_cancelacion") or fields.get("error_message")),
                )  # fmt: skip
            row = db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
        return _request(row)

    def forget_cancel_request(self, uuid: str, state: CancelState | None) -> None:
        """A request that surely never reached the PAC: back to ``state`` (the previous
        request's), or gone when there was none."""
        with self._tx() as db:
            if state is None:
                db.execute("DELETE FROM cancel_requests WHERE uuid=?", (uuid.upper(),))
            else:
                db.execute(
                    "UPDATE cancel_requests SET state=?, updated_at=? WHERE uuid=?",
                    (state, time.time(), uuid.upper()),
                )

    def cancel_requests(self, *states: CancelState) -> list[CancelRequest]:
        """The requests in ``states`` (all without), oldest first."""
        marks = ",".join("?" * len(states))
        where = f"WHERE state IN ({marks})" if states else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests {where} ORDER BY requested_at",
                tuple(str(s) for s in states),
            ).fetchall()
        return [_request(r) for r in rows]

    def cancel_requests_unwritten(self) -> list[CancelRequest]:
        """Final requests whose result files could not be written (``CONN-FILE``)."""
        marks = ",".join("?" * len(CANCEL_OPEN))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests WHERE error_code = 'CONN-FILE' "
                f"AND state NOT IN ({marks})",
                tuple(str(s) for s in CANCEL_OPEN),
            ).fetchall()
        return [_request(r) for r in rows]

    def cancel_requests_due(self, now: float, limit: int = 20) -> list[CancelRequest]:
        """Requests not final (``CANCEL_OPEN``) whose next poll of SAT has come."""
        marks = ",".join("?" * len(CANCEL_OPEN))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_REQUEST_COLS} FROM cancel_requests WHERE state IN ({marks}) "
                "AND (next_poll_at IS NULL OR next_poll_at <= ?) "
                "ORDER BY COALESCE(next_poll_at, 0) LIMIT ?",
                (*(str(s) for s in CANCEL_OPEN), now, limit),
            ).fetchall()
        return [_request(r) for r in rows]

    def sweep_due(self, since: float, checked_before: float, limit: int) -> list[Entry]:
        """Delivered invoices stamped since ``since`` with no cancellation request, not asked
        at SAT since ``checked_before`` (least recently asked first): the slow sweep that
        notices a CFDI cancelled outside the connector."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join('i.' + c.strip() for c in _COLS.split(','))} "
                "FROM invoices i LEFT JOIN sat_checks s ON s.uuid = UPPER(i.uuid) "
                "WHERE i.state = 'delivered' AND i.uuid IS NOT NULL AND i.created_at >= ? "
                "AND UPPER(i.uuid) NOT IN (SELECT uuid FROM cancel_requests) "
                "AND (s.checked_at IS NULL OR s.checked_at < ?) "
                "ORDER BY COALESCE(s.checked_at, 0), i.id LIMIT ?",
                (since, checked_before, limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def sat_checked(self, uuid: str, estado: str | None) -> None:
        """The sweep asked SAT about ``uuid`` (what it said, when)."""
        with self._tx(flush=False) as db:
            db.execute(
                "INSERT INTO sat_checks (uuid, checked_at, estado) VALUES (?,?,?) "
                "ON CONFLICT(uuid) DO UPDATE SET checked_at=excluded.checked_at, "
                "estado=excluded.estado",
                (uuid.upper(), time.time(), estado),
            )

    def all_entries(self) -> list[Entry]:
        """Every invoice, in journal order (``find``)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM invoices ORDER BY id").fetchall()
        return [_entry(r) for r in rows]

    def stamped_entries(self, emisor: str | None = None) -> list[Entry]:
        """Every stamped (or delivered) invoice with its stamped XML, of one emisor or all,
        in journal order (``report``)."""
        where = "stamped_xml IS NOT NULL AND state IN ('stamped', 'delivered')"
        params: tuple[Any, ...] = ()
        if emisor:
            where += " AND emisor_rfc = ?"
            params = (emisor.upper(),)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM invoices WHERE {where} ORDER BY id", params
            ).fetchall()
        return [_entry(r) for r in rows]

    def cancellation(self, uuid: str) -> Cancellation | None:
        """The recorded cancellation of ``uuid`` (any letter case), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_CANCEL_COLS} FROM cancellations WHERE uuid=?", (uuid.upper(),)
            ).fetchone()
        return Cancellation(*row) if row else None

    def cancelled_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM cancellations").fetchone()
        return int(row[0])

    # --- files ------------------------------------------------------------------------------

    def file_claimed(self, source: str, name: str, work_path: str) -> FileRecord:
        """Record a file in work/ (idempotent: an unfinished record for the path is reused)."""
        with self._tx(flush=False) as db:
            row = db.execute(
                f"SELECT {_FILE_COLS} FROM files WHERE work_path=? AND state IN (?,?,?)",
                (work_path, FileState.CLAIMED, FileState.ARCHIVING, FileState.FAILING),
            ).fetchone()
            if row:
                return _file(row)
            cur = db.execute(
                "INSERT INTO files (source, name, work_path, state, claimed_at) VALUES (?,?,?,?,?)",
                (source, name, work_path, FileState.CLAIMED, time.time()),
            )
            return _file(
                db.execute(
                    f"SELECT {_FILE_COLS} FROM files WHERE id=?", (cur.lastrowid,)
                ).fetchone()
            )

    def get_file(self, file_id: int) -> FileRecord:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_FILE_COLS} FROM files WHERE id=?", (file_id,)
            ).fetchone()
        if not row:
            raise JournalError(f"no file with id {file_id}")
        return _file(row)

    def set_file_items(self, file_id: int, items: list[FileItem]) -> None:
        """All of a file's items (what it finally carried), replacing earlier ones."""
        with self._tx(flush=False) as db:
            db.execute("DELETE FROM file_items WHERE file_id=?", (file_id,))
            self._put_items(db, file_id, items)

    def link_file_items(self, file_id: int, items: list[FileItem]) -> None:
        """Record these items (by index) and keep the file's others: called inside the batch
        that commits their invoices, so a crash never leaves a committed invoice unlinked."""
        with self._tx() as db:
            self._put_items(db, file_id, items)

    @staticmethod
    def _put_items(db: sqlite3.Connection, file_id: int, items: list[FileItem]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO file_items (file_id, idx, location, invoice_id, problems) "
            "VALUES (?,?,?,?,?)",
            [
                (file_id, it.idx, it.location, it.invoice_id,
                 json.dumps(it.problems, ensure_ascii=False))
                for it in items
            ],
        )  # fmt: skip

    def file_items(self, file_id: int) -> list[FileItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT file_id, idx, location, invoice_id, problems FROM file_items "
                "WHERE file_id=? ORDER BY idx",
                (file_id,),
            ).fetchall()
        return [FileItem(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def file_pending(self, file_id: int) -> int:
        """How many invoices of the file have not reached a final state."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM file_items i JOIN invoices v ON v.id=i.invoice_id "
                "WHERE i.file_id=? AND v.state NOT IN (?,?)",
                (file_id, State.DELIVERED, State.FAILED),
            ).fetchone()
        return int(row[0])

    def files_of_invoice(self, invoice_id: int) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT f." + _FILE_COLS.replace(", ", ", f.") + " FROM files f "
                "JOIN file_items i ON i.file_id=f.id "
                "WHERE i.invoice_id=? ORDER BY f.id",
                (invoice_id,),
            ).fetchall()
        return [_file(r) for r in rows]

    def file_deciding(
        self,
        file_id: int,
        state: FileState,
        final_path: str,
        errors: int,
        report: dict[str, Any] | None = None,
    ) -> None:
        """Record where the file goes (archive or failed/) before moving it, with the report
        it was decided on (its error file says that, even if written later)."""
        assert state in (FileState.ARCHIVING, FileState.FAILING)
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state=?, final_path=?, error_count=? WHERE id=?",
                (state, final_path, errors, file_id),
            )
            if report is not None:  # its own table: the files table keeps the shape older
                db.execute(  # versions read (a daemon still running during an upgrade)
                    "INSERT OR REPLACE INTO file_reports (file_id, report) VALUES (?,?)",
                    (file_id, json.dumps(report, ensure_ascii=False)),
                )

    def file_reopened(self, file_id: int) -> None:
        """A decided file found changed before its move (see the pipeline): back to
        ``claimed``, its decision and report dropped; it is read again."""
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state=?, final_path=NULL, error_count=0 WHERE id=? "
                "AND state IN (?,?)",
                (FileState.CLAIMED, file_id, FileState.ARCHIVING, FileState.FAILING),
            )
            db.execute("DELETE FROM file_reports WHERE file_id=?", (file_id,))

    def file_report(self, file_id: int) -> dict[str, Any] | None:
        """The report ``file_deciding`` recorded (None: none, e.g. decided by an older
        version)."""
        with self._lock:
            row = self._db.execute(
                "SELECT report FROM file_reports WHERE file_id=?", (file_id,)
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def file_done(self, file_id: int) -> None:
        with self._tx(flush=False) as db:
            row = db.execute("SELECT state FROM files WHERE id=?", (file_id,)).fetchone()
            final = {
                FileState.ARCHIVING: FileState.ARCHIVED,
                FileState.FAILING: FileState.FAILED,
            }.get(FileState(row[0]), FileState(row[0]))
            db.execute(
                "UPDATE files SET state=?, finished_at=? WHERE id=?", (final, time.time(), file_id)
            )

    def remember_name(self, work_name: str, name: str) -> None:
        """The ERP's name of a file claimed under a shortened name (too long for the claim
        prefix), recorded before the rename."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO claim_names (work_name, name) VALUES (?,?)",
                (work_name, name),
            )

    def claimed_name(self, work_name: str) -> str | None:
        """The name ``remember_name`` recorded for a file in work/ (None: not shortened)."""
        with self._lock:
            row = self._db.execute(
                "SELECT name FROM claim_names WHERE work_name=?", (work_name,)
            ).fetchone()
        return row[0] if row else None

    def file_replayed(self, file_id: int, inbox_path: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state=?, final_path=?, finished_at=? WHERE id=?",
                (FileState.REPLAYED, inbox_path, time.time(), file_id),
            )

    def files(self, *states: FileState, name: str | None = None) -> list[FileRecord]:
        q = f"SELECT {_FILE_COLS} FROM files WHERE 1=1"
        args: list[Any] = []
        if states:
            q += f" AND state IN ({','.join('?' for _ in states)})"
            args.extend(states)
        if name is not None:
            q += " AND name=?"
            args.append(name)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY id", args).fetchall()
        return [_file(r) for r in rows]

    def file_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        out = {str(s): 0 for s in FileState}
        out.update({s: n for s, n in rows})
        return out
