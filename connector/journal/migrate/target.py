"""The PostgreSQL side of ``journal migrate`` (``connector.journal.migrate``): the conflicts
with what the target holds, the copy with the ids renumbered, and the check read back from the
server (counts per table, SHA-256 computed by PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from connector.journal.migrate.records import (
    BATCH,
    BLOBS,
    KEPT_ID,
    NEW_ID,
    REFS,
    TABLES,
    UUID_TABLES,
    MigrationError,
    MigrationProblem,
    TableCount,
    compare_hashes,
)
from connector.journal.migrate.source import Source, source_rows


def _target_columns(conn: Any, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def conflicts(conn: Any, src: Source) -> list[MigrationProblem]:
    problems = []
    keys = list(src.content)
    for i in range(0, len(keys), 5000):
        part = keys[i : i + 5000]
        rows = conn.execute(
            "SELECT i.emisor_rfc, i.serie, i.folio, i.content_hash, i.state FROM invoices i "
            "JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(r, s, f) "
            "ON i.emisor_rfc = k.r AND i.serie = k.s AND i.folio = k.f",
            ([k[0] for k in part], [k[1] for k in part], [k[2] for k in part]),
        ).fetchall()
        for rfc, serie, folio, content, state in rows:
            same = "el mismo" if src.content[(rfc, serie, folio)] == content else "otro"
            problems.append(
                MigrationProblem(
                    "CONN-MIGRAR-CONFLICTO",
                    f"{rfc}/{serie}/{folio}",
                    f"La factura {rfc} serie {serie!r} folio {folio!r} ya está en el diario "
                    f"de destino (estado {state}, con {same} contenido); no se migró nada.",
                )
            )
    for table, uuids in src.uuids.items():
        rows = conn.execute(
            f"SELECT uuid FROM {table} WHERE uuid = ANY(%s)", (list(uuids),)
        ).fetchall()
        problems += [
            MigrationProblem(
                "CONN-MIGRAR-CONFLICTO",
                f"{table}:{u}",
                f"El UUID {u} ya está en la tabla {table} del diario de destino; no se migró nada.",
            )
            for (u,) in rows
        ]
    if src.claim_names:
        rows = conn.execute(
            "SELECT work_name, name FROM claim_names WHERE work_name = ANY(%s)",
            (list(src.claim_names),),
        ).fetchall()
        problems += [
            MigrationProblem(
                "CONN-MIGRAR-CONFLICTO",
                f"claim_names:{w}",
                f"El nombre corto {w!r} ya está en el diario de destino para {n!r}, no para "
                f"{src.claim_names[w]!r}; no se migró nada.",
            )
            for w, n in rows
            if n != src.claim_names[w]
        ]
    return problems


def present_rows(conn: Any, src: Source) -> dict[str, int]:
    """The source's rows the target already holds identical: failure notes by their ``once``
    key, claim names with the same name (asked before the copy)."""
    notes = conn.execute(
        "SELECT count(*) FROM failure_notes WHERE once = ANY(%s)", (src.onces,)
    ).fetchone()[0]
    same = conn.execute(
        "SELECT work_name, name FROM claim_names WHERE work_name = ANY(%s)",
        (list(src.claim_names),),
    ).fetchall()
    return {
        "failure_notes": int(notes),
        "claim_names": sum(n == src.claim_names[w] for w, n in same),
    }


def _coerce(value: Any, data_type: str) -> Any:
    if data_type == "bytea" and isinstance(value, str):
        return value.encode("utf-8")
    if data_type == "text" and isinstance(value, bytes):
        return value.decode("utf-8")
    return value


class Copy:
    """Pass two: the source's rows into the target, the ids renumbered."""

    def __init__(self, conn: Any, db: sqlite3.Connection, src: Source) -> None:
        self.conn = conn
        self.db = db
        self.src = src
        self.ids: dict[str, dict[int, int]] = {t: {} for t in KEPT_ID}

    def table(self, table: str) -> None:
        if table not in self.src.columns:
            return
        target = _target_columns(self.conn, table)
        if not target:
            raise MigrationError(
                [
                    MigrationProblem(
                        "CONN-MIGRAR-DESTINO",
                        table,
                        f"El diario de destino no tiene la tabla {table}.",
                    )
                ]
            )
        cols = [c for c in self.src.columns[table] if c in target]
        new_id = table in NEW_ID
        put = [c for c in cols if not (new_id and c == "id")]
        refs = REFS.get(table, {})
        sql = f"INSERT INTO {table} ({', '.join(put)}) VALUES ({', '.join(['%s'] * len(put))})"
        if table == "failure_notes":
            sql += " ON CONFLICT (once) DO NOTHING"
        if table == "claim_names":
            sql += " ON CONFLICT (work_name) DO NOTHING"  # the same name: already there
        keep = table in KEPT_ID
        if keep:
            sql += " RETURNING id"
        read = (["id"] if keep and "id" not in cols else []) + cols
        for batch in _batches(source_rows(self.db, table, read)):
            olds, params = [], []
            for row in batch:
                rec = dict(zip(read, row, strict=True))
                values = []
                for c in put:
                    v = rec[c]
                    if c in refs and v is not None:
                        v = self.ids[refs[c]].get(v)  # None: its row was not copied
                    values.append(_coerce(v, target[c]))
                olds.append(rec.get("id"))
                params.append(values)
            self._insert(table, sql, olds, params, keep)

    def _insert(
        self, table: str, sql: str, olds: list[Any], params: list[list[Any]], keep: bool
    ) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, params, returning=keep)
            if not keep:
                return
            for old in olds:
                row = cur.fetchone()
                if row is not None:  # none: not inserted (a note already there)
                    self.ids[table][old] = row[0]
                if not cur.nextset():
                    break


def _batches(rows: Iterable[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the check -------------------------------------------------------------------------------


def _count(conn: Any, sql: str, arg: Any) -> int:
    return int(conn.execute(sql, (arg,)).fetchone()[0])


def check_copy(
    conn: Any, src: Source, ids: dict[str, dict[int, int]], present: dict[str, int]
) -> tuple[dict[str, TableCount], int, list[MigrationProblem]]:
    """The rows and hashes read back from the target against the source's (``present``: the
    rows the target held identical before the copy): the counts per table, how many hashes
    were compared, and every difference."""
    inv = list(ids["invoices"].values())
    files = list(ids["files"].values())
    found = {
        "invoices": _count(conn, "SELECT count(*) FROM invoices WHERE id = ANY(%s)", inv),
        "events": _count(conn, "SELECT count(*) FROM events WHERE invoice_id = ANY(%s)", inv),
        "files": _count(conn, "SELECT count(*) FROM files WHERE id = ANY(%s)", files),
        "file_items": _count(
            conn, "SELECT count(*) FROM file_items WHERE file_id = ANY(%s)", files
        ),
        "file_reports": _count(
            conn, "SELECT count(*) FROM file_reports WHERE file_id = ANY(%s)", files
        ),
        "failure_notes": int(
            conn.execute(  # the copied notes, and those the target held by their once
                "SELECT count(*) FROM failure_notes WHERE id = ANY(%s) OR once = ANY(%s)",
                (list(ids["failure_notes"].values()), src.onces),
            ).fetchone()[0]
        ),
        "claim_names": _count(
            conn,
            "SELECT count(*) FROM claim_names WHERE work_name = ANY(%s)",
            list(src.claim_names),
        ),
    }
    for table in UUID_TABLES:
        found[table] = _count(
            conn, f"SELECT count(*) FROM {table} WHERE uuid = ANY(%s)",
            list(src.uuids.get(table, {})),
        )  # fmt: skip
    counts: dict[str, TableCount] = {}
    problems = []
    for table in TABLES:
        want = src.counts.get(table, 0)
        have = found.get(table, 0)
        tc = TableCount(want, have - present.get(table, 0), present.get(table, 0))
        counts[table] = tc
        if have != want:
            problems.append(
                MigrationProblem(
                    "CONN-MIGRAR-CONTEO",
                    table,
                    f"La tabla {table} tiene {want} fila(s) en el diario SQLite y "
                    f"{have} en PostgreSQL después de copiarla; "
                    "no se migró nada.",
                )
            )
    back = {old: ids["invoices"][old] for old in src.invoices if old in ids["invoices"]}
    rows = conn.execute(
        "SELECT id, emisor_rfc, serie, folio, uuid, "
        + ", ".join(f"encode(sha256({b}), 'hex')" for b in BLOBS)
        + " FROM invoices WHERE id = ANY(%s)",
        (list(back.values()),),
    ).fetchall()
    by_new = {r[0]: tuple(r[1:]) for r in rows}
    got = {old: by_new[new] for old, new in back.items() if new in by_new}
    problems += compare_hashes("facturas", src.invoices, got)
    compared = sum(v is not None for h in src.invoices.values() for v in h[4:])
    for table in ("cancellations", "cancel_requests"):
        uuids = src.uuids.get(table, {})
        rows = conn.execute(
            f"SELECT uuid, encode(sha256(acuse), 'hex') FROM {table} WHERE uuid = ANY(%s)",
            (list(uuids),),
        ).fetchall()
        problems += compare_hashes(
            table, {u: (h,) for u, h in uuids.items()}, {u: (h,) for u, h in rows}
        )
        compared += sum(h is not None for h in uuids.values())
    return counts, compared, problems
