"""The database of a table source stopped and started again while the daemon (a real ``run``
process) works through its rows, with a folder source in the same configuration (issue 11).

The server is a private MariaDB of the test's own (``tests/tables/private_server.py``), really
stopped (SIGTERM, as ``systemctl stop``) and started again on the same data directory and port.
While it is down the table source pauses (``table_source_paused`` in the log, a coded
``CONN-BD-*`` note and the source "en pausa" in ``status``), the folder source keeps stamping,
and once the server is back the source resumes by itself: every row ends ``TIMBRADO`` with the
one UUID the sandbox gave it, nothing lost, nothing stamped twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.adapters.table import get_dialect
from tests.daemon.conftest import dat_file
from tests.daemon.test_daemon_reload import NEW_SOURCE

from .conftest import Db, insert_invoice
from .daemon_procs import (
    all_final,
    check_stamped_once,
    log_text,
    start,
    status_json,
    stderr_text,
    stop,
    until,
)
from .daemon_support import RECEPTOR, rows, table_config
from .private_server import PrivateMariaDB

ROWS = 200



@pytest.fixture
def private_mariadb() -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _drop(inbox: Path, name: str, data: bytes) -> None:
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, inbox / name)


def test_the_database_stopped_mid_run_pauses_its_source_and_loses_nothing(
    private_mariadb: PrivateMariaDB, tmp_path: Path
) -> None:
    from connector.pac.sandbox import SandboxPac

    server = private_mariadb
    admin = server.admin
    import pyodbc

    setup = pyodbc.connect(f"{admin};DATABASE=mysql", autocommit=True)
    setup.execute("CREATE DATABASE erp CHARACTER SET utf8mb4")
    setup.close()
    db = Db("mariadb", f"{admin};DATABASE=erp", "mariadb")
    conn = db.connect()
    for stmt in get_dialect("mariadb").ddl():
        conn.execute(stmt)
    for i in range(1, ROWS + 1):
        insert_invoice(conn, db, i, **RECEPTOR)
    conn.close()

    pac = SandboxPac.demo(tmp_path / "pac.db", latency=0.03)
    pac.start()
    ws = tmp_path / "ws"
    for d in ("inbox2", "archive", "failed", "out/xml"):
        (ws / d).mkdir(parents=True, exist_ok=True)
    config = table_config(ws, db, pac, batch=10, workers=4, extra=NEW_SOURCE)
    proc = start(config)
    try:
        # stamping has begun: the server goes away in the middle of the run
        assert until(lambda: _stamped(db) >= 20, 90), stderr_text(config)[-3000:]
        server.stop()
        assert until(lambda: '"table_source_paused"' in log_text(config), 30)
        # the folder source keeps flowing while the database is down
        _drop(ws / "inbox2", "lote1.dat", dat_file("F", list(range(1, 11))))
        assert until(lambda: len(list((ws / "out" / "xml").glob("*.xml"))) == 10, 90), (
            stderr_text(config)[-3000:]
        )
        assert until(lambda: list((ws / "archive").rglob("lote1.dat")), 30)
        # status says the source is paused, with the coded reason in Spanish
        assert until(lambda: "en pausa" in json.dumps(status_json(config, 200)), 30)
        st = status_json(config, 200)
        table_state = st["daemon"]["tables"]["erp"]
        assert table_state["estado"] == "en pausa"
        assert table_state["codigo"].startswith("CONN-BD-") and table_state["mensaje"]
        notes = [f for f in st["recent_failures"] if f["source"] == "erp"]
        assert any(
            f["code"].startswith("CONN-BD-") and "queda en pausa" in f["message"] for f in notes
        ), notes
        assert '"table_source_resumed"' not in log_text(config)
        # the server is back: the source resumes by itself and finishes every row
        server.start()
        conn = db.connect()
        assert until(lambda: all_final(conn, ROWS), 150, 0.3), (
            rows(conn, "estado"),
            stderr_text(config)[-3000:],
        )
        assert '"table_source_resumed"' in log_text(config)
    finally:
        code = stop(proc)
    assert code == 0, stderr_text(config)[-3000:]
    try:
        check_stamped_once(conn, pac, ROWS)
    finally:
        pac.close()
        conn.close()


def _stamped(db: Db) -> int:
    conn = db.connect()
    try:
        return sum(1 for v in rows(conn, "estado").values() if v[0] == "TIMBRADO")
    finally:
        conn.close()


def test_a_source_that_got_through_again_is_no_longer_paused(
    sqlite_db: Db, sandbox: Any, tmp_path: Path
) -> None:
    """The first work to reach the database again (often a write-back of a stamped invoice,
    which does not wait for the pause) ends the pause: the source claims at once, not after
    the rest of a backoff of up to a minute."""
    from connector.adapters.table.odbc import TableError

    from .test_daemon_tables import _pipeline

    pipe = _pipeline(table_config(tmp_path, sqlite_db, sandbox))
    try:
        units, src = pipe.tables, pipe.sources["erp"]
        down = TableError("CONN-BD-CONEXION", "Se perdió la conexión.", transient=True)
        for _ in range(5):  # failures in a row: the backoff grew to 16 s
            with pytest.raises(TableError):
                units._use(src, lambda t: (_ for _ in ()).throw(down))
        assert units._paused(src) and units.state()["erp"]["estado"] == "en pausa"
        assert units._use(src, lambda t: t.held("otra")) == []  # the database answers again
        assert not units._paused(src)
        assert units.state()["erp"] == {"estado": "activa"}
    finally:
        pipe.close()


def test_rows_claimed_when_the_database_went_away_are_taken_back_when_it_answers(
    sqlite_db: Db, sandbox: Any, tmp_path: Path
) -> None:
    """The database can fail between a claim's commit and the read of its rows: those rows
    are this instance's (``EN_PROCESO``, with its name) but no invoice carries them. When the
    source answers again they are taken back at once, not at the next periodic tick."""
    from connector.adapters.table.odbc import TableError

    from .test_daemon_tables import _pipeline

    db = sqlite_db
    conn = db.connect()
    for i in (1, 2, 3):
        insert_invoice(conn, db, i, **RECEPTOR)
    pipe = _pipeline(table_config(tmp_path, db, sandbox))
    try:
        units, src = pipe.tables, pipe.sources["erp"]
        # the claim got through; then the database went away before the rows were read
        assert [c.id for c in db.source().claim_batch(10, 600, pipe.instance)] == [1, 2, 3]
        down = TableError("CONN-BD-CONEXION", "Se perdió la conexión.", transient=True)
        with pytest.raises(TableError):
            units._use(src, lambda t: (_ for _ in ()).throw(down))
        units._dbs["erp"].paused_until = 0.0  # the pause is over: the database answers
        assert pipe.run_until_idle(60)
        got = rows(conn, "estado", "uuid", "intentos")
        # stamped, and taken back (not claimed a second time after their lease)
        assert {i: (v[0], v[2]) for i, v in got.items()} == {i: ("TIMBRADO", 1) for i in (1, 2, 3)}
    finally:
        pipe.close()
        conn.close()
