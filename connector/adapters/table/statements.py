"""The SQL a table source runs on ``cfdi_factura``, per dialect: the claim (candidates and the
guarded update), lease renewal, write-back, release and replay. Built here, apart from the
connection, so the SQL of engines that cannot run here (SQL Server, Firebird) is unit-tested."""

from __future__ import annotations

from dataclasses import dataclass

from .dialects import Dialect
from .schema import ERROR, IN_PROGRESS, PENDING, STAMPED

WRITE_BACK_COLUMNS = (
    "estado",
    "uuid",
    "fecha_timbrado",
    "xml",
    "acuse",
    "error_codigo",
    "error_mensaje",
)


@dataclass(frozen=True)
class Statements:
    d: Dialect
    table: str  # as configured: "cfdi_factura", "dbo.cfdi_factura"

    def _q(self, col: str) -> str:
        return self.d.q(col)

    @property
    def t(self) -> str:
        return ".".join(self.d.q(part) for part in self.table.split("."))

    def claimable(self) -> str:
        """Pending, or in process with an expired lease."""
        q = self._q
        return (
            f"({q('estado')} = '{PENDING}' OR ({q('estado')} = '{IN_PROGRESS}' "
            f"AND {q('reclamado_hasta')} < {self.d.now_utc()}))"
        )

    def candidates(self, limit: int, skip_locked: bool) -> str:
        q = self._q
        return self.d.select_candidates(
            self.t, [q("id")], self.claimable(), q("id"), limit, skip_locked
        )

    def claim(self, lease_seconds: int) -> str:
        """Parameters: referencia (kept when the row has one), fecha (used when empty),
        instance, id. One row changed (``intentos`` always is) = the claim is ours."""
        q, d = self._q, self.d
        sets = ", ".join(
            [
                f"{q('estado')} = '{IN_PROGRESS}'",
                f"{q('referencia')} = COALESCE({q('referencia')}, {d.param('VARCHAR(64)')})",
                f"{q('fecha')} = COALESCE({q('fecha')}, {d.param('TIMESTAMP')})",
                f"{q('reclamado_por')} = ?",
                f"{q('reclamado_hasta')} = {d.now_plus(lease_seconds)}",
                f"{q('intentos')} = COALESCE({q('intentos')}, 0) + 1",
                f"{q('actualizado_en')} = {d.now_utc()}",
            ]
        )
        return f"UPDATE {self.t} SET {sets} WHERE {q('id')} = ? AND {self.claimable()}"

    def claim_many(self, lease_seconds: int, n: int) -> str:
        """``claim`` of ``n`` rows in one statement (``Dialect.batch_updates``: PostgreSQL).
        Parameters: fecha, instance, then id and referencia of each row. Returns the ids
        claimed: each row's guard is evaluated as in ``claim``, so one winner per row."""
        q, d = self._q, self.d
        sets = ", ".join(
            [
                f"{q('estado')} = '{IN_PROGRESS}'",
                f"{q('referencia')} = COALESCE({q('referencia')}, v.claim_ref)",
                f"{q('fecha')} = COALESCE({q('fecha')}, {d.param('TIMESTAMP')})",
                f"{q('reclamado_por')} = ?",
                f"{q('reclamado_hasta')} = {d.now_plus(lease_seconds)}",
                f"{q('intentos')} = COALESCE({q('intentos')}, 0) + 1",
                f"{q('actualizado_en')} = {d.now_utc()}",
            ]
        )
        rows = ", ".join(["(CAST(? AS BIGINT), CAST(? AS VARCHAR(64)))"] * n)
        return (
            f"UPDATE {self.t} SET {sets} FROM (VALUES {rows}) AS v(claim_id, claim_ref) "
            f"WHERE {q('id')} = v.claim_id AND {self.claimable()} RETURNING {q('id')}"
        )

    def renew(self, lease_seconds: int) -> str:
        """Parameters: id, instance."""
        q = self._q
        return (
            f"UPDATE {self.t} SET {q('reclamado_hasta')} = {self.d.now_plus(lease_seconds)} "
            f"WHERE {q('id')} = ? AND {q('estado')} = '{IN_PROGRESS}' AND {q('reclamado_por')} = ?"
        )

    def write_back(self, stamped: bool) -> str:
        """Parameters: the ``WRITE_BACK_COLUMNS`` values, id, and (stamped) the UUID again.
        A TIMBRADO row is never turned into ERROR nor given another UUID."""
        q = self._q
        sets = ", ".join(f"{q(k)} = ?" for k in WRITE_BACK_COLUMNS)
        sets += f", {q('reclamado_hasta')} = NULL, {q('actualizado_en')} = {self.d.now_utc()}"
        guard = f"{q('estado')} IS NULL OR {q('estado')} <> '{STAMPED}'"
        if stamped:
            guard += f" OR {q('uuid')} IS NULL OR {q('uuid')} = ?"
        return f"UPDATE {self.t} SET {sets} WHERE {q('id')} = ? AND ({guard})"

    def write_back_many(self, n: int, types: dict[str, str]) -> str:
        """``write_back`` of ``n`` rows in one statement (``Dialect.batch_updates``:
        PostgreSQL), each row's guard as in ``write_back``. Parameters: per row its id and
        the ``WRITE_BACK_COLUMNS`` values (``types``: each column's SQL type, for the casts
        a VALUES list needs). Returns the ids written."""
        q = self._q
        sets = ", ".join(f"{q(k)} = v.wb_{k}" for k in WRITE_BACK_COLUMNS)
        sets += f", {q('reclamado_hasta')} = NULL, {q('actualizado_en')} = {self.d.now_utc()}"
        row = ", ".join(
            ["CAST(? AS BIGINT)", *(f"CAST(? AS {types[k]})" for k in WRITE_BACK_COLUMNS)]
        )
        names = ", ".join(["wb_id", *(f"wb_{k}" for k in WRITE_BACK_COLUMNS)])
        guard = (
            f"{q('estado')} IS NULL OR {q('estado')} <> '{STAMPED}' OR (v.wb_estado = "
            f"'{STAMPED}' AND ({q('uuid')} IS NULL OR {q('uuid')} = v.wb_uuid))"
        )
        return (
            f"UPDATE {self.t} SET {sets} FROM (VALUES {', '.join([f'({row})'] * n)}) "
            f"AS v({names}) WHERE {q('id')} = v.wb_id AND ({guard}) RETURNING {q('id')}"
        )

    def set_referencia(self) -> str:
        """Parameters: referencia, id, instance. The referencia an invoice is really sent
        under (the journal's, when it knew the invoice already) written into its row, so
        whoever takes the row after a lease asks the PAC by the right one."""
        q = self._q
        return (
            f"UPDATE {self.t} SET {q('referencia')} = ? WHERE {q('id')} = ? "
            f"AND {q('estado')} = '{IN_PROGRESS}' AND {q('reclamado_por')} = ?"
        )

    def pending(self) -> str:
        """The rows waiting to be claimed and the oldest ``fecha`` among them (backlog)."""
        q = self._q
        return f"SELECT COUNT(*), MIN({q('fecha')}) FROM {self.t} WHERE {q('estado')} = '{PENDING}'"

    def held(self) -> str:
        """Parameters: instance. The rows an instance holds (``EN_PROCESO``, claimed by it):
        after a restart it takes them back at once, without waiting for their lease."""
        q = self._q
        return (
            f"SELECT {q('id')} FROM {self.t} WHERE {q('estado')} = '{IN_PROGRESS}' "
            f"AND {q('reclamado_por')} = ? ORDER BY {q('id')}"
        )

    def release(self) -> str:
        """Parameters: id, instance."""
        q = self._q
        return (
            f"UPDATE {self.t} SET {q('estado')} = '{PENDING}', {q('reclamado_por')} = NULL, "
            f"{q('reclamado_hasta')} = NULL, {q('actualizado_en')} = {self.d.now_utc()} "
            f"WHERE {q('id')} = ? AND {q('estado')} = '{IN_PROGRESS}' AND {q('reclamado_por')} = ?"
        )

    def reset(self) -> str:
        """Parameters: id. Only an ERROR row; its referencia stays."""
        q = self._q
        return (
            f"UPDATE {self.t} SET {q('estado')} = '{PENDING}', {q('error_codigo')} = NULL, "
            f"{q('error_mensaje')} = NULL, {q('reclamado_por')} = NULL, "
            f"{q('reclamado_hasta')} = NULL, {q('actualizado_en')} = {self.d.now_utc()} "
            f"WHERE {q('id')} = ? AND {q('estado')} = '{ERROR}'"
        )
