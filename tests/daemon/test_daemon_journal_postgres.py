"""The journal on PostgreSQL (issue 16), shared by several connectors: the business key unique
across journals admitting at once, the schema created once when they start at once, the
configuration that selects it (its password never shown), and a daemon stamping a folder's
invoices through the sandbox PAC with its journal there. The local server: 127.0.0.1:5432, a
database of the session's own (``pg_journal_db``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from connector.config import check_config
from connector.journal import Admission, NotOwner, State, journal_exists, open_journal
from connector.journal.postgres import Journal as PostgresJournal
from connector.journal.postgres import display
from connector.journal.postgres.schema import MIGRATIONS
from tests.daemon.conftest import dat_file, pg_schema_url, stamps_by_key, start_pipeline


def test_two_journals_admitting_the_same_keys_at_once_make_one_row_and_one_new(
    pg_journal_db: str,
) -> None:
    url = pg_schema_url(pg_journal_db)
    journals = [PostgresJournal(url), PostgresJournal(url)]  # two pools: two connectors
    keys = [("EKU9003173C9", "C", str(n)) for n in range(40)]
    answers: list[list[tuple[Admission, int]]] = [[], []]
    start = threading.Barrier(2)

    def admit_all(i: int) -> None:
        start.wait()
        for key in keys:
            adm, e = journals[i].admit(
                key, "h", mode="stamp", source="s", source_file=f"i{i}.dat", location="l"
            )
            answers[i].append((adm, e.id))

    threads = [threading.Thread(target=admit_all, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert [len(a) for a in answers] == [len(keys), len(keys)]
        for (a0, id0), (a1, id1) in zip(*answers, strict=True):
            assert id0 == id1  # the same row
            # exactly one NEW; the other found the row (same content, not sealed: redone)
            assert sorted([a0, a1]) == sorted([Admission.NEW, Admission.RESTART])
        assert sum(journals[0].counts().values()) == len(keys)
        with psycopg.connect(url) as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT emisor_rfc, serie, folio FROM invoices) k"
            ).fetchone()  # type: ignore[misc]
            assert n == len(keys)
    finally:
        for j in journals:
            j.close()


def _events(url: str, invoice_id: int) -> list[tuple[str | None, str, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute(  # type: ignore[return-value]
            "SELECT from_state, to_state, detail FROM events WHERE invoice_id=%s ORDER BY id",
            (invoice_id,),
        ).fetchall()


def test_a_transition_from_the_version_a_journal_wrote_is_the_row_and_its_events(
    pg_journal_db: str,
) -> None:
    """Each transition from the version this journal last wrote is written in one guarded
    statement: what it returns is the row as another journal reads it, with every step's
    event, from admission to delivery."""
    url = pg_schema_url(pg_journal_db)
    a, b = PostgresJournal(url), PostgresJournal(url)
    try:
        _, e = a.admit(("EKU9003173C9", "V", "1"), "h", mode="stamp", source="s",
                       source_file="v.dat", location="v.dat:1")  # fmt: skip
        steps = [
            lambda: a.mark_sealed_sending(e.id, b"<sellado/>", "R-V1"),
            lambda: a.mark_retry_wait(e.id, 1e12, "CONN-PAC-CAIDO", "sin respuesta"),
            lambda: a.mark_sending(e.id),
            lambda: a.mark_stamped(e.id, "uuid-v1", b"<timbrado/>", b"<acuse/>"),
            lambda: a.mark_delivered(e.id, {"xml": "v.xml"}),
        ]
        for step in steps:
            assert step() == b.get_id(e.id)
        done = b.get_id(e.id)
        assert (done.state, done.attempts, done.referencia, done.next_retry_at) == (
            State.DELIVERED, 2, "R-V1", None)  # fmt: skip
        assert (done.payload, done.stamped_xml, done.acuse, done.outputs) == (
            b"<sellado/>", b"<timbrado/>", b"<acuse/>", {"xml": "v.xml"})  # fmt: skip
        assert _events(url, e.id) == [
            (None, "received", "v.dat"),
            ("received", "validated", None),
            ("validated", "sealed", "R-V1"),
            ("sealed", "sending", "attempt 1"),
            ("sending", "retry_wait", "CONN-PAC-CAIDO"),
            ("retry_wait", "sending", "attempt 2"),
            ("sending", "stamped", "uuid-v1"),
            ("stamped", "delivered", None),
        ]
    finally:
        a.close()
        b.close()


def test_a_row_written_by_another_journal_since_is_read_again_never_overwritten(
    pg_journal_db: str,
) -> None:
    """A journal's transition never writes from the version it remembers when the row
    changed since: another connector's writes (an acuse noted, a retry made due, an owner
    taken over — neither of the last two changes ``updated_at``) are kept, and a row another
    instance took is refused (``NotOwner``); a transaction rolled back leaves nothing
    remembered."""
    url = pg_schema_url(pg_journal_db)
    a, b = PostgresJournal(url), PostgresJournal(url)
    a.join("i1", lease_seconds=30, host="h", pid=1)
    try:
        key = ("EKU9003173C9", "W", "1")
        _, e = a.admit(key, "h", mode="stamp", source="s", source_file="w.dat",
                       location="w.dat:1")  # fmt: skip
        a.mark_sealed_sending(e.id, b"<sellado/>", "R-W1")
        a.mark_stamped(e.id, "uuid-w1", b"<timbrado/>")
        b.note_delivery_error(e.id, "CONN-ENTREGA", "sin carpeta", b"<acuse-b/>")
        done = a.mark_delivered(e.id, {"xml": "w.xml"})
        assert done.acuse == b"<acuse-b/>" and done == b.get_id(e.id)

        _, f = a.admit(("EKU9003173C9", "W", "2"), "h", mode="stamp", source="s",
                       source_file="w.dat", location="w.dat:2")  # fmt: skip
        a.mark_sealed_sending(f.id, b"<sellado-2/>", "R-W2")
        a.mark_retry_wait(f.id, 1e12, "CONN-PAC-CAIDO", "sin respuesta")
        assert b.retry_now(["CONN-PAC-CAIDO"], now=5.0) == 1  # next_retry_at only
        assert a.mark_sending(f.id).next_retry_at is None
        assert b.get_id(f.id).attempts == 2
        with psycopg.connect(url, autocommit=True) as conn:  # taken over: owner only
            conn.execute("UPDATE invoices SET owner='i2' WHERE id=%s", (f.id,))
        with pytest.raises(NotOwner):
            a.mark_stamped(f.id, "uuid-w2", b"<timbrado-2/>")
        assert b.get_id(f.id).state is State.SENDING

        _, g = a.admit(("EKU9003173C9", "W", "3"), "h", mode="stamp", source="s",
                       source_file="w.dat", location="w.dat:3")  # fmt: skip
        with pytest.raises(RuntimeError), a.batch():
            a.mark_sealed_sending(g.id, b"<no-quedo/>", "R-W3")
            raise RuntimeError("the batch fails")
        assert b.get_id(g.id).state is State.RECEIVED
        sealed = a.mark_sealed_sending(g.id, b"<sellado-3/>", "R-W3b")
        assert (sealed.payload, sealed.referencia, sealed.attempts) == (b"<sellado-3/>", "R-W3b", 1)
        assert sealed == b.get_id(g.id)
    finally:
        a.close()
        b.close()


def test_journals_started_at_once_on_an_empty_database_create_the_schema_once(
    pg_journal_db: str,
) -> None:
    url = pg_schema_url(pg_journal_db)
    start = threading.Barrier(4)
    opened: list[PostgresJournal] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresJournal(url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(opened) == 4
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version FROM journal_migrations ORDER BY 1").fetchall()
        assert [r[0] for r in rows] == [m[0] for m in MIGRATIONS]
        # and every one of them works on the same tables
        adm, e = opened[3].admit(
            ("EKU9003173C9", "M", "1"), "h", mode="stamp", source="s", source_file="f",
            location="l",
        )  # fmt: skip
        assert adm is Admission.NEW and opened[0].get_id(e.id).state is State.RECEIVED
    finally:
        for j in opened:
            j.close()


def _config(tmp_path: Path, daemon: str) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(f"[daemon]\n{daemon}\n", encoding="utf-8")
    return path


def test_a_postgresql_address_selects_the_shared_journal_and_a_path_keeps_sqlite(
    tmp_path: Path, pg_journal_db: str
) -> None:
    from connector.config import load_config

    cfg = load_config(_config(tmp_path, f'journal = "{pg_journal_db}"'))
    assert cfg.daemon.journal_url == pg_journal_db
    # the lock and status files stay local, beside the configuration
    assert cfg.daemon.journal == tmp_path / "journal.postgresql"
    assert journal_exists(cfg.daemon)
    with open_journal(cfg.daemon) as j:
        assert isinstance(j, PostgresJournal)
        assert j.counts()["delivered"] == 0
    cfg = load_config(_config(tmp_path, 'journal = "var/j.sqlite"'))
    assert cfg.daemon.journal_url is None and cfg.daemon.journal == tmp_path / "var/j.sqlite"
    assert not journal_exists(cfg.daemon)


def test_the_journals_password_comes_from_its_source_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.config import load_config

    secret = "s3creto-del-diario"
    # nothing listens on port 1: the error names the server, never the password
    cfg = load_config(
        _config(
            tmp_path,
            'journal = "postgresql://conector@127.0.0.1:1/diario"\n'
            'journal_password = { password_env = "DIARIO_PW" }',
        )
    )
    with pytest.raises(ConnectionError) as err:
        open_journal(cfg.daemon)
    assert "DIARIO_PW" in str(err.value) and "no está definida" in str(err.value)
    monkeypatch.setenv("DIARIO_PW", secret)
    assert cfg.daemon.journal_secret() == secret
    with pytest.raises(ConnectionError) as err:
        open_journal(cfg.daemon)
    message = str(err.value)
    assert "postgresql://conector@127.0.0.1:1/diario" in message and secret not in message
    # a password written in the address itself is not shown either
    assert secret not in display(f"postgresql://conector:{secret}@127.0.0.1:1/diario")


def test_a_daemon_with_its_journal_on_postgresql_stamps_a_folder_once_each(
    workspace: Path, sandbox, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_schema_url(pg_journal_db)
    text = workspace.read_text(encoding="utf-8")
    workspace.write_text(
        text.replace('journal = "var/journal.sqlite"', f'journal = "{url}"'), encoding="utf-8"
    )
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("P", [1, 2, 3, 4, 5]))
    pipe = start_pipeline(workspace)
    try:
        assert isinstance(pipe.journal, PostgresJournal)
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert not (ws / "var" / "journal.sqlite").exists()
    xmls = sorted(p.name.split("_")[0] for p in (ws / "out" / "xml").iterdir())
    assert xmls == ["P1", "P2", "P3", "P4", "P5"]
    stamps = stamps_by_key(sandbox.store)
    assert all(len(stamps[("P", str(n))]) == 1 for n in range(1, 6))
    assert sorted(p.name for p in (ws / "archive").rglob("*") if p.is_file()) == ["ventas.dat"]
    cfg, _ = check_config(workspace)
    assert cfg is not None
    with open_journal(cfg.daemon) as j:
        delivered = j.in_state(State.DELIVERED)
        assert sorted(e.folio for e in delivered) == ["1", "2", "3", "4", "5"]
        assert {e.uuid for e in delivered} == {u for (s, _), us in stamps.items() for u in us}
        (f,) = j.files()
        assert f.state.value == "archived" and len(j.file_items(f.id)) == 5
    # the commands read the same journal: status counts it, find finds an invoice in it
    from connector.cli import main

    capsys.readouterr()  # the pipeline's log lines
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["invoices"]["delivered"] == 5, doc
    assert main(["find", "--config", str(workspace), delivered[2].uuid or ""]) == 0
    assert "P3" in capsys.readouterr().out
    # run again with the same export: delivered again from the journal, never stamped again
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("P", [1, 2, 3, 4, 5]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert all(len(us) == 1 for us in stamps_by_key(sandbox.store).values())


def test_the_journal_works_on_connections_numbered_past_1023(pg_journal_db: str) -> None:
    """A daemon with many files open gets sockets numbered past 1023, which select() cannot
    take: the pool's check of a connection still lets the journal use them."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = 2048
    if soft != resource.RLIM_INFINITY and soft < room:
        top = hard if hard == resource.RLIM_INFINITY else max(hard, room)
        resource.setrlimit(resource.RLIMIT_NOFILE, (room, top))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    j = None
    try:
        j = PostgresJournal(pg_schema_url(pg_journal_db), timeout=5)
        with j._pool.connection() as conn:
            assert conn.fileno() > 1023
        adm, e = j.admit(("EKU9003173C9", "N", "1"), "h", mode="stamp", source="s",
                         source_file="n.dat", location="n.dat:1")  # fmt: skip
        assert adm is Admission.NEW
        assert j.mark_sealed_sending(e.id, b"<sellado/>", "R-N1").state is State.SENDING
        assert j.get_id(e.id).state is State.SENDING
    finally:
        if j is not None:
            j.close()
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
