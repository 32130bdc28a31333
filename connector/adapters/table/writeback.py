"""Writing outcomes back into the rows of ``cfdi_factura``: each column's value as the engine
and the source's encoding can take it, then one guarded ``UPDATE`` per row, or, where the
engine allows it (``Dialect.batch_updates``: PostgreSQL), one ``UPDATE … FROM (VALUES …)
RETURNING`` for the whole batch with the same guard per row. A batch that names a row twice
goes one row at a time, in order (one statement could apply either of the two)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from .dialects import Dialect
from .schema import FACTURA, STAMPED
from .statements import WRITE_BACK_COLUMNS, Statements
from .values import _cut, _fit, _text, _timestamp

_CHUNK = 100  # rows per one-statement write-back (8 parameters each)


def returned(cur: Any) -> list[Any]:
    """The rows an ``UPDATE … RETURNING`` gave back (psqlODBC reports no result set at all,
    rather than an empty one, when no row was updated)."""
    return cur.fetchall() if cur.description is not None else []


@cache
def _types(d: Dialect) -> dict[str, str]:
    return {c: d.column_type(FACTURA.column(c)) for c in WRITE_BACK_COLUMNS}


def write_back_work(
    d: Dialect, sql: Statements, enc: str | None, items: Sequence[tuple[int, Any]]
) -> Callable[[Any], list[bool]]:
    """The unit of work (``work(cursor)``, committed by it) that writes each ``(row id,
    Outcome)``; it answers, per item, whether that row was written (a ``TIMBRADO`` row is never
    turned into ``ERROR`` nor given another UUID)."""
    statements = []
    rows: list[list[Any]] = []  # [id, values...] per row, for the one-statement path
    for row_id, o in items:
        values = {
            "estado": o.estado,
            "uuid": o.uuid,
            "fecha_timbrado": _timestamp(o.fecha_timbrado, d),
            "xml": _fit(_text(o.xml), enc, "xmlcharrefreplace"),
            "acuse": _fit(_text(o.acuse), enc, "xmlcharrefreplace"),
            "error_codigo": _fit(
                _cut(o.error_codigo, FACTURA.column("error_codigo").size), enc, "replace"
            ),
            "error_mensaje": _fit(
                _cut(o.error_mensaje, FACTURA.column("error_mensaje").size), enc, "replace"
            ),
        }
        params: list[Any] = [*(values[c] for c in WRITE_BACK_COLUMNS), row_id]
        rows.append([row_id, *params[:-1]])
        if o.estado == STAMPED:
            params.append(o.uuid)
        statements.append((sql.write_back(o.estado == STAMPED), tuple(params)))
    ids = [row_id for row_id, _ in items]

    def together(cur: Any) -> list[bool]:
        got: set[int] = set()
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            cur.execute(sql.write_back_many(len(chunk), _types(d)), *(v for r in chunk for v in r))
            got.update(int(r[0]) for r in returned(cur))
        cur.connection.commit()
        return [row_id in got for row_id in ids]

    def one_by_one(cur: Any) -> list[bool]:
        written = []
        for statement, params in statements:
            cur.execute(statement, *params)
            written.append(cur.rowcount == 1)
        cur.connection.commit()
        return written

    return together if d.batch_updates and len(set(ids)) == len(ids) else one_by_one
