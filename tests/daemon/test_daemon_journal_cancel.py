"""The journal's cancellations (issue 5) and invoices whose PAC reply failed our checks
(issue 2, CONN-PAC-XML): a real SQLite file, and PostgreSQL where the test takes
``journal_at``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.journal import (
    CANCEL_OPEN,
    Admission,
    CancelState,
    Journal,
    JournalError,
    State,
)

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


def test_cancellations_and_requests_on_both_backends(journal_at: OpenJournal) -> None:
    """Every cancellation method, as the cancel command and the follow-up at SAT use them."""
    with journal_at() as j:
        invoice_id = _delivered(j)
        c = j.mark_cancelled(UUID.lower(), "02", code="201", estatus="Cancelado")
        assert c.uuid == UUID and c.invoice_id == invoice_id
        again = j.mark_cancelled(UUID, "03", code="202", acuse=b"<acuse/>")
        assert (again.motivo, again.at, again.acuse) == ("02", c.at, b"<acuse/>")
        assert j.cancellation(UUID.lower()) == again and j.cancelled_count() == 1
        # the cancel command's record of a request the PAC accepted (upsert, acuse kept)
        other = "00000000-0000-4000-8000-0000000000BB"
        r = j.record_cancel_request(other, "02", state=CancelState.SENT, code="201")
        assert (r.uuid, r.invoice_id, r.state, r.requests) == (other, None, CancelState.SENT, 0)
        r = j.record_cancel_request(other, "02", state=CancelState.IN_PROCESS, acuse=b"<a/>")
        r = j.record_cancel_request(other, "02", state=CancelState.CANCELLED)
        assert (r.state, r.acuse, r.requested_at <= r.updated_at) == (
            CancelState.CANCELLED, b"<a/>", True
        )  # fmt: skip
        # the tracked flow: journal first, then the PAC's answer, then SAT's follow-up
        r = j.open_cancel_request(
            UUID, "02", None, rfc_emisor="EKU9003173C9", rfc_receptor="XAXX010101000",
            total="116.00", origin="cli",
        )  # fmt: skip
        assert (r.state, r.requests, r.polls, r.invoice_id) == (
            CancelState.REQUESTED, 1, 0, invoice_id
        )  # fmt: skip
        r = j.update_cancel_request(UUID, state=CancelState.IN_PROCESS, next_poll_at=50.0)
        assert r.state is CancelState.IN_PROCESS and r.next_poll_at == 50.0
        assert [x.uuid for x in j.cancel_requests_due(now=100.0)] == [UUID]
        assert j.cancel_requests_due(now=10.0) == []
        assert [x.uuid for x in j.cancel_requests(*CANCEL_OPEN)] == [UUID]
        r = j.open_cancel_request(
            UUID, "02", None, rfc_emisor="EKU9003173C9", rfc_receptor="XAXX010101000",
            total="116.00", origin="cli",
        )  # fmt: skip
        assert (r.state, r.requests) == (CancelState.REQUESTED, 2)
        j.forget_cancel_request(UUID, CancelState.IN_PROCESS)
        assert j.cancel_request(UUID.lower()).state is CancelState.IN_PROCESS  # type: ignore[union-attr]
        j.update_cancel_request(UUID, state=CancelState.REJECTED, error_code="CONN-FILE")
        assert [x.uuid for x in j.cancel_requests_unwritten()] == [UUID]
        assert j.cancel_request_counts() == {"rechazada": 1, "cancelada": 1}
        with pytest.raises(JournalError):
            j.update_cancel_request(UUID, nombre="x")
        with pytest.raises(JournalError):
            j.update_cancel_request("00000000-0000-4000-8000-0000000000CC", state="x")
        j.forget_cancel_request(other, None)
        assert j.cancel_request(other) is None
        states = [to for _, to, _ in j.events(invoice_id)]
        assert states[-4:] == [
            "cancelacion_solicitada", "cancelacion_en_proceso", "cancelacion_solicitada",
            "cancelacion_rechazada",
        ]  # fmt: skip
        # the sweep: delivered invoices with no request, least recently asked first
        second = _delivered(j, ("EKU9003173C9", "A", "2"), "00000000-0000-4000-8000-0000000000DD")
        assert [e.id for e in j.sweep_due(0.0, 1e12, 10)] == [second]
        j.sat_checked("00000000-0000-4000-8000-0000000000dd", "Vigente")
        assert j.sweep_due(0.0, 0.0, 10) == []
        assert [e.id for e in j.sweep_due(0.0, 1e12, 10)] == [second]
