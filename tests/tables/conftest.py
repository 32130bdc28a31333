"""Real engines over real ODBC drivers: the local PostgreSQL (127.0.0.1:5432) and MariaDB
(127.0.0.1:3306) and a SQLite file through libsqliteodbc. Each test session creates its own
uniquely named databases and drops them at the end (other sessions may run at the same time);
each test gets fresh default tables."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyodbc
import pytest

from connector.adapters.table import ConnSpec, TableSource, get_dialect, odbc

ENGINES = ["postgresql", "mariadb", "sqlite"]
PG = "SERVER=127.0.0.1;PORT=5432;UID=postgres"
MARIA = "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;UID=root"


@dataclass
class Db:
    engine: str
    conn_str: str  # what a source is configured with
    dialect: str

    def spec(self, **kw: Any) -> ConnSpec:
        return ConnSpec(self.conn_str, dialect=self.dialect, timeout_seconds=10, **kw)

    def source(self, **kw: Any) -> TableSource:
        return TableSource(self.spec(), emisor=EMISOR, **kw)

    def connect(self) -> Any:
        """A connection (autocommit) for the test's own SQL, as the ERP would write: with the
        source's connection settings (MariaDB's driver corrupts non-ASCII text bound as
        UTF-16, so text goes as UTF-8, as the source sends it)."""
        conn, _ = odbc.connect(self.spec())
        conn.autocommit = True
        return conn


EMISOR = {
    "Rfc": "EKU9003173C9",
    "Nombre": "ESCUELA KEMPER URGATE",
    "RegimenFiscal": "601",
    "LugarExpedicion": "42501",
}


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Db]]:
    name = f"cfdi_tables_{os.getpid()}_{secrets.token_hex(4)}"
    admin_pg = pyodbc.connect(f"DRIVER={{PostgreSQL Unicode}};{PG};DATABASE=test", autocommit=True)
    admin_my = pyodbc.connect(f"{MARIA};DATABASE=test", autocommit=True)
    admin_pg.execute(f"CREATE DATABASE {name}")
    admin_my.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    sqlite_file = tmp_path_factory.mktemp("sqlite") / f"{name}.sqlite"
    try:
        yield {
            "postgresql": Db("postgresql", f"{PG};DATABASE={name}", "postgresql"),
            "mariadb": Db("mariadb", f"{MARIA};DATABASE={name}", "mariadb"),
            "sqlite": Db("sqlite", f"DRIVER={{SQLite3}};DATABASE={sqlite_file}", "sqlite"),
        }
    finally:
        admin_pg.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        # a failed test may leave a connection in a transaction: it would hold the drop
        for (conn_id,) in admin_my.execute(
            "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
            name,
        ).fetchall():
            with contextlib.suppress(pyodbc.Error):
                admin_my.execute(f"KILL {int(conn_id)}")
        admin_my.execute("SET SESSION lock_wait_timeout = 20")
        admin_my.execute(f"DROP DATABASE IF EXISTS {name}")
        admin_pg.close()
        admin_my.close()


def fresh_tables(d: Db) -> Db:
    conn = d.connect()
    for table in ("cfdi_concepto", "cfdi_factura", "cfdi_cancelacion"):
        with contextlib.suppress(pyodbc.Error):
            conn.execute(f"DROP TABLE {table}")
    for stmt in get_dialect(d.dialect).ddl():
        conn.execute(stmt)
    conn.close()
    return d


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, _databases: dict[str, Db]) -> Db:
    """One engine with fresh default tables (the DDL of ``tables-ddl``)."""
    return fresh_tables(_databases[request.param])


@pytest.fixture
def sqlite_db(_databases: dict[str, Db]) -> Db:
    """The SQLite file with fresh default tables (tests of what no engine changes)."""
    return fresh_tables(_databases["sqlite"])


@pytest.fixture(params=["postgresql", "mariadb"])
def server_db(request: pytest.FixtureRequest, _databases: dict[str, Db]) -> Db:
    """The engines with a server (connections that can be killed, row locks)."""
    return fresh_tables(_databases[request.param])


HEADER = {
    "serie": "A",
    "folio": "1",
    "fecha": None,
    "tipo_comprobante": "I",
    "receptor_rfc": "XAXX010101000",
    "receptor_nombre": "PUBLICO EN GENERAL",
    "receptor_cp": "42501",
    "receptor_regimen": "616",
    "uso_cfdi": "S01",
    "forma_pago": "01",
    "metodo_pago": "PUE",
    "moneda": "MXN",
}
LINE = {
    "linea": 1,
    "clave_prod_serv": "43201800",
    "no_identificacion": "USB32",
    "cantidad": Decimal("2"),
    "clave_unidad": "H87",
    "unidad": "Pieza",
    "descripcion": "Memoria USB 32 GB",
    "valor_unitario": Decimal("100.00"),
    "objeto_imp": "02",
    "iva_tasa": Decimal("0.160000"),
}


def money(db: Db, value: Decimal | None) -> Any:
    """A money value as the ERP writes it: SQLite keeps it as text."""
    return str(value) if db.engine == "sqlite" and value is not None else value


def insert_invoice(
    conn: Any,
    db: Db,
    row_id: int,
    *,
    lines: list[dict[str, Any]] | None = None,
    estado: str | None = "PENDIENTE",
    **header: Any,
) -> None:
    """Lines first, then the header with estado last (as the ERP is told to)."""
    for line in [LINE] if lines is None else lines:
        values = {"factura_id": row_id, **line}
        values = {k: money(db, v) if isinstance(v, Decimal) else v for k, v in values.items()}
        conn.execute(
            f"INSERT INTO cfdi_concepto ({', '.join(values)}) "
            f"VALUES ({', '.join('?' for _ in values)})",
            *values.values(),
        )
    h = {"id": row_id, **HEADER, "folio": str(row_id), **header, "estado": estado}
    h = {k: money(db, v) if isinstance(v, Decimal) else v for k, v in h.items()}
    conn.execute(
        f"INSERT INTO cfdi_factura ({', '.join(h)}) VALUES ({', '.join('?' for _ in h)})",
        *h.values(),
    )


def row(conn: Any, row_id: int, *columns: str) -> tuple[Any, ...]:
    r = conn.execute(
        f"SELECT {', '.join(columns)} FROM cfdi_factura WHERE id = ?", row_id
    ).fetchone()
    return tuple(r)

