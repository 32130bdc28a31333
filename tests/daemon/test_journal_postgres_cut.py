"""A transaction of the PostgreSQL journal whose connection is cut (the server stopped), or in
which a statement failed, while the caller goes on (a batch catches each invoice's error): the
transaction cannot commit, and leaving it says so (``JournalError``) instead of returning as if
it had committed. Found by tests/instances' journal outage: a table row's invoice admitted in a
batch whose connection the server's stop cut was dispatched under an id the journal never kept
("no invoice with id 183"), and the row stayed ``EN_PROCESO`` for as long as its instance ran."""

from __future__ import annotations

import psycopg
import pytest

from connector.journal import JournalError
from connector.journal.postgres import Journal as PostgresJournal
from tests.daemon.conftest import pg_schema_url

KEY = ("EKU9003173C9", "C", "1")


def _admit(j: PostgresJournal, folio: str) -> int:
    _, e = j.admit(
        (KEY[0], KEY[1], folio), "h", mode="stamp", source="s", source_file="f", location="l"
    )
    return e.id


def test_a_batch_whose_connection_is_cut_raises_and_keeps_nothing(pg_journal_db: str) -> None:
    url = pg_schema_url(pg_journal_db)
    j = PostgresJournal(url)
    try:
        with pytest.raises(JournalError, match="conexión"), j.batch():
            first = _admit(j, "1")
            (pid,) = j._db.execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[misc]
            with psycopg.connect(url, autocommit=True) as admin:  # as a server stop does
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.Error):  # the next invoice's step fails
                _admit(j, "2")
        assert j.get(KEY) is None  # the first one was not kept: its id is no invoice's
        with pytest.raises(JournalError):
            j.get_id(first)
        assert _admit(j, "1") > 0  # the pool gives a working connection again
        assert j.get(KEY) is not None
    finally:
        j.close()


def test_a_batch_with_a_failed_statement_raises_and_keeps_nothing(pg_journal_db: str) -> None:
    j = PostgresJournal(pg_schema_url(pg_journal_db))
    try:
        with pytest.raises(JournalError, match="falló"), j.batch():
            _admit(j, "1")
            with pytest.raises(psycopg.Error):
                j._db.execute("SELECT no_such_column FROM invoices")
        assert j.get(KEY) is None
        with j.batch():  # a batch whose statements all went through commits as before
            _admit(j, "1")
        assert j.get(KEY) is not None
    finally:
        j.close()
