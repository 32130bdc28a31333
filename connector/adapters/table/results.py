"""Results-table mode: the ERP's own tables, views or queries are only read; each invoice's
claim and outcome live in a table of the connector's (``cfdi_resultado``, ``tables-ddl
--resultados``), one row per invoice keyed by the ERP's invoice id.

For an ERP whose tables may not be altered. The header source (a table, a view, or a
``SELECT`` given as ``factura_query``) yields one row per invoice ready to stamp, with an ``id``
and the default header's column names (``SELECT folio_fac AS folio, …``); the lines source
(``concepto``/``concepto_query``) yields ``factura_id``, ``linea`` and the default line columns.
An invoice is pending while it has no results row (or its row is ``PENDIENTE`` again: replay),
and is claimed by inserting its results row — an insert that adds nothing when the row is
there, so one instance wins — or, for a ``PENDIENTE``/expired row, by the same guarded update
as the default tables. Write-back, lease renewal, replay and take-back work on the results row.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.adapters.base import ParsedRecord
from connector.cfdi.errors import Problem

from .odbc import TableError
from .schema import CONCEPTO, FACTURA, IN_PROGRESS, OWNED, PENDING, RESULTADO
from .source import Claimed, TableSource
from .statements import Statements
from .values import _decode_problem

_CLAIM_COLUMNS = ("id", "estado", "referencia", "fecha", "reclamado_por", "reclamado_hasta",
                  "intentos", "actualizado_en")  # fmt: skip


@dataclass
class ResultsTableSource(TableSource):
    """``factura_table``/``concepto_table``: the ERP's header and lines tables or views (read
    only); ``factura_query``/``concepto_query``: a ``SELECT`` each instead; ``results_table``:
    where claims and outcomes go."""

    results_table: str = RESULTADO.name
    factura_query: str | None = None
    concepto_query: str | None = None
    _known_columns: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def _query_of(self, name: str) -> str | None:
        if name == self.factura_table:
            return self.factura_query
        if name == self.concepto_table:
            return self.concepto_query
        return None

    def _t(self, name: str) -> str:
        query = self._query_of(name)
        return f"({query}) src" if query else super()._t(name)

    def _sql(self) -> Statements:
        return Statements(self.dialect, self.results_table)

    def close(self) -> None:
        super().close()
        self._known_columns.clear()  # a new connection may see a changed view

    def _columns(self, name: str) -> list[str]:
        """The columns a header or lines source yields (read once per connection: not at
        every batch)."""
        if name not in self._known_columns:

            def work(cur: Any) -> list[str]:
                cur.execute(f"SELECT * FROM {self._t(name)} WHERE 1 = 0")
                names = [c[0].lower() for c in cur.description]
                cur.connection.commit()
                return names

            self._known_columns[name] = list(self._run(work, f"leer las columnas de {name}"))
        return self._known_columns[name]

    def claim_batch(self, limit: int, lease_seconds: int, instance: str) -> list[Claimed]:
        d = self.dialect
        q = d.q
        r = super()._t(self.results_table)
        src = self._t(self.factura_table) + ("" if self.factura_query else " src")
        pending = (
            f"(r.{q('id')} IS NULL OR r.{q('estado')} = '{PENDING}' OR "
            f"(r.{q('estado')} = '{IN_PROGRESS}' AND r.{q('reclamado_hasta')} < {d.now_utc()}))"
        )
        select = d.select_candidates(
            f"{src} LEFT JOIN {r} r ON r.{q('id')} = src.{q('id')}",
            [f"src.{q('id')}", f"r.{q('id')}"],
            pending,
            f"src.{q('id')}",
            limit,
            False,
        )
        try:
            insert = d.insert_new(
                r,
                [q(c) for c in _CLAIM_COLUMNS],
                ["?", f"'{IN_PROGRESS}'", "?", "?", "?", d.now_plus(lease_seconds), "1",
                 d.now_utc()],
            )  # fmt: skip
        except NotImplementedError:
            from .check import _NO_RESULTS

            raise TableError("CONN-BD-DIALECTO", _NO_RESULTS.format(d.label),
                             transient=False) from None  # fmt: skip
        update = self._sql().claim(lease_seconds)
        now = d.timestamp_param(self.now().replace(tzinfo=None))

        def claim(cur: Any) -> list[int]:
            found = [(int(a), b) for a, b in cur.execute(select).fetchall()]
            cur.connection.commit()  # no read snapshot held into the writes
            won = []
            for row_id, known in found:
                ref = f"F{row_id}-{secrets.token_hex(6)}"
                if known is None:  # first claim: the results row is made, one winner
                    cur.execute(insert, row_id, ref, now, instance)
                else:  # replayed, or its holder's lease expired: the guarded update
                    cur.execute(update, ref, now, instance, row_id)
                if cur.rowcount == 1:
                    won.append(row_id)
            cur.connection.commit()
            return won

        won = self._run(claim, "reclamar facturas")
        return self.read(won) if won else []

    def read(self, ids: Sequence[int]) -> list[Claimed]:
        """The invoices ``ids`` from the header and lines sources (only the columns the
        default tables have: the ERP's others are not ours to judge), with their results rows'
        referencia, claims so far and Fecha (used when the ERP's is empty)."""
        wanted = {c.name for c in FACTURA.columns} - set(OWNED)
        header = [c for c in self._columns(self.factura_table) if c in wanted]
        lines = [c for c in self._columns(self.concepto_table) if c in CONCEPTO.names]
        out: list[Claimed] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            info = self._fetch(
                self.results_table, ["id", "referencia", "intentos", "fecha"], "id", chunk
            )
            heads = self._fetch(self.factura_table, header, "id", chunk)
            details = self._fetch(self.concepto_table, lines, "factura_id", chunk)
            extras = self._read_complements(chunk)
            for row_id in chunk:
                head, claim = heads.get(row_id), (info.get(row_id) or [None])[0]
                if head is None or claim is None:
                    continue  # gone from the ERP's source between claim and read
                out.append(self._claimed_with(row_id, head[0], claim, details.get(row_id, []),
                                              extras))  # fmt: skip
        return out

    def _claimed_with(
        self, row_id: int, head: Any, claim: dict[str, Any], lines: list[Any], extras: Any = None
    ) -> Claimed:
        if not isinstance(head, UnicodeError):
            head = {**head, "referencia": claim["referencia"], "intentos": claim["intentos"],
                    "fecha": head.get("fecha") or claim["fecha"]}  # fmt: skip
            return self._claimed(row_id, [head], lines, extras)
        root = ParsedRecord("FACTURA", {}, row_id, self.factura_table)
        where = f"{self.factura_table}:{row_id}"
        root.problems.append(_decode_problem(head, where, self.spec.encoding))
        return Claimed(row_id, str(claim.get("referencia") or ""),
                       int(claim.get("intentos") or 0), root, unreadable=True)  # fmt: skip

    def pending(self) -> tuple[int, Any]:
        q = self.dialect.q
        r = super()._t(self.results_table)
        src = self._t(self.factura_table) + ("" if self.factura_query else " src")
        return self._count(
            f"SELECT COUNT(*), NULL FROM {src} LEFT JOIN {r} r ON r.{q('id')} = src.{q('id')} "
            f"WHERE r.{q('id')} IS NULL OR r.{q('estado')} = '{PENDING}'"
        )

    def orphan_lines(self, limit: int = 100) -> list[Problem]:
        return []  # the lines come from the ERP's own source: not ours to judge
