"""``cfdi-connector demo --tables [--dsn CONNECTION]``: the connector on database tables.

Creates the default interface tables (``cfdi_factura``/``cfdi_concepto``; with no ``--dsn`` in
a SQLite file of the demo through the SQLite ODBC driver), inserts sample invoices as an ERP
would (lines first, ``estado = 'PENDIENTE'`` last; one with an error), starts the sandbox PAC on
127.0.0.1, runs the daemon until every row is written back and prints what each row received.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.adapters.table import odbc
from connector.adapters.table.odbc import ConnSpec, TableError
from connector.adapters.table.schema import CONCEPTO, FACTURA

SERIE = "T"
RECEPTOR = ("CACX7605101P8", "XOCHILT CASAS CHAVEZ", "26015", "612")
# (uso_cfdi, [(clave, descripción, cantidad, precio)]): the last one's UsoCFDI is not SAT's
SAMPLES = [
    ("G03", [("43201800", "Memoria USB 32 GB", "2", "100.00")]),
    ("G03", [("43211503", "Computadora portátil", "1", "15999.00"),
             ("43211708", "Mouse inalámbrico", "3", "249.50")]),  # fmt: skip
    ("G01", [("56101504", "Silla de oficina", "4", "1890.00")]),
    ("X99", [("43201800", "Memoria USB 64 GB", "1", "180.00")]),
]
NO_DRIVER = (
    "CONN-BD-DRIVER No está instalado el controlador ODBC de SQLite que usa la demostración. "
    "En Debian/Ubuntu: apt-get install unixodbc libsqliteodbc; en Windows: el controlador "
    "SQLite ODBC de http://www.ch-werner.de/sqliteodbc/ (o use --dsn con su base de datos)."
)


def _create_tables(conn: Any, dialect: Any) -> None:
    """The default tables, when they are not there yet (never dropped or altered)."""
    cur = conn.cursor()
    existing = {t.table_name.lower() for t in cur.tables(tableType="TABLE")}
    for stmt in dialect.ddl():
        name = stmt.split("(")[0].split()[-1].strip('"`[]').lower()
        if name in existing or (stmt.upper().startswith("CREATE INDEX") and existing):
            continue
        cur.execute(stmt)
    conn.commit()


def _insert_samples(conn: Any, run: str, when: datetime) -> list[int]:
    """The sample invoices, as an ERP writes them; their ids."""
    cur = conn.cursor()
    first = int(cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {FACTURA.name}").fetchone()[0]) + 1
    ids = []
    for n, (uso, lines) in enumerate(SAMPLES):
        row_id = first + n
        for linea, (clave, desc, cantidad, precio) in enumerate(lines, 1):
            cur.execute(
                f"INSERT INTO {CONCEPTO.name} (factura_id, linea, clave_prod_serv, cantidad, "
                "clave_unidad, unidad, descripcion, valor_unitario, objeto_imp, iva_tasa) "
                "VALUES (?, ?, ?, ?, 'H87', 'Pieza', ?, ?, '02', '0.160000')",
                row_id, linea, clave, cantidad, desc, precio,
            )  # fmt: skip
        rfc, nombre, cp, regimen = RECEPTOR
        cur.execute(
            f"INSERT INTO {FACTURA.name} (id, serie, folio, fecha, receptor_rfc, receptor_nombre, "
            "receptor_cp, receptor_regimen, uso_cfdi, forma_pago, metodo_pago, moneda, estado) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '03', 'PUE', 'MXN', 'PENDIENTE')",
            row_id, SERIE, f"{run}{row_id}", when.replace(microsecond=0), rfc, nombre, cp,
            regimen, uso,
        )  # fmt: skip
        ids.append(row_id)
    conn.commit()
    return ids


def run_table_demo(base: Path, *, dsn: str | None = None, out: Any = None) -> int:
    from connector.demo.workspace import build_workspace, demo_pipeline
    from connector.pac.sandbox import SandboxPac

    out = out or sys.stdout
    base = base.resolve()
    (base / "var").mkdir(parents=True, exist_ok=True)
    conn_str, dialect_name = dsn, None
    if conn_str is None:
        conn_str, dialect_name = f"DRIVER={{SQLite3}};DATABASE={base / 'var' / 'erp.sqlite'}", "sqlite"
    try:
        conn, dialect = odbc.connect(ConnSpec(conn_str, dialect=dialect_name))
    except TableError as exc:
        print(NO_DRIVER if exc.code == "CONN-BD-DRIVER" and dsn is None else
              f"{exc.code} {exc.message}", file=out)  # fmt: skip
        return 2
    try:
        _create_tables(conn, dialect)
        journal = base / "var" / "journal-tablas.sqlite"
        run = datetime.now().strftime("R%H%M%S") if journal.exists() else ""  # new folios
        ids = _insert_samples(conn, run, datetime.now())
    finally:
        conn.close()
    print(f"Tablas cfdi_factura y cfdi_concepto en {conn_str if dsn else base / 'var/erp.sqlite'}",
          file=out)  # fmt: skip
    print(f"Filas PENDIENTE insertadas (como lo haría el ERP): id {ids[0]}…{ids[-1]}", file=out)
    sandbox = SandboxPac.demo(base / "var" / "sandbox-pac.db")
    sandbox.start()
    try:
        config = build_workspace(
            base,
            timbrado_url=sandbox.fel_timbrado_url,
            remote_url=sandbox.fel_remote_url,
            sat_cert_der=sandbox.certificate_der,
            sat_status_url=sandbox.sat_status_url,
            table=(conn_str, dialect_name or dialect.name),
        )
        pipe = demo_pipeline(config, sandbox, out)
        if pipe is None:
            return 2
        try:
            done = pipe.run_until_idle(timeout=300)
        finally:
            pipe.close()
    finally:
        sandbox.close()
    _report(conn_str, dialect_name, ids, out)
    print(f"Configuración: {config}   Bitácora: {base / 'var'}", file=out)
    if not done:
        print("La demo no terminó a tiempo; revise var/connector.log.", file=out)
        return 1
    return 0


def _report(conn_str: str, dialect: str | None, ids: list[int], out: Any) -> None:
    conn, _ = odbc.connect(ConnSpec(conn_str, dialect=dialect))
    try:
        marks = ", ".join("?" for _ in ids)
        got = conn.cursor().execute(
            f"SELECT id, serie, folio, estado, uuid, error_codigo, error_mensaje, xml "
            f"FROM {FACTURA.name} WHERE id IN ({marks}) ORDER BY id",
            *ids,
        ).fetchall()
        conn.commit()
    finally:
        conn.close()
    print("\nLo que el conector escribió en cada fila de cfdi_factura:", file=out)
    for row_id, serie, folio, estado, uuid, code, message, xml in got:
        head = f"  id {row_id:<4} {serie}{folio:<10} {estado:<10}"
        if uuid:
            print(f"{head} uuid = {uuid}  (xml: {len(xml or '')} caracteres)", file=out)
        else:
            print(f"{head} error_codigo = {code}", file=out)
            print(f"       error_mensaje = {(message or '')[:300]}", file=out)
