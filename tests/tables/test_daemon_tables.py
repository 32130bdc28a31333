"""The daemon on table sources, end to end per engine: rows claimed over real ODBC, stamped by
the sandbox PAC over real HTTP, the outcome written back into each row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyodbc

from connector.config import check_config
from connector.pipeline import Pipeline

from .conftest import Db, insert_invoice
from .daemon_support import RECEPTOR, REPO, rows, table_config


def _pipeline(config: Path) -> Pipeline:
    cfg, problems = check_config(config)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    pipe.start()
    return pipe


def _stamps(sandbox) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    from lxml import etree

    out: dict[str, list[str]] = {}
    for rec in sandbox.store.stamps():
        folio = etree.fromstring(rec.xml).get("Folio") or ""
        out.setdefault(folio, []).append(rec.uuid)
    return out


def test_rows_are_stamped_and_written_back_and_bad_rows_get_their_coded_error(
    db: Db, sandbox, tmp_path: Path
) -> None:
    conn = db.connect()
    for i in (1, 2, 3):
        insert_invoice(conn, db, i, **RECEPTOR)
    bad_rfc = {**RECEPTOR, "receptor_rfc": "CACX7605101P"}  # an RFC SAT rejects
    insert_invoice(conn, db, 4, **bad_rfc)
    insert_invoice(conn, db, 5, lines=[], **RECEPTOR)  # PENDIENTE before its lines were written
    insert_invoice(conn, db, 6, estado=None, **RECEPTOR)  # not ready: never touched
    pipe = _pipeline(table_config(tmp_path, db, sandbox))
    try:
        assert pipe.run_until_idle(120)
    finally:
        pipe.close()
    got = rows(conn, "estado", "uuid", "xml", "acuse", "fecha_timbrado", "error_codigo",
               "error_mensaje", "referencia")  # fmt: skip
    stamps = _stamps(sandbox)
    for i in (1, 2, 3):
        estado, uuid, xml, acuse, fecha, code, _, referencia = got[i]
        assert (estado, code) == ("TIMBRADO", None)
        assert stamps[str(i)] == [uuid]  # stamped once, and this is its UUID
        assert uuid in xml and "TimbreFiscalDigital" in xml
        assert acuse and fecha is not None and referencia
    estado, uuid, _, _, _, code, message, _ = got[4]
    assert (estado, uuid) == ("ERROR", None)
    assert "Rfc" in message and code  # coded, saying which field
    assert got[5][0] == "ERROR" and got[5][5] == "CONN-BD-SIN-CONCEPTOS"
    assert "líneas" in got[5][6]
    assert got[6][0] is None and got[6][1] is None
    assert set(stamps) == {"1", "2", "3"}
    conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_run_once_exits_1_on_a_bad_row_and_replay_item_stamps_it_once_fixed(
    sqlite_db: Db, sandbox, tmp_path: Path
) -> None:
    db = sqlite_db
    conn = db.connect()
    insert_invoice(conn, db, 1, **RECEPTOR)
    insert_invoice(conn, db, 2, **{**RECEPTOR, "uso_cfdi": "X99"})  # not in SAT's catalog
    config = table_config(tmp_path, db, sandbox)
    r = _cli("run", "--config", str(config), "--once", "--timeout", "120")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 fila(s) timbrada(s), 1 fila(s) con error" in r.stdout
    got = rows(conn, "estado", "error_codigo", "error_mensaje")
    assert got[1][0] == "TIMBRADO"
    assert got[2][0] == "ERROR" and got[2][1]
    # the ERP fixes the row; support replays the invoice: the row is PENDIENTE again
    conn.execute("UPDATE cfdi_factura SET uso_cfdi = 'G03' WHERE id = 2")
    r = _cli("replay", "--config", str(config), "--item", "A/2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PENDIENTE" in r.stdout
    assert rows(conn, "estado")[2] == ("PENDIENTE",)
    r = _cli("run", "--config", str(config), "--once", "--timeout", "120")
    assert r.returncode == 0, r.stdout + r.stderr
    got = rows(conn, "estado", "uuid", "error_codigo")
    assert got[2][0] == "TIMBRADO" and got[2][2] is None
    assert {k: len(v) for k, v in _stamps(sandbox).items()} == {"1": 1, "2": 1}
    # run --once with nothing waiting: exit 0 at once
    assert _cli("run", "--config", str(config), "--once").returncode == 0
    conn.close()


def test_demo_tables_stamps_the_sample_rows_on_sqlite_and_again_on_a_second_run(
    tmp_path: Path,
) -> None:
    import io
    import re

    from connector.demo.tables import run_table_demo

    for expected_ids in ("1", "5"):  # a second run adds new rows (new folios) and stamps them
        out = io.StringIO()
        assert run_table_demo(tmp_path / "demo", out=out) == 0, out.getvalue()
        text = out.getvalue()
        assert f"id {expected_ids}" in text
        assert len(re.findall(r"TIMBRADO +uuid = [0-9A-F-]{36}", text)) == 3, text
        assert text.count("ERROR") == 1 and "CFDI40160" in text  # UsoCFDI X99
    conn_str = f"DRIVER={{SQLite3}};DATABASE={tmp_path / 'demo' / 'var' / 'erp.sqlite'}"
    conn = pyodbc.connect(conn_str)
    states = [r[0] for r in conn.execute("SELECT estado FROM cfdi_factura ORDER BY id")]
    conn.close()
    assert states == ["TIMBRADO"] * 3 + ["ERROR"] + ["TIMBRADO"] * 3 + ["ERROR"]


def test_find_redeliver_writes_a_stamped_row_again_and_cancel_inbox_is_refused(
    sqlite_db: Db, sandbox, tmp_path: Path
) -> None:
    db = sqlite_db
    conn = db.connect()
    insert_invoice(conn, db, 1, **RECEPTOR)
    config = table_config(tmp_path, db, sandbox)
    assert _cli("run", "--config", str(config), "--once").returncode == 0
    (uuid, xml), = [(r[0], r[1]) for r in rows(conn, "uuid", "xml").values()]
    # someone on the ERP's side blanked the row: the journal still has the stamp
    conn.execute("UPDATE cfdi_factura SET xml = NULL, acuse = NULL WHERE id = 1")
    r = _cli("find", "--config", str(config), "--folio", "A-1", "--redeliver")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(conn, "estado", "uuid", "xml") == {1: ("TIMBRADO", uuid, xml)}
    assert len(_stamps(sandbox)["1"]) == 1
    # a table source has no folders: a cancellation inbox is a configuration error
    text = config.read_text(encoding="utf-8").replace(
        'pac = "sandbox"\n[sources.table]', 'pac = "sandbox"\ncancel_inbox = "cancel"\n[sources.table]'
    )
    config.write_text(text, encoding="utf-8")
    r = _cli("check-config", "--config", str(config))
    assert r.returncode == 2 and "cancel_inbox" in r.stdout and "CONN-CFG-VALOR" in r.stdout
    conn.close()


def test_run_instance_names_the_claims(sqlite_db: Db, sandbox, tmp_path: Path) -> None:
    """``run --instance NAME``: the rows this run claims carry that name (default: the host
    and a hash of the configuration's path, the same on every run)."""
    db = sqlite_db
    conn = db.connect()
    insert_invoice(conn, db, 1, **RECEPTOR)
    config = table_config(tmp_path, db, sandbox)
    r = _cli("run", "--config", str(config), "--once", "--instance", "caja-2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(conn, "estado", "reclamado_por") == {1: ("TIMBRADO", "caja-2")}
    insert_invoice(conn, db, 2, **RECEPTOR)
    assert _cli("run", "--config", str(config), "--once").returncode == 0
    from connector.adapters.table.rows import instance_name

    assert rows(conn, "reclamado_por")[2] == (instance_name(config.resolve()),)
    conn.close()


def test_a_late_acuse_reaches_the_row_and_the_acuse_folder(
    sqlite_db: Db, sandbox, tmp_path: Path
) -> None:
    """The PAC cannot give the acuse at delivery: the row is TIMBRADO without it; asked again
    later, it is written into the row and, the source writing files too, beside the XML."""
    import time

    db = sqlite_db
    conn = db.connect()
    insert_invoice(conn, db, 1, **RECEPTOR)
    sandbox.faults.add("http500", times=None, operations="ObtenerAcuseEnvio")
    pipe = _pipeline(table_config(tmp_path, db, sandbox, outputs=True))
    pipe.redeliver_seconds = 0.2
    try:
        assert pipe.run_until_idle(60)
        (estado, uuid, acuse), = rows(conn, "estado", "uuid", "acuse").values()
        assert (estado, acuse) == ("TIMBRADO", None) and uuid
        assert not list((tmp_path / "out" / "acuse").iterdir())
        sandbox.faults.clear()  # the PAC gives it now
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and rows(conn, "acuse")[1][0] is None:
            pipe.poll_once()
            time.sleep(0.1)
    finally:
        pipe.close()
    assert rows(conn, "acuse")[1][0]
    assert [p.name for p in (tmp_path / "out" / "acuse").iterdir()] == [f"A1_{uuid}_acuse.xml"]
    conn.close()
