"""``check_table_source``: every problem of a table source's database at once (for
``check-config``): driver not installed (naming the package to install), connection refused,
login failed, database, table or column missing, a column of the wrong type."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

from connector.cfdi.errors import Problem

from . import odbc
from .complements import child_tables, table_name
from .odbc import ConnSpec, TableError
from .schema import CANCELACION, CONCEPTO, FACTURA, RESULTADO, Column, Table

# Python types pyodbc gives for each kind (SQLite keeps money and timestamps as TEXT)
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "key": (int, Decimal),
    "ref": (int, Decimal),
    "int": (int, Decimal),
    "text": (str,),
    "clob": (str,),
    "money": (Decimal, str),
    "rate": (Decimal, str),
    "timestamp": (dt.datetime, dt.date, str),
}
_WANTED = {
    "key": "un entero",
    "ref": "un entero",
    "int": "un entero",
    "text": "texto (VARCHAR)",
    "clob": "texto largo (TEXT/CLOB)",
    "money": "DECIMAL/NUMERIC (o TEXT en SQLite)",
    "rate": "DECIMAL/NUMERIC (o TEXT en SQLite)",
    "timestamp": "fecha y hora (TIMESTAMP/DATETIME)",
}


_NO_RESULTS = (
    "La tabla de resultados (resultados = ...) todavía no está disponible en {}: use las "
    "tablas cfdi_factura y cfdi_concepto."
)


def _p(code: str, message: str, where: str, path: str = "") -> Problem:
    return Problem(code, path, message, where)


def check_table_source(
    spec: ConnSpec,
    *,
    factura_table: str = FACTURA.name,
    concepto_table: str = CONCEPTO.name,
    source: str = "",
    results_table: str | None = None,
    factura_query: str | None = None,
    concepto_query: str | None = None,
    cancel_table: str | None = None,
    complements: tuple[str, ...] = (),
) -> list[Problem]:
    """Connects (never writes) and lists every problem; [] when the source is usable.
    ``results_table``: results-table mode — the header and lines sources (tables, views or
    the queries) need only the key, the join and the required columns; the results table
    needs all of its own. ``complements``: their child tables (``complements.py``) too."""
    where = source or "fuente de tablas"
    try:
        conn, dialect = odbc.connect(spec)
    except TableError as exc:
        return [_p(exc.code, exc.message, where)]
    problems: list[Problem] = []
    try:
        if results_table is None:
            for table, name in ((FACTURA, factura_table), (CONCEPTO, concepto_table)):
                problems += _check_table(conn, dialect, table, name, spec, where)
        else:
            for table, name, sql in ((FACTURA, factura_table, factura_query),
                                     (CONCEPTO, concepto_table, concepto_query)):  # fmt: skip
                problems += _check_table(conn, dialect, _read_only(table), name, spec, where, sql,
                                         read_only=True)  # fmt: skip
            problems += _check_table(conn, dialect, RESULTADO, results_table, spec, where)
            try:
                dialect.insert_new("t", ["id"], ["?"])
            except NotImplementedError:
                problems.append(_p("CONN-BD-DIALECTO", _NO_RESULTS.format(dialect.label), where))
        if cancel_table:
            problems += _check_table(conn, dialect, CANCELACION, cancel_table, spec, where)
        for child in child_tables(complements):  # the ERP's: read only
            name = table_name(child, factura_table)
            problems += _check_table(conn, dialect, child.table, name, spec, where,
                                     read_only=results_table is not None)  # fmt: skip
    finally:
        odbc.close_quietly(conn)
    return problems


def _read_only(table: Table) -> Table:
    """What a results-mode source must yield: the key, the join and the required columns."""
    keep = {"id", "factura_id", "linea"}
    return replace(table, columns=tuple(c for c in table.columns if c.name in keep or c.required))


def _check_table(
    conn: Any,
    dialect: Any,
    table: Table,
    name: str,
    spec: ConnSpec,
    where: str,
    query: str | None = None,
    *,
    read_only: bool = False,
) -> list[Problem]:
    """Every problem of one table (or query): missing, a column missing or of the wrong type.
    ``read_only``: the ERP's own source in results-table mode, only read: its text columns may
    be shorter than ours."""
    qname = f"({query}) src" if query else ".".join(dialect.q(p) for p in name.split("."))
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT * FROM {qname} WHERE 1 = 0")
        described = {d[0].lower(): d for d in cur.description}
        conn.rollback()
    except odbc.pyodbc.Error as exc:
        conn.rollback()
        err = odbc.classify(exc, spec.password, where=name)
        if query:
            return [_p(err.code, f"La consulta de {name} no se puede ejecutar: {err.message}",
                       f"{where}: {name}")]  # fmt: skip
        if err.code == "CONN-BD-ESQUEMA":
            return [
                _p(
                    "CONN-BD-TABLA",
                    f"No existe la tabla {name} (o el usuario no puede leerla); créela con "
                    f"'cfdi-connector tables-ddl --dialect {dialect.name}'.",
                    f"{where}: {name}",
                )
            ]
        return [_p(err.code, err.message, f"{where}: {name}")]
    out: list[Problem] = []
    declared = _sqlite_declared(conn, qname) if dialect.name == "sqlite" and not query else {}
    for col in table.columns:
        d = described.get(col.name)
        place = f"{where}: {name}.{col.name}"
        decl = declared.get(col.name, "")
        if d is not None and col.kind in ("money", "rate") and declared and "TEXT" not in decl:
            out.append(
                _p(
                    "CONN-BD-TIPO",
                    f"La columna {name}.{col.name} es {decl or 'sin tipo'} en SQLite: SQLite "
                    "guarda esos números como punto flotante y se pierden decimales; declárela "
                    "TEXT (como en 'tables-ddl --dialect sqlite').",
                    place,
                    col.name,
                )
            )
            continue
        if d is None:
            out.append(
                _p(
                    "CONN-BD-COLUMNA",
                    f"Falta la columna {col.name} en la tabla {name} (debe ser "
                    f"{_WANTED[col.kind]}).",
                    place,
                    col.name,
                )
            )
            continue
        problem = _type_problem(col, d, name, place, read_only=read_only)
        if problem is not None:
            out.append(problem)
    return out


def _type_problem(
    col: Column, d: Any, table: str, place: str, *, read_only: bool = False
) -> Problem | None:
    pytype, scale = d[1], d[5]
    if pytype is float and col.kind in ("money", "rate"):
        return _p(
            "CONN-BD-TIPO",
            f"La columna {table}.{col.name} es de punto flotante (FLOAT/DOUBLE/REAL): los "
            "importes no se guardan exactos; use DECIMAL(18,6) (o TEXT en SQLite).",
            place,
            col.name,
        )
    if not issubclass(pytype, _ACCEPTED[col.kind]):
        return _p(
            "CONN-BD-TIPO",
            f"La columna {table}.{col.name} es de tipo {pytype.__name__}; debe ser "
            f"{_WANTED[col.kind]}.",
            place,
            col.name,
        )
    if col.kind in ("key", "ref", "int") and pytype is Decimal and scale:
        return _p(
            "CONN-BD-TIPO",
            f"La columna {table}.{col.name} tiene decimales; debe ser un entero.",
            place,
            col.name,
        )
    if col.kind == "text" and d[3] and 0 < d[3] < col.size and not read_only:
        return _p(
            "CONN-BD-TIPO",
            f"La columna {table}.{col.name} admite {d[3]} caracteres; se necesitan "
            f"{col.size}.",
            place,
            col.name,
        )
    return None


def _sqlite_declared(conn: Any, qname: str) -> dict[str, str]:
    """column → declared type (upper case): SQLite's affinity comes from it, and its ODBC
    driver describes a DECIMAL column holding floats as text."""
    rows = conn.cursor().execute(f"PRAGMA table_info({qname})").fetchall()
    conn.rollback()
    return {str(r[1]).lower(): str(r[2] or "").upper() for r in rows}
