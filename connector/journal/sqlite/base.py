"""The SQLite connection every part of the journal shares: one connection, one lock, WAL,
and the transaction (``_tx``) that decides whether a commit waits for the disk (see Durability
in ``connector.journal``). The parts (``invoices``, ``files``, ``cancels``, ``queries``) are
subclasses of ``SqliteBase``; ``connector.journal.sqlite.Journal`` puts them together.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from connector.journal.model import Entry, JournalError, NotOwner, State
from connector.journal.sqlite.schema import INVOICE_COLS, create_or_upgrade, entry_of


def _create_private(path: Path) -> None:
    """A new journal is readable by its owner only (0600): it holds every invoice's data.
    SQLite gives its -wal and -shm files the same mode. An existing file is left as it is."""
    if str(path) == ":memory:":
        return
    with suppress(OSError):  # exists already, or the folder is missing: sqlite3 says so
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# an invoice's event: its columns (``EVENT`` with its values)
NEW_EVENT = "INSERT INTO events (invoice_id, at, from_state, to_state, detail)"
EVENT = NEW_EVENT + " VALUES (?,?,?,?,?)"

# a new business key's row; nothing when another journal sharing the database inserted it
NEW_INVOICE = (
    "INSERT INTO invoices (emisor_rfc, serie, folio, content_hash, state, mode, source, "
    "source_file, location, created_at, updated_at, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (emisor_rfc, serie, folio) DO NOTHING RETURNING id"
)


class SqliteBase:
    """Thread-safe (one connection, one lock); every method commits before it returns."""

    # what a SELECT of a row about to change appends inside a transaction: nothing here (a
    # write transaction holds the whole file); `` FOR UPDATE`` on PostgreSQL
    _FOR_UPDATE = ""

    # this connector instance's name in a journal several share (``connector.journal.postgres``,
    # set by the pipeline): the rows it advances carry it, and it takes only its own work. None
    # (a SQLite journal, or a command such as ``status``): one connector, every row its own.
    owner: str | None = None
    shared = False  # several connectors on it (PostgreSQL): instances, heartbeats, takeover

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        _create_private(self.path)
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL is set around the commits that wait for the disk (``_tx``); between them the
        # connection rests at NORMAL, so the commits that need not wait pay nothing extra
        self._full = synchronous != "NORMAL"
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._tx() as db:
            create_or_upgrade(db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, flush: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction (or part of the enclosing ``batch``). ``flush=False``: committed —
        visible, and kept if the process is killed — without waiting for the disk; the next
        flushed commit makes it durable with it (the WAL is written in order). Only for a
        step that a power cut may undo because repeating it is safe (see Durability in
        ``connector.journal``)."""
        with self._lock:
            if self._depth:  # inside batch(): part of the enclosing transaction
                yield self._db
                return
            strict = self._full and flush
            if strict:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._depth += 1
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # the block failed, or COMMIT did (disk full)
                        self._db.execute("ROLLBACK")
                    raise
                finally:
                    self._depth -= 1
            finally:
                if strict and not self._db.in_transaction:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several steps committed together (one fsync): nothing inside may be a side effect
        outside the journal — the caller acts on the results only after the block exits."""
        with self._tx():
            yield

    def _get_locked(self, invoice_id: int | None) -> Entry:
        row = self._db.execute(
            f"SELECT {INVOICE_COLS} FROM invoices WHERE id=?{self._FOR_UPDATE}", (invoice_id,)
        ).fetchone()
        if not row:
            raise JournalError(f"no invoice with id {invoice_id}")
        return entry_of(row)

    def _known(self, invoice_id: int) -> Entry | None:
        """The invoice as this journal last wrote it, when it can be advanced from that
        version in one guarded statement (PostgreSQL: ``postgres.base``); here the row is
        read under the lock (in the process, cheap)."""
        return None

    def _insert_new(
        self, db: Any, values: tuple[Any, ...], detail: str
    ) -> tuple[Any, ...] | None:
        """A new key's row (``NEW_INVOICE``'s values) and its first event; what the INSERT
        returned (the id), None when the key is taken (nothing written)."""
        new = db.execute(NEW_INVOICE, values).fetchone()
        if new is not None:
            self._event(db, new[0], None, State.RECEIVED, detail)
        return tuple(new) if new is not None else None

    def _wrote(self, e: Entry, returned: tuple[Any, ...]) -> None:
        """A new row ``e`` inserted, ``returned`` what ``_insert_new`` returned: nothing to
        remember here."""

    def _write_if_unchanged(
        self, e: Entry, cols: dict[str, Any], events: list[tuple[Any, ...]]
    ) -> Entry | None:
        """``cols`` and ``events`` written if the row is still the version ``e`` (only
        called with what ``_known`` gave)."""
        raise NotImplementedError

    def _mine(self, column: str = "owner") -> tuple[str, tuple[str, ...]]:
        """The condition (`` AND owner=?``) and its value that keep a query of work to take
        to this instance's rows; nothing without an owner."""
        if self.owner is None:
            return "", ()
        return f" AND {column}=?", (self.owner,)

    def _own_locked(self, invoice_id: int) -> Entry:
        """The row about to change (``_get_locked``), refused with ``NotOwner`` when another
        instance holds it now: it took over this one's work (this one missed its
        heartbeats), so this one must not advance it."""
        e = self._get_locked(invoice_id)
        if self.owner is not None and e.owner is not None and e.owner != self.owner:
            raise NotOwner(e.label, e.owner)
        return e

    def _alive(self, db: Any, name: str) -> bool:
        """Whether instance ``name`` heartbeats (a shared journal's; see ``postgres``)."""
        return False

    def _event(
        self,
        db: sqlite3.Connection,
        invoice_id: int | None,
        frm: State | None,
        to: State,
        detail: str | None = None,
    ) -> None:
        db.execute(EVENT, (invoice_id, time.time(), frm, to, detail))
