"""The SQLite journal (the default and, so far, only backend): a WAL file beside the daemon's
work folder, one connection and one lock per process.

``Journal`` is put together from one part per thing it records, each a subclass of
``base.SqliteBase`` (the connection and the transaction) readable alone:

- ``schema``: the tables, their upgrade on open, the row ⇄ record mapping;
- ``invoices``: admission by business key and the state machine's transitions;
- ``queries``: reads over the invoices (``status``, metrics, ``find``, ``report``) and the
  failures ``status`` lists, with ``note_failure``;
- ``cancels``: cancellations, cancellation requests and the SAT sweep;
- ``files``: claimed files, their items, reports and shortened names.
"""

from __future__ import annotations

from connector.journal.sqlite.cancels import CancelStore
from connector.journal.sqlite.files import FileStore
from connector.journal.sqlite.invoices import InvoiceStore
from connector.journal.sqlite.queries import Queries


class Journal(InvoiceStore, Queries, CancelStore, FileStore):
    """The journal over SQLite. Thread-safe (one connection, one lock); every method commits
    before it returns (or with the enclosing ``batch``)."""


__all__ = ["Journal"]
