"""A table source: claims pending rows of the default interface tables over ODBC, hands each
invoice as a ``ParsedRecord`` tree to the mapping engine, and writes each outcome back into its
row. It knows nothing of the journal or the PAC (the pipeline's seam calls it).

Claiming (one winner per row, whatever number of instances): candidates are rows ``PENDIENTE``
or ``EN_PROCESO`` whose lease expired; each is taken by a guarded ``UPDATE … WHERE id = ? AND
<still pending or lease expired>`` and counts as ours only when the driver reports one row
(MariaDB is asked for matched rows, and the claim always changes ``intentos`` too); the claims
are committed before any work. A row taken again after a lease keeps its ``referencia``, so the
new holder asks the PAC by that referencia before sending anything.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from connector.adapters.base import Adapter, InvoiceInput, ParsedRecord, problem
from connector.cfdi.errors import Problem

from . import complements as cx
from . import odbc
from .dialects import Dialect
from .odbc import ConnSpec
from .schema import CONCEPTO, ERROR, FACTURA, OWNED, STAMPED
from .statements import Statements
from .values import _Counted, _decode_problem, _fields
from .writeback import returned, write_back_work

if TYPE_CHECKING:
    from connector.mappers import Mapping

DEFAULT_MAPPING = Path(__file__).resolve().parents[1] / "layouts" / "table_default.mapping.toml"
MEXICO = ZoneInfo("America/Mexico_City")
_CHUNK = 500  # ids per IN (...) list (SQL Server allows 2,100 parameters)
T = TypeVar("T")

# the ERP's columns, and of the connector's own only what a claim hands on
_HEADER_COLUMNS = [
    c.name for c in FACTURA.columns if c.name not in OWNED or c.name in ("referencia", "intentos")
]
_LINE_COLUMNS = CONCEPTO.names


def default_mapping() -> Mapping:
    """The shipped mapping of the default tables (``layouts/table_default.mapping.toml``) with
    the complement sections of the DAT default mapping (``complements.table_mapping``)."""
    return cx.table_mapping(DEFAULT_MAPPING)


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


@dataclass
class Claimed:
    """One claimed invoice: its row id, the referencia in its row, how many times it has been
    claimed (``attempt`` > 1: taken again after a lease, ask the PAC first) and its records."""

    id: int
    referencia: str
    attempt: int
    record: ParsedRecord
    unreadable: bool = False  # its header could not be read: only that is reported

    @property
    def problems(self) -> list[Problem]:
        return self.record.problems


@dataclass
class Outcome:
    """What is written back into an invoice's row."""

    estado: str  # TIMBRADO | ERROR
    uuid: str | None = None
    fecha_timbrado: str | datetime | None = None  # the TFD's FechaTimbrado
    xml: bytes | str | None = None
    acuse: bytes | str | None = None
    error_codigo: str | None = None
    error_mensaje: str | None = None

    @classmethod
    def stamped(
        cls,
        uuid: str,
        fecha_timbrado: str | datetime | None,
        xml: bytes | str,
        acuse: bytes | str | None,
    ) -> Outcome:
        return cls(STAMPED, uuid, fecha_timbrado, xml, acuse)

    @classmethod
    def error(cls, problems: Sequence[Problem]) -> Outcome:
        codes = ", ".join(dict.fromkeys(p.code for p in problems))
        text = " | ".join(
            f"{p.code}: {p.message}" + (f" ({p.location})" if p.location else "") for p in problems
        )
        return cls(ERROR, error_codigo=codes, error_mensaje=text)


class _TableAdapter(Adapter):
    """The mapping step of folder adapters, reused for rows (``parse`` is not used)."""

    name = "table"

    def parse(self, data: bytes, filename: str) -> Iterator[ParsedRecord]:  # pragma: no cover
        raise NotImplementedError("table sources hand records, not bytes")

    def default_mapping(self) -> Mapping | None:
        return default_mapping()


@dataclass
class TableSource:
    """The default tables ``cfdi_factura``/``cfdi_concepto`` (names configurable, e.g.
    ``dbo.cfdi_factura``) of one database. ``emisor`` gives the EMISOR record the default
    mapping reads: Rfc, Nombre, RegimenFiscal, LugarExpedicion. ``mapping``: the source's own
    mapping (with its lookup tables); None: the shipped default, and then the columns it cannot
    do without are checked as the rows are read (``CONN-BD-NULO``). One connection: use one
    ``TableSource`` per thread."""

    spec: ConnSpec
    emisor: dict[str, str] = field(default_factory=dict)
    factura_table: str = FACTURA.name
    concepto_table: str = CONCEPTO.name
    skip_locked: bool | None = None  # None: where the engine is known to have it (PostgreSQL)
    mapping: Mapping | None = None
    # the complements whose child tables are read (``complements.COMPLEMENTS``)
    complements: tuple[str, ...] = ()
    now: Callable[[], datetime] = field(default=lambda: datetime.now(MEXICO), repr=False)
    # when set: every statement and commit sent to the database counted (bench/bench_tables.py)
    round_trips: dict[str, int] | None = field(default=None, repr=False)
    _conn: Any = field(default=None, init=False, repr=False)
    _dialect: Dialect | None = field(default=None, init=False, repr=False)
    _fresh: bool = field(default=False, init=False, repr=False)

    # --- connection -----------------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            self._connection()
        assert self._dialect is not None
        return self._dialect

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn, self._dialect = odbc.connect(self.spec)
            self._fresh = True
        return self._conn

    def close(self) -> None:
        odbc.close_quietly(self._conn)
        self._conn = None

    def _run(self, work: Callable[[Any], T], where: str, *, retry: bool = True) -> T:
        """``work(cursor)`` in one transaction (committed by ``work``): rolled back on any
        error; a connection-class error drops the connection (a killed connection still says
        it is open) and, when the connection was an old one and ``retry``, the unit of work
        runs once more on a new connection (it changed nothing: it was rolled back)."""
        conn = self._connection()
        was_fresh, self._fresh = self._fresh, False
        try:
            cur = conn.cursor()
            return work(cur if self.round_trips is None else _Counted(cur, self.round_trips))
        except odbc.pyodbc.Error as exc:
            err = odbc.classify(exc, self.spec.password, where=where)
            if err.code == "CONN-BD-CONEXION":
                self.close()
                if retry and not was_fresh:
                    return self._run(work, where, retry=False)
            else:
                try:
                    conn.rollback()
                except odbc.pyodbc.Error:
                    self.close()
            raise err from None
        except BaseException:  # not the database's (a value pyodbc cannot send): no locks kept
            try:
                conn.rollback()
            except odbc.pyodbc.Error:
                self.close()
            raise

    def _t(self, name: str) -> str:
        return ".".join(self.dialect.q(part) for part in name.split("."))

    def _sql(self) -> Statements:
        return Statements(self.dialect, self.factura_table)

    # --- claiming -------------------------------------------------------------------------------

    def claim_batch(self, limit: int, lease_seconds: int, instance: str) -> list[Claimed]:
        """Up to ``limit`` invoices now ours (committed before any work), with their lines.

        ``TableError`` (``transient``: pause this source and try again later) when the database
        fails; rows claimed in a failed attempt were rolled back or are claimed with a lease.
        """
        d = self.dialect
        skip = self.skip_locked if self.skip_locked is not None else d.name == "postgresql"
        skip = skip and d.supports_skip_locked
        sql = self._sql()
        select, update = sql.candidates(limit, skip), sql.claim(lease_seconds)
        now = d.timestamp_param(self.now().replace(tzinfo=None))

        def claim(cur: Any) -> list[int]:
            ids = [int(r[0]) for r in cur.execute(select).fetchall()]
            if not skip:
                cur.connection.commit()  # no read snapshot held into the writes (SQLite)
            if ids and skip and d.batch_updates:  # rows locked by the select: one statement
                params: list[Any] = [now, instance]
                for row_id in ids:
                    params += [row_id, f"F{row_id}-{secrets.token_hex(6)}"]
                cur.execute(sql.claim_many(lease_seconds, len(ids)), *params)
                got = {int(r[0]) for r in returned(cur)}
                cur.connection.commit()
                return [row_id for row_id in ids if row_id in got]
            won = []
            for row_id in ids:
                cur.execute(update, f"F{row_id}-{secrets.token_hex(6)}", now, instance, row_id)
                if cur.rowcount == 1:
                    won.append(row_id)
            cur.connection.commit()
            return won

        won = self._run(claim, "reclamar filas")
        return self.read(won) if won else []

    def pending(self) -> tuple[int, Any]:
        """How many invoices wait to be claimed, and the oldest one's fecha (None: unknown)."""
        return self._count(self._sql().pending())

    def _count(self, sql: str) -> tuple[int, Any]:
        def work(cur: Any) -> tuple[int, Any]:
            n, oldest = cur.execute(sql).fetchone()
            cur.connection.commit()
            return int(n or 0), oldest

        return tuple(self._run(work, "contar filas pendientes"))  # type: ignore[return-value]

    def held(self, instance: str) -> list[Claimed]:
        """The invoices of the rows ``instance`` holds (a restart takes them back at once)."""
        sql = self._sql().held()

        def work(cur: Any) -> list[int]:
            ids = [int(r[0]) for r in cur.execute(sql, instance).fetchall()]
            cur.connection.commit()
            return ids

        ids = self._run(work, "buscar filas tomadas")
        return self.read(ids) if ids else []

    def read(self, ids: Sequence[int]) -> list[Claimed]:
        """The invoices of rows ``ids`` (headers, then all their lines in one query per chunk)
        as record trees; each bad value is a coded problem on its invoice."""
        out: list[Claimed] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            heads = self._fetch(self.factura_table, _HEADER_COLUMNS, "id", chunk)
            lines = self._fetch(self.concepto_table, _LINE_COLUMNS, "factura_id", chunk)
            extras = self._read_complements(chunk)
            for row_id in chunk:
                head = heads.get(row_id)
                if head is None:
                    continue  # gone (deleted by the ERP) between claim and read
                out.append(self._claimed(row_id, head, lines.get(row_id, []), extras))
        return out

    def complement_tables(self) -> dict[cx.ChildTable, str]:
        """The configured complements' child tables → their names in this database."""
        return {c: cx.table_name(c, self.factura_table) for c in cx.child_tables(self.complements)}

    def _read_complements(self, chunk: list[int]) -> dict[cx.ChildTable, dict[int, list[Any]]]:
        """Each configured child table's rows of these invoices: one query per table."""
        return {
            child: self._fetch(name, child.table.names, "factura_id", chunk)
            for child, name in self.complement_tables().items()
        }

    def _fetch(
        self, table: str, columns: list[str], key: str, ids: list[int]
    ) -> dict[int, list[Any]]:
        """rows of ``table`` whose ``key`` is in ``ids`` → {id: [row dict | UnicodeError]}."""
        d = self.dialect
        cols = ", ".join(d.q(c) for c in columns)
        lined = key == "factura_id" and "linea" in columns
        order = f"{d.q(key)}" + (f", {d.q('linea')}" if lined else "")

        def query(cur: Any, subset: list[int]) -> list[dict[str, Any]]:
            marks = ", ".join("?" for _ in subset)
            cur.execute(
                f"SELECT {cols} FROM {self._t(table)} WHERE {d.q(key)} IN ({marks}) ORDER BY {order}",
                *subset,
            )
            names = [c[0].lower() for c in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        def work(cur: Any) -> dict[int, list[Any]]:
            found: dict[int, list[Any]] = {}
            try:
                rows = query(cur, ids)
            except (UnicodeError, odbc.pyodbc.Error) as exc:
                # some row's text is not in the configured encoding, or the server cannot
                # hand it in the connection's (PostgreSQL: 22P05): find which, one id at a
                # time; any other failure is the database's, not a row's
                if self._unreadable(exc, cur) is None:
                    raise
                rows = []
                for one in ids:
                    try:
                        rows.extend(query(cur, [one]))
                    except (UnicodeError, odbc.pyodbc.Error) as exc:
                        bad = self._unreadable(exc, cur)
                        if bad is None:
                            raise
                        found.setdefault(one, []).append(bad)
            for r in rows:
                found.setdefault(int(r[key]), []).append(r)
            cur.connection.commit()
            return found

        return self._run(work, f"leer {table}")

    def _unreadable(self, exc: Exception, cur: Any) -> UnicodeError | None:
        """A failure to read one row's values (its text in another encoding, SQLSTATE class
        22 from the server) as a ``UnicodeError`` for that row; None: not the row's fault.
        The server's failure is rolled back (PostgreSQL refuses more in that transaction)."""
        if isinstance(exc, UnicodeError):
            return exc
        err = odbc.classify(exc, self.spec.password)
        if not err.sqlstate.startswith("22"):
            return None
        cur.connection.rollback()
        return UnicodeError(err.message)

    def _claimed(
        self,
        row_id: int,
        heads: list[Any],
        lines: list[Any],
        extras: dict[cx.ChildTable, dict[int, list[Any]]] | None = None,
    ) -> Claimed:
        fac, con = self.factura_table, self.concepto_table
        head = heads[0]
        root = ParsedRecord("FACTURA", {}, row_id, fac)
        if isinstance(head, UnicodeError):
            root.problems.append(_decode_problem(head, f"{fac}:{row_id}", self.spec.encoding))
            claim = self._fetch(fac, ["id", "referencia", "intentos"], "id", [row_id])[row_id][0]
            return Claimed(
                row_id, str(claim["referencia"]), int(claim["intentos"]), root, unreadable=True
            )
        required = self.mapping is None
        root.fields = _fields(head, FACTURA, f"{fac}:{row_id}", root.problems, required)
        root.add(ParsedRecord("EMISOR", dict(self.emisor), row_id, "configuración de la fuente"))
        where = f"{con}(factura_id={row_id})"
        for n, line in enumerate(lines, 1):
            if isinstance(line, UnicodeError):
                root.problems.append(_decode_problem(line, where, self.spec.encoding))
                continue
            rec = ParsedRecord("CONCEPTO", {}, int(line.get("linea") or n), where)
            rec.fields = _fields(line, CONCEPTO, rec.location, root.problems, required)
            rec.fields["iva_factor"] = (
                "Tasa"
                if rec.fields.get("iva_tasa")
                else "Exento"
                if rec.fields.get("objeto_imp") == "02"
                else ""
            )
            root.add(rec)
        names = self.complement_tables()
        cx.attach(root, row_id, {c: rows.get(row_id, []) for c, rows in (extras or {}).items()},
                  names, required=required, encoding=self.spec.encoding)  # fmt: skip
        if not lines:
            root.problems.append(
                problem(
                    "CONN-BD-SIN-CONCEPTOS",
                    f"La factura no tiene líneas en {con} (factura_id = {row_id}); el ERP debe "
                    "escribir las líneas antes de poner estado = 'PENDIENTE'.",
                    f"{fac}:{row_id}",
                )
            )
        return Claimed(row_id, str(head.get("referencia") or ""), int(head.get("intentos") or 0), root)

    def load(self, claimed: Sequence[Claimed]) -> list[InvoiceInput]:
        """Each claimed invoice mapped with the source's mapping, in order; a value the row
        already reported (NULL, float…) is not reported again by the mapping."""
        records = iter([c.record for c in claimed])
        inputs = list(_TableAdapter()._map_records(records, self.mapping))
        for inp, c in zip(inputs, claimed, strict=True):
            if c.unreadable:  # every field "missing" would only repeat that
                inp.problems = list(c.problems)
                continue
            seen = {p.location for p in c.problems}
            inp.problems = c.problems + [
                p for p in inp.problems[len(c.problems) :] if p.location not in seen
            ]
        return inputs

    def set_referencias(self, items: Sequence[tuple[int, str]], instance: str) -> int:
        """Rows (id, referencia) this instance holds get that referencia."""
        sql = self._sql().set_referencia()
        return self._each(sql, [(ref, i, instance) for i, ref in items], "escribir referencias")

    def renew(self, ids: Sequence[int], lease_seconds: int, instance: str) -> int:
        """Extend the lease of rows this instance still holds (long PAC outages)."""
        sql = self._sql().renew(lease_seconds)
        return self._each(sql, [(i, instance) for i in ids], "renovar reclamos")

    # --- writing back ---------------------------------------------------------------------------

    def write_back(self, row_id: int, outcome: Outcome) -> bool:
        """Write an outcome into its row (after the journal recorded it). Idempotent: the same
        outcome twice leaves the same values. A ``TIMBRADO`` row is never turned into ``ERROR``
        nor given another UUID: then nothing is written and the answer is False."""
        return self.write_back_many([(row_id, outcome)])[0]

    def write_back_many(self, items: Sequence[tuple[int, Outcome]]) -> list[bool]:
        """``write_back`` of several rows in one transaction (one commit): each answer says
        whether that row was written."""
        work = write_back_work(self.dialect, self._sql(), self.spec.encoding, items)
        return self._run(work, "escribir resultados")

    def release(self, ids: Sequence[int], instance: str) -> int:
        """Give back rows this instance claimed and did not start (shutdown): PENDIENTE."""
        sql = self._sql().release()
        return self._each(sql, [(i, instance) for i in ids], "liberar filas")

    def reset(self, row_id: int) -> bool:
        """Replay: an ``ERROR`` row back to ``PENDIENTE`` (its referencia stays, so a send
        that may have reached the PAC is recovered, never stamped twice)."""
        sql = self._sql().reset()
        return self._each(sql, [(row_id,)], "reiniciar la fila") == 1

    def orphan_lines(self, limit: int = 100) -> list[Problem]:
        """Lines whose ``factura_id`` has no header row (``CONN-BD-LINEA-HUERFANA``): they can
        hold no error columns of their own, so they are reported (``status``/``check-config``)."""
        d = self.dialect
        con, fac = self._t(self.concepto_table), self._t(self.factura_table)
        sql = d.select_candidates(
            f"{con} c",
            [f"DISTINCT c.{d.q('factura_id')}"],
            f"NOT EXISTS (SELECT 1 FROM {fac} f WHERE f.{d.q('id')} = c.{d.q('factura_id')})",
            f"c.{d.q('factura_id')}",
            limit,
            False,
        )

        def work(cur: Any) -> list[int]:
            ids = [int(r[0]) for r in cur.execute(sql).fetchall()]
            cur.connection.commit()
            return ids

        return [
            problem(
                "CONN-BD-LINEA-HUERFANA",
                f"Hay líneas en {self.concepto_table} con factura_id = {i} pero no existe esa "
                f"factura en {self.factura_table}; no se procesan.",
                f"{self.concepto_table}(factura_id={i})",
            )
            for i in self._run(work, "buscar líneas sin factura")
        ]

    def _each(self, sql: str, rows: list[tuple[Any, ...]], where: str) -> int:
        def work(cur: Any) -> int:
            n = 0
            for params in rows:
                cur.execute(sql, *params)
                n += max(cur.rowcount, 0)
            cur.connection.commit()
            return n

        return self._run(work, where)
