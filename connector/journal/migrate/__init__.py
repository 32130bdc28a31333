"""One instance's SQLite journal moved into the shared PostgreSQL journal (issue 16), checked
before it is committed: ``migrate_journal(sqlite_path, url, password=…)``.

What is copied: the journal's tables (``TABLES``), each by the columns both sides have
(read from the two databases when it runs, so a column one side lacks keeps the other
side's default); every invoice as it is, in flight or final (one not final keeps its
``referencia`` and payload, so the next run on PostgreSQL asks the PAC by that referencia
before any send). The ids PostgreSQL gives the new rows replace the SQLite ones, and every
column naming another table's row (``REFS``) is rewritten with them: the target may already
hold other instances' history.

All or nothing, in one PostgreSQL transaction (a failure anywhere rolls everything back):

1. a read of the source (one SQLite read transaction) collects its business keys, its
   UUIDs, the SHA-256 of every stored XML and acuse, and a digest of all its rows;
2. conflicts: an invoice whose business key (emisor RFC, serie, folio) the target already
   holds, a cancellation / cancellation request / SAT check whose UUID it holds, a shortened
   claim name it holds for another name. Every conflict is reported
   (``CONN-MIGRAR-CONFLICTO``) and nothing is copied. A failure note whose ``once`` key the
   target holds, and a claim name it holds for the same name, are already there: skipped
   and counted as such;
3. the copy, then the check, read back from PostgreSQL: the rows of every table that came
   from the source (``CONN-MIGRAR-CONTEO`` when a count differs) and the SHA-256 of every
   invoice's stamped XML, acuse and payload and of every cancellation's acuse, computed by
   the server (``CONN-MIGRAR-HASH`` when one differs or the key/UUID does not match);
4. the migration is recorded in ``journal_imports`` (the source's digest, where it came
   from, when, the counts), then committed.

Run again on the same, unchanged journal, the digest is found: nothing is copied, the
stamped XMLs are checked again by business key, and the answer is that it was already
migrated (``already`` in the report). ``journal_imports`` belongs to this command: created
here (under the same advisory lock as the copy), not by the journal's schema migrations.

No configuration is read here (the command, ``connector.daemon.journal_cmd``, reads the
password and holds the SQLite journal's lock); psycopg is imported only when it runs.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.journal.migrate.records import (
    IMPORT_LOCK,
    IMPORTS_DDL,
    TABLES,
    MigrationError,
    MigrationProblem,
    MigrationReport,
    TableCount,
    compare_hashes,
)
from connector.journal.migrate.source import Source, open_source, read_source
from connector.journal.migrate.target import Copy, check_copy, conflicts, present_rows

__all__ = [
    "MigrationError",
    "MigrationProblem",
    "MigrationReport",
    "TableCount",
    "compare_hashes",
    "migrate_journal",
]


def _scrub(text: str, secrets: Iterable[str | None]) -> str:
    """The server's or the driver's words on one line, without any of ``secrets``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return " ".join(text.split())


def _connect(url: str, password: str | None, timeout: int) -> Any:
    """An autocommit connection to the target with its journal's schema created or
    upgraded (``postgres.schema.migrate``), or ``MigrationError`` without the password."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from connector.journal.postgres.base import display
    from connector.journal.postgres.schema import migrate

    shown = display(url)
    try:
        in_url = str(conninfo_to_dict(url).get("password") or "")
    except psycopg.Error:
        in_url = ""
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": timeout}
    if password is not None:
        kwargs["password"] = password
    try:
        conn = psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        said = _scrub(str(exc).strip() or type(exc).__name__, [password, in_url, url])
        raise MigrationError(
            [
                MigrationProblem(
                    "CONN-MIGRAR-DESTINO",
                    shown,
                    f"PostgreSQL en {shown} no responde o no se deja usar: {said}",
                )
            ]
        ) from exc
    try:
        migrate(conn)
    except psycopg.Error as exc:
        conn.close()
        said = _scrub(str(exc).strip(), [password, in_url])
        raise MigrationError(
            [
                MigrationProblem(
                    "CONN-MIGRAR-DESTINO",
                    shown,
                    f"No se pudieron crear las tablas del diario en {shown}: {said}",
                )
            ]
        ) from exc
    return conn


class _Rollback(Exception):
    """Leaves the transaction of a dry run without committing."""


def migrate_journal(
    source: Path,
    url: str,
    *,
    password: str | None = None,
    dry_run: bool = False,
    timeout: int = 10,
) -> MigrationReport:
    """Copy the SQLite journal at ``source`` into the PostgreSQL journal at ``url``, checked,
    in one transaction (see the module's docstring); ``dry_run``: everything but the commit.
    ``MigrationError`` (nothing migrated) lists every reason. The caller holds the SQLite
    journal's lock (no daemon writes it meanwhile)."""
    import psycopg

    from connector.journal.postgres.base import display

    report = MigrationReport(str(source), display(url), dry_run=dry_run)
    where = str(source.resolve())  # recorded in journal_imports
    db = open_source(source)
    try:
        db.execute("BEGIN")  # one snapshot for both passes
        try:
            src = read_source(db)
        except sqlite3.Error as exc:
            raise MigrationError(
                [MigrationProblem("CONN-MIGRAR-ORIGEN", str(source), f"No se pudo leer: {exc}.")]
            ) from exc
        if src.problems:
            raise MigrationError(src.problems)
        report.in_flight = src.in_flight
        report.stamped = sum(h[4] is not None for h in src.invoices.values())
        conn = _connect(url, password, timeout)
        try:
            with conn.transaction():
                _copy_checked(conn, db, src, report, where)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        except sqlite3.Error as exc:  # the second read of the source
            raise MigrationError(
                [MigrationProblem("CONN-MIGRAR-ORIGEN", str(source), f"No se pudo leer: {exc}.")]
            ) from exc
        except psycopg.Error as exc:
            said = _scrub(str(exc).strip(), [password])
            code = (
                "CONN-MIGRAR-CONFLICTO"
                if isinstance(exc, psycopg.errors.UniqueViolation)
                else "CONN-MIGRAR-COPIA"
            )
            raise MigrationError(
                [
                    MigrationProblem(
                        code,
                        report.target,
                        f"La copia falló y se deshizo; no se migró nada: {said}",
                    )
                ]
            ) from exc
        finally:
            conn.close()
    finally:
        db.close()
    return report


def _copy_checked(
    conn: Any, db: sqlite3.Connection, src: Source, report: MigrationReport, where: str
) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
    conn.execute(IMPORTS_DDL)
    row = conn.execute(
        "SELECT imported_at, counts FROM journal_imports WHERE digest = %s", (src.digest,)
    ).fetchone()
    if row is not None:  # this very journal, migrated before: check it is still there
        report.already = float(row[0])
        report.tables = {t: TableCount(**c) for t, c in json.loads(row[1]).items()}
        _check_again(conn, src, report)
        return
    problems = conflicts(conn, src)
    if problems:
        raise MigrationError(_changed_since(conn, where) + problems)
    present = present_rows(conn, src)
    copy = Copy(conn, db, src)
    for table in TABLES:
        copy.table(table)
    report.tables, report.hashes_checked, problems = check_copy(conn, src, copy.ids, present)
    if problems:
        raise MigrationError(problems)
    conn.execute(
        "INSERT INTO journal_imports (digest, source, imported_at, counts) VALUES (%s,%s,%s,%s)",
        (
            src.digest,
            where,
            time.time(),
            json.dumps({t: vars(c) for t, c in report.tables.items()}),
        ),
    )


def _changed_since(conn: Any, where: str) -> list[MigrationProblem]:
    """Why a journal migrated before conflicts now: it changed since (a daemon worked on it
    again), so its digest is another."""
    row = conn.execute(
        "SELECT max(imported_at) FROM journal_imports WHERE source = %s", (where,)
    ).fetchone()
    if row is None or row[0] is None:
        return []
    when = datetime.fromtimestamp(float(row[0])).strftime("%Y-%m-%d %H:%M:%S")
    return [
        MigrationProblem(
            "CONN-MIGRAR-CAMBIADO",
            where,
            f"Este diario ya se migró el {when} y cambió desde entonces (¿volvió a trabajar un "
            "daemon sobre él?): lo que tenía entonces ya está en el destino. Lo que entró "
            "después debe entrar de nuevo por un daemon sobre PostgreSQL (vuelva a dejar sus "
            "archivos en la bandeja); no se migró nada.",
        )
    ]


def _check_again(conn: Any, src: Source, report: MigrationReport) -> None:
    """A journal migrated before: its stamped XMLs are still in the target under their
    business keys, with the same UUID and SHA-256 (what the target did since — an invoice in
    flight then finished — may change the rest)."""
    want = {h[:3]: (h[3], h[4]) for h in src.invoices.values() if h[4] is not None}
    keys = list(want)
    rows = conn.execute(
        "SELECT i.emisor_rfc, i.serie, i.folio, i.uuid, encode(sha256(i.stamped_xml), 'hex') "
        "FROM invoices i JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(r, s, f) "
        "ON i.emisor_rfc = k.r AND i.serie = k.s AND i.folio = k.f",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    ).fetchall()
    problems = compare_hashes(
        "facturas", {"/".join(k): v for k, v in want.items()},
        {"/".join(r[:3]): (r[3], r[4]) for r in rows},
    )  # fmt: skip
    report.hashes_checked = len(want)
    if problems:
        raise MigrationError(problems)
