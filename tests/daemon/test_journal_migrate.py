"""``journal migrate`` (issue 16): one instance's SQLite journal, made by the real pipeline
through the sandbox PAC, moved into the shared journal on the local PostgreSQL (a schema of its
own in the session's database), checked — rows per table, the SHA-256 of every stamped XML and
acuse — before it is committed; all or nothing; once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from connector.cli import main
from connector.journal import FileState, State
from connector.journal.migrate import compare_hashes
from connector.journal.migrate.records import TABLES
from connector.journal.postgres import Journal as PostgresJournal
from tests.daemon.conftest import RFC, dat_file, dat_invoice, pg_schema_url, stamps_by_key, until

# each table's rows as a query (no ids: PostgreSQL gives new ones; a row naming another table's
# row shows that row's business key or file name instead, so a wrong link shows)
_INV = "i.emisor_rfc, i.serie, i.folio"
_SHOWN = {
    "invoices": "SELECT emisor_rfc, serie, folio, content_hash, state, referencia, uuid, attempts "
    "FROM invoices",
    "events": f"SELECT {_INV}, from_state, to_state, detail FROM events e "
    "JOIN invoices i ON i.id = e.invoice_id",
    "files": "SELECT source, name, work_path, state, final_path FROM files",
    "file_items": f"SELECT f.work_path, idx, it.location, {_INV}, it.problems FROM file_items it "
    "JOIN files f ON f.id = it.file_id LEFT JOIN invoices i ON i.id = it.invoice_id",
    "file_reports": "SELECT f.work_path, report FROM file_reports r JOIN files f ON f.id = r.file_id",
    "cancellations": f"SELECT c.uuid, {_INV}, motivo, code, estatus FROM cancellations c "
    "LEFT JOIN invoices i ON i.id = c.invoice_id",
    "cancel_requests": f"SELECT c.uuid, {_INV}, motivo, c.state, es_cancelable, "
    "estatus_cancelacion FROM cancel_requests c LEFT JOIN invoices i ON i.id = c.invoice_id",
    "sat_checks": "SELECT uuid, estado FROM sat_checks",
    "failure_notes": "SELECT source, name, code, message, once FROM failure_notes",
    "claim_names": "SELECT work_name, name FROM claim_names",
}


def _migrate(journal: Path, url: str, *extra: str) -> int:
    return main(["journal", "migrate", "--from", f"sqlite:{journal}", "--to", url, *extra])


def _sorted(rows: list) -> list[tuple]:
    return sorted((tuple(r) for r in rows), key=repr)


def _sqlite_rows(journal: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(journal)
    try:
        return {t: _sorted(db.execute(_SHOWN[t]).fetchall()) for t in TABLES}
    finally:
        db.close()


def _pg_rows(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {t: _sorted(conn.execute(_SHOWN[t]).fetchall()) for t in TABLES}


def _hashes(rows: list[tuple]) -> dict[tuple, tuple]:
    """(emisor, serie, folio) → (uuid, sha256 of stamped_xml, of acuse)."""
    return {
        tuple(r[:3]): (
            r[3],
            *(None if b is None else hashlib.sha256(bytes(b)).hexdigest() for b in r[4:]),
        )
        for r in rows
    }


def _sqlite_hashes(journal: Path) -> dict[tuple, tuple]:
    db = sqlite3.connect(journal)
    try:
        q = "SELECT emisor_rfc, serie, folio, uuid, stamped_xml, acuse FROM invoices"
        return _hashes(db.execute(q).fetchall())
    finally:
        db.close()


def _pg_hashes(url: str) -> dict[tuple, tuple]:
    with psycopg.connect(url) as conn:
        q = "SELECT emisor_rfc, serie, folio, uuid, stamped_xml, acuse FROM invoices"
        return _hashes(conn.execute(q).fetchall())


def _use_journal(config: Path, url: str) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('journal = "var/journal.sqlite"', f'journal = "{url}"'), encoding="utf-8"
    )


def _run(config: Path) -> None:
    from tests.daemon.conftest import start_pipeline

    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()


def _stamped_journal(workspace: Path, serie: str = "M", folios: int = 3) -> Path:
    """The workspace's SQLite journal after the pipeline stamped ``folios`` invoices."""
    ws = workspace.parent
    (ws / "inbox" / f"{serie}.dat").write_bytes(dat_file(serie, list(range(1, folios + 1))))
    _run(workspace)
    return ws / "var" / "journal.sqlite"


def test_a_journal_with_all_kinds_of_history_migrates_checked_and_a_daemon_goes_on_from_it(
    workspace: Path, sandbox, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace.parent
    journal = ws / "var" / "journal.sqlite"
    cfg = ["--config", str(workspace)]
    # delivered invoices and one refused (tipo Z), one of them then cancelled at the PAC
    lote = (dat_file("A", [1, 2, 3]).decode() + dat_invoice("A", "4", tipo="Z")).encode()
    (ws / "inbox" / "lote.dat").write_bytes(lote)
    _run(workspace)
    stamps = stamps_by_key(sandbox.store)
    cancelled = stamps[("A", "2")][0]
    assert main(["cancel", cancelled, "--motivo", "02", *cfg]) == 0
    # an invoice in flight: the PAC answers HTTP 500 to everything, the daemon stops meanwhile
    sandbox.faults.add("http500", times=None)
    (ws / "inbox" / "vuelo.dat").write_bytes(dat_file("B", [1]))
    from tests.daemon.conftest import start_pipeline

    pipe = start_pipeline(workspace)
    try:

        def waiting() -> bool:
            pipe.poll_once()
            e = pipe.journal.get((RFC, "B", "1"))
            return e is not None and e.state is State.RETRY_WAIT

        assert until(waiting, 60)
    finally:
        pipe.close()
    sandbox.faults.clear()
    before = _sqlite_rows(journal)
    states = sorted(r[4] for r in before["invoices"])
    assert states == ["delivered", "delivered", "delivered", "failed", "retry_wait"], states
    assert before["cancellations"] and before["cancel_requests"] and before["file_items"]
    assert len(before["files"]) == 2 and before["events"]
    hashes = _sqlite_hashes(journal)
    assert sum(h[1] is not None for h in hashes.values()) == 3
    journal_bytes = journal.read_bytes()
    url = pg_schema_url(pg_journal_db)
    capsys.readouterr()

    # the shared journal already holds another instance's history: the ids PostgreSQL gives
    # the migrated rows are not SQLite's
    with PostgresJournal(url) as other:
        f = other.file_claimed("ventas", "otra.dat", "/otra/work/otra.dat")
        for folio in ("1", "2", "3"):
            _, e = other.admit((RFC, "OTRA", folio), "h", mode="stamp", source="ventas",
                               source_file="otra.dat", location="otra.dat:1")  # fmt: skip
            other.mark_failed(e.id, "CONN-OTRA", "de otra instancia", origin="validation")
        other.file_deciding(f.id, FileState.FAILING, "/otra/failed/otra.dat", 3)
        other.file_done(f.id)
    others = _pg_rows(url)
    # a dry run copies and checks, then undoes it
    assert _migrate(journal, url, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Comprobado:" in out and "--dry-run" in out, out
    assert _pg_rows(url) == others
    assert _migrate(journal, url) == 0
    out = capsys.readouterr().out
    assert "facturas (invoices): 5 de 5" in out, out
    assert f"eventos (events): {len(before['events'])} de {len(before['events'])}" in out
    assert "Comprobado:" in out and "Migración completa: 5 factura(s); 1 en curso" in out
    expected = {t: _sorted(before[t] + others[t]) for t in TABLES}
    assert _pg_rows(url) == expected  # every table, row for row, each linked to its own
    assert {k: v for k, v in _pg_hashes(url).items() if k[1] != "OTRA"} == hashes
    assert journal.read_bytes() == journal_bytes  # the SQLite journal is left as it was

    # again: already migrated, nothing copied twice
    assert _migrate(journal, url) == 0
    out = capsys.readouterr().out
    assert "Ya migrado" in out and "3 XML timbrado(s)" in out, out
    assert _pg_rows(url) == expected
    # a journal that changed since (a daemon worked on it again) is not taken for another one
    from connector.journal import Journal

    with Journal(journal) as j:
        j.note_failure("ventas", "tarde.dat", "CONN-X", "después de migrar")
    assert _migrate(journal, url) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"CONN-MIGRAR-CAMBIADO [{journal.resolve()}] Este diario ya se migró")
    assert out.count("CONN-MIGRAR-CONFLICTO") == 5 + 2, out  # invoices, cancellation, request
    assert _pg_rows(url) == expected

    # the daemon on PostgreSQL: the history is there, the one in flight is finished by its
    # referencia, the same export is delivered again from the journal, never stamped twice
    _use_journal(workspace, url)
    assert main(["find", cancelled, *cfg]) == 0
    assert "A2" in capsys.readouterr().out.replace(" ", "").replace("-", "")
    (ws / "inbox" / "lote.dat").write_bytes(lote)
    _run(workspace)
    with PostgresJournal(url) as j:
        assert j.get((RFC, "B", "1")).state is State.DELIVERED  # type: ignore[union-attr]
        assert j.cancellation(cancelled) is not None
        assert sorted(e.label for e in j.in_state(State.DELIVERED)) == ["A1", "A2", "A3", "B1"]
    stamps = stamps_by_key(sandbox.store)
    assert sorted(stamps) == [("A", "1"), ("A", "2"), ("A", "3"), ("B", "1")]
    assert all(len(uuids) == 1 for uuids in stamps.values()), stamps
    capsys.readouterr()
    assert main(["status", *cfg, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # with the other instance's three
    assert doc["invoices"]["delivered"] == 4 and doc["invoices"]["failed"] == 4, doc


def test_a_key_the_shared_journal_holds_is_a_conflict_and_nothing_is_migrated(
    workspace: Path, sandbox, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _stamped_journal(workspace, "C", 3)
    url = pg_schema_url(pg_journal_db)
    with PostgresJournal(url) as other:  # another instance's history: two of the same keys
        for folio, content in (("1", "otro"), ("3", "otro")):
            other.admit((RFC, "C", folio), content, mode="stamp", source="s", source_file="f",
                        location="f:1")  # fmt: skip
    capsys.readouterr()
    assert _migrate(journal, url) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("CONN-MIGRAR-CONFLICTO")]
    assert len(lines) == 2, out
    assert f"[{RFC}/C/1]" in lines[0] + lines[1] and f"[{RFC}/C/3]" in lines[0] + lines[1]
    assert "ya está en el diario de destino" in out and "no se migró nada" in out
    rows = _pg_rows(url)
    assert [len(rows[t]) for t in ("invoices", "events", "files")] == [2, 2, 0]  # its own
    with psycopg.connect(url) as conn:  # no record of a migration either (rolled back)
        assert conn.execute("SELECT to_regclass('journal_imports')").fetchone() == (None,)


def test_a_copy_whose_hash_or_count_reads_back_different_is_rolled_back_with_a_coded_error(
    workspace: Path, sandbox, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _stamped_journal(workspace, "H", 2)
    url = pg_schema_url(pg_journal_db)
    PostgresJournal(url).close()  # the tables, so the triggers can be set on them
    with psycopg.connect(url, autocommit=True) as conn:
        # the server alters each stamped XML it is given
        conn.execute(
            "CREATE FUNCTION alter_xml() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "NEW.stamped_xml := NEW.stamped_xml || '\\x20'::bytea; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER alter_xml BEFORE INSERT ON invoices FOR EACH ROW "
            "EXECUTE FUNCTION alter_xml()"
        )
    capsys.readouterr()
    assert _migrate(journal, url) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if line.startswith("CONN-MIGRAR-HASH")]
    assert len(bad) == 2 and "no coincide" in bad[0], out
    assert all(rows == [] for rows in _pg_rows(url).values())
    # the server drops the events of delivery: the count of events does not match
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER alter_xml ON invoices")
        conn.execute(
            "CREATE FUNCTION drop_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.to_state = 'delivered' THEN RETURN NULL; END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER drop_event BEFORE INSERT ON events FOR EACH ROW "
            "EXECUTE FUNCTION drop_event()"
        )
    assert _migrate(journal, url) == 1
    out = capsys.readouterr().out
    assert out.startswith("CONN-MIGRAR-CONTEO [events] La tabla events tiene "), out
    assert all(rows == [] for rows in _pg_rows(url).values())
    # without them it goes through
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER drop_event ON events")
    assert _migrate(journal, url) == 0
    assert _pg_hashes(url) == _sqlite_hashes(journal)


def test_the_hash_check_reports_each_row_that_differs_or_is_missing() -> None:
    expected = {
        1: ("R", "A", "1", "u1", "aa", None, "bb"),
        2: ("R", "A", "2", None, None, None, "cc"),
    }
    assert compare_hashes("facturas", expected, dict(expected)) == []
    found = {1: ("R", "A", "1", "u1", "ab", None, "bb")}
    problems = compare_hashes("facturas", expected, found)
    assert [(p.code, p.location) for p in problems] == [
        ("CONN-MIGRAR-HASH", "facturas:1"),
        ("CONN-MIGRAR-HASH", "facturas:2"),
    ]
    assert "'ab'" in problems[0].message and "no está en el destino" in problems[1].message


def test_columns_only_one_side_has_are_left_to_that_side(
    workspace: Path, sandbox, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _stamped_journal(workspace, "K", 2)
    db = sqlite3.connect(journal)
    db.execute("ALTER TABLE invoices ADD COLUMN solo_sqlite TEXT DEFAULT 'x'")
    db.commit()
    db.close()
    url = pg_schema_url(pg_journal_db)
    PostgresJournal(url).close()
    with psycopg.connect(url, autocommit=True) as conn:  # e.g. a newer schema's column
        conn.execute("ALTER TABLE invoices ADD COLUMN etiqueta TEXT")
        conn.execute("ALTER TABLE files ADD COLUMN lease DOUBLE PRECISION NOT NULL DEFAULT 0")
    # a column the target requires and the source cannot give: the copy fails, all undone
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE events ADD COLUMN requerida TEXT NOT NULL")
    capsys.readouterr()
    assert _migrate(journal, url) == 1
    out = capsys.readouterr().out
    assert out.startswith("CONN-MIGRAR-COPIA [") and "requerida" in out, out
    assert all(rows == [] for rows in _pg_rows(url).values())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN requerida")
    assert _migrate(journal, url) == 0, capsys.readouterr().out
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT DISTINCT etiqueta FROM invoices").fetchall() == [(None,)]
        # nobody carries the migrated invoices: the first instance to join takes them
        assert conn.execute("SELECT DISTINCT owner FROM invoices").fetchall() == [(None,)]
        assert conn.execute("SELECT lease FROM files").fetchall() == [(0.0,)]
    assert _pg_hashes(url) == _sqlite_hashes(journal)


def test_a_journal_a_daemon_holds_is_refused(
    workspace: Path, sandbox, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _stamped_journal(workspace, "L", 1)
    url = pg_schema_url(pg_journal_db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(workspace)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lock = journal.with_name(journal.name + ".lock")
    try:
        assert until(lambda: lock.is_file() and lock.read_text().strip() == str(proc.pid), 60)
        capsys.readouterr()
        assert _migrate(journal, url) == 2
        out = capsys.readouterr().out
        assert out.startswith(f"CONN-MIGRAR-EN-USO [{lock}]") and f"pid {proc.pid}" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    with psycopg.connect(url) as conn:  # it did not even reach the database
        assert conn.execute("SELECT to_regclass('invoices')").fetchone() == (None,)
    assert _migrate(journal, url) == 0  # stopped: now it goes


def test_bad_addresses_an_unreachable_server_and_a_missing_password_are_coded_without_secrets(
    tmp_path: Path, pg_journal_db: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    journal = tmp_path / "j.sqlite"
    from connector.journal import Journal

    with Journal(journal) as j:
        j.admit((RFC, "X", "1"), "h", mode="stamp", source="s", source_file="f", location="l")
    secret = "s3creto-del-diario"
    monkeypatch.setenv("DIARIO_PW", secret)

    def refused(code: str, *args: str, source: Path = journal) -> str:
        capsys.readouterr()
        assert main(["journal", "migrate", "--from", f"sqlite:{source}", *args]) == 2
        out = capsys.readouterr().out
        assert out.startswith(code) and secret not in out, out
        return out

    # nothing listens on port 1: the server's address, never the password (env or address)
    out = refused("CONN-MIGRAR-DESTINO", "--to", "postgresql://conector@127.0.0.1:1/diario",
                  "--password-env", "DIARIO_PW")  # fmt: skip
    assert "postgresql://conector@127.0.0.1:1/diario" in out and "no responde" in out
    refused("CONN-MIGRAR-DESTINO", "--to", f"postgresql://conector:{secret}@127.0.0.1:1/diario")
    refused("CONN-MIGRAR-DESTINO", "--to", f"{pg_journal_db}_no_existe")
    refused("CONN-MIGRAR-DESTINO", "--to", f"mysql://root:{secret}@127.0.0.1/diario")
    url = pg_schema_url(pg_journal_db)
    out = refused("CONN-MIGRAR-SECRETO", "--to", url, "--password-env", "NO_DEFINIDA")
    assert "NO_DEFINIDA" in out and "no está definida" in out
    missing = tmp_path / "no-existe.sqlite"
    assert "No existe" in refused("CONN-MIGRAR-ORIGEN", "--to", url, source=missing)
    assert not missing.exists() and not (tmp_path / "no-existe.sqlite.lock").exists()
    other = tmp_path / "otra.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    assert "no es un diario" in refused("CONN-MIGRAR-ORIGEN", "--to", url, source=other)
    capsys.readouterr()
    assert main(["journal", "migrate", "--from", "postgresql://x/y", "--to", url]) == 2
    assert capsys.readouterr().out.startswith("CONN-MIGRAR-ORIGEN [--from]")
    with psycopg.connect(url) as conn:  # nothing reached the journal's schema
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
    assert tables == (0,)
