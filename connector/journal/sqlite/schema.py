"""The SQLite journal's tables, their upgrade on open and the mapping between a row and its
record (``connector.journal.model``). A column added to a shipped table goes in an ``…_ADDED``
dict (``ALTER TABLE`` on an older file, in ``create_or_upgrade``), never by changing a
``CREATE TABLE``: a journal written by an older version opens and keeps working.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from connector.journal.model import (
    CancelRequest,
    CancelState,
    Entry,
    FileRecord,
    FileState,
    State,
    with_changes,
)

SCHEMA = """
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

INVOICE_COLS = (
    "id, emisor_rfc, serie, folio, content_hash, state, mode, source, source_file, location, "
    "referencia, payload, uuid, stamped_xml, acuse, attempts, next_retry_at, error_code, "
    "error_message, error_origin, problems, outputs, created_at, updated_at, owner"
)


def written(e: Entry, cols: dict[str, Any]) -> Entry:
    """The row ``e`` once ``cols`` (as bound to an UPDATE) are written: no second read."""
    out = dict(cols)
    if "state" in out:
        out["state"] = State(out["state"])
    for k in ("problems", "outputs"):
        if k in out:
            out[k] = json.loads(out[k])
    return with_changes(e, **out)


def entry_of(row: tuple[Any, ...]) -> Entry:
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
        owner,
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
        owner=owner,
    )


FILE_COLS = "id, source, name, work_path, state, final_path, claimed_at, finished_at, error_count"


def file_of(row: tuple[Any, ...]) -> FileRecord:
    id_, source, name, work, state, final, claimed, finished, errors = row
    return FileRecord(id_, source, name, work, FileState(state), final, claimed, finished, errors)


CANCEL_COLS = "uuid, invoice_id, motivo, folio_sustitucion, code, estatus, acuse, at"

REQUEST_COLS = (
    "uuid, invoice_id, motivo, folio_sustitucion, code, state, es_cancelable, "
    "estatus_cancelacion, acuse, requested_at, updated_at, rfc_emisor, rfc_receptor, total, "
    "estado, next_poll_at, polls, requests, error_code, error_message, origin"
)
# columns added after the table first shipped (ALTER TABLE on an older journal)
REQUEST_ADDED = {
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


# the instance that advances a row, in a journal several connectors share (issue 16;
# ``connector.journal.postgres``): NULL in a SQLite journal, which one connector holds. Not
# on ``files``, which an older version reads with ``SELECT *`` (nine columns): a shared
# journal's files carry their owner on PostgreSQL only
OWNER_ADDED = {"invoices": "owner TEXT", "cancel_requests": "owner TEXT"}


def request_of(row: tuple[Any, ...]) -> CancelRequest:
    values = list(row)
    values[5] = CancelState(values[5])
    return CancelRequest(*values)


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Create the tables a new journal lacks and add the columns an older one lacks (inside
    the caller's transaction)."""
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    have = {r[1] for r in db.execute("PRAGMA table_info(cancel_requests)")}
    for col, decl in REQUEST_ADDED.items():
        if col not in have:
            db.execute(f"ALTER TABLE cancel_requests ADD COLUMN {col} {decl}")
    for table, decl in OWNER_ADDED.items():
        if "owner" not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {decl}")
