"""Table sources against the real engines over their real ODBC drivers (PostgreSQL, MariaDB,
SQLite through libsqliteodbc): claim, lease, read, map, write back, bad rows, failures."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pyodbc
import pytest

from connector.adapters.table import (
    ConnSpec,
    Outcome,
    TableError,
    TableSource,
    check_table_source,
    get_dialect,
    odbc,
)
from connector.adapters.table.odbc import classify
from connector.adapters.table.schema import CONCEPTO
from connector.adapters.table.source import DEFAULT_MAPPING
from connector.cfdi import amounts, rules
from connector.cfdi.csd import Csd
from connector.cfdi.seal import seal_invoice, verify_seal
from connector.mappers import Mapping

from .conftest import EMISOR, LINE, Db, fresh_tables, insert_invoice, row

UUID1 = "0F0E0D0C-0B0A-4909-8807-060504030201"


def test_ddl_applies_and_the_check_finds_nothing(db: Db) -> None:
    assert check_table_source(db.spec()) == []


@pytest.mark.parametrize("skip_locked", [False, True])
def test_two_instances_racing_on_300_rows_claim_each_row_exactly_once(
    db: Db, skip_locked: bool
) -> None:
    """With or without the engine's skip-locked hint (SQLite has none: the guarded update and
    its busy timeout alone)."""
    conn = db.connect()
    conn.autocommit = False
    for i in range(1, 301):
        insert_invoice(conn, db, i)
    conn.commit()
    claimed: dict[str, list[Any]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        src = db.source(skip_locked=skip_locked)
        try:
            idle = 0
            while idle < 2:
                try:
                    got = src.claim_batch(20, 600, name)
                except TableError as exc:  # e.g. SQLite busy: a transient pause, then on
                    assert exc.transient, exc
                    time.sleep(0.05)
                    continue
                idle = 0 if got else idle + 1
                claimed[name].extend(got)
        except BaseException as exc:
            errors.append(exc)
        finally:
            src.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    ids_a = [c.id for c in claimed["a"]]
    ids_b = [c.id for c in claimed["b"]]
    assert sorted(ids_a + ids_b) == list(range(1, 301))  # every row once, none twice
    assert not set(ids_a) & set(ids_b)
    rows = {
        r[0]: tuple(r[1:])
        for r in conn.execute(
            "SELECT id, estado, reclamado_por, referencia, intentos FROM cfdi_factura"
        ).fetchall()
    }
    for name, items in claimed.items():
        for c in items:
            assert rows[c.id] == ("EN_PROCESO", name, c.referencia, 1)
            assert c.referencia and c.attempt == 1 and c.problems == []
    conn.close()


def test_a_lease_lets_another_instance_take_a_row_only_after_it_expires(db: Db) -> None:
    conn = db.connect()
    insert_invoice(conn, db, 1)
    a, b = db.source(), db.source()
    (first,) = a.claim_batch(10, 3, "a")
    assert row(conn, 1, "referencia") == (first.referencia,)  # written at claim time
    assert b.claim_batch(10, 3, "b") == []  # lease still running
    time.sleep(4.2)
    (again,) = b.claim_batch(10, 60, "b")
    assert again.id == 1
    assert again.referencia == first.referencia  # the same referencia: ask the PAC first
    assert again.attempt == 2
    assert row(conn, 1, "reclamado_por", "intentos") == ("b", 2)
    assert a.claim_batch(10, 60, "a") == []
    assert a.release([1], "a") == 0  # no longer a's
    assert b.release([1], "b") == 1
    assert row(conn, 1, "estado", "referencia") == ("PENDIENTE", first.referencia)
    a.close(), b.close()


def test_write_back_is_idempotent_and_never_unstamps(db: Db) -> None:
    conn = db.connect()
    insert_invoice(conn, db, 1)
    insert_invoice(conn, db, 2)
    src = db.source()
    src.claim_batch(10, 60, "a")
    ok = Outcome.stamped(UUID1, "2026-12-07T10:11:12", b"<cfdi:Comprobante/>", b"<Acuse/>")
    cols = ("estado", "uuid", "fecha_timbrado", "xml", "acuse", "error_codigo")
    assert src.write_back(1, ok)
    first = row(conn, 1, *cols)
    assert src.write_back(1, ok)  # a crash between journal and row: the same values again
    assert row(conn, 1, *cols) == first
    assert first[:2] == ("TIMBRADO", UUID1) and first[3:5] == ("<cfdi:Comprobante/>", "<Acuse/>")
    assert str(first[2]).replace("T", " ").startswith("2026-12-07 10:11:12")
    assert not src.write_back(1, Outcome("ERROR", error_codigo="X", error_mensaje="x"))
    other = Outcome.stamped("AAAAAAAA-0B0A-4909-8807-060504030201", "2026-12-07T10:00:00", b"<x/>", None)
    assert not src.write_back(1, other)  # never a second UUID on a stamped row
    assert row(conn, 1, *cols) == first
    long = "Ñ" * 3000
    from connector.cfdi.errors import Problem

    err = Outcome.error([Problem("CFDI40158", "Receptor.Rfc", long, "cfdi_factura:2:receptor_rfc")])
    assert src.write_back(2, err) and src.write_back(2, err)
    estado, codigo, mensaje = row(conn, 2, "estado", "error_codigo", "error_mensaje")
    assert (estado, codigo) == ("ERROR", "CFDI40158")
    assert len(mensaje) == 2000 and mensaje.endswith("…") and mensaje.startswith("CFDI40158: ÑÑ")
    assert src.reset(2) and row(conn, 2, "estado", "error_codigo") == ("PENDIENTE", None)
    assert not src.reset(1)  # a stamped row is not replayed
    (again,) = src.claim_batch(10, 60, "a")
    assert again.id == 2 and again.attempt == 2
    src.close()


def test_decimal_money_is_read_exactly(db: Db) -> None:
    conn = db.connect()
    lines = [
        {**LINE, "linea": 1, "cantidad": Decimal("0.100000"), "valor_unitario": Decimal("0.200000"),
         "descuento": Decimal("0.000001")},
        {**LINE, "linea": 2, "cantidad": Decimal("3"), "valor_unitario": Decimal("1234567890.123456"),
         "iva_tasa": None, "objeto_imp": "02"},
        {**LINE, "linea": 3, "objeto_imp": "01", "iva_tasa": None,
         "iva_retencion_tasa": Decimal("0.106667"), "isr_retencion_tasa": Decimal("0.012500")},
    ]  # fmt: skip
    insert_invoice(
        conn, db, 1, lines=lines, moneda="USD", tipo_cambio=Decimal("17.123456"), folio="X1"
    )
    src = db.source()
    (c,) = src.claim_batch(5, 60, "a")
    l1, l2, _ = c.record.children_of_type("CONCEPTO")
    assert Decimal(l1.fields["cantidad"]) == Decimal("0.1")
    assert Decimal(l1.fields["valor_unitario"]) + Decimal(l1.fields["cantidad"]) == Decimal("0.3")
    assert Decimal(l1.fields["descuento"]) == Decimal("0.000001")
    assert Decimal(l2.fields["valor_unitario"]) == Decimal("1234567890.123456")
    (inp,) = src.load([c])
    comp = inp.comprobante
    assert comp is not None, inp.problems
    assert comp.TipoCambio == Decimal("17.123456") and comp.Moneda == "USD"
    k1, k2, k3 = comp.Conceptos
    assert (k1.Cantidad, k1.ValorUnitario, k1.Descuento) == (
        Decimal("0.1"), Decimal("0.2"), Decimal("0.000001"),
    )  # fmt: skip
    assert isinstance(k1.Cantidad, Decimal) and k2.ValorUnitario == Decimal("1234567890.123456")
    assert [t.TipoFactor for t in k2.Impuestos.Traslados] == ["Exento"]  # no rate, objeto 02
    assert k3.Impuestos.Traslados in (None, []) and [
        (r.Impuesto, r.TasaOCuota) for r in k3.Impuestos.Retenciones
    ] == [("002", Decimal("0.106667")), ("001", Decimal("0.0125"))]
    src.close()


def _float_money(db: Db, conn: Any) -> None:
    """The ERP's own table has a float column for money (a legacy schema)."""
    if db.engine == "postgresql":
        conn.execute("ALTER TABLE cfdi_concepto ALTER COLUMN valor_unitario TYPE DOUBLE PRECISION")
    elif db.engine == "mariadb":
        conn.execute("ALTER TABLE cfdi_concepto MODIFY valor_unitario DOUBLE")
    else:
        conn.execute("DROP TABLE cfdi_concepto")  # SQLite cannot change a column type
        conn.execute(
            "CREATE TABLE cfdi_concepto (factura_id INTEGER, linea INTEGER, clave_prod_serv TEXT, "
            "no_identificacion TEXT, cantidad TEXT, clave_unidad TEXT, unidad TEXT, "
            "descripcion TEXT, valor_unitario REAL, descuento TEXT, objeto_imp TEXT, "
            "iva_tasa TEXT, iva_retencion_tasa TEXT, isr_retencion_tasa TEXT)"
        )


def test_float_money_is_a_coded_error_and_the_check_names_the_column(db: Db) -> None:
    conn = db.connect()
    _float_money(db, conn)
    conn.execute(
        "INSERT INTO cfdi_concepto (factura_id, linea, clave_prod_serv, cantidad, clave_unidad, "
        "descripcion, valor_unitario, objeto_imp) VALUES (1, 1, '43201800', '1', 'H87', 'X', ?, '01')",
        0.1 + 0.2,
    )
    insert_invoice(conn, db, 1, lines=[])
    src = db.source()
    (c,) = src.claim_batch(5, 60, "a")
    assert [(p.code, p.location) for p in c.problems] == [
        ("CONN-BD-FLOTANTE", "cfdi_concepto(factura_id=1):1:valor_unitario")
    ]
    assert "punto flotante (0.3" in c.problems[0].message  # 0.30000000000000004 (SQLite: 0.3)
    (inp,) = src.load([c])
    assert not inp.ok
    found = check_table_source(db.spec())
    assert [(p.code, p.path) for p in found] == [("CONN-BD-TIPO", "valor_unitario")]
    assert "punto flotante" in found[0].message
    src.close()


def test_bad_rows_get_coded_problems_and_the_others_keep_flowing(db: Db) -> None:
    conn = db.connect()
    insert_invoice(conn, db, 1, receptor_rfc=None)  # NULL where a value is needed
    insert_invoice(conn, db, 2, lines=[])  # an invoice without lines
    insert_invoice(conn, db, 3)  # good
    insert_invoice(conn, db, 4, estado=None)  # not ready: never touched
    insert_invoice(conn, db, 5, estado="BORRADOR")
    insert_invoice(conn, db, 6, lines=[{**LINE, "cantidad": None}])
    conn.execute(  # a line whose header does not exist
        "INSERT INTO cfdi_concepto (factura_id, linea, clave_prod_serv) VALUES (99, 1, '01010101')"
    )
    src = db.source()
    got = {c.id: c for c in src.claim_batch(10, 60, "a")}
    assert sorted(got) == [1, 2, 3, 6]
    assert [(p.code, p.location) for p in got[1].problems] == [
        ("CONN-BD-NULO", "cfdi_factura:1:receptor_rfc")
    ]
    assert got[1].problems[0].message == (
        "La columna receptor_rfc está vacía (NULL) y la factura la necesita."
    )
    assert [p.code for p in got[2].problems] == ["CONN-BD-SIN-CONCEPTOS"]
    assert [(p.code, p.location) for p in got[6].problems] == [
        ("CONN-BD-NULO", "cfdi_concepto(factura_id=6):1:cantidad")
    ]
    inputs = src.load([got[i] for i in (1, 2, 3, 6)])
    assert [i.ok for i in inputs] == [False, False, True, False]
    assert row(conn, 4, "estado") == (None,) and row(conn, 5, "estado") == ("BORRADOR",)
    orphans = src.orphan_lines()
    assert [(p.code, p.location) for p in orphans] == [
        ("CONN-BD-LINEA-HUERFANA", "cfdi_concepto(factura_id=99)")
    ]
    for i in (1, 2, 6):
        assert src.write_back(i, Outcome.error(inputs[[1, 2, 3, 6].index(i)].problems))
    assert row(conn, 1, "estado", "error_codigo") == ("ERROR", "CONN-BD-NULO")
    src.close()


def test_a_default_table_invoice_maps_validates_and_seals(db: Db, csd_files) -> None:
    conn = db.connect()
    insert_invoice(conn, db, 1, folio="1001", receptor_nombre="PÚBLICO EN GENERAL Ñ")
    src = db.source()
    (c,) = src.claim_batch(5, 60, "a")
    (inp,) = src.load([c])
    assert inp.ok, inp.problems
    comp = amounts.complete(inp.comprobante)
    assert comp.Emisor.Rfc == EMISOR["Rfc"] and comp.Receptor.Nombre == "PÚBLICO EN GENERAL Ñ"
    assert comp.Fecha is not None  # empty fecha: the time of the claim, kept in the row
    assert row(conn, 1, "fecha")[0] is not None
    assert rules.validate(comp) == []
    assert comp.Total == Decimal("232.00")
    sealed = seal_invoice(comp, Csd.load(*csd_files))
    assert verify_seal(sealed) == []
    src.close()


def test_killed_connection_is_replaced_and_classified(server_db: Db) -> None:
    db = server_db
    conn = db.connect()
    insert_invoice(conn, db, 1)
    src = db.source()
    assert src.claim_batch(5, 60, "a")
    dead = src._conn
    pg = db.engine == "postgresql"
    pid = dead.execute("SELECT pg_backend_pid()" if pg else "SELECT CONNECTION_ID()").fetchone()[0]
    dead.commit()
    if pg:
        conn.execute("SELECT pg_terminate_backend(?)", pid)
    else:
        conn.execute(f"KILL {int(pid)}")
    time.sleep(0.2)
    with pytest.raises(pyodbc.Error) as info:  # the killed connection still looks open
        dead.cursor().execute("SELECT 1").fetchall()
    err = classify(info.value)
    assert (err.code, err.transient) == ("CONN-BD-CONEXION", True)
    # the source replaces it: one new connection (nothing had been done), then on
    insert_invoice(conn, db, 2)
    got = src.claim_batch(5, 60, "a")
    assert [c.id for c in got] == [2] and src._conn is not dead
    src.close()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_database_down_is_a_transient_coded_error_with_the_password_masked(engine: str) -> None:
    conn_str = (
        "SERVER=127.0.0.1;PORT=1;DATABASE=test;UID=postgres"
        if engine == "postgresql"
        else "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=1;DATABASE=test;UID=root"
    )
    spec = ConnSpec(conn_str, password="s3cr3t-Pw", dialect=engine, timeout_seconds=3)
    src = TableSource(spec, emisor=EMISOR)
    with pytest.raises(TableError) as info:
        src.claim_batch(5, 60, "a")
    assert info.value.code == "CONN-BD-CONEXION" and info.value.transient
    assert "s3cr3t-Pw" not in str(info.value)
    (p,) = check_table_source(spec, source="sources.erp")
    assert p.code == "CONN-BD-CONEXION" and p.location == "sources.erp"


def test_login_failed_and_missing_table_column_are_reported_together(db: Db) -> None:
    conn = db.connect()
    if db.engine == "sqlite":
        conn.execute("ALTER TABLE cfdi_factura DROP COLUMN acuse")
    else:
        conn.execute("ALTER TABLE cfdi_factura DROP COLUMN acuse")
        conn.execute("ALTER TABLE cfdi_factura DROP COLUMN xml")
    conn.execute("DROP TABLE cfdi_concepto")
    found = check_table_source(db.spec(), source="sources.erp")
    codes = [(p.code, p.path) for p in found]
    assert ("CONN-BD-COLUMNA", "acuse") in codes
    assert ("CONN-BD-TABLA", "") in codes
    assert any("tables-ddl --dialect" in p.message for p in found)
    if db.engine == "mariadb":
        bad = ConnSpec(db.conn_str.replace("UID=root", "UID=nadie_h6"), password="x", dialect="mariadb")
        (p,) = check_table_source(bad)
        assert p.code == "CONN-BD-LOGIN"


def test_a_held_row_lock_is_a_transient_timeout_not_a_hang(server_db: Db) -> None:
    db = server_db
    conn = db.connect()
    insert_invoice(conn, db, 1)
    src = TableSource(
        ConnSpec(db.conn_str, dialect=db.dialect, timeout_seconds=1), emisor=EMISOR
    )
    (c,) = src.claim_batch(5, 60, "a")
    holder = db.connect()
    holder.autocommit = False
    holder.execute("UPDATE cfdi_factura SET actualizado_en = actualizado_en WHERE id = 1")
    started = time.monotonic()
    with pytest.raises(TableError) as info:
        src.write_back(1, Outcome.stamped(UUID1, "2026-12-07T10:00:00", b"<x/>", None))
    assert info.value.code == "CONN-BD-TIEMPO" and info.value.transient
    assert time.monotonic() - started < 30
    holder.rollback()
    assert src.write_back(1, Outcome.stamped(UUID1, "2026-12-07T10:00:00", b"<x/>", None))
    holder.close()
    src.close()


def test_cp1252_text_is_read_and_written_right_with_an_ansi_driver(_databases) -> None:
    """psqlODBC's ANSI driver on a WIN1252 client encoding hands cp1252 bytes: the source's
    ``encoding`` decodes them; a wrong encoding is a coded problem on that row only."""
    pg = _databases["postgresql"]
    base = pg.conn_str.replace("SERVER=", "DRIVER={PostgreSQL ANSI};SERVER=", 1)
    base += ";ConnSettings={SET client_encoding TO 'WIN1252'}"
    uni = pg.connect()
    for t in ("cfdi_concepto", "cfdi_factura", "cfdi_cancelacion"):
        uni.execute(f"DROP TABLE IF EXISTS {t}")
    from connector.adapters.table import get_dialect

    for stmt in get_dialect("postgresql").ddl():
        uni.execute(stmt)
    insert_invoice(uni, pg, 1, receptor_nombre="AÑO DE LA ÑANDÚ, S.A.")
    insert_invoice(uni, pg, 2)
    src = TableSource(ConnSpec(base, encoding="cp1252"), emisor=EMISOR)
    got = {c.id: c for c in src.claim_batch(5, 60, "a")}
    assert got[1].record.fields["receptor_nombre"] == "AÑO DE LA ÑANDÚ, S.A."
    bad = Outcome("ERROR", error_codigo="CFDI40145", error_mensaje="El nombre no coincide: AÑO")
    assert src.write_back(1, bad)
    assert row(uni, 1, "error_mensaje") == ("El nombre no coincide: AÑO",)
    src.close()
    uni.execute("UPDATE cfdi_factura SET estado = 'PENDIENTE' WHERE id IN (1, 2)")
    wrong = TableSource(ConnSpec(base, encoding="utf-8"), emisor=EMISOR)
    got = {c.id: c for c in wrong.claim_batch(5, 60, "a")}
    assert [p.code for p in got[1].problems] == ["CONN-BD-CODIFICACION"]
    assert got[1].problems[0].location == "cfdi_factura:1"
    assert (got[1].referencia, got[1].attempt) == (row(uni, 1, "referencia")[0], 2)
    assert got[2].problems == [] and got[2].record.fields["receptor_nombre"] == "PUBLICO EN GENERAL"
    wrong.close()
    uni.close()


def test_an_update_that_changes_nothing_still_counts_its_row(db: Db) -> None:
    """MariaDB reports changed rows unless the client asks for matched rows (OPTION bit 2,
    added by the source): an idempotent write-back or release must still see its row."""
    conn = db.connect()
    insert_invoice(conn, db, 1)
    src = db.source()
    cur = src._connection().cursor()
    cur.execute("UPDATE cfdi_factura SET estado = estado WHERE id = 1")
    assert cur.rowcount == 1
    src._conn.rollback()
    src.close()


def test_renew_extends_only_the_holders_lease(db: Db) -> None:
    conn = db.connect()
    insert_invoice(conn, db, 1)
    a, b = db.source(), db.source()
    a.claim_batch(5, 2, "a")
    assert b.renew([1], 600, "b") == 0  # not b's row
    assert a.renew([1], 600, "a") == 1
    time.sleep(3.2)  # past the first lease, within the renewed one
    assert b.claim_batch(5, 60, "b") == []
    a.close(), b.close()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_the_engines_own_statement_timeout_bounds_a_slow_query(engine: str, _databases) -> None:
    """pyodbc's query timeout is refused by psqlODBC: the engine's own timeout is what stops a
    statement (PostgreSQL statement_timeout, MariaDB max_statement_time)."""
    d = _databases[engine]
    conn, _ = odbc.connect(ConnSpec(d.conn_str, dialect=d.dialect, timeout_seconds=1))
    slow = "SELECT pg_sleep(20)" if engine == "postgresql" else "SELECT SLEEP(20)"
    started = time.monotonic()
    with pytest.raises(pyodbc.Error) as info:
        conn.cursor().execute(slow).fetchall()
    assert time.monotonic() - started < 10
    err = classify(info.value)
    assert (err.code, err.transient) == ("CONN-BD-TIEMPO", True)
    odbc.close_quietly(conn)


def test_a_source_mapping_with_lookup_tables_fills_what_the_rows_leave_out(db: Db, tmp_path) -> None:
    """The ERP's lines carry only its article code: ClaveProdServ/ClaveUnidad come from a
    lookup table, as for folder sources; a NULL the mapping fills is no error."""
    (tmp_path / "articulos.csv").write_text(
        "codigo,clave_prod_serv,clave_unidad\nUSB32,43201800,H87\n", encoding="utf-8"
    )
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    text = text.replace(
        "[Comprobante]\n",
        '[lookups.articulos]\nfile = "articulos.csv"\nkey = "codigo"\nlabel = "el artículo"\n\n'
        "[Comprobante]\n",
        1,
    )
    text = text.replace(
        'ClaveProdServ = "clave_prod_serv"',
        'ClaveProdServ = { lookup = "articulos", key = "no_identificacion", column = "clave_prod_serv" }',
    ).replace(
        'ClaveUnidad = { field = "clave_unidad", transform = "upper" }',
        'ClaveUnidad = { lookup = "articulos", key = "no_identificacion", column = "clave_unidad" }',
    )
    (tmp_path / "erp.mapping.toml").write_text(text, encoding="utf-8")
    conn = db.connect()
    bare = {**LINE, "clave_prod_serv": None, "clave_unidad": None}
    insert_invoice(conn, db, 1, lines=[bare])
    insert_invoice(conn, db, 2, lines=[{**bare, "no_identificacion": "ZZZ"}])
    src = db.source(mapping=Mapping.from_toml(tmp_path / "erp.mapping.toml"))
    one, two = src.load(src.claim_batch(5, 60, "a"))
    assert one.ok, one.problems
    k = one.comprobante.Conceptos[0]
    assert (k.ClaveProdServ, k.ClaveUnidad) == ("43201800", "H87")
    assert not two.ok
    assert {p.location for p in two.problems} == {"cfdi_concepto(factura_id=2):1:no_identificacion"}
    assert all("ZZZ" in p.message for p in two.problems)
    src.close()


def test_no_lock_is_held_after_a_claim_or_a_write_back(server_db: Db) -> None:
    """Autocommit is off: every unit of work ends in an explicit commit, so the ERP can touch
    the claimed rows at once (here with a 1-second lock timeout) while the source stays open."""
    db = server_db
    conn = db.connect()
    insert_invoice(conn, db, 1)
    insert_invoice(conn, db, 2)
    src = db.source()
    assert len(src.claim_batch(5, 60, "a")) == 2
    assert src.write_back(2, Outcome.stamped(UUID1, "2026-12-07T10:00:00", b"<x/>", None))
    erp, _ = odbc.connect(ConnSpec(db.conn_str, dialect=db.dialect, timeout_seconds=1))
    erp.execute("UPDATE cfdi_factura SET condiciones_pago = 'x' WHERE id IN (1, 2)")
    erp.execute("DELETE FROM cfdi_concepto WHERE factura_id = 1")
    erp.rollback()
    odbc.close_quietly(erp)
    src.close()


def test_sqlite_money_declared_decimal_is_refused_by_the_check(_databases) -> None:
    """SQLite's ODBC driver describes a DECIMAL(18,6) column as text while SQLite stores its
    values as floats (1234567890.123456 comes back as '1234567890.12346'): only the declared
    type tells, so the check asks for TEXT."""
    d = fresh_tables(_databases["sqlite"])
    conn = d.connect()
    conn.execute("DROP TABLE cfdi_concepto")
    ddl = get_dialect("sqlite").create_table(CONCEPTO)[0]
    conn.execute(ddl.replace("valor_unitario TEXT", "valor_unitario DECIMAL(18,6)"))
    conn.execute(
        "INSERT INTO cfdi_concepto (factura_id, linea, valor_unitario) VALUES (1, 1, ?)",
        "1234567890.123456",
    )
    assert conn.execute("SELECT valor_unitario FROM cfdi_concepto").fetchone()[0] != (
        "1234567890.123456"
    )  # what the check guards against
    found = check_table_source(d.spec())
    assert [(p.code, p.path) for p in found] == [("CONN-BD-TIPO", "valor_unitario")]
    assert "TEXT" in found[0].message and "DECIMAL(18,6)" in found[0].message


def test_write_back_many_rows_in_one_transaction(db: Db) -> None:
    conn = db.connect()
    for i in (1, 2, 3):
        insert_invoice(conn, db, i)
    src = db.source()
    src.claim_batch(5, 60, "a")
    stamp = Outcome.stamped(UUID1, "2026-12-07T10:00:00", b"<x/>", None)
    assert src.write_back(3, stamp)
    other = Outcome.stamped("AAAAAAAA-0B0A-4909-8807-060504030201", "2026-12-07T10:00:00", b"<y/>", None)
    err = Outcome("ERROR", error_codigo="CFDI40158", error_mensaje="El RFC no es válido.")
    assert src.write_back_many([(1, stamp), (2, err), (3, other)]) == [True, True, False]
    assert row(conn, 1, "estado", "uuid") == ("TIMBRADO", UUID1)
    assert row(conn, 2, "estado", "error_codigo") == ("ERROR", "CFDI40158")
    assert row(conn, 3, "uuid", "xml") == (UUID1, "<x/>")  # the first stamp stays
    src.close()


def test_a_batch_is_claimed_in_one_statement_where_the_engine_allows_it(db: Db) -> None:
    """PostgreSQL (rows locked by the skip-locked select): the batch's guarded update is one
    ``UPDATE … FROM (VALUES …) RETURNING``; a row another instance holds is not taken, and
    each row gets its own referencia. Elsewhere one guarded update per row."""
    conn = db.connect()
    for i in range(1, 6):
        insert_invoice(conn, db, i)
    other = db.source()
    assert [c.id for c in other.claim_batch(1, 600, "b")] == [1]
    src = db.source()
    counts: dict[str, int] = {}
    src.round_trips = counts
    got = src.claim_batch(10, 600, "a")
    assert [c.id for c in got] == [2, 3, 4, 5]
    one = db.engine == "postgresql"
    # candidates + claim (+ one per row elsewhere) + headers + lines
    assert counts["statements"] == (4 if one else 3 + 4)
    assert len({c.referencia for c in got}) == 4
    for c in got:
        assert c.referencia.startswith(f"F{c.id}-") and c.attempt == 1
        assert row(conn, c.id, "estado", "reclamado_por", "referencia", "intentos") == (
            "EN_PROCESO", "a", c.referencia, 1)  # fmt: skip
    assert row(conn, 1, "reclamado_por") == ("b",)
    src.close(), other.close()


def test_write_back_of_a_batch_is_one_statement_where_the_engine_allows_it(db: Db) -> None:
    """PostgreSQL: a group commit's write-backs are one ``UPDATE … FROM (VALUES …) RETURNING``
    with each row's guard (a row TIMBRADO under another UUID is not written; an ERROR never
    overwrites a stamp); a batch naming a row twice goes one row at a time, in order."""
    conn = db.connect()
    for i in (1, 2, 3, 4):
        insert_invoice(conn, db, i)
    src = db.source()
    src.claim_batch(10, 60, "a")
    stamp = Outcome.stamped(UUID1, "2026-12-07T10:00:00", "<x>ñ</x>", None)
    assert src.write_back(4, stamp)
    counts: dict[str, int] = {}
    src.round_trips = counts
    other = Outcome.stamped("AAAAAAAA-0B0A-4909-8807-060504030201", "2026-12-07T10:00:00", b"<y/>", b"<a/>")
    err = Outcome("ERROR", error_codigo="CFDI40158", error_mensaje="El RFC no es válido.")
    got = src.write_back_many([(1, stamp), (2, err), (3, other), (4, other)])
    assert got == [True, True, True, False]
    assert counts["statements"] == (1 if db.engine == "postgresql" else 4)
    assert row(conn, 1, "estado", "uuid", "xml", "reclamado_hasta") == ("TIMBRADO", UUID1, "<x>ñ</x>", None)
    assert row(conn, 2, "estado", "error_codigo", "uuid") == ("ERROR", "CFDI40158", None)
    assert row(conn, 3, "uuid", "acuse") == ("AAAAAAAA-0B0A-4909-8807-060504030201", "<a/>")
    assert row(conn, 4, "uuid", "xml") == (UUID1, "<x>ñ</x>")
    assert src.write_back_many([(2, stamp), (2, err)]) == [True, False]  # in order
    assert row(conn, 2, "estado", "uuid") == ("TIMBRADO", UUID1)
    assert src.write_back_many([(4, err), (4, stamp)]) == [False, True]
    assert row(conn, 4, "estado", "uuid") == ("TIMBRADO", UUID1)
    src.close()
