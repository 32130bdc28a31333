"""The journal's cancellations (issue 5) and invoices whose PAC reply failed our checks
(issue 2, CONN-PAC-XML): a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.journal import Admission, Journal, JournalError, State

# journal_at (tests/daemon/conftest.py): a journal on each backend, SQLite and PostgreSQL
OpenJournal = Callable[..., Journal]

KEY = ("EKU9003173C9", "A", "1")
UUID = "6F8A5C40-0000-4000-8000-0000000000AA"


def _delivered(j: Journal, key: tuple[str, str, str] = KEY, uuid: str = UUID) -> int:
    _, e = j.admit(key, "h", mode="stamp", source="s", source_file="f", location="f:1")
    j.mark_validated(e.id)
    j.mark_sealed(e.id, b"<x/>", "R-1")
    j.mark_sending(e.id)
    j.mark_stamped(e.id, uuid, b"<stamped/>")
    j.mark_delivered(e.id, {"pdf": "/out/a.pdf"})
    return e.id


def test_a_journal_file_from_before_cancellations_gets_the_table(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        invoice_id = _delivered(j)
    db = sqlite3.connect(path)  # as an older version left it: no cancellations table
    db.execute("DROP TABLE cancellations")
    db.execute("DROP INDEX invoices_uuid")
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.cancellation(UUID) is None and j.cancelled_count() == 0
        c = j.mark_cancelled(UUID.lower(), "02", code="201", estatus="Cancelado")
        assert c.uuid == UUID and c.invoice_id == invoice_id and c.acuse is None
        # again, now with the acuse: the first record stays, the acuse is filled in
        again = j.mark_cancelled(UUID, "03", code="202", acuse=b"<acuse/>")
        assert (again.motivo, again.code, again.at, again.acuse) == ("02", "201", c.at, b"<acuse/>")
        assert j.cancelled_count() == 1
        assert j.find_uuid(UUID.lower()).state is State.DELIVERED  # type: ignore[union-attr]
        assert [to for _, to, _ in j.events(invoice_id)].count("cancelled") == 1
        # a UUID this journal never stamped is recorded too (no invoice)
        assert j.mark_cancelled("00000000-0000-4000-8000-000000000000", "02").invoice_id is None


def test_failed_with_a_uuid_is_never_restarted_reset_or_re_sent(journal_at: OpenJournal) -> None:
    with journal_at() as j:
        _, e = j.admit(KEY, "h", mode="stamp", source="s", source_file="f", location="f:1")
        j.mark_validated(e.id)
        j.mark_sealed(e.id, b"<x/>", "R-1")
        j.mark_sending(e.id)
        e = j.mark_failed(
            e.id, "CONN-PAC-XML", "alterado", origin="pac", uuid=UUID, stamped_xml=b"<s/>"
        )
        assert (e.state, e.uuid, e.stamped_xml) == (State.FAILED, UUID, b"<s/>")
        assert (
            j.admit(KEY, "h", mode="stamp", source="s", source_file="g", location="g:1")[0]
            is Admission.FAILED
        )
        assert (
            j.admit(KEY, "otro", mode="stamp", source="s", source_file="g", location="g:1")[0]
            is Admission.CONFLICT
        )
        with pytest.raises(JournalError):
            j.reset(e.id)
        assert j.get(KEY).state is State.FAILED  # type: ignore[union-attr]
