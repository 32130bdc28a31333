"""The journal's state machine, business-key admission and restart behaviour (real SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.journal import (
    PAC_DOCUMENT,
    Admission,
    FileItem,
    FileState,
    Journal,
    JournalError,
    State,
)

# journal_at (tests/daemon/conftest.py): a journal on each backend, SQLite and PostgreSQL
OpenJournal = Callable[..., Journal]

KEY = ("EKU9003173C9", "A", "1")


def admit(j: Journal, key=KEY, h: str = "h1") -> tuple[Admission, int]:
    adm, e = j.admit(key, h, mode="stamp", source="s", source_file="f.dat", location="f.dat:1")
    return adm, e.id


def to_stamped(j: Journal, iid: int) -> None:
    j.mark_validated(iid)
    j.mark_sealed(iid, b"<sealed/>", "REF-1")
    j.mark_sending(iid)
    j.mark_stamped(iid, "UUID-1", b"<stamped/>", b"<acuse/>")


def test_happy_path_records_every_transition(journal_at: OpenJournal) -> None:
    j = journal_at()
    adm, iid = admit(j)
    assert adm is Admission.NEW
    to_stamped(j, iid)
    j.mark_delivered(iid, {"xml": "/out/A1_UUID-1.xml"})
    e = j.get(KEY)
    assert e is not None
    assert e.state is State.DELIVERED
    assert e.payload == b"<sealed/>" and e.referencia == "REF-1"
    assert e.uuid == "UUID-1" and e.stamped_xml == b"<stamped/>" and e.acuse == b"<acuse/>"
    assert e.attempts == 1
    assert e.outputs == {"xml": "/out/A1_UUID-1.xml"}
    states = [to for _, to, _ in j.events(iid)]
    assert states == ["received", "validated", "sealed", "sending", "stamped", "delivered"]


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], State.SEALED),  # received → sealed skips validation
        ([], State.STAMPED),
        (["validated"], State.SENDING),  # never sent without sealed bytes stored first
        (["validated", "sealed"], State.STAMPED),  # stamped without an attempt recorded
        (["validated", "sealed", "sending", "stamped"], State.FAILED),  # stamped is never failed
    ],
)
def test_illegal_transitions_are_refused(
    journal_at: OpenJournal, path: list[str], bad: State
) -> None:
    j = journal_at()
    _, iid = admit(j)
    steps = {
        "validated": lambda: j.mark_validated(iid),
        "sealed": lambda: j.mark_sealed(iid, b"x", "R"),
        "sending": lambda: j.mark_sending(iid),
        "stamped": lambda: j.mark_stamped(iid, "U", b"s"),
    }
    for s in path:
        steps[s]()
    before = j.get_id(iid).state
    with pytest.raises(JournalError):
        j._transition(iid, bad)
    assert j.get_id(iid).state == before


def test_sealed_bytes_survive_restart_and_attempts_count(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_sealed(iid, b"<sealed once/>", "REF-X")
    j.mark_sending(iid)
    j.close()  # "crash" while sending
    j2 = journal_at()  # the same journal, opened again
    [e] = j2.in_state(State.SENDING)
    assert e.payload == b"<sealed once/>" and e.referencia == "REF-X" and e.attempts == 1
    # resume: same content admitted again → RESUME with the stored bytes, not a new row
    adm, e2 = j2.admit(KEY, "h1", mode="stamp", source="s", source_file="f", location="l")
    assert adm is Admission.RESUME and e2.id == iid and e2.payload == b"<sealed once/>"
    j2.mark_retry_wait(iid, time.time() - 1, "PAC-503", "no disponible")
    assert [x.id for x in j2.due_retries()] == [iid]
    assert j2.due_retries(now=time.time() - 3600) == []
    j2.mark_sending(iid)
    assert j2.get_id(iid).attempts == 2


def test_same_content_delivered_again_different_content_conflicts(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, iid = admit(j)
    to_stamped(j, iid)
    j.mark_delivered(iid, {})
    adm, e = j.admit(KEY, "h1", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.DELIVERED and e.uuid == "UUID-1"
    adm, e = j.admit(KEY, "h2", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.CONFLICT and e.uuid == "UUID-1"
    # the row is untouched by the conflicting admission
    assert j.get(KEY).content_hash == "h1" and j.get(KEY).state is State.DELIVERED


def test_different_content_while_in_flight_conflicts(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_sealed(iid, b"x", "R")
    adm, _ = j.admit(KEY, "other", mode="stamp", source="s", source_file="g", location="g")
    assert adm is Admission.CONFLICT


def test_failed_before_pac_restarts_with_new_content(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, iid = admit(j)
    j.mark_failed(iid, "CFDI40108", "El tipo de comprobante no es válido", origin="rules")
    adm, e = j.admit(KEY, "fixed", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.RESTART and e.id == iid
    assert e.state is State.RECEIVED and e.error_code is None and e.content_hash == "fixed"


def test_rejected_by_pac_is_permanent_until_replay(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_sealed(iid, b"x", "R")
    j.mark_sending(iid)
    j.mark_failed(iid, "301", "XML mal formado", origin=PAC_DOCUMENT)
    adm, e = j.admit(KEY, "h1", mode="stamp", source="s", source_file="f", location="l")
    assert adm is Admission.FAILED and e.error_code == "301"
    e = j.reset(iid)
    # it was sent once: the replay keeps its referencia, so the next send recovers by it first
    # (never a second UUID under a new one); the PAC refused the document itself, so its bytes
    # go and it is sealed anew
    assert e.state is State.RECEIVED and e.referencia == "R" and e.payload is None
    assert e.attempts == 1


def test_reset_refuses_delivered_and_keeps_sealed_bytes(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, a = admit(j)
    to_stamped(j, a)
    with pytest.raises(JournalError):
        j.reset(a)
    _, b = admit(j, ("EKU9003173C9", "A", "2"))
    j.mark_validated(b)
    j.mark_sealed(b, b"sealed-b", "RB")
    j.mark_sending(b)
    j.mark_retry_wait(b, time.time() + 999, "T", "t")
    e = j.reset(b)
    assert e.state is State.RETRY_WAIT and e.payload == b"sealed-b" and e.next_retry_at == 0
    assert [x.id for x in j.due_retries()] == [b]


def test_business_key_is_unique_per_emisor(journal_at: OpenJournal) -> None:
    j = journal_at()
    admit(j, ("EKU9003173C9", "A", "1"))
    adm, _ = admit(j, ("AAA010101AAA", "A", "1"))
    assert adm is Admission.NEW
    adm, _ = admit(j, ("eku9003173c9", "A", "1"))  # RFC is case-insensitive: same row
    assert adm is Admission.RESTART  # not sealed yet: safely redone from received
    assert sum(j.counts().values()) == 2


def test_files_table_tracks_one_final_place(journal_at: OpenJournal) -> None:
    j = journal_at()
    f = j.file_claimed("ventas", "a.dat", "/w/a.dat")
    assert j.file_claimed("ventas", "a.dat", "/w/a.dat").id == f.id  # idempotent on restart
    _, iid = admit(j)
    j.set_file_items(
        f.id,
        [
            FileItem(f.id, 0, "a.dat:1", iid, []),
            FileItem(f.id, 1, "a.dat:5", None, [{"code": "CONN-DATA", "message": "x"}]),
        ],
    )
    items = j.file_items(f.id)
    assert [i.invoice_id for i in items] == [iid, None]
    assert items[1].problems[0]["code"] == "CONN-DATA"
    assert [x.id for x in j.files_of_invoice(iid)] == [f.id]
    j.file_deciding(f.id, FileState.FAILING, "/failed/a.dat", 1)
    assert j.get_file(f.id).state is FileState.FAILING
    j.file_done(f.id)
    rec = j.get_file(f.id)
    assert rec.state is FileState.FAILED and rec.final_path == "/failed/a.dat"
    # a new claim of the same work path after the file finished is a new record
    assert j.file_claimed("ventas", "a.dat", "/w/a.dat").id != f.id
    assert j.file_counts()["failed"] == 1 and j.file_counts()["claimed"] == 1


def test_wal_mode(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_next_retry_at_and_due_limit(journal_at: OpenJournal) -> None:
    j = journal_at()
    assert j.next_retry_at() is None
    ids = []
    for n in range(3):
        _, iid = admit(j, ("EKU9003173C9", "R", str(n)))
        j.mark_validated(iid)
        j.mark_sealed(iid, b"x", f"R{n}")
        j.mark_sending(iid)
        j.mark_retry_wait(iid, 100.0 + n, "T", "t")
        ids.append(iid)
    assert j.next_retry_at() == 100.0
    assert [e.id for e in j.due_retries(now=1000.0, limit=2)] == ids[:2]
    assert j.due_retries(now=50.0) == []


def test_a_commit_that_fails_is_rolled_back_and_reported_as_itself(tmp_path: Path) -> None:
    """A COMMIT that fails (here a deferred constraint; in life a full disk) leaves no open
    transaction behind, raises its own error, and the journal goes on."""
    import sqlite3

    j = Journal(tmp_path / "j.sqlite")
    with j._tx() as db:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute(
            "CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    with pytest.raises(sqlite3.IntegrityError), j._tx() as db:
        db.execute("INSERT INTO child VALUES (42)")  # refused only at COMMIT
    assert not j._db.in_transaction
    assert j._db.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # resting level again
    _, iid = admit(j)
    assert j.mark_sealed_sending(iid, b"<s/>", "REF-1").state is State.SENDING


def test_file_reports_leave_the_files_table_as_older_versions_read_it(tmp_path: Path) -> None:
    """The report a file was decided on lives in its own table: the files table keeps the
    nine columns that an older version (a daemon still running during an upgrade, or a
    rollback) reads with SELECT *; a journal from before gets the table on open."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE files (id INTEGER PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL, "
        "work_path TEXT NOT NULL, state TEXT NOT NULL, final_path TEXT, claimed_at REAL NOT "
        "NULL, finished_at REAL, error_count INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "INSERT INTO files (source, name, work_path, state, final_path, claimed_at) "
        "VALUES ('s', 'v.dat', '/w/v.dat', 'failing', '/f/v.dat', 1.0)"
    )
    db.commit()
    j = Journal(path)
    (rec,) = j.files(FileState.FAILING)
    assert (rec.name, rec.final_path) == ("v.dat", "/f/v.dat")
    assert j.file_report(rec.id) is None  # decided by the older version: rebuilt when moved
    report = {"errors": [], "delivered": [{"invoice": "A1", "uuid": "U"}]}
    j.file_deciding(rec.id, FileState.FAILING, "/f/v.dat", 1, report)
    assert j.file_report(rec.id) == report
    (row,) = db.execute("SELECT * FROM files").fetchall()  # the older version's view
    assert len(row) == 9
    db.close()


def test_files_reports_names_and_failures_on_both_backends(journal_at: OpenJournal) -> None:
    """The rest of what the pipeline and the commands ask of a journal, on each backend."""
    j = journal_at()
    f = j.file_claimed("ventas", "b.dat", "/w/b.dat")
    with j.batch():  # committed together
        _, a = admit(j)
        _, b = admit(j, ("EKU9003173C9", "A", "2"))
        j.link_file_items(f.id, [FileItem(f.id, 0, "b.dat:1", a, [])])
    j.link_file_items(f.id, [FileItem(f.id, 1, "b.dat:2", b, [])])
    j.link_file_items(f.id, [FileItem(f.id, 0, "b.dat:1", a, [{"code": "W"}])])  # replaced
    assert [(i.idx, i.problems) for i in j.file_items(f.id)] == [(0, [{"code": "W"}]), (1, [])]
    assert j.file_pending(f.id) == 2
    to_stamped(j, a)
    j.note_delivery_error(a, "CONN-FILE", "sin carpeta")
    j.note_delivery_error(a, "CONN-FILE", "sin carpeta")  # the same reason: one event
    assert [d for _, _, d in j.events(a)].count("CONN-FILE") == 1
    j.mark_delivered(a, {"xml": "x"}, acuse_missing=("CONN-ACUSE", "falta"))
    j.acuse_still_missing(a, "sigue faltando", b"<acuse2/>")
    e = j.get_id(a)
    assert (e.error_code, e.error_message, e.acuse) == ("CONN-ACUSE", "sigue faltando", b"<acuse2/>")
    assert j.file_pending(f.id) == 1
    j.mark_failed(b, "CFDI40999", "mal", origin="rules", problems=[{"code": "CFDI40999"}])
    assert j.get_id(b).problems == [{"code": "CFDI40999"}]
    report = {"errors": ["CFDI40999"], "delivered": [{"invoice": "A1"}]}
    j.file_deciding(f.id, FileState.FAILING, "/failed/b.dat", 1, report)
    j.file_deciding(f.id, FileState.FAILING, "/failed/b.dat", 1, report)  # again: replaced
    assert j.file_report(f.id) == report
    j.file_reopened(f.id)
    assert j.get_file(f.id).state is FileState.CLAIMED and j.file_report(f.id) is None
    j.file_deciding(f.id, FileState.ARCHIVING, "/archive/b.dat", 0)
    j.file_done(f.id)
    assert j.files(FileState.ARCHIVED, name="b.dat")[0].id == f.id
    j.file_replayed(f.id, "/inbox/b.dat")
    assert j.get_file(f.id).state is FileState.REPLAYED
    j.remember_name("w-1.dat", "un nombre muy largo.dat")
    j.remember_name("w-1.dat", "otro.dat")
    assert j.claimed_name("w-1.dat") == "otro.dat" and j.claimed_name("w-2.dat") is None
    # a record refused before it became an invoice is listed by status, with the invoices
    g = j.file_claimed("ventas", "c.dat", "/w/c.dat")
    j.set_file_items(g.id, [FileItem(g.id, 0, "c.dat:1", None, [{"code": "CONN-DATA"}])])
    codes = [x.code for x in j.recent_failures()]
    assert set(codes) == {"CONN-DATA", "CFDI40999", "CONN-ACUSE"}
    assert sorted(j.source_counts()) == [("s", "delivered", None, 1), ("s", "failed", "CFDI40999", 1)]
    assert j.file_counts()["claimed"] == 1 and j.file_counts()["replayed"] == 1
    assert [x.id for x in j.stamped_entries("eku9003173c9")] == [a] and j.stamped_entries("X") == []
    assert j.find_uuid("uuid-1").id == a  # type: ignore[union-attr]
    assert [x.id for x in j.all_entries()] == [a, b]


def test_retry_now_makes_the_waiting_due(journal_at: OpenJournal) -> None:
    j = journal_at()
    ids = []
    for n, code in enumerate(["PAC-CUENTA", "PAC-503", "PAC-CUENTA"]):
        _, iid = admit(j, ("EKU9003173C9", "W", str(n)))
        j.mark_sealed_sending(iid, b"<s/>", f"R{n}")
        j.mark_retry_wait(iid, 1e12, code, "espera")
        ids.append(iid)
    assert j.retry_now([]) == 0
    assert j.retry_now(["PAC-CUENTA"], now=1000.0) == 2
    assert [e.id for e in j.due_retries(now=1000.0)] == [ids[0], ids[2]]
