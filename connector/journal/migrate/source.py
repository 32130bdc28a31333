"""The first read of the SQLite journal (``connector.journal.migrate``): its tables' columns
and counts, its keys and UUIDs, the SHA-256 of what it stored, a digest of every row, and the
references that point at nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.journal.migrate.records import (
    BATCH,
    BLOBS,
    REFS,
    TABLES,
    UUID_TABLES,
    MigrationError,
    MigrationProblem,
    sha256,
)
from connector.journal.model import FINAL_STATES


@dataclass
class Source:
    """What the first read of the SQLite journal found."""

    columns: dict[str, list[str]] = field(default_factory=dict)  # tables it has
    counts: dict[str, int] = field(default_factory=dict)
    digest: str = ""
    # invoice id → (emisor_rfc, serie, folio, uuid, sha of stamped_xml, acuse, payload)
    invoices: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    content: dict[tuple[str, str, str], str] = field(default_factory=dict)  # key → content_hash
    in_flight: int = 0
    uuids: dict[str, dict[str, str | None]] = field(default_factory=dict)  # table → uuid → acuse
    onces: list[str] = field(default_factory=list)
    claim_names: dict[str, str] = field(default_factory=dict)
    problems: list[MigrationProblem] = field(default_factory=list)


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite journal at ``path`` (never created), or ``MigrationError``."""
    where = str(path)
    if not path.is_file():
        raise MigrationError(
            [MigrationProblem("CONN-MIGRAR-ORIGEN", where, f"No existe el diario SQLite {path}.")]
        )
    db = None
    try:
        db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        raise MigrationError(
            [
                MigrationProblem(
                    "CONN-MIGRAR-ORIGEN", where, f"No se puede leer {path} como SQLite: {exc}."
                )
            ]
        ) from exc
    if "invoices" not in names:
        db.close()
        raise MigrationError(
            [
                MigrationProblem(
                    "CONN-MIGRAR-ORIGEN",
                    where,
                    f"{path} no es un diario del conector (no tiene la tabla invoices).",
                )
            ]
        )
    return db


def source_rows(
    db: sqlite3.Connection, table: str, cols: Sequence[str]
) -> Iterator[tuple[Any, ...]]:
    cur = db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid")
    while batch := cur.fetchmany(BATCH):
        yield from batch


def read_source(db: sqlite3.Connection) -> Source:
    """Pass one over the source (inside the caller's read transaction): keys, hashes, the
    digest of every row, and the references that point at nothing."""
    src = Source()
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    digest = hashlib.sha256()
    ids: dict[str, set[int]] = {"invoices": set(), "files": set()}
    for table in TABLES:
        if table not in names:
            continue  # an older journal: nothing of it to copy
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        src.columns[table] = cols
        digest.update(f"{table}({','.join(cols)})".encode())
        n = 0
        for row in source_rows(db, table, cols):
            n += 1
            digest.update(repr(row).encode())
            rec = dict(zip(cols, row, strict=True))
            _note(src, table, rec, ids)
        src.counts[table] = n
    src.digest = digest.hexdigest()
    return src


def _note(src: Source, table: str, rec: dict[str, Any], ids: dict[str, set[int]]) -> None:
    if table == "invoices":
        key = (rec["emisor_rfc"], rec["serie"], rec["folio"])
        src.invoices[rec["id"]] = (*key, rec.get("uuid"), *(sha256(rec.get(b)) for b in BLOBS))
        src.content[key] = rec["content_hash"]
        src.in_flight += rec["state"] not in {str(s) for s in FINAL_STATES}
    if table in ids:
        ids[table].add(rec["id"])
    for col, to in REFS.get(table, {}).items():
        ref = rec.get(col)
        if ref is not None and ref not in ids[to]:
            src.problems.append(
                MigrationProblem(
                    "CONN-MIGRAR-ORIGEN",
                    f"{table}:{rec.get('id', rec.get('uuid', ref))}",
                    f"La fila de {table} apunta a {to} {ref}, que no existe en el diario "
                    "SQLite; no se migró nada.",
                )
            )
    if table in UUID_TABLES:
        src.uuids.setdefault(table, {})[rec["uuid"]] = sha256(rec.get("acuse"))
    if table == "failure_notes" and rec.get("once") is not None:
        src.onces.append(rec["once"])
    if table == "claim_names":
        src.claim_names[rec["work_name"]] = rec["name"]
