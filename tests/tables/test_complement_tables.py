"""The complements' child tables (issue 15) without the daemon: their columns hold exactly the
fields the default DAT layout's complement records have, their DDL per engine (SQL Server and
Firebird by text: no server here), ``tables-ddl --complemento``, and the read of a batch: one
query per child table, whatever the number of invoices."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from connector.adapters.table.complements import (
    CARTA_PORTE,
    CHILD_TABLES,
    COMERCIO_EXTERIOR,
    child_tables,
    complement_ddl,
    table_name,
)
from connector.adapters.table.dialects import ddl_script

from .complement_rows import fresh_complement_tables, valid_cartas, valid_exports
from .conftest import Db

REPO = Path(__file__).resolve().parents[2]
LAYOUT = REPO / "connector" / "adapters" / "layouts" / "default.toml"
CFDI_OWN = {("CCE", "Exportacion"), ("CCE", "ResidenciaFiscal"), ("CCE", "NumRegIdTrib")}


def test_the_child_tables_hold_the_dat_layouts_complement_fields_exactly() -> None:
    records = tomllib.loads(LAYOUT.read_text(encoding="utf-8"))["records"]
    dat = {(t, f) for t, r in records.items() if t.startswith(("CCE", "CP_", "CARTAPORTE"))
           for f in r["fields"]}  # fmt: skip
    tables = {(p.type, a) for c in CHILD_TABLES for p in c.parts for _, a in p.columns}
    assert tables - dat == CFDI_OWN  # the CFDI's own Exportacion and foreign receptor's
    assert dat - tables == set()


def test_child_tables_by_complement_and_beside_the_header_table() -> None:
    assert [c.name for c in child_tables([COMERCIO_EXTERIOR])] == [
        "cfdi_cce",
        "cfdi_cce_propietario",
        "cfdi_cce_destinatario",
        "cfdi_cce_mercancia",
    ]
    assert [c.name for c in child_tables([CARTA_PORTE])] == [
        "cfdi_carta_porte",
        "cfdi_cp_ubicacion",
        "cfdi_cp_mercancia",
        "cfdi_cp_remolque",
        "cfdi_cp_figura",
    ]
    assert child_tables([]) == []
    (cce, *_) = CHILD_TABLES
    assert table_name(cce, "dbo.cfdi_factura") == "dbo.cfdi_cce"
    assert table_name(cce, "cfdi_factura") == "cfdi_cce"


def test_sql_server_and_firebird_ddl_of_the_child_tables() -> None:
    ms = complement_ddl("mssql", (COMERCIO_EXTERIOR, CARTA_PORTE))
    assert ms.count("CREATE TABLE") == 9
    assert "CREATE TABLE cfdi_cce (\n    factura_id BIGINT NOT NULL,\n" in ms
    assert "    PRIMARY KEY (factura_id)\n);" in ms
    assert "valor_dolares DECIMAL(18,2)" in ms and "cantidad_aduana DECIMAL(18,3)" in ms
    assert "valor_unitario_aduana DECIMAL(18,6)" in ms and "peso_en_kg DECIMAL(18,3)" in ms
    assert "fecha_hora_salida_llegada DATETIME2(0)" in ms
    assert "nombre_figura NVARCHAR(254)" in ms and "anio_modelo_vm INT" in ms
    assert (
        "CREATE TABLE cfdi_cp_mercancia (\n    factura_id BIGINT NOT NULL,\n    linea INT NOT NULL,"
        in ms
    )
    assert ms.count("PRIMARY KEY (factura_id, linea)") == 7
    fb = complement_ddl("firebird", (CARTA_PORTE,))
    assert fb.count("CREATE TABLE") == 5 and "cfdi_cce" not in fb
    assert "transp_internac VARCHAR(2) CHARACTER SET UTF8" in fb
    assert "total_dist_rec DECIMAL(18,2)" in fb
    lite = complement_ddl("sqlite", (COMERCIO_EXTERIOR,))
    assert "total_usd TEXT" in lite and "tipo_cambio_usd TEXT" in lite  # exact, never a float
    pg = complement_ddl("postgresql", (COMERCIO_EXTERIOR,))
    assert "total_usd NUMERIC(18,2)" in pg and "tipo_cambio_usd NUMERIC(18,6)" in pg
    # the default tables keep their DDL
    assert "valor_unitario DECIMAL(18,6)" in ddl_script("mssql")


def test_tables_ddl_prints_the_child_tables_asked_for() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "connector.cli", "tables-ddl", "--dialect", "mariadb",
         "--complemento", "carta_porte"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("CREATE TABLE") == 5 and "cfdi_factura" not in r.stdout
    assert "CREATE TABLE cfdi_cp_figura (" in r.stdout and "ENGINE=InnoDB" in r.stdout


def test_a_batch_reads_each_child_table_once(db: Db) -> None:
    conn = db.connect()
    fresh_complement_tables(db, conn)
    ids = valid_exports(conn, db, 1) + valid_cartas(conn, db, 11)
    conn.close()
    counts: dict[str, int] = {}
    source = db.source(complements=(COMERCIO_EXTERIOR, CARTA_PORTE), round_trips=counts)
    try:
        claimed = source.claim_batch(50, 600, "prueba")
        assert [c.id for c in claimed] == ids
        # the claim (a select, an update per row; one for the batch on PostgreSQL), then the
        # header, the lines and one query per child table (9) for the ten invoices
        updates = 1 if db.engine == "postgresql" else len(ids)
        assert counts["statements"] == 1 + updates + 2 + 9
        inputs = source.load(claimed)
    finally:
        source.close()
    for inp in inputs:
        assert inp.problems == [], inp.problems
        assert inp.comprobante is not None
    exports, cartas = inputs[:5], inputs[5:]
    assert all(i.comprobante.ComercioExterior is not None for i in exports)  # type: ignore[union-attr]
    assert all(i.comprobante.CartaPorte is not None for i in cartas)  # type: ignore[union-attr]
    # the money columns read exactly: Decimal on servers, text in SQLite
    usd = exports[0].comprobante.ComercioExterior.Mercancias[1].ValorDolares  # type: ignore[union-attr]
    assert str(usd) == "1252.50"
    kg = cartas[0].comprobante.CartaPorte.Mercancias.Mercancia[0].PesoEnKg  # type: ignore[union-attr]
    assert str(kg) == "24.000"
