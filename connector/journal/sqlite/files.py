"""Files in the SQLite journal: each claimed input file followed to exactly one final place
(``files``), the invoices and refused records it carried (``file_items``), the report it was
decided on (``file_reports``) and the ERP's name of a file claimed under a shortened one
(``claim_names``)."""

from __future__ import annotations

import json
import time
from typing import Any

from connector.journal.model import (
    Entry,
    FileItem,
    FileRecord,
    FileState,
    JournalError,
    State,
)
from connector.journal.sqlite.base import SqliteBase
from connector.journal.sqlite.schema import FILE_COLS, INVOICE_COLS, entry_of, file_of

# a file's items written in one statement each so many (5 values each)
_ITEMS_AT_ONCE = 500


class FileStore(SqliteBase):
    """``files``, ``file_items``, ``file_reports``, ``claim_names``."""

    def file_claimed(self, source: str, name: str, work_path: str) -> FileRecord:
        """Record a file in work/ (idempotent: an unfinished record for the path is reused)."""
        with self._tx(flush=False) as db:
            row = db.execute(
                f"SELECT {FILE_COLS} FROM files WHERE work_path=? AND state IN (?,?,?)",
                (work_path, FileState.CLAIMED, FileState.ARCHIVING, FileState.FAILING),
            ).fetchone()
            if row:
                return file_of(row)
            # the owner column only where one is kept (see ``schema.OWNER_ADDED``)
            owned = ("", "", ()) if self.owner is None else (", owner", ",?", (self.owner,))
            return file_of(
                db.execute(
                    f"INSERT INTO files (source, name, work_path, state, claimed_at{owned[0]}) "
                    f"VALUES (?,?,?,?,?{owned[1]}) RETURNING {FILE_COLS}",
                    (source, name, work_path, FileState.CLAIMED, time.time(), *owned[2]),
                ).fetchone()
            )

    def get_file(self, file_id: int) -> FileRecord:
        with self._lock:
            row = self._db.execute(
                f"SELECT {FILE_COLS} FROM files WHERE id=?", (file_id,)
            ).fetchone()
        if not row:
            raise JournalError(f"no file with id {file_id}")
        return file_of(row)

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
    def _put_items(db: Any, file_id: int, items: list[FileItem]) -> None:
        """One statement for up to ``_ITEMS_AT_ONCE`` items (SQLite allows 32,766 values)."""
        for at in range(0, len(items), _ITEMS_AT_ONCE):
            part = items[at : at + _ITEMS_AT_ONCE]
            db.execute(
                "INSERT INTO file_items (file_id, idx, location, invoice_id, problems) VALUES "
                + ", ".join(["(?,?,?,?,?)"] * len(part))
                + " ON CONFLICT (file_id, idx) DO UPDATE SET location=excluded.location, "
                "invoice_id=excluded.invoice_id, problems=excluded.problems",
                [v for it in part for v in (file_id, it.idx, it.location, it.invoice_id,
                                            json.dumps(it.problems, ensure_ascii=False))],
            )  # fmt: skip

    def file_items(self, file_id: int) -> list[FileItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT file_id, idx, location, invoice_id, problems FROM file_items "
                "WHERE file_id=? ORDER BY idx",
                (file_id,),
            ).fetchall()
        return [FileItem(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def file_entries(self, file_id: int) -> list[tuple[FileItem, Entry | None]]:
        """A file's items, each with its invoice as it is now (one read)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT i.file_id, i.idx, i.location, i.invoice_id, i.problems, v."
                + INVOICE_COLS.replace(", ", ", v.")
                + " FROM file_items i LEFT JOIN invoices v ON v.id=i.invoice_id "
                "WHERE i.file_id=? ORDER BY i.idx",
                (file_id,),
            ).fetchall()
        return [
            (FileItem(r[0], r[1], r[2], r[3], json.loads(r[4])),
             entry_of(r[5:]) if r[5] is not None else None)
            for r in rows
        ]  # fmt: skip

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
                "SELECT f." + FILE_COLS.replace(", ", ", f.") + " FROM files f "
                "JOIN file_items i ON i.file_id=f.id "
                "WHERE i.invoice_id=? ORDER BY f.id",
                (invoice_id,),
            ).fetchall()
        return [file_of(r) for r in rows]

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
                    "INSERT INTO file_reports (file_id, report) VALUES (?,?) "
                    "ON CONFLICT (file_id) DO UPDATE SET report=excluded.report",
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
                "INSERT INTO claim_names (work_name, name) VALUES (?,?) "
                "ON CONFLICT (work_name) DO UPDATE SET name=excluded.name",
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

    def file_moved(self, file_id: int, work_path: str) -> None:
        """A claimed file found under another work folder: the instance that took over a
        stopped one's work moved it into its own (``connector.pipeline``)."""
        with self._tx() as db:
            db.execute("UPDATE files SET work_path=? WHERE id=?", (work_path, file_id))

    def files(self, *states: FileState, name: str | None = None) -> list[FileRecord]:
        """The files in ``states`` (all without; this instance's, in a shared journal)."""
        mine, me = self._mine()
        q = f"SELECT {FILE_COLS} FROM files WHERE 1=1{mine}"
        args: list[Any] = [*me]
        if states:
            q += f" AND state IN ({','.join('?' for _ in states)})"
            args.extend(states)
        if name is not None:
            q += " AND name=?"
            args.append(name)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY id", args).fetchall()
        return [file_of(r) for r in rows]

    def file_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        out = {str(s): 0 for s in FileState}
        out.update({s: n for s, n in rows})
        return out
