"""Writing back through a legacy encoding (a WIN1252 client, the source's ``encoding =
"cp1252"``): what the encoding lacks never stops a row from getting its outcome, and a unit of
work that fails outside the database leaves no transaction (and no lock) open."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from connector.adapters.table import ConnSpec, TableSource, odbc
from connector.adapters.table.source import Outcome

from .conftest import EMISOR, Db, fresh_tables, insert_invoice, row

UUID = "5FB2822E-396D-4725-8521-CDC4BDD20CCF"


def _legacy(db: Db) -> TableSource:
    conn = db.conn_str.replace("SERVER=", "DRIVER={PostgreSQL ANSI};SERVER=", 1)
    conn += ";ConnSettings={SET client_encoding TO 'WIN1252'}"
    return TableSource(ConnSpec(conn, encoding="cp1252", timeout_seconds=5), emisor=EMISOR)


@pytest.fixture
def pg(_databases: dict[str, Db]) -> Db:
    return fresh_tables(_databases["postgresql"])


def test_text_the_encoding_lacks_is_written_back_not_refused(pg: Db) -> None:
    conn = pg.connect()
    insert_invoice(conn, pg, 1)
    insert_invoice(conn, pg, 2)
    src = _legacy(pg)
    assert len(src.claim_batch(5, 60, "a")) == 2
    # a PAC's message with a character WIN1252 does not have: '?' in its place
    bad = Outcome("ERROR", error_codigo="CFDI40999", error_mensaje="Límite Ω → excedido")
    assert src.write_back(1, bad)
    assert row(conn, 1, "estado", "error_mensaje") == ("ERROR", "Límite ? ? excedido")
    # a stamped XML with such a character (a description from a UTF-8 lookup table): written
    # with a character reference, the same XML once read
    xml = f'<cfdi:Comprobante xmlns:cfdi="x" Descripcion="Resistencia 10 kΩ" UUID="{UUID}"/>'
    assert src.write_back(2, Outcome.stamped(UUID, "2026-12-07T10:00:00", xml.encode(), None))
    estado, stored = row(conn, 2, "estado", "xml")
    assert estado == "TIMBRADO" and "k&#937;" in stored
    assert etree.fromstring(stored.encode()).get("Descripcion") == "Resistencia 10 kΩ"
    src.close()
    conn.close()


def test_a_failure_outside_the_database_rolls_back_and_holds_no_lock(pg: Db) -> None:
    conn = pg.connect()
    insert_invoice(conn, pg, 1)
    src = _legacy(pg)

    def half_done(cur: Any) -> None:
        cur.execute("UPDATE cfdi_factura SET condiciones_pago = 'a medias' WHERE id = 1")
        raise ValueError("un valor que pyodbc no puede enviar")

    with pytest.raises(ValueError):
        src._run(half_done, "escribir resultados")
    # the ERP changes the row at once (a 1-second lock timeout): nothing was left locked
    erp, _ = odbc.connect(ConnSpec(pg.conn_str, dialect=pg.dialect, timeout_seconds=1))
    erp.execute("UPDATE cfdi_factura SET condiciones_pago = 'x' WHERE id = 1")
    erp.commit()
    odbc.close_quietly(erp)
    assert row(conn, 1, "condiciones_pago") == ("x",)
    # and the source's connection goes on working
    assert [c.id for c in src.claim_batch(5, 60, "a")] == [1]
    src.close()
    conn.close()
