"""What the sandbox PAC remembers: accounts, stamps, cancellations and every request.

SQLite in WAL mode behind one connection guarded by a lock (the HTTP server answers from many
threads). Stamping is check-then-insert under the same lock, so one sealed document (same Sello)
or one referencia of an account never gets a second UUID, even when sent twice at once.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    usuario   TEXT PRIMARY KEY,
    password  TEXT NOT NULL,
    cuenta    TEXT NOT NULL,
    creditos  INTEGER NOT NULL,
    usados    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stamps (
    uuid              TEXT PRIMARY KEY,
    account           TEXT NOT NULL,
    referencia        TEXT,
    rfc_emisor        TEXT NOT NULL,
    rfc_receptor      TEXT NOT NULL,
    total             TEXT NOT NULL,
    sello_sha256      TEXT NOT NULL UNIQUE,
    xml               BLOB NOT NULL,
    fecha_timbrado    TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'vigente',
    acuse_envio       BLOB,
    acuse_cancelacion BLOB,
    motivo            TEXT,
    folio_sustitucion TEXT,
    fecha_cancelacion TEXT,
    source            TEXT NOT NULL DEFAULT 'stamp'
);
CREATE INDEX IF NOT EXISTS stamps_referencia ON stamps(account, referencia);
CREATE TABLE IF NOT EXISTS cancel_status (
    uuid    TEXT PRIMARY KEY,
    estatus TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    service    TEXT NOT NULL,
    operation  TEXT NOT NULL,
    account    TEXT,
    referencia TEXT,
    uuid       TEXT,
    outcome    TEXT NOT NULL,
    code       TEXT
);
"""

STATUS_VIGENTE = "vigente"
STATUS_CANCELADO = "cancelado"
STATUS_EN_PROCESO = "en_proceso"  # "Cancelable con aceptación": waiting for the receptor


def sello_digest(sello: str) -> str:
    """The duplicate key of a sealed document: SHA-256 of its Sello."""
    return hashlib.sha256(sello.strip().encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class StampRecord:
    uuid: str
    account: str
    referencia: str | None
    rfc_emisor: str
    rfc_receptor: str
    total: Decimal
    sello_sha256: str
    xml: bytes
    fecha_timbrado: str
    status: str
    acuse_envio: bytes | None
    acuse_cancelacion: bytes | None
    motivo: str | None
    folio_sustitucion: str | None
    fecha_cancelacion: str | None
    source: str


@dataclass(frozen=True)
class RequestRecord:
    at: str
    service: str
    operation: str
    account: str | None
    referencia: str | None
    uuid: str | None
    outcome: str
    code: str | None


@dataclass(frozen=True)
class AccountState:
    usuario: str
    password: str
    cuenta: str
    creditos: int
    usados: int


_STAMP_COLUMNS = (
    "uuid, account, referencia, rfc_emisor, rfc_receptor, total, sello_sha256, xml, "
    "fecha_timbrado, status, acuse_envio, acuse_cancelacion, motivo, folio_sustitucion, "
    "fecha_cancelacion, source"
)


def _stamp(row: tuple) -> StampRecord:
    values = list(row)
    values[5] = Decimal(values[5])
    values[7] = bytes(values[7])
    values[10] = bytes(values[10]) if values[10] is not None else None
    values[11] = bytes(values[11]) if values[11] is not None else None
    return StampRecord(*values)


class SandboxStore:
    """The sandbox's SQLite database (thread-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        with self.lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT under the store lock (ROLLBACK on error)."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- accounts ----------------------------------------------------------------------------

    def ensure_account(self, usuario: str, password: str, cuenta: str, creditos: int) -> None:
        """Create the account unless the database already knows it (its state then wins:
        a changed password and the credits used survive a restart)."""
        with self.lock:
            self._db.execute(
                "INSERT OR IGNORE INTO accounts (usuario, password, cuenta, creditos) "
                "VALUES (?, ?, ?, ?)",
                (usuario, password, cuenta, creditos),
            )

    def account(self, usuario: str) -> AccountState | None:
        with self.lock:
            row = self._db.execute(
                "SELECT usuario, password, cuenta, creditos, usados FROM accounts WHERE usuario=?",
                (usuario,),
            ).fetchone()
        return AccountState(*row) if row else None

    def set_password(self, usuario: str, password: str) -> None:
        with self.lock:
            self._db.execute("UPDATE accounts SET password=? WHERE usuario=?", (password, usuario))

    def set_credits(self, usuario: str, creditos: int) -> None:
        with self.lock:
            self._db.execute("UPDATE accounts SET creditos=? WHERE usuario=?", (creditos, usuario))

    def credits(self, usuario: str) -> int:
        state = self.account(usuario)
        return state.creditos if state else 0

    # --- stamps ------------------------------------------------------------------------------

    def find_by_sello(self, digest: str) -> StampRecord | None:
        with self.lock:
            row = self._db.execute(
                f"SELECT {_STAMP_COLUMNS} FROM stamps WHERE sello_sha256=?", (digest,)
            ).fetchone()
        return _stamp(row) if row else None

    def find_by_referencia(self, account: str, referencia: str) -> StampRecord | None:
        with self.lock:
            row = self._db.execute(
                f"SELECT {_STAMP_COLUMNS} FROM stamps WHERE account=? AND referencia=? "
                "ORDER BY rowid LIMIT 1",
                (account, referencia),
            ).fetchone()
        return _stamp(row) if row else None

    def get(self, uuid: str) -> StampRecord | None:
        with self.lock:
            row = self._db.execute(
                f"SELECT {_STAMP_COLUMNS} FROM stamps WHERE uuid=?", (uuid.upper(),)
            ).fetchone()
        return _stamp(row) if row else None

    def insert_stamp(self, db: sqlite3.Connection, record: StampRecord) -> None:
        """Insert inside :meth:`transaction` and take one credit from the account."""
        db.execute(
            f"INSERT INTO stamps ({_STAMP_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.uuid,
                record.account,
                record.referencia,
                record.rfc_emisor,
                record.rfc_receptor,
                str(record.total),
                record.sello_sha256,
                record.xml,
                record.fecha_timbrado,
                record.status,
                record.acuse_envio,
                record.acuse_cancelacion,
                record.motivo,
                record.folio_sustitucion,
                record.fecha_cancelacion,
                record.source,
            ),
        )
        db.execute(
            "UPDATE accounts SET creditos=creditos-1, usados=usados+1 WHERE usuario=?",
            (record.account,),
        )

    def mark_cancelled(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        acuse: bytes,
        when: str,
        *,
        status: str = STATUS_CANCELADO,
        estatus: str = "Cancelado sin aceptación",
    ) -> None:
        """A cancellation request: cancelled at once, or ``STATUS_EN_PROCESO`` (``estatus``
        "En proceso") while the receptor has not answered."""
        with self.lock:
            self._db.execute(
                "UPDATE stamps SET status=?, motivo=?, folio_sustitucion=?, acuse_cancelacion=?, "
                "fecha_cancelacion=? WHERE uuid=?",
                (status, motivo, folio_sustitucion, acuse, when, uuid.upper()),
            )
            self._set_estatus(uuid, estatus)

    def answer_cancellation(self, uuid: str, status: str, estatus: str) -> None:
        """The receptor's answer to a request in process (or the deadline passing)."""
        with self.lock:
            self._db.execute("UPDATE stamps SET status=? WHERE uuid=?", (status, uuid.upper()))
            self._set_estatus(uuid, estatus)

    def _set_estatus(self, uuid: str, estatus: str) -> None:
        self._db.execute(
            "INSERT INTO cancel_status (uuid, estatus) VALUES (?,?) "
            "ON CONFLICT(uuid) DO UPDATE SET estatus=excluded.estatus",
            (uuid.upper(), estatus),
        )

    def cancel_estatus(self, uuid: str) -> str | None:
        """SAT's EstatusCancelacion of ``uuid`` (None: never asked to cancel)."""
        with self.lock:
            row = self._db.execute(
                "SELECT estatus FROM cancel_status WHERE uuid=?", (uuid.upper(),)
            ).fetchone()
        return row[0] if row else None

    def stamps(self, account: str | None = None) -> list[StampRecord]:
        with self.lock:
            if account is None:
                rows = self._db.execute(
                    f"SELECT {_STAMP_COLUMNS} FROM stamps ORDER BY rowid"
                ).fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT {_STAMP_COLUMNS} FROM stamps WHERE account=? ORDER BY rowid",
                    (account,),
                ).fetchall()
        return [_stamp(r) for r in rows]

    def uuids_for_referencia(self, referencia: str) -> list[str]:
        with self.lock:
            rows = self._db.execute(
                "SELECT uuid FROM stamps WHERE referencia=? ORDER BY rowid", (referencia,)
            ).fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        with self.lock:
            return int(self._db.execute("SELECT COUNT(*) FROM stamps").fetchone()[0])

    # --- request log -------------------------------------------------------------------------

    def log_request(
        self,
        service: str,
        operation: str,
        outcome: str,
        *,
        account: str | None = None,
        referencia: str | None = None,
        uuid: str | None = None,
        code: str | None = None,
    ) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO requests (at, service, operation, account, referencia, uuid, "
                "outcome, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    datetime.now().isoformat(timespec="milliseconds"),
                    service,
                    operation,
                    account,
                    referencia,
                    uuid,
                    outcome,
                    code,
                ),
            )

    @property
    def requests_log(self) -> list[RequestRecord]:
        with self.lock:
            rows = self._db.execute(
                "SELECT at, service, operation, account, referencia, uuid, outcome, code "
                "FROM requests ORDER BY id"
            ).fetchall()
        return [RequestRecord(*r) for r in rows]

    def requests(
        self, operation: str | None = None, referencia: str | None = None
    ) -> list[RequestRecord]:
        """The request log filtered by operation and/or referencia."""
        return [
            r
            for r in self.requests_log
            if (operation is None or r.operation == operation)
            and (referencia is None or r.referencia == referencia)
        ]
