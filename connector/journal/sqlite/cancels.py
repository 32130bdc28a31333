"""Cancellations in the SQLite journal: ``cancellations`` (those that took effect),
``cancel_requests`` (every request the PAC accepted and where it stands at SAT, followed up by
``connector.cancellations``) and ``sat_checks`` (the sweep for CFDIs cancelled outside)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from connector.journal.model import (
    CANCEL_OPEN,
    Cancellation,
    CancelRequest,
    CancelState,
    Entry,
    JournalError,
)
from connector.journal.sqlite.base import EVENT, SqliteBase
from connector.journal.sqlite.schema import (
    CANCEL_COLS,
    INVOICE_COLS,
    REQUEST_COLS,
    entry_of,
    request_of,
)


def invoice_of(db: sqlite3.Connection, uuid: str) -> tuple[int] | None:
    """The (id,) of the invoice stamped with ``uuid`` (stored in either letter case)."""
    return db.execute(
        "SELECT id FROM invoices WHERE uuid IN (?,?) ORDER BY id LIMIT 1",
        (uuid.upper(), uuid.lower()),
    ).fetchone()


class CancelStore(SqliteBase):
    """``cancellations``, ``cancel_requests``, ``sat_checks``."""

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
                f"SELECT {CANCEL_COLS} FROM cancellations WHERE uuid=?", (uuid,)
            ).fetchone()
            if row is None:
                found = db.execute(
                    "SELECT id FROM invoices WHERE uuid IN (?,?) ORDER BY id LIMIT 1",
                    (uuid, uuid.lower()),
                ).fetchone()
                invoice_id = found[0] if found else None
                db.execute(
                    f"INSERT INTO cancellations ({CANCEL_COLS}) VALUES (?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (uuid) DO NOTHING",
                    (uuid, invoice_id, motivo, folio_sustitucion, code, estatus, acuse,
                     time.time()),
                )  # fmt: skip
                if invoice_id is not None:
                    db.execute(
                        EVENT,
                        (invoice_id, time.time(), None, "cancelled", f"motivo {motivo}"),
                    )
            elif acuse and not row[6]:
                db.execute("UPDATE cancellations SET acuse=? WHERE uuid=?", (acuse, uuid))
            row = db.execute(
                f"SELECT {CANCEL_COLS} FROM cancellations WHERE uuid=?", (uuid,)
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
            found = invoice_of(db, uuid)
            db.execute(
                "INSERT INTO cancel_requests (uuid, invoice_id, motivo, folio_sustitucion, code, "
                "state, es_cancelable, estatus_cancelacion, acuse, requested_at, updated_at, "
                "owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(uuid) DO UPDATE SET motivo=excluded.motivo, "
                "owner=COALESCE(excluded.owner, cancel_requests.owner), "
                "folio_sustitucion=excluded.folio_sustitucion, code=excluded.code, "
                "state=excluded.state, es_cancelable=excluded.es_cancelable, "
                "estatus_cancelacion=excluded.estatus_cancelacion, "
                "acuse=COALESCE(excluded.acuse, cancel_requests.acuse), updated_at=excluded.updated_at",
                (uuid, found[0] if found else None, motivo, folio_sustitucion, code, state,
                 es_cancelable, estatus_cancelacion, acuse, now, now, self.owner),
            )  # fmt: skip
            if found is not None:
                db.execute(
                    EVENT,
                    (found[0], now, None, f"cancelacion_{state}", f"motivo {motivo}"),
                )
            row = db.execute(
                f"SELECT {REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
        return request_of(row)

    def cancel_request(self, uuid: str) -> CancelRequest | None:
        """The last cancellation request of ``uuid`` (any letter case), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid.upper(),)
            ).fetchone()
        return request_of(row) if row else None

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
            found = invoice_of(db, uuid)
            db.execute(
                "INSERT INTO cancel_requests (uuid, invoice_id, motivo, folio_sustitucion, "
                "state, requested_at, updated_at, rfc_emisor, rfc_receptor, total, polls, "
                "requests, origin, owner) VALUES (?,?,?,?,?,?,?,?,?,?,0,1,?,?) "
                "ON CONFLICT(uuid) DO UPDATE SET motivo=excluded.motivo, "
                "owner=COALESCE(excluded.owner, cancel_requests.owner), "
                "folio_sustitucion=excluded.folio_sustitucion, state=excluded.state, "
                "code=NULL, error_code=NULL, error_message=NULL, next_poll_at=NULL, polls=0, "
                "requests=cancel_requests.requests+1, requested_at=excluded.requested_at, "
                "updated_at=excluded.updated_at, rfc_emisor=excluded.rfc_emisor, "
                "rfc_receptor=excluded.rfc_receptor, total=excluded.total, "
                "origin=excluded.origin",
                (uuid, found[0] if found else None, motivo, folio_sustitucion,
                 CancelState.REQUESTED, now, now, rfc_emisor, rfc_receptor, total, origin,
                 self.owner),
            )  # fmt: skip
            if found is not None:
                db.execute(
                    EVENT,
                    (found[0], now, None, f"cancelacion_{CancelState.REQUESTED}",
                     f"motivo {motivo}"),
                )  # fmt: skip
            row = db.execute(
                f"SELECT {REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
        return request_of(row)

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
                    EVENT,
                    (old[1], now, f"cancelacion_{old[0]}", f"cancelacion_{state}",
                     fields.get("estatus_cancelacion") or fields.get("error_message")),
                )  # fmt: skip
            row = db.execute(
                f"SELECT {REQUEST_COLS} FROM cancel_requests WHERE uuid=?", (uuid,)
            ).fetchone()
        return request_of(row)

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
                f"SELECT {REQUEST_COLS} FROM cancel_requests {where} ORDER BY requested_at",
                tuple(str(s) for s in states),
            ).fetchall()
        return [request_of(r) for r in rows]

    def cancel_requests_unwritten(self) -> list[CancelRequest]:
        """Final requests whose result files could not be written (``CONN-FILE``)."""
        marks = ",".join("?" * len(CANCEL_OPEN))
        mine, me = self._mine()
        with self._lock:
            rows = self._db.execute(
                f"SELECT {REQUEST_COLS} FROM cancel_requests WHERE error_code = 'CONN-FILE' "
                f"AND state NOT IN ({marks}){mine}",
                (*(str(s) for s in CANCEL_OPEN), *me),
            ).fetchall()
        return [request_of(r) for r in rows]

    def cancel_requests_due(self, now: float, limit: int = 20) -> list[CancelRequest]:
        """Requests not final (``CANCEL_OPEN``) whose next poll of SAT has come."""
        marks = ",".join("?" * len(CANCEL_OPEN))
        mine, me = self._mine()
        with self._lock:
            rows = self._db.execute(
                f"SELECT {REQUEST_COLS} FROM cancel_requests WHERE state IN ({marks}) "
                f"AND (next_poll_at IS NULL OR next_poll_at <= ?){mine} "
                "ORDER BY COALESCE(next_poll_at, 0) LIMIT ?",
                (*(str(s) for s in CANCEL_OPEN), now, *me, limit),
            ).fetchall()
        return [request_of(r) for r in rows]

    def sweep_due(self, since: float, checked_before: float, limit: int) -> list[Entry]:
        """Delivered invoices stamped since ``since`` with no cancellation request, not asked
        at SAT since ``checked_before`` (least recently asked first): the slow sweep that
        notices a CFDI cancelled outside the connector."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join('i.' + c.strip() for c in INVOICE_COLS.split(','))} "
                "FROM invoices i LEFT JOIN sat_checks s ON s.uuid = UPPER(i.uuid) "
                "WHERE i.state = 'delivered' AND i.uuid IS NOT NULL AND i.created_at >= ? "
                "AND UPPER(i.uuid) NOT IN (SELECT uuid FROM cancel_requests) "
                "AND (s.checked_at IS NULL OR s.checked_at < ?) "
                "ORDER BY COALESCE(s.checked_at, 0), i.id LIMIT ?",
                (since, checked_before, limit),
            ).fetchall()
        return [entry_of(r) for r in rows]

    def claim_sat_check(self, uuid: str, checked_before: float) -> bool:
        """Take ``uuid``'s next SAT check (its check time set to now) unless it was checked
        since ``checked_before``: one winner when several connectors share the journal."""
        with self._tx(flush=False) as db:
            cur = db.execute(
                "INSERT INTO sat_checks (uuid, checked_at, estado) VALUES (?,?,NULL) "
                "ON CONFLICT(uuid) DO UPDATE SET checked_at=excluded.checked_at "
                "WHERE sat_checks.checked_at < ?",
                (uuid.upper(), time.time(), checked_before),
            )
            return bool(cur.rowcount)

    def sat_checked(self, uuid: str, estado: str | None) -> None:
        """The sweep asked SAT about ``uuid`` (what it said, when)."""
        with self._tx(flush=False) as db:
            db.execute(
                "INSERT INTO sat_checks (uuid, checked_at, estado) VALUES (?,?,?) "
                "ON CONFLICT(uuid) DO UPDATE SET checked_at=excluded.checked_at, "
                "estado=excluded.estado",
                (uuid.upper(), time.time(), estado),
            )

    def cancellation(self, uuid: str) -> Cancellation | None:
        """The recorded cancellation of ``uuid`` (any letter case), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {CANCEL_COLS} FROM cancellations WHERE uuid=?", (uuid.upper(),)
            ).fetchone()
        return Cancellation(*row) if row else None

    def cancelled_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM cancellations").fetchone()
        return int(row[0])
