"""The PostgreSQL connection pool every part of the journal shares, in place of the SQLite
journal's one connection (``connector.journal.sqlite.base``).

The parts that read and write the tables (``invoices``, ``files``, ``cancels``, ``queries``
of ``connector.journal.sqlite``) write SQL both engines understand, with ``?`` marks; here
each statement gets psycopg's ``%s`` marks and runs on a pooled connection: inside a
transaction (``_tx``, ``batch``) on the connection the thread holds until the commit,
otherwise (reads) on one borrowed for the statement. Several threads, and several connectors
sharing the database, work at once: a row about to change is read ``FOR UPDATE``, and a new
business key is inserted ``ON CONFLICT DO NOTHING`` (``admit``), so two journals admitting
the same invoice at once make one row.

Known versions: each invoice's row as this journal last wrote or read it, with its
version (PostgreSQL's ``xmin``: a new one at every write of the row, whoever makes it), is
remembered while it is unfinished (``_versions``; inside a transaction only once it commits).
A transition from a known version is one statement, ``UPDATE … WHERE id=? AND xmin=? AND
updated_at=? AND state=?`` with its events — in place of reading the row ``FOR UPDATE``,
writing it and its events, each a round trip — and, outside a transaction, committed on its
own. The guard makes it the same as the read under the lock: when anything wrote the row
since (another instance took it over, a replay, a retry made due), nothing is written and the
row is read under its lock as before. Committed on its own, such a statement waits for the
server's disk even for ``stamped`` and ``delivered`` (see Durability): ``SET LOCAL`` needs a
transaction, whose round trips would cost what the statement saves.

Durability (see ``connector.journal``): a commit waits for the server's WAL flush
(``synchronous_commit`` on) except those the SQLite journal makes without waiting for the
disk (``flush=False``), committed with ``SET LOCAL synchronous_commit TO off``: visible at once
and kept if the connector is killed; a crash of the server itself may undo them, which
repeating repairs.
"""

from __future__ import annotations

import contextlib
import functools
import select
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from connector.journal.model import FINAL_STATES, Entry, JournalAway, JournalError, State
from connector.journal.postgres.schema import migrate
from connector.journal.sqlite.base import NEW_EVENT, NEW_INVOICE, SqliteBase
from connector.journal.sqlite.schema import INVOICE_COLS, entry_of, written


@functools.lru_cache(maxsize=512)
def _marks(sql: str) -> str:
    """``?`` marks as psycopg's ``%s`` (a literal ``%`` doubled). The journal's SQL has no
    ``?`` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


# how often a read outside a transaction is tried on connections the server dropped (the
# pool's size: each try throws one away)
_READ_TRIES = 17


class _Rows:
    """The rows of a statement run on a borrowed connection (already returned to the pool)."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class _Conn:
    """What the shared parts call ``db``: ``execute``/``executemany`` with ``?`` marks on the
    thread's transaction, or (``conn`` None) each statement on a connection of the pool.
    Results come in binary (an invoice's documents not as hex text)."""

    def __init__(self, pool: Any, conn: Any = None) -> None:
        self._pool = pool
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._conn is not None:
            return self._conn.execute(_marks(sql), params, binary=True)
        # a read that met a connection the server dropped (stopped, restarted) after the
        # pool's check runs again on another; a write (a guarded transition) is not repeated:
        # its commit may have happened (the unit is redone, see ``JournalAway``)
        import psycopg

        reading = sql.lstrip()[:6].upper() == "SELECT"
        for attempt in range(_READ_TRIES):
            with self._pool.connection() as conn:
                try:
                    cur = conn.execute(_marks(sql), params, binary=True)
                except psycopg.OperationalError:
                    if not (reading and conn.broken) or attempt == _READ_TRIES - 1:
                        raise
                    continue  # the broken connection is thrown away by the pool
                rows = cur.fetchall() if cur.description is not None else []
                return _Rows(rows, cur.rowcount)
        raise AssertionError("unreachable")

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        if self._conn is None:
            raise JournalError("executemany outside a transaction")
        with self._conn.cursor() as cur:
            cur.executemany(_marks(sql), seq)


def display(url: str) -> str:
    """The journal's address without its password, for messages and logs."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # not parseable: say nothing of it but the engine
        return "postgresql://…"
    parts.pop("password", None)
    host, db, user = (str(parts.get(k) or "") for k in ("host", "dbname", "user"))
    port = f":{parts['port']}" if parts.get("port") else ""
    shown = f"postgresql://{user + '@' if user else ''}{host}{port}/{db}"
    rest = {k: v for k, v in parts.items() if k not in ("host", "port", "dbname", "user")}
    return shown + (f" ({make_conninfo(**rest)})" if rest else "")  # type: ignore[arg-type]


def _check(conn: Any) -> None:
    """A pooled connection about to be lent: one the server dropped (stopped, restarted, or
    ended an idle transaction) is replaced. The server is asked (a round trip, which raises
    on a dropped connection) only when it sent something unasked — what a server closing a
    connection does — so a healthy connection costs no round trip at every checkout."""
    try:
        readable = bool(select.select([conn.fileno()], [], [], 0)[0])
    except (ValueError, OSError):  # select() takes no descriptor past 1023: ask the server
        readable = True
    if readable or conn.broken:
        conn.execute("")


def _configure(conn: Any, *, idle_ms: int) -> None:
    """Each pooled connection: a transaction left open by a connector that froze (a stalled
    virtual machine, SIGSTOP) is ended by the server after ``idle_ms``, so its locks (a new
    invoice's key, a row read ``FOR UPDATE``) never hold the other connectors up for longer;
    the journal's own transactions never wait that long between two statements."""
    conn.execute(f"SET idle_in_transaction_session_timeout = {int(idle_ms)}")


def _committable(conn: Any) -> None:
    """Raise unless the transaction on ``conn`` can still commit. A statement that failed
    inside it (its error caught by the caller, as a batch does for each of its invoices)
    leaves nothing to commit: PostgreSQL has aborted the transaction, or the connection is
    gone (the server stopped). psycopg then leaves ``transaction()`` without an error and
    without committing, so the steps before the failure would be lost while their results
    (an invoice's id) are used as if they were committed."""
    from psycopg.pq import TransactionStatus

    if conn.broken or conn.closed:
        raise JournalAway(
            "Se perdió la conexión con el diario en PostgreSQL a mitad de una transacción: "
            "nada de ella quedó guardado."
        )
    if conn.info.transaction_status == TransactionStatus.INERROR:
        raise JournalError(
            "Una instrucción falló dentro de una transacción del diario en PostgreSQL: "
            "nada de ella quedó guardado."
        )


class PostgresBase(SqliteBase):
    """The pool and the transaction the shared parts use (``_tx``, ``batch``, ``_db``);
    thread-safe, every method commits before it returns."""

    _FOR_UPDATE = " FOR UPDATE"
    _VERSIONS_KEPT = 4096

    def __init__(  # the SQLite base's __init__ is not called: no file here
        self,
        url: str,
        *,
        synchronous: str = "FULL",
        password: str | None = None,
        min_size: int = 1,
        max_size: int = 16,
        timeout: float = 30.0,
        idle_seconds: float = 30.0,
    ) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self.path = Path(display(url))  # for messages only: no file
        self._full = synchronous != "NORMAL"
        self._local = threading.local()
        self._versions: dict[int, tuple[str, Entry]] = {}  # see the module's docstring
        self._lock = contextlib.nullcontext()  # type: ignore[assignment]
        kwargs: dict[str, Any] = {"autocommit": True}
        if password is not None:
            kwargs["password"] = password
        try:  # the schema first, on a connection of its own (the pool's need the tables)
            with psycopg.connect(url, connect_timeout=max(1, int(timeout)), **kwargs) as conn:
                migrate(conn)
        except psycopg.Error as exc:
            raise ConnectionError(
                f"PostgreSQL en {display(url)} no responde o no se deja usar: "
                f"{str(exc).strip() or type(exc).__name__}"
            ) from exc
        self._pool = ConnectionPool(
            url,
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=True,
            name="cfdi-journal",
            check=_check,  # a server restarted: the connections it dropped replaced
            configure=functools.partial(_configure, idle_ms=int(idle_seconds * 1000)),
        )

    def close(self) -> None:
        self._pool.close()

    @property
    def _db(self) -> _Conn:  # type: ignore[override]
        return _Conn(self._pool, getattr(self._local, "conn", None))

    # --- known versions (see the module's docstring) --------------------------------------

    def _version(self, invoice_id: int) -> tuple[str, Entry] | None:
        pending = getattr(self._local, "versions", None)
        if pending is not None and invoice_id in pending:
            return pending[invoice_id]  # written by this transaction (it holds the row)
        return self._versions.get(invoice_id)

    def _keep(self, invoice_id: int, version: tuple[str, Entry]) -> None:
        """A committed version remembered (an unfinished invoice's only)."""
        if version[1].state in FINAL_STATES:
            self._versions.pop(invoice_id, None)
            return
        if len(self._versions) >= self._VERSIONS_KEPT:
            self._versions.clear()
        self._versions[invoice_id] = version

    def _remember(self, xmin: str, e: Entry) -> None:
        pending = getattr(self._local, "versions", None)
        if pending is not None:  # kept once the transaction commits
            pending[e.id] = (xmin, e)
        else:
            self._keep(e.id, (xmin, e))

    def _known(self, invoice_id: int) -> Entry | None:
        version = self._version(invoice_id)
        return version[1] if version else None

    def _insert_new(
        self, db: Any, values: tuple[Any, ...], detail: str
    ) -> tuple[Any, ...] | None:
        """The row and its event in one statement; returns (id, version)."""
        row = db.execute(
            f"WITH n AS ({NEW_INVOICE}, xmin::text AS version), "
            f"ev AS ({NEW_EVENT} "
            "SELECT id, ?::float8, NULL, ?::text, ?::text FROM n) SELECT id, version FROM n",
            (*values, time.time(), str(State.RECEIVED), detail),
        ).fetchone()
        return tuple(row) if row is not None else None

    def _wrote(self, e: Entry, returned: tuple[Any, ...]) -> None:
        self._remember(returned[1], e)

    def _write_if_unchanged(
        self, e: Entry, cols: dict[str, Any], events: list[tuple[Any, ...]]
    ) -> Entry | None:
        version = self._version(e.id)
        if version is None or version[1] is not e:
            return None
        sets = ", ".join(f"{k}=?" for k in cols)
        rows = ", ".join(["(?::bigint, ?::float8, ?::text, ?::text, ?::text)"] * len(events))
        row = self._db.execute(
            f"WITH u AS (UPDATE invoices SET {sets} WHERE id=? AND xmin=?::text::xid "
            "AND updated_at=? AND state=? RETURNING xmin::text AS version), "
            f"ev AS ({NEW_EVENT} "
            f"SELECT v.* FROM u, (VALUES {rows}) AS v) SELECT version FROM u",
            (*cols.values(), e.id, version[0], e.updated_at, str(e.state),
             *(x for ev in events for x in ev)),
        ).fetchone()  # fmt: skip
        if row is None:  # written since: read under its lock (``_advance``)
            self._forget(e.id)
            return None
        new = written(e, cols)
        self._remember(row[0], new)
        return new

    def _forget(self, invoice_id: int) -> None:
        pending = getattr(self._local, "versions", None)
        if pending is not None:
            pending.pop(invoice_id, None)
        self._versions.pop(invoice_id, None)

    def _get_locked(self, invoice_id: int | None) -> Entry:
        """Inside a transaction the row read ``FOR UPDATE`` (about to be written without a
        guard: no longer a known version); outside one (``get_id``) the committed row and its
        version, remembered."""
        if getattr(self._local, "conn", None) is not None:
            if invoice_id is not None:
                self._forget(invoice_id)
            return super()._get_locked(invoice_id)
        row = self._db.execute(
            f"SELECT {INVOICE_COLS}, xmin::text FROM invoices WHERE id=?", (invoice_id,)
        ).fetchone()
        if not row:
            raise JournalError(f"no invoice with id {invoice_id}")
        e = entry_of(row[:-1])
        self._keep(e.id, (row[-1], e))
        return e

    @contextlib.contextmanager
    def _tx(  # type: ignore[override]
        self, *, flush: bool = True, timeout: float | None = None
    ) -> Iterator[_Conn]:
        """One transaction on the thread's pooled connection (or part of the thread's
        enclosing ``batch``); ``flush=False``: committed without waiting for the server's
        disk (see the module's docstring); ``timeout``: how long to wait for a connection
        (default the pool's: 30 s), psycopg_pool.PoolTimeout after it."""
        local = self._local
        if getattr(local, "conn", None) is not None:
            yield _Conn(self._pool, local.conn)
            return
        versions: dict[int, tuple[str, Entry]] = {}
        with self._pool.connection(timeout=timeout) as conn, conn.transaction():
            if not (self._full and flush):
                conn.execute("SET LOCAL synchronous_commit TO off")
            local.conn, local.versions = conn, versions
            try:
                yield _Conn(self._pool, conn)
            finally:
                local.conn = local.versions = None
            _committable(conn)
        for invoice_id, version in versions.items():  # committed
            self._keep(invoice_id, version)
