"""The PostgreSQL journal (issue 16): the same journal as ``connector.journal.sqlite`` — the
same methods, records and rules, the same parts (``invoices``, ``files``, ``cancels``,
``queries``) and their SQL — on a database several connectors may share, through psycopg 3
and a connection pool (``base``), its tables created and migrated by the connector
(``schema``), with the instances that share it and the takeover of a stopped one's work
(``instances``). Imported only when ``[daemon] journal`` is a ``postgresql://`` address (see
``connector.journal.open_journal``): a SQLite-only install never needs psycopg.
"""

from __future__ import annotations

from connector.journal.postgres.base import display
from connector.journal.postgres.instances import Instances, InstanceTaken
from connector.journal.sqlite import Journal as SqliteJournal


class Journal(Instances, SqliteJournal):
    """The journal over PostgreSQL: ``PostgresBase``'s pool and transactions under the SQLite
    journal's parts. Thread-safe; every method commits before it returns (or with the
    enclosing ``batch``)."""


__all__ = ["InstanceTaken", "Journal", "display"]
