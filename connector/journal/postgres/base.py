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

Round trips (each costs the connector and the server more than the statement itself): a
transaction's ``BEGIN`` and its writes whose result nobody reads (``_write``: an invoice's
update and events, a file's items and decision) wait and go in one round trip with the next
statement that returns something, or with the ``COMMIT`` — so a transition is two: the row
read ``FOR UPDATE`` (without its documents, see ``_get_locked``), then its writes, its event
and the commit. A write that fails fails the commit: nothing of the transaction is recorded,
as before. Results come in binary.

Durability (see ``connector.journal``): a commit waits for the server's WAL flush
(``synchronous_commit`` on) except those the SQLite journal makes without waiting for the
disk (``flush=False``), committed with ``SET LOCAL synchronous_commit TO off``: visible at once
and kept if the connector is killed; a crash of the server itself may undo them, which
repeating repairs.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from connector.journal.model import FINAL_STATES, Entry, JournalAway, JournalError
from connector.journal.postgres.schema import migrate
from connector.journal.sqlite.base import SqliteBase
from connector.journal.sqlite.schema import INVOICE_LIGHT_COLS, entry_of_light


@functools.lru_cache(maxsize=512)
def _marks(sql: str) -> str:
    """``?`` marks as psycopg's ``%s`` (a literal ``%`` doubled). The journal's SQL has no
    ``?`` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


# a transaction's start: waiting for the server's disk at the commit, or not. (Statements that
# return something are prepared by the server after a few runs and their results come in
# binary: a row's BYTEA columns are not sent as hex text.)
_BEGIN = "BEGIN"
_BEGIN_NO_WAIT = "BEGIN; SET LOCAL synchronous_commit TO off"


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


class _Tx:
    """A thread's open transaction: its connection, and the statements not sent yet (its
    ``BEGIN``, and the writes whose results nobody reads: ``defer``), which go together in
    one round trip before the next statement that returns something, or with the
    ``COMMIT``."""

    __slots__ = ("conn", "pending", "sent", "kept")

    def __init__(self, conn: Any, begin: str) -> None:
        self.conn = conn
        self.pending: list[tuple[str, Sequence[Any]]] = [(begin, ())]
        self.sent = False  # anything sent yet (the BEGIN went)
        self.kept: list[Entry] = []  # invoices read or written: remembered once committed

    def send(self, *last: tuple[str, Sequence[Any]]) -> Any:
        """The pending statements and ``last`` in one round trip: several statements in one
        query, their values bound on the client; the cursor holds the last one's result
        (as text: a statement whose result has documents is run alone, in binary)."""
        from psycopg import ClientCursor

        todo = [*self.pending, *last]
        self.pending = []
        self.sent = True
        cur = ClientCursor(self.conn)
        cur.execute("; ".join(q for q, _ in todo), [v for _, ps in todo for v in ps])
        while cur.nextset():
            pass
        return cur


class _Conn:
    """What the shared parts call ``db``: ``execute``/``executemany`` with ``?`` marks, and
    ``defer`` (a write whose result is not read) on the thread's transaction, or (``tx``
    None) each statement on a connection of the pool."""

    def __init__(self, pool: Any, tx: _Tx | None = None) -> None:
        self._pool = pool
        self._tx = tx

    def execute(self, sql: str, params: Sequence[Any] = (), *, docs: bool = False) -> Any:
        """``docs``: the result has an invoice's documents (BYTEA): never with the pending
        statements (their result is text), in binary."""
        tx = self._tx
        if tx is not None:
            if tx.pending:
                if not docs:
                    return tx.send((_marks(sql), params))
                tx.send()
            return tx.conn.execute(_marks(sql), params, binary=True)
        # outside a transaction: only reads (every write is in ``_tx``), so one that met a
        # connection the server had dropped (stopped, restarted) since the pool's check runs
        # again on another, which the pool checks (and waits for, up to its timeout)
        import psycopg

        for attempt in range(_READ_TRIES):
            with self._pool.connection() as conn:
                try:
                    cur = conn.execute(_marks(sql), params, binary=True)
                except psycopg.OperationalError:
                    if not conn.broken or attempt == _READ_TRIES - 1:
                        raise
                    continue  # the broken connection is discarded by the pool
                rows = cur.fetchall() if cur.description is not None else []
                return _Rows(rows, cur.rowcount)
        raise AssertionError("unreachable")

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write whose result is not read: sent with the transaction's next statement or
        its commit (its error, if any, raised there: the transaction is not committed)."""
        if self._tx is None:
            raise JournalError("a deferred write outside a transaction")
        self._tx.pending.append((_marks(sql), params))

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        tx = self._tx
        if tx is None:
            raise JournalError("executemany outside a transaction")
        if tx.pending:
            tx.send()
        with tx.conn.cursor() as cur:
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


_LIGHT = INVOICE_LIGHT_COLS.split(", ")
_VERSION = [_LIGHT.index(c) for c in ("updated_at", "state", "attempts", "referencia", "uuid")]


def _version(row: Sequence[Any]) -> tuple[Any, ...]:
    """What says a row (of ``INVOICE_LIGHT_COLS``) is the version whose documents were
    remembered."""
    return tuple(row[i] for i in _VERSION)


def _version_of(e: Entry) -> tuple[Any, ...]:
    return (e.updated_at, str(e.state), e.attempts, e.referencia, e.uuid)


def _docs_of(e: Entry) -> tuple[Any, ...]:
    return (e.payload, e.stamped_xml, e.acuse)


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
        self._docs: dict[int, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
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
            check=ConnectionPool.check_connection,  # a server restarted: stale ones replaced
            configure=functools.partial(_configure, idle_ms=int(idle_seconds * 1000)),
        )

    def close(self) -> None:
        self._pool.close()

    @property
    def _db(self) -> _Conn:  # type: ignore[override]
        return _Conn(self._pool, getattr(self._local, "tx", None))

    def _write(self, db: Any, sql: str, params: Sequence[Any] = ()) -> None:
        db.defer(sql, params)

    # --- an invoice's documents, remembered ---------------------------------------------
    #
    # A transition reads the row under its lock (``FOR UPDATE``) without its documents
    # (payload, stamped_xml, acuse: kilobytes each, which the row's every step would send
    # again); they come from what this journal last read or wrote of the row, when the row
    # is still that version: the same ``updated_at`` — which every write of a document sets,
    # to the clock of the write — state, attempts, referencia and UUID. Otherwise (another
    # instance wrote it, nothing remembered) they are read, still under the lock. Only what
    # was committed is remembered (a transaction rolled back leaves nothing); unfinished
    # invoices only, at most ``_DOCS_KEPT``.

    _DOCS_KEPT = 4096

    def _keep(self, e: Entry) -> Entry:
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            tx.kept.append(e)
        else:
            self._remember(e)
        return e

    def _remember(self, e: Entry) -> None:
        if e.state in FINAL_STATES:
            self._docs.pop(e.id, None)
            return
        if len(self._docs) >= self._DOCS_KEPT:
            self._docs.clear()
        self._docs[e.id] = (_version_of(e), _docs_of(e))

    def _get_locked(self, invoice_id: int | None) -> Entry:
        tx = getattr(self._local, "tx", None)
        if tx is None:  # a read (get_id): the whole row
            return self._keep(super()._get_locked(invoice_id))
        db = self._db
        row = db.execute(
            f"SELECT {INVOICE_LIGHT_COLS} FROM invoices WHERE id=? FOR UPDATE", (invoice_id,)
        ).fetchone()
        if not row:
            raise JournalError(f"no invoice with id {invoice_id}")
        version = _version(row)
        # what this transaction wrote or read of it (the newest first), or the last commit's
        docs = next((_docs_of(e) for e in reversed(tx.kept) if e.id == row[0]
                     and _version_of(e) == version), None)  # fmt: skip
        known = self._docs.get(row[0])
        if docs is None and known is not None and known[0] == version:
            docs = known[1]
        if docs is None:
            docs = db.execute(
                "SELECT payload, stamped_xml, acuse FROM invoices WHERE id=?", (row[0],), docs=True
            ).fetchone()
        return self._keep(entry_of_light(row, docs))

    @contextlib.contextmanager
    def _tx(  # type: ignore[override]
        self, *, flush: bool = True, timeout: float | None = None
    ) -> Iterator[_Conn]:
        """One transaction on a pooled connection the thread holds until the commit (or
        part of the thread's enclosing ``batch``); ``flush=False``: committed without waiting
        for the server's disk (see the module's docstring); ``timeout``: how long to wait for
        a connection (default the pool's: 30 s), psycopg_pool.PoolTimeout after it. Its
        ``BEGIN`` and deferred writes go in one round trip with its next statement that
        returns something, or with the ``COMMIT`` (see the module's docstring)."""
        local = self._local
        if getattr(local, "tx", None) is not None:
            yield _Conn(self._pool, local.tx)
            return
        from psycopg.pq import TransactionStatus

        with self._pool.connection(timeout=timeout) as conn:
            tx = local.tx = _Tx(conn, _BEGIN if self._full and flush else _BEGIN_NO_WAIT)
            try:
                yield _Conn(self._pool, tx)
                if tx.sent:
                    _committable(conn)
                if tx.sent and conn.info.transaction_status != TransactionStatus.INTRANS:
                    # a statement failed and the block went on: never committed as if whole
                    raise JournalError("the journal's transaction failed; nothing was recorded")
                if tx.sent or len(tx.pending) > 1:  # else nothing was done: nothing to send
                    tx.send(("COMMIT", ()))
                for e in tx.kept:
                    self._remember(e)
            except BaseException:
                if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(Exception):  # the pool rolls back otherwise
                        conn.execute(b"ROLLBACK")
                raise
            finally:
                local.tx = None
