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

from connector.journal.model import JournalAway, JournalError
from connector.journal.postgres.schema import migrate
from connector.journal.sqlite.base import SqliteBase


@functools.lru_cache(maxsize=512)
def _marks(sql: str) -> str:
    """``?`` marks as psycopg's ``%s`` (a literal ``%`` doubled). The journal's SQL has no
    ``?`` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


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
    thread's transaction, or (``conn`` None) each statement on a connection of the pool."""

    def __init__(self, pool: Any, conn: Any = None) -> None:
        self._pool = pool
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._conn is not None:
            return self._conn.execute(_marks(sql), params)
        with self._pool.connection() as conn:
            cur = conn.execute(_marks(sql), params)
            rows = cur.fetchall() if cur.description is not None else []
            return _Rows(rows, cur.rowcount)

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
        return _Conn(self._pool, getattr(self._local, "conn", None))

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
        with self._pool.connection(timeout=timeout) as conn, conn.transaction():
            if not (self._full and flush):
                conn.execute("SET LOCAL synchronous_commit TO off")
            local.conn = conn
            try:
                yield _Conn(self._pool, conn)
            finally:
                local.conn = None
            _committable(conn)
