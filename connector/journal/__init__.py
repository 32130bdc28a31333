"""The journal: a SQLite (WAL) state store, one row per invoice, keyed by (emisor RFC, serie, folio).

Every transition is recorded (and committed) BEFORE the side effect it announces:

    received → validated → sealed → sending → stamped → delivered
                  │           │        │  ▲
                  ▼           ▼        ▼  │
                failed     failed   retry_wait / failed

``sealed`` stores the sealed XML (or, in remote mode, the request data) and its ``referencia``
before the first send, so a retry resends the identical bytes and never re-seals. ``sending``
counts the attempt before the request leaves; a row found in ``sending`` after a restart was
maybe sent, so the PAC is asked by referencia before any resend.

The ``files`` table follows each claimed input file to exactly one final place (archive or
failed), and ``file_items`` links each file to the invoices it carried (or to the problems of
records that never became an invoice).

The ``cancellations`` table records each cancellation that took effect (SAT says
``Cancelado``, or the PAC cancelled it without the receptor's acceptance), before the PDF with
the CANCELADO mark and the acuse are written; the invoice stays ``delivered``. The
``cancel_requests`` table records every request the PAC accepted with where it stands at SAT
(``CancelState``): a CFDI "Cancelable con aceptación" is only ``en_proceso`` after the PAC's
201, until the receptor accepts, rejects or lets the deadline pass; it is not cancelled (nor
counted as such) meanwhile. A ``failed`` row that carries a UUID was stamped but the PAC's reply failed our
checks (CONN-PAC-XML): the UUID exists at SAT, so it is never restarted, reset or re-sent.

A row that was ever sent (``attempts`` > 0) may be stamped at the PAC even when it ended
``failed`` without a UUID (e.g. the PAC refused the recover of an ambiguous send). Replay
(``reset``) and a new export of the same key (``admit`` → RESTART) therefore keep its
``referencia`` and its attempt count: ``mark_sealed`` keeps that referencia, so the next
attempt is counted as maybe sent and recovers by it before any send, and never stamps a second
UUID under a new referencia. The same content also keeps its sealed bytes (never re-sealed);
new content is sealed again and sent under the old referencia only if the PAC has nothing for
it (if it has, the stamped XML does not match the new bytes and the pipeline reports it with
its UUID, never stamping again). Rows never sent start over with nothing kept.

Durability. Every commit is visible to other processes and survives the process being killed.
Most also wait for the disk (``synchronous=FULL``): above all the sealed bytes, referencia and
attempt before a send leaves, and a file's decision before it is moved to archive/ or failed/.
``stamped`` and ``delivered`` do not wait (two fsyncs less per invoice, and the workers no
longer hold the journal lock through them): the next flushed commit makes them durable too, the
WAL being written in order — at the latest the decision on their file. A power cut before that
can undo only what repeating repairs: the row is back in ``sending`` (or ``stamped``), the next
send recovers the same UUID (by referencia, or the PAC recognises the identical bytes) and the
outputs are written again, whole, under the same names; never a second stamp. Nor do a file's
claim, its final items and its end (``file_claimed``, ``set_file_items``, ``file_done``): a
flushed commit follows the first two (its invoices' seals, its decision), and a file whose end
is undone is found already in its place and finished again.

Layout. The records and the rules every backend shares are in ``connector.journal.model``
(``State``, ``TRANSITIONS``, ``Entry``, ``FileRecord``, ``CancelRequest``…; no SQL, no I/O);
the SQLite backend is ``connector.journal.sqlite``, one module per thing it records
(``invoices``, ``files``, ``cancels``, ``queries``) on a shared connection and transaction
(``base``) and schema (``schema``). Callers import every name from here, ``connector.journal``,
never from the modules below it.

The second backend (issue 16) is PostgreSQL, ``connector.journal.postgres``: a journal
several connectors share. Its class is a ``sqlite.Journal`` with another base: the parts
(``invoices``, ``files``, ``cancels``, ``queries``) and their SQL — written in what both
engines understand — are the same, on a connection pool instead of the file; it returns the
same records, applies the same rules and keeps the same durability promises (a flushed commit
before any side effect it announces). ``open_journal`` makes the configuration's choice (a
``postgresql://`` address or a file); the callers keep importing from ``connector.journal``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from connector.journal.model import (
    ACUSE_MISSING,
    CANCEL_OPEN,
    COMMITTED_STATES,
    FINAL_STATES,
    PAC_DOCUMENT,
    TRANSITIONS,
    Admission,
    BusinessKey,
    Cancellation,
    CancelRequest,
    CancelState,
    Entry,
    Failure,
    FileItem,
    FileRecord,
    FileState,
    JournalAway,
    JournalError,
    NotOwner,
    State,
)
from connector.journal.sqlite import Journal

__all__ = [
    "ACUSE_MISSING",
    "CANCEL_OPEN",
    "COMMITTED_STATES",
    "FINAL_STATES",
    "PAC_DOCUMENT",
    "TRANSITIONS",
    "Admission",
    "BusinessKey",
    "CancelRequest",
    "CancelState",
    "Cancellation",
    "Entry",
    "Failure",
    "FileItem",
    "FileRecord",
    "FileState",
    "Journal",
    "JournalAway",
    "JournalError",
    "JournalSettings",
    "NotOwner",
    "State",
    "journal_away",
    "journal_exists",
    "journal_retry",
    "open_journal",
]


class JournalSettings(Protocol):
    """What ``open_journal`` reads of the configuration (``connector.config.DaemonSettings``)."""

    @property
    def journal(self) -> Path: ...

    @property
    def journal_url(self) -> str | None: ...

    @property
    def journal_synchronous(self) -> str: ...

    def journal_secret(self) -> str | None: ...


def open_journal(settings: JournalSettings) -> Journal:
    """The journal the configuration names: on PostgreSQL when ``journal_url`` is set
    (``[daemon] journal = "postgresql://…"``; psycopg is imported only then), else the SQLite
    file ``journal``. A journal that cannot be opened raises ``sqlite3.Error`` or ``OSError``
    (PostgreSQL unreachable, its password unreadable: ``ConnectionError``), in Spanish and
    without the password."""
    if settings.journal_url is None:
        return Journal(settings.journal, synchronous=settings.journal_synchronous)
    try:
        password = settings.journal_secret()
    except Exception as exc:  # connector.config.SecretError: coded, in Spanish
        raise ConnectionError(getattr(exc, "message", str(exc))) from exc
    try:
        from connector.journal.postgres import Journal as PostgresJournal
    except ImportError as exc:
        raise ConnectionError(
            "el diario en PostgreSQL necesita psycopg 3 (pip install 'psycopg[binary,pool]'): "
            f"{exc}"
        ) from exc
    # a frozen connector's open transaction ends after its lease (at least 10 s): its locks
    # never hold the others up for longer than the takeover waits anyway
    lease = float(getattr(settings, "instance_lease_seconds", 30.0))
    return PostgresJournal(
        settings.journal_url,
        password=password,
        synchronous=settings.journal_synchronous,
        idle_seconds=max(10.0, lease),
    )


def journal_away(exc: BaseException) -> bool:
    """Whether ``exc`` says the shared journal's server cannot be reached now (stopped,
    restarting, the network cut, no connection free in time): a pause, not a bug."""
    if isinstance(exc, JournalAway):
        return True
    if not type(exc).__module__.startswith(("psycopg", "psycopg_pool")):
        return False
    import psycopg
    import psycopg_pool

    if _rolled_back(exc):  # the server is there
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError,
                            psycopg_pool.PoolTimeout))  # fmt: skip


def journal_retry(exc: BaseException) -> bool:
    """Whether the unit of work that met ``exc`` is simply done again: the shared journal is
    away (``journal_away``), or its server rolled a transaction back to let another one's
    through (a deadlock between two instances admitting the same keys, a serialization
    failure)."""
    return journal_away(exc) or (type(exc).__module__.startswith("psycopg") and _rolled_back(exc))


def _rolled_back(exc: BaseException) -> bool:
    """SQLSTATE class 40, transaction rollback (40P01 deadlock, 40001 serialization)."""
    return str(getattr(exc, "sqlstate", None) or "").startswith("40")


def journal_exists(settings: JournalSettings) -> bool:
    """Whether there is a journal to read yet: a SQLite file once written; a PostgreSQL
    journal is always asked (its tables are created when it is first opened)."""
    return settings.journal_url is not None or settings.journal.exists()
