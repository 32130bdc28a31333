"""What the SQLite journal answers about its invoices without changing them (lists by state,
the due retries, the figures of ``status`` and the metrics, the search of ``find`` and
``report``), and the failures ``status`` lists, with the notes of failures that are no invoice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from connector.journal.model import ACUSE_MISSING, Entry, Failure, FileState, State
from connector.journal.sqlite.base import SqliteBase
from connector.journal.sqlite.schema import INVOICE_COLS, entry_of


class Queries(SqliteBase):
    """Reads over the invoices; ``failure_notes``."""

    def in_state(self, *states: State) -> list[Entry]:
        """The invoices in ``states`` (this instance's, in a shared journal)."""
        q = ",".join("?" for _ in states)
        mine, me = self._mine()
        with self._lock:
            rows = self._db.execute(
                f"SELECT {INVOICE_COLS} FROM invoices WHERE state IN ({q}){mine} ORDER BY id",
                (*states, *me),
            ).fetchall()
        return [entry_of(r) for r in rows]

    def due_retries(self, now: float | None = None, limit: int = 1_000_000) -> list[Entry]:
        now = time.time() if now is None else now
        mine, me = self._mine()
        with self._lock:
            rows = self._db.execute(
                f"SELECT {INVOICE_COLS} FROM invoices WHERE state=? AND next_retry_at<=?{mine} "
                "ORDER BY next_retry_at, id LIMIT ?",
                (State.RETRY_WAIT, now, *me, limit),
            ).fetchall()
        return [entry_of(r) for r in rows]

    def next_retry_at(self) -> float | None:
        """When the earliest invoice waiting for a retry is due (None: none waits)."""
        mine, me = self._mine()
        with self._lock:
            row = self._db.execute(
                f"SELECT MIN(next_retry_at) FROM invoices WHERE state=?{mine}",
                (State.RETRY_WAIT, *me),
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

    def acuses_pending(self, sources: Iterable[str], limit: int = 50) -> list[Entry]:
        """Delivered invoices of these sources whose acuse is still to be fetched
        (``acuse_missing``), the longest waiting first."""
        names = list(sources)
        q = ",".join("?" for _ in names)
        mine, me = self._mine()
        with self._lock:
            rows = self._db.execute(
                f"SELECT {INVOICE_COLS} FROM invoices WHERE state=? AND error_code=? "
                f"AND source IN ({q}){mine} ORDER BY updated_at, id LIMIT ?",
                (State.DELIVERED, ACUSE_MISSING, *names, *me, limit),
            ).fetchall()
        return [entry_of(r) for r in rows]

    def recent_failures(self, limit: int = 10) -> list[Failure]:
        """Everything that failed, newest first: invoices failed, waiting to retry, stamped
        with a delivery error or delivered with the acuse still missing; records refused
        before they became invoices (a file that cannot be read or decoded, malformed XML, a
        CSV header, a lookup, ``CONN-FOLIO-USADO``, a folio repeated in the file…) of every
        file not replayed since; and whatever ``note_failure`` recorded."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {INVOICE_COLS} FROM invoices WHERE state IN (?,?) "
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
            for e in map(entry_of, rows)
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
                "INSERT INTO failure_notes (at, source, name, code, message, location, once) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
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

    def find_uuid(self, uuid: str) -> Entry | None:
        """The invoice stamped with ``uuid`` (any letter case), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {INVOICE_COLS} FROM invoices WHERE uuid IN (?,?) ORDER BY id LIMIT 1",
                (uuid.upper(), uuid.lower()),
            ).fetchone()
        return entry_of(row) if row else None

    def all_entries(self) -> list[Entry]:
        """Every invoice, in journal order (``find``)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {INVOICE_COLS} FROM invoices ORDER BY id").fetchall()
        return [entry_of(r) for r in rows]

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
                f"SELECT {INVOICE_COLS} FROM invoices WHERE {where} ORDER BY id", params
            ).fetchall()
        return [entry_of(r) for r in rows]
