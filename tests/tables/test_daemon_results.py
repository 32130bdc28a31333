"""Results-table mode per engine: the ERP's own tables (other names, other columns) are only
read, through the configured header and lines queries; claims and outcomes go to the
connector's ``cfdi_resultado``. Real engines over real ODBC, the sandbox PAC over HTTP."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from connector.adapters.table import get_dialect
from connector.adapters.table.schema import RESULTADO

from .conftest import Db
from .daemon_support import REPO, table_config

FACTURA_QUERY = (
    "SELECT num AS id, ser AS serie, fol AS folio, fec AS fecha, rfc_cli AS receptor_rfc, "
    "nom_cli AS receptor_nombre, cp_cli AS receptor_cp, reg_cli AS receptor_regimen, "
    "uso AS uso_cfdi, fp AS forma_pago, mp AS metodo_pago, mon AS moneda "
    "FROM ventas_cab WHERE cerrada = 1"
)
CONCEPTO_QUERY = (
    "SELECT num AS factura_id, renglon AS linea, clave AS clave_prod_serv, cant AS cantidad, "
    "'H87' AS clave_unidad, 'Pieza' AS unidad, descr AS descripcion, precio AS valor_unitario, "
    "'02' AS objeto_imp, iva AS iva_tasa FROM ventas_det"
)


def _erp_tables(db: Db, conn: Any) -> None:
    money = "TEXT" if db.engine == "sqlite" else "DECIMAL(18,6)"
    when = {"postgresql": "TIMESTAMP", "mariadb": "DATETIME", "sqlite": "TEXT"}[db.engine]
    for t in ("ventas_det", "ventas_cab", RESULTADO.name):
        with contextlib.suppress(Exception):  # not there yet
            conn.execute(f"DROP TABLE {t}")
    conn.execute(
        # the ERP's own sizes (a folio of 20, not our 40) and columns of its own (a float
        # weight): only read, never judged by our table's rules
        f"CREATE TABLE ventas_cab (num INTEGER PRIMARY KEY, ser VARCHAR(25), fol VARCHAR(20), "
        f"fec {when}, rfc_cli VARCHAR(13), nom_cli VARCHAR(300), cp_cli VARCHAR(5), "
        "reg_cli VARCHAR(3), uso VARCHAR(4), fp VARCHAR(2), mp VARCHAR(3), mon VARCHAR(3), "
        "cerrada INTEGER)"
    )
    conn.execute(
        f"CREATE TABLE ventas_det (num INTEGER, renglon INTEGER, clave VARCHAR(8), cant {money}, "
        f"descr VARCHAR(1000), precio {money}, iva {money}, peso REAL)"
    )
    for stmt in get_dialect(db.dialect).create_table(RESULTADO):
        conn.execute(stmt)


def _sale(conn: Any, db: Db, num: int, *, uso: str = "G03", cerrada: int = 1) -> None:
    def m(v: str) -> Any:
        return v if db.engine == "sqlite" else Decimal(v)

    conn.execute(
        "INSERT INTO ventas_det VALUES (?, 1, '43201800', ?, 'Memoria USB', ?, ?, 0.25)",
        num, m("2"), m("150.00"), m("0.160000"),
    )  # fmt: skip
    fec = (datetime.now() - timedelta(minutes=5)).replace(microsecond=0)
    conn.execute(
        "INSERT INTO ventas_cab VALUES (?, 'V', ?, ?, 'CACX7605101P8', 'XOCHILT CASAS CHAVEZ', "
        "'26015', '612', ?, '03', 'PUE', 'MXN', ?)",
        num, str(num), fec if db.engine != "sqlite" else fec.isoformat(sep=" "), uso, cerrada,
    )  # fmt: skip


def _erp_snapshot(conn: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for t in ("ventas_cab", "ventas_det")
            for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()]  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)  # fmt: skip


def _results(conn: Any) -> dict[int, tuple[Any, ...]]:
    got = conn.execute(
        f"SELECT id, estado, uuid, error_codigo, xml FROM {RESULTADO.name} ORDER BY id"
    ).fetchall()
    return {int(r[0]): tuple(r[1:]) for r in got}


def _config(tmp_path: Path, db: Db, sandbox: Any, factura_query: str = FACTURA_QUERY) -> Path:
    def toml(s: str) -> str:
        return s.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"')

    extra = (
        f'resultados = "{RESULTADO.name}"\n'
        f'factura = "ventas_cab"\nconcepto = "ventas_det"\n'
        f'factura_query = "{toml(factura_query)}"\nconcepto_query = "{toml(CONCEPTO_QUERY)}"\n'
    )
    return table_config(tmp_path, db, sandbox, extra=extra)


def test_an_erp_whose_tables_may_not_be_altered_gets_its_results_in_cfdi_resultado(
    db: Db, sandbox, tmp_path: Path
) -> None:
    conn = db.connect()
    _erp_tables(db, conn)
    for num in (1, 2, 3):
        _sale(conn, db, num)
    _sale(conn, db, 4, uso="X99")  # not in SAT's catalog
    _sale(conn, db, 5, cerrada=0)  # not closed by the ERP: not ready, never touched
    before = _erp_snapshot(conn)
    config = _config(tmp_path, db, sandbox)
    r = _cli("check-config", "--config", str(config))
    assert r.returncode == 0, r.stdout + r.stderr
    r = _cli("run", "--config", str(config), "--once", "--timeout", "120")
    assert r.returncode == 1, r.stdout + r.stderr  # one invoice with an error
    got = _results(conn)
    assert sorted(got) == [1, 2, 3, 4]
    for num in (1, 2, 3):
        estado, uuid, code, xml = got[num]
        assert estado == "TIMBRADO" and uuid and uuid in xml and code is None
    assert got[4][0] == "ERROR" and got[4][2] == "CFDI40160"
    assert _erp_snapshot(conn) == before  # the ERP's tables were only read
    # the ERP fixes the invoice; support replays it: its results row goes back to PENDIENTE
    conn.execute("UPDATE ventas_cab SET uso = 'G03' WHERE num = 4")
    r = _cli("replay", "--config", str(config), "--item", "V/4")
    assert r.returncode == 0 and "PENDIENTE" in r.stdout, r.stdout + r.stderr
    r = _cli("run", "--config", str(config), "--once", "--timeout", "120")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _results(conn)[4][0] == "TIMBRADO"
    from lxml import etree

    folios = [etree.fromstring(s.xml).get("Folio") for s in sandbox.store.stamps()]
    assert sorted(folios) == ["1", "2", "3", "4"]  # each stamped once
    conn.close()


def test_check_config_names_what_a_header_query_lacks(sqlite_db: Db, sandbox, tmp_path) -> None:
    db = sqlite_db
    conn = db.connect()
    _erp_tables(db, conn)
    conn.close()
    without_rfc = FACTURA_QUERY.replace("rfc_cli AS receptor_rfc, ", "")
    r = _cli("check-config", "--config", str(_config(tmp_path, db, sandbox, without_rfc)))
    assert r.returncode == 2
    assert "CONN-BD-COLUMNA" in r.stdout and "receptor_rfc" in r.stdout, r.stdout
