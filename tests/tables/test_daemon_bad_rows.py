"""Each bad row issue 11 lists, through the daemon's pipeline on each engine (real ODBC, the
sandbox PAC over real HTTP): the row gets ``ERROR`` with its code and a Spanish message in its
own columns, and the other rows are stamped meanwhile.

- NULL where a value is needed (a header column, a line column): ``CONN-BD-NULO``;
- a float where money must be exact (the ERP's table changed ``tipo_cambio`` to a float column
  after the daemon checked it; ``run`` refuses such a table from the start): ``CONN-BD-FLOTANTE``;
- text in the wrong encoding: ``CONN-BD-CODIFICACION``. PostgreSQL: a legacy WIN1252 client
  (psqlODBC's ANSI driver, the source's ``encoding = "cp1252"``) and a row holding a character
  WIN1252 does not have (the server refuses to hand that row; the others are read). SQLite: a
  row whose bytes are cp1252 while the source reads UTF-8. MariaDB's server always converts a
  column's text to the connection's character set (utf8mb4 by default, which every character
  fits), so no single MariaDB row can be in another encoding than its neighbours;
- a line without a header: ``CONN-BD-LINEA-HUERFANA`` in ``status`` (the line has no error
  columns of its own);
- an RFC SAT rejects: the validation's code, naming the field.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from connector.config import check_config
from connector.pipeline import Pipeline
from tests.daemon.conftest import stamps_by_key

from .conftest import LINE, Db, insert_invoice
from .daemon_procs import status_json
from .daemon_support import RECEPTOR, REPO, rows, table_config

GOOD = (1, 7)


def _to_float_tipo_cambio(db: Db, conn: Any) -> None:
    """The ERP's header table now keeps ``tipo_cambio`` as a float (a legacy schema)."""
    if db.engine == "postgresql":
        conn.execute("ALTER TABLE cfdi_factura ALTER COLUMN tipo_cambio TYPE DOUBLE PRECISION")
    elif db.engine == "mariadb":
        conn.execute("ALTER TABLE cfdi_factura MODIFY tipo_cambio DOUBLE")
    else:  # SQLite cannot change a column's type: the table made again
        (ddl,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'cfdi_factura'"
        ).fetchone()
        assert "tipo_cambio TEXT" in ddl
        conn.execute("DROP TABLE cfdi_factura")
        conn.execute(ddl.replace("tipo_cambio TEXT", "tipo_cambio REAL"))


def _source_db(db: Db) -> tuple[Db, str]:
    """The connection the source is configured with, and its extra settings: on PostgreSQL a
    legacy WIN1252 client, on SQLite text read as UTF-8."""
    if db.engine == "postgresql":
        legacy = db.conn_str.replace("SERVER=", "DRIVER={PostgreSQL ANSI};SERVER=", 1)
        legacy += ";ConnSettings={SET client_encoding TO 'WIN1252'}"
        return Db(db.engine, legacy, db.dialect), 'encoding = "cp1252"\n'
    if db.engine == "sqlite":
        return db, 'encoding = "utf-8"\n'
    return db, ""


def _bad_encoding_row(db: Db, conn: Any) -> bool:
    """Row 6: text in another encoding than the source reads; False where the engine cannot
    hold such a row (MariaDB)."""
    if db.engine == "postgresql":
        insert_invoice(conn, db, 6, **RECEPTOR, condiciones_pago="Entrega en Łódź")
    elif db.engine == "sqlite":
        insert_invoice(conn, db, 6, **RECEPTOR)
        # 'CRÉDITO' written as cp1252 bytes by a legacy program
        conn.execute(
            "UPDATE cfdi_factura SET condiciones_pago = CAST(X'4352C94449544F' AS TEXT) "
            "WHERE id = 6"
        )
    else:
        return False
    return True


def test_each_bad_row_gets_its_coded_spanish_error_and_the_others_are_stamped(
    db: Db, sandbox: Any, tmp_path: Path
) -> None:
    source_db, extra = _source_db(db)
    config = table_config(tmp_path, source_db, sandbox, extra=extra)
    cfg, problems = check_config(config)  # the daemon starts on the table as it was
    assert cfg is not None, problems
    conn = db.connect()
    _to_float_tipo_cambio(db, conn)
    insert_invoice(conn, db, 1, **RECEPTOR, condiciones_pago="CONTADO AÑO")
    insert_invoice(conn, db, 2, **{**RECEPTOR, "receptor_rfc": None})
    insert_invoice(conn, db, 3, lines=[{**LINE, "cantidad": None}], **RECEPTOR)
    insert_invoice(conn, db, 4, **RECEPTOR, moneda="USD", tipo_cambio=17.5)
    insert_invoice(conn, db, 5, **{**RECEPTOR, "receptor_rfc": "CACX7605101P"})
    has_encoding_case = _bad_encoding_row(db, conn)
    insert_invoice(conn, db, 7, **RECEPTOR)
    conn.execute(  # a line whose invoice row does not exist
        "INSERT INTO cfdi_concepto (factura_id, linea, clave_prod_serv, cantidad, clave_unidad, "
        "descripcion, valor_unitario, objeto_imp) "
        "VALUES (99, 1, '43201800', '1', 'H87', 'Memoria', '10.00', '01')"
    )
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        assert pipe.run_until_idle(120)
    finally:
        pipe.close()
    got = rows(conn, "estado", "uuid", "error_codigo", "error_mensaje", "xml")
    stamps = stamps_by_key(sandbox.store)
    # the good rows are stamped (the cp1252 text read exactly) and only they
    assert set(stamps) == {("A", str(i)) for i in GOOD}
    for i in GOOD:
        estado, uuid, code, _, xml = got[i]
        assert (estado, code) == ("TIMBRADO", None) and stamps[("A", str(i))] == [uuid]
    assert 'CondicionesDePago="CONTADO AÑO"' in got[1][4]

    def error(i: int) -> tuple[str, str]:
        estado, uuid, code, message, _ = got[i]
        assert (estado, uuid) == ("ERROR", None), got[i][:4]
        return code, message

    assert error(2) == (
        "CONN-BD-NULO",
        "CONN-BD-NULO: La columna receptor_rfc está vacía (NULL) y la factura la necesita. "
        "(cfdi_factura:2:receptor_rfc)",
    )
    code, message = error(3)
    assert code == "CONN-BD-NULO" and "cfdi_concepto(factura_id=3):1:cantidad" in message
    assert "La columna cantidad está vacía (NULL)" in message
    code, message = error(4)
    assert code == "CONN-BD-FLOTANTE" and "punto flotante (17.5)" in message
    assert "cfdi_factura:4:tipo_cambio" in message and "DECIMAL/NUMERIC" in message
    code, message = error(5)
    assert "CONN-RFC" in code and "El RFC no cumple" in message
    assert "(Receptor.Rfc; cfdi_factura:5:receptor_rfc)" in message
    if has_encoding_case:
        code, message = error(6)
        assert code == "CONN-BD-CODIFICACION" and "codificación" in message
        assert "cfdi_factura:6" in message
    # the line without a header is in `status`, coded and in Spanish
    notes = [f for f in status_json(config)["recent_failures"] if f["code"].startswith("CONN-BD")]
    orphan = [f for f in notes if f["code"] == "CONN-BD-LINEA-HUERFANA"]
    assert len(orphan) == 1 and orphan[0]["location"] == "cfdi_concepto(factura_id=99)"
    assert "no existe esa factura" in orphan[0]["message"]
    # and `run` refuses the float column from the start, naming it
    r = subprocess.run(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config), "--once"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert r.returncode != 0
    assert "CONN-BD-TIPO" in r.stdout and "tipo_cambio" in r.stdout, r.stdout + r.stderr
    conn.close()
