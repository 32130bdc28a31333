"""Cancellation requests from ERP tables (``[sources.table] cancelaciones =
"cfdi_cancelacion"``): the ERP writes a row with the invoice's ``uuid`` (or its ``factura_id``:
the invoice's row id) and ``motivo`` (``folio_sustitucion`` with motivo 01) and sets ``estado =
'PENDIENTE'`` last. The connector claims the row (the same guarded update and lease as invoice
rows), hands the request to the tracked cancellation flow (``connector.cancellations``) and
writes where it stands into the row every time it changes: ``estado`` (SOLICITADA, ENVIADA,
EN_ESPERA — the receptor must accept —, CANCELADA, RECHAZADA, NO_CANCELABLE, ERROR),
``estatus_sat``, ``es_cancelable``, ``error_codigo``/``error_mensaje`` and the ``acuse``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .odbc import ConnSpec
from .schema import CANCELACION, IN_PROGRESS, PENDING
from .source import TableSource
from .values import _cut, _text

# where a request stands (connector.journal.CancelState values) → the row's estado
ROW_STATE = {
    "solicitada": "SOLICITADA",
    "enviada": "ENVIADA",
    "en_proceso": "EN_ESPERA",
    "rechazada": "RECHAZADA",
    "cancelada": "CANCELADA",
    "no_cancelable": "NO_CANCELABLE",
    "invalida": "ERROR",
}
ERROR = "ERROR"


@dataclass
class CancelRow:
    id: int
    uuid: str  # "" when the row names no invoice the tables know
    motivo: str
    folio_sustitucion: str | None


@dataclass
class CancelRows:
    """One database's cancellation table (and where a ``factura_id`` finds its UUID: the
    invoice rows' table, or the results table in results-table mode)."""

    spec: ConnSpec
    table: str = CANCELACION.name
    invoices: str = "cfdi_factura"

    def __post_init__(self) -> None:
        self._db = TableSource(self.spec)  # its connection, error handling and quoting

    def close(self) -> None:
        self._db.close()

    def _q(self, col: str) -> str:
        return self._db.dialect.q(col)

    def claim(self, instance: str, lease_seconds: int, limit: int = 50) -> list[CancelRow]:
        """Pending requests (or ones whose holder's lease expired) now this instance's."""
        d, q = self._db.dialect, self._q
        t, inv = self._db._t(self.table), self._db._t(self.invoices)
        claimable = (
            f"({q('estado')} = '{PENDING}' OR ({q('estado')} = '{IN_PROGRESS}' "
            f"AND {q('reclamado_hasta')} < {d.now_utc()}))"
        )
        select = d.select_candidates(t, [q("id")], claimable, q("id"), limit, False)
        update = (
            f"UPDATE {t} SET {q('estado')} = '{IN_PROGRESS}', {q('reclamado_por')} = ?, "
            f"{q('reclamado_hasta')} = {d.now_plus(lease_seconds)}, "
            f"{q('actualizado_en')} = {d.now_utc()} WHERE {q('id')} = ? AND {claimable}"
        )
        read = (
            f"SELECT c.{q('id')}, c.{q('uuid')}, c.{q('motivo')}, c.{q('folio_sustitucion')}, "
            f"f.{q('uuid')} FROM {t} c LEFT JOIN {inv} f ON f.{q('id')} = c.{q('factura_id')} "
            f"WHERE c.{q('id')} = ?"
        )

        def work(cur: Any) -> list[CancelRow]:
            ids = [int(r[0]) for r in cur.execute(select).fetchall()]
            cur.connection.commit()
            won = []
            for row_id in ids:
                cur.execute(update, instance, row_id)
                if cur.rowcount == 1:
                    won.append(row_id)
            cur.connection.commit()
            out = []
            for row_id in won:
                r = cur.execute(read, row_id).fetchone()
                uuid = str(r[1] or r[4] or "").strip()
                out.append(CancelRow(row_id, uuid, str(r[2] or "").strip(),
                                     str(r[3] or "").strip() or None))  # fmt: skip
            cur.connection.commit()
            return out

        return list(self._db._run(work, "reclamar cancelaciones"))

    def write(
        self,
        row_id: int,
        estado: str,
        *,
        estatus_sat: str | None = None,
        es_cancelable: str | None = None,
        error_codigo: str | None = None,
        error_mensaje: str | None = None,
        acuse: bytes | None = None,
        instance: str | None = None,
    ) -> None:
        """Where the request of row ``row_id`` stands (the lease ends: it is not claimed
        again; the follow-up writes each change). ``instance``: only while that instance
        holds the row (what it decided right after claiming it)."""
        q, d = self._q, self._db.dialect
        cols = ("estado", "estatus_sat", "es_cancelable", "error_codigo", "error_mensaje",
                "acuse")  # fmt: skip
        sets = ", ".join(f"{q(c)} = ?" for c in cols)
        sql = (
            f"UPDATE {self._db._t(self.table)} SET {sets}, {q('reclamado_hasta')} = NULL, "
            f"{q('actualizado_en')} = {d.now_utc()} WHERE {q('id')} = ?"
        )
        if instance is not None:
            sql += f" AND {q('reclamado_por')} = ?"
        values: tuple[Any, ...] = (
            estado,
            _cut(estatus_sat, 60),
            _cut(es_cancelable, 60),
            _cut(error_codigo, 40),
            _cut(error_mensaje, 2000),
            _text(acuse),
            row_id,
            *(() if instance is None else (instance,)),
        )

        def work(cur: Any) -> None:
            cur.execute(sql, *values)
            cur.connection.commit()

        self._db._run(work, "escribir la cancelación")

    def release(self, row_id: int, instance: str) -> None:
        """A request that must wait (the PAC or SAT out of reach): PENDIENTE again, while
        ``instance`` still holds it."""
        q, d = self._q, self._db.dialect
        sql = (
            f"UPDATE {self._db._t(self.table)} SET {q('estado')} = '{PENDING}', "
            f"{q('reclamado_por')} = NULL, {q('reclamado_hasta')} = NULL, "
            f"{q('actualizado_en')} = {d.now_utc()} WHERE {q('id')} = ? "
            f"AND {q('estado')} = '{IN_PROGRESS}' AND {q('reclamado_por')} = ?"
        )

        def work(cur: Any) -> None:
            cur.execute(sql, row_id, instance)
            cur.connection.commit()

        self._db._run(work, "liberar la cancelación")
