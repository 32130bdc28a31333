"""Comercio Exterior 2.0 and Carta Porte 3.1 from database tables (issue 15), per engine over
real ODBC, through the daemon's pipeline and the sandbox PAC over real HTTP: a source with
``complementos`` reads the child tables (one query per table per batch), five export invoices
and five Carta Porte invoices come back TIMBRADO, each stamped XML valid by SAT's XSD with its
complement, its cadena SAT's XSLT's, its seal verifying; bad child rows get ERROR with their
coded Spanish error naming the table and column while the other rows are stamped."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyodbc

from connector.adapters.table.complements import child_tables
from connector.cfdi.cadena import cadena_original, cadena_original_xslt
from connector.cfdi.seal import verify_seal
from connector.cfdi.xmlio import from_xml, validate_xsd
from connector.config import check_config
from connector.pipeline import Pipeline

from .complement_rows import (
    JUEGOS,
    fresh_complement_tables,
    insert_carta,
    insert_export,
    merc,
    valid_cartas,
    valid_exports,
)
from .conftest import Db
from .daemon_support import rows, table_config

BOTH = 'complementos = ["comercio_exterior", "carta_porte"]\n'


def _run(config: Path, cfg: Any = None) -> None:
    if cfg is None:
        cfg, problems = check_config(config)
        assert cfg is not None, problems
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        assert pipe.run_until_idle(180)
    finally:
        pipe.close()


def _stamped(sandbox: Any) -> dict[tuple[str, str], list[str]]:
    from lxml import etree

    out: dict[tuple[str, str], list[str]] = {}
    for rec in sandbox.store.stamps():
        root = etree.fromstring(rec.xml)
        out.setdefault((root.get("Serie") or "", root.get("Folio") or ""), []).append(rec.uuid)
    return out


def test_complements_from_tables_are_stamped_valid_and_written_back(
    db: Db, sandbox: Any, tmp_path: Path
) -> None:
    conn = db.connect()
    fresh_complement_tables(db, conn)
    exports = valid_exports(conn, db, 1)
    cartas = valid_cartas(conn, db, 11)
    _run(table_config(tmp_path, db, sandbox, extra=BOTH))
    got = rows(conn, "estado", "uuid", "error_codigo", "error_mensaje", "xml", "serie")
    stamps = _stamped(sandbox)
    for i in exports + cartas:
        estado, uuid, code, message, xml, serie = got[i]
        assert (estado, code) == ("TIMBRADO", None), (i, message)
        assert stamps[(serie, str(i))] == [uuid]
        data = xml.encode("utf-8")
        assert validate_xsd(data) == [], i
        assert verify_seal(data) == [], i
        assert cadena_original(data) == cadena_original_xslt(data), i
        c = from_xml(data)
        if i in exports:
            assert c.ComercioExterior is not None and c.Exportacion == "02"
            assert c.Receptor.ResidenciaFiscal == "USA"
        else:
            assert c.CartaPorte is not None and c.CartaPorte.Mercancias.Autotransporte
            assert c.ComercioExterior is None and c.Exportacion == "01"
    assert len(stamps) == 10
    # what the child rows carried, read exactly
    cce3 = from_xml(got[3][4].encode()).ComercioExterior
    assert cce3 is not None and cce3.Incoterm == "CIF" and cce3.CertificadoOrigen == "1"
    assert cce3.Destinatario[0].Domicilio[0].Referencia == "Gate B"
    assert cce3.Mercancias[1].DescripcionesEspecificas[0].NumeroSerie == "SN-0001"
    assert [m.ValorDolares for m in cce3.Mercancias] == [Decimal("1000.00"), Decimal("1252.50")]
    assert from_xml(got[5][4].encode()).ComercioExterior.Propietario[0].NumRegIdTrib == "121585958"  # type: ignore[union-attr]
    cp13 = from_xml(got[13][4].encode()).CartaPorte
    assert cp13 is not None and cp13.RegimenesAduaneros == ["EXD"]
    auto = cp13.Mercancias.Autotransporte
    assert auto is not None and [r.Placa for r in auto.Remolques] == ["ABC1234"]
    assert [m.PesoEnKg for m in cp13.Mercancias.Mercancia] == [Decimal("24.000"), Decimal("40.000")]
    cp15 = from_xml(got[15][4].encode()).CartaPorte
    assert cp15 is not None and cp15.FiguraTransporte[1].PartesTransporte == ["PT01", "PT05"]
    conn.close()


def test_bad_child_rows_get_their_coded_error_and_the_others_are_stamped(
    db: Db, sandbox: Any, tmp_path: Path
) -> None:
    conn = db.connect()
    fresh_complement_tables(db, conn)
    config = table_config(tmp_path, db, sandbox, extra=BOTH)
    cfg, problems = check_config(config)  # the daemon starts on the tables as they were
    assert cfg is not None, problems
    _to_float(db, conn)
    insert_export(conn, db, 1)
    insert_export(conn, db, 2, with_header_row=False)  # mercancías without their cfdi_cce row
    insert_export(conn, db, 3, cce={"total_usd": None, "exportacion": None})  # NULL where needed
    insert_carta(conn, db, 4, mercancias=[merc("52161557", "Control de juego", "40", "24.000",
                                               peso_en_kg=None)])  # fmt: skip
    insert_carta(conn, db, 5, with_header_row=False)
    insert_carta(conn, db, 6)
    insert_carta(conn, db, 7, mercancias=[{**JUEGOS, "valor_mercancia": 1500.5}])  # a float
    insert_export(conn, db, 8, cce={"total_usd": Decimal("2252.60")})  # TotalUSD ≠ Σ
    insert_carta(conn, db, 9, carta={"total_dist_rec": Decimal("999")})  # ≠ Σ distancias
    _run(config, cfg)
    got = rows(conn, "estado", "uuid", "error_codigo", "error_mensaje")
    assert got[1][:1] == ("TIMBRADO",) and got[6][:1] == ("TIMBRADO",)
    assert set(_stamped(sandbox)) == {("EX", "1"), ("CP", "6")}

    def error(i: int) -> tuple[str, str]:
        estado, uuid, code, message = got[i]
        assert (estado, uuid) == ("ERROR", None), got[i]
        return code, message

    code, message = error(2)
    assert "CONN-BD-COMPLEMENTO" in code
    assert (
        "Hay filas en cfdi_cce_mercancia para la factura 2, pero no su fila en cfdi_cce" in message
    )
    assert "(cfdi_cce_mercancia(factura_id=2))" in message
    code, message = error(3)
    assert "CONN-BD-NULO" in code
    assert (
        "La columna exportacion está vacía (NULL)" in message
        and "(cfdi_cce:3:exportacion)" in message
    )
    assert "(cfdi_cce:3:total_usd)" in message
    code, message = error(4)
    assert "CONN-BD-NULO" in code and "(cfdi_cp_mercancia(factura_id=4):1:peso_en_kg)" in message
    code, message = error(5)
    assert "CONN-BD-COMPLEMENTO" in code and "no su fila en cfdi_carta_porte" in message
    for table in ("cfdi_cp_ubicacion", "cfdi_cp_mercancia", "cfdi_cp_figura"):
        assert f"({table}(factura_id=5))" in message
    code, message = error(7)
    assert "CONN-BD-FLOTANTE" in code and "punto flotante (1500.5)" in message
    assert "(cfdi_cp_mercancia(factura_id=7):1:valor_mercancia)" in message
    # SAT's rules of each complement, naming the column the value came from
    code, message = error(8)
    assert "CONN-CCE-005" in code and "(ComercioExterior.TotalUSD; cfdi_cce:8:total_usd)" in message
    code, message = error(9)
    assert "CONN-CP-008" in code
    assert "(CartaPorte.TotalDistRec; cfdi_carta_porte:9:total_dist_rec)" in message
    conn.close()


def _to_float(db: Db, conn: Any) -> None:
    """The ERP's cfdi_cp_mercancia now keeps valor_mercancia as a float (a legacy schema,
    changed after the daemon checked it: ``run`` refuses such a table from the start)."""
    if db.engine == "postgresql":
        conn.execute(
            "ALTER TABLE cfdi_cp_mercancia ALTER COLUMN valor_mercancia TYPE DOUBLE PRECISION"
        )
    elif db.engine == "mariadb":
        conn.execute("ALTER TABLE cfdi_cp_mercancia MODIFY valor_mercancia DOUBLE")
    else:  # SQLite cannot change a column's type: the (empty) table made again
        (ddl,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'cfdi_cp_mercancia'"
        ).fetchone()
        assert "valor_mercancia TEXT" in ddl
        conn.execute("DROP TABLE cfdi_cp_mercancia")
        conn.execute(ddl.replace("valor_mercancia TEXT", "valor_mercancia REAL"))


def test_check_config_names_each_missing_child_table(db: Db, sandbox: Any, tmp_path: Path) -> None:
    conn = db.connect()
    fresh_complement_tables(db, conn)
    conn.execute("DROP TABLE cfdi_cp_figura")
    conn.execute("DROP TABLE cfdi_cce_destinatario")
    conn.close()
    config = table_config(tmp_path, db, sandbox, extra=BOTH)
    cfg, problems = check_config(config)
    assert cfg is None
    missing = [p for p in problems if p.code == "CONN-BD-TABLA"]
    assert sorted(p.message.split(" (")[0] for p in missing) == [
        "No existe la tabla cfdi_cce_destinatario",
        "No existe la tabla cfdi_cp_figura",
    ]
    assert all("tables-ddl" in p.message for p in missing)
    # the other child tables are there and of the right types: nothing else is reported
    assert [p for p in problems if p.code.startswith("CONN-BD")] == missing, problems
    assert len(child_tables(["comercio_exterior", "carta_porte"])) == 9


def test_the_shipped_sqlite_example_is_stamped(sandbox: Any, tmp_path: Path) -> None:
    """config/examples/tablas-complementos.sql (the DDL of ``tables-ddl``, one export, one
    traslado) loaded into a SQLite file and stamped by the source of tablas-complementos.toml."""
    import sqlite3
    import tomllib

    from connector.adapters.table.complements import complement_ddl
    from connector.adapters.table.dialects import ddl_script

    examples = Path(__file__).resolve().parents[2] / "config" / "examples"
    script = (examples / "tablas-complementos.sql").read_text(encoding="utf-8")
    both = ("comercio_exterior", "carta_porte")
    assert ddl_script("sqlite") in script and complement_ddl("sqlite", both) in script
    source = tomllib.loads((examples / "tablas-complementos.toml").read_text(encoding="utf-8"))
    table = source["sources"][0]["table"]
    assert table["complementos"] == list(both)
    path = tmp_path / "erp.sqlite"
    lite = sqlite3.connect(path)
    lite.executescript(script)
    lite.close()
    db = Db("sqlite", f"DRIVER={{SQLite3}};DATABASE={path}", "sqlite")
    extra = f"complementos = {table['complementos']!r}\n".replace("'", '"')
    _run(table_config(tmp_path / "ws", db, sandbox, extra=extra))
    conn = db.connect()
    got = rows(conn, "estado", "error_mensaje", "xml")
    conn.close()
    assert [g[:2] for g in got.values()] == [("TIMBRADO", None)] * 2, got
    assert b"<cce20:ComercioExterior" in got[1][2].encode()
    assert b"<cartaporte31:CartaPorte" in got[2][2].encode()
    for _, _, xml in got.values():
        assert validate_xsd(xml.encode()) == [] and verify_seal(xml.encode()) == []


def test_results_table_mode_reads_the_child_tables_too(
    db: Db, sandbox: Any, tmp_path: Path
) -> None:
    """The ERP's tables only read (here the default tables and the child tables, as they
    are), claims and outcomes in cfdi_resultado: the complements are stamped all the same."""
    from connector.adapters.table import get_dialect
    from connector.adapters.table.schema import RESULTADO

    conn = db.connect()
    fresh_complement_tables(db, conn)
    with contextlib.suppress(pyodbc.Error):  # left by an earlier test
        conn.execute(f"DROP TABLE {RESULTADO.name}")
    for stmt in get_dialect(db.dialect).create_table(RESULTADO):
        conn.execute(stmt)
    insert_export(conn, db, 1)
    insert_carta(conn, db, 2)
    before = conn.execute("SELECT COUNT(*) FROM cfdi_factura WHERE estado = 'PENDIENTE'")
    assert before.fetchone()[0] == 2
    extra = BOTH + 'resultados = "cfdi_resultado"\n'
    _run(table_config(tmp_path, db, sandbox, extra=extra))
    got = {
        int(r[0]): (r[1], r[2], r[3])
        for r in conn.execute("SELECT id, estado, error_mensaje, xml FROM cfdi_resultado")
    }
    assert {i: g[:2] for i, g in got.items()} == {1: ("TIMBRADO", None), 2: ("TIMBRADO", None)}
    assert "<cce20:ComercioExterior" in got[1][2] and "<cartaporte31:CartaPorte" in got[2][2]
    for _, _, xml in got.values():
        assert validate_xsd(xml.encode()) == [] and verify_seal(xml.encode()) == []
    # the ERP's rows were only read
    after = conn.execute("SELECT COUNT(*) FROM cfdi_factura WHERE estado = 'PENDIENTE'")
    assert after.fetchone()[0] == 2
    conn.close()
