"""A failed row that was ever sent may be stamped at the PAC: replay (``reset``) and a new export
(``admit`` → RESTART) keep its referencia and attempts so the next send recovers by it; rows
never sent start over with nothing kept (real SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connector.journal import (
    PAC_DOCUMENT,
    Admission,
    FileRecord,
    FileState,
    Journal,
    JournalError,
    State,
)

# journal_at (tests/daemon/conftest.py): a journal on each backend, SQLite and PostgreSQL
OpenJournal = Callable[..., Journal]

KEY = ("EKU9003173C9", "A", "1")


def admit(j: Journal, h: str = "h1") -> tuple[Admission, int]:
    adm, e = j.admit(KEY, h, mode="stamp", source="s", source_file="f.dat", location="f.dat:1")
    return adm, e.id


def sent_then_failed(j: Journal) -> int:
    """Sent once under REF-1 (the reply lost), then failed with the recover's 203, no UUID."""
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_sealed(iid, b"<sealed 1/>", "REF-1")
    j.mark_sending(iid)
    j.mark_failed(iid, "203", "Usuario o contraseña inválidos", origin="pac")
    return iid


def test_replay_of_a_sent_row_keeps_referencia_bytes_and_attempts(journal_at: OpenJournal) -> None:
    j = journal_at()
    iid = sent_then_failed(j)
    e = j.reset(iid)
    assert e.state is State.RECEIVED and e.error_code is None
    assert e.referencia == "REF-1" and e.payload == b"<sealed 1/>" and e.attempts == 1
    # the file is read again (same invoice): re-sealing gives other bytes (a new Fecha)
    adm, e = j.admit(KEY, "h1", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.RESTART and e.referencia == "REF-1" and e.attempts == 1
    j.mark_validated(iid)
    e = j.mark_sealed(iid, b"<sealed 2/>", "REF-2")
    assert e.referencia == "REF-1" and e.payload == b"<sealed 1/>"  # never re-sealed
    assert j.get_id(iid).referencia == "REF-1" and j.get_id(iid).payload == b"<sealed 1/>"
    e = j.mark_sending(iid)
    assert e.attempts == 2  # counted as a retry: the pipeline recovers by REF-1 first


def test_new_content_for_a_sent_row_keeps_referencia_and_takes_new_bytes(
    journal_at: OpenJournal,
) -> None:
    j = journal_at()
    iid = sent_then_failed(j)
    adm, e = j.admit(KEY, "h2", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.RESTART and e.content_hash == "h2"
    assert e.referencia == "REF-1" and e.payload is None and e.attempts == 1
    j.mark_validated(iid)
    e = j.mark_sealed(iid, b"<sealed new/>", "REF-2")
    assert e.referencia == "REF-1" and e.payload == b"<sealed new/>"
    assert "keeps referencia REF-1" in (j.events(iid)[-3][2] or "")


def test_rows_never_sent_start_over_with_nothing_kept(journal_at: OpenJournal) -> None:
    j = journal_at()
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_failed(iid, "CONN-CSD", "CSD vencido", origin="csd")
    e = j.reset(iid)
    assert e.referencia is None and e.payload is None and e.attempts == 0
    adm, e = j.admit(KEY, "h2", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.RESTART and e.referencia is None and e.attempts == 0
    j.mark_validated(iid)
    e = j.mark_sealed(iid, b"<sealed/>", "REF-NEW")
    assert e.referencia == "REF-NEW" and e.payload == b"<sealed/>"


def test_replay_after_the_pac_refused_the_document_seals_anew_under_the_same_referencia(
    journal_at: OpenJournal,
) -> None:
    # sealed with a wrong CSD, the PAC said 303 (a definite answer: nothing stamped); the
    # operator replaces the CSD and replays: the new seal is what goes out
    j = journal_at()
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_sealed(iid, b"<sealed with the wrong CSD/>", "REF-1")
    j.mark_sending(iid)
    j.mark_failed(iid, "303", "Sello no corresponde al emisor", origin=PAC_DOCUMENT)
    for _ in range(2):  # and again, should the new seal be refused too
        j.reset(iid)
        adm, e = j.admit(KEY, "h1", mode="stamp", source="s", source_file="g", location="g:1")
        assert adm is Admission.RESTART and e.payload is None and e.referencia == "REF-1"
        j.mark_validated(iid)
        e = j.mark_sealed(iid, b"<sealed with the new CSD/>", "REF-2")
        assert e.payload == b"<sealed with the new CSD/>" and e.referencia == "REF-1"
        j.mark_sending(iid)
        j.mark_failed(iid, "303", "Sello no corresponde al emisor", origin=PAC_DOCUMENT)


def test_a_refusal_after_a_try_that_may_have_been_stamped_keeps_the_bytes(
    journal_at: OpenJournal,
) -> None:
    # attempt 1: no answer (maybe stamped); attempt 2 refused (e.g. Finkok, which cannot be
    # asked by referencia, checks the CSD before its duplicate check): the pipeline records
    # origin "pac", and a replay resends the same bytes (a 307 gives the first UUID back)
    # instead of sealing anew, which could stamp a second UUID
    j = journal_at()
    _, iid = admit(j)
    j.mark_validated(iid)
    j.mark_sealed(iid, b"<sealed 1/>", "REF-1")
    j.mark_sending(iid)
    j.mark_retry_wait(iid, 0, "CONN-PAC-TIMEOUT", "sin respuesta")
    j.mark_sending(iid)
    j.mark_failed(iid, "304", "Certificado revocado o caduco", origin="pac")
    j.reset(iid)
    adm, e = j.admit(KEY, "h1", mode="stamp", source="s", source_file="g", location="g:1")
    assert adm is Admission.RESTART and e.payload == b"<sealed 1/>" and e.attempts == 2
    j.mark_validated(iid)
    assert j.mark_sealed(iid, b"<sealed anew/>", "REF-2").payload == b"<sealed 1/>"


def test_sealed_and_sending_in_one_step_keeps_what_mark_sealed_keeps(
    journal_at: OpenJournal,
) -> None:
    """The pipeline's one write after sealing: the row read back equals the one returned, the
    three transitions are in the history, and a once-sent row keeps referencia and bytes."""
    j = journal_at()
    adm, first = j.admit(KEY, "h1", mode="stamp", source="s", source_file="f.dat", location="l")
    assert adm is Admission.NEW and first == j.get_id(first.id)  # admit's row as stored
    fresh = first.id
    e = j.mark_sealed_sending(fresh, b"<sealed/>", "REF-9")
    assert e == j.get_id(fresh)
    assert (e.state, e.payload, e.referencia, e.attempts) == (
        State.SENDING, b"<sealed/>", "REF-9", 1
    )  # fmt: skip
    assert j.events(fresh) == [
        (None, "received", "f.dat"),
        ("received", "validated", None),
        ("validated", "sealed", "REF-9"),
        ("sealed", "sending", "attempt 1"),
    ]
    with pytest.raises(JournalError):  # only from received (or validated)
        j.mark_sealed_sending(fresh, b"<other/>", "REF-10")

    j2 = journal_at("j2.sqlite")
    iid = sent_then_failed(j2)
    j2.reset(iid)
    e = j2.mark_sealed_sending(iid, b"<sealed 2/>", "REF-2")
    assert (e.referencia, e.payload, e.attempts) == ("REF-1", b"<sealed 1/>", 2)
    assert e == j2.get_id(iid)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_which_commits_do_not_wait_for_the_disk(tmp_path: Path, synchronous: str) -> None:
    """A FULL journal commits with synchronous=FULL except mark_stamped, mark_delivered and a
    file's claim, items and end (see Durability in connector/journal/__init__.py); what they commit is
    visible at once."""
    import sqlite3

    j = Journal(tmp_path / "j.sqlite", synchronous=synchronous)
    _, iid = admit(j)
    statements: list[str] = []
    j._db.set_trace_callback(statements.append)

    def commits_with_full(step: object) -> bool:
        statements.clear()
        assert callable(step)
        step()
        return "PRAGMA synchronous=FULL" in statements[: statements.index("COMMIT")]

    strict = synchronous == "FULL"
    assert commits_with_full(lambda: j.mark_sealed_sending(iid, b"<s/>", "REF-1")) is strict
    assert commits_with_full(lambda: j.mark_stamped(iid, "UUID-1", b"<stamped/>")) is False
    other = sqlite3.connect(tmp_path / "j.sqlite")  # another process's view: committed
    try:
        row = other.execute("SELECT state, uuid FROM invoices WHERE id=?", (iid,)).fetchone()
    finally:
        other.close()
    assert row == ("stamped", "UUID-1")
    assert commits_with_full(lambda: j.mark_delivered(iid, {"xml": "x.xml"})) is False
    assert j.get_id(iid).state is State.DELIVERED
    claimed: list[FileRecord] = []
    assert commits_with_full(lambda: claimed.append(j.file_claimed("s", "f", "w/f"))) is False
    fid = claimed[0].id
    assert commits_with_full(lambda: j.set_file_items(fid, [])) is False
    deciding = (fid, FileState.ARCHIVING, str(tmp_path / "archive" / "f.dat"), 0)
    assert commits_with_full(lambda: j.file_deciding(*deciding)) is strict
    assert commits_with_full(lambda: j.file_done(fid)) is False
    j._db.set_trace_callback(None)
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # resting between commits
