"""The network to a table source's database cut silently (packets dropped, no RST) while the
daemon (a real ``run`` process) works, with a folder source in the same configuration
(issue 11: "folders and other tables keep flowing meanwhile").

A cut like this gives the client no error: a call sent into it waits inside the ODBC driver
(psqlODBC has no read timeout; the server's statement_timeout never starts, the server never
saw the statement). The PostgreSQL source goes through ``BlackHoleProxy``; while it is
black-holed the folder source still stamps and delivers, the table source is reported paused
with a coded Spanish reason, and once the proxy relays again every row is stamped once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import dat_file
from tests.daemon.test_daemon_reload import NEW_SOURCE

from .blackhole import BlackHoleProxy
from .conftest import Db, fresh_tables, insert_invoice
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

FIRST, MORE = 20, 10


@pytest.fixture
def proxied(_databases: dict[str, Db]) -> Iterator[tuple[Db, Db, BlackHoleProxy]]:
    """The PostgreSQL test database (direct, for the test's own SQL) and the same database
    through the proxy (for the daemon)."""
    direct = fresh_tables(_databases["postgresql"])
    proxy = BlackHoleProxy(("127.0.0.1", 5432))
    through = Db("postgresql", direct.conn_str.replace("PORT=5432", f"PORT={proxy.port}"),
                 "postgresql")  # fmt: skip
    try:
        yield direct, through, proxy
    finally:
        proxy.close()


def _drop(inbox: Path, name: str, data: bytes) -> None:
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, inbox / name)


def _workspace(tmp_path: Path, direct: Db, through: Db) -> tuple[Any, Any, Path, Path]:
    """FIRST pending rows, the sandbox PAC, and the configuration: the table source through
    the proxy (its statement timeout 2 s) and a folder source."""
    from connector.pac.sandbox import SandboxPac

    conn = direct.connect()
    for i in range(1, FIRST + 1):
        insert_invoice(conn, direct, i, **RECEPTOR)
    pac = SandboxPac.demo(tmp_path / "pac.db")
    pac.start()
    ws = tmp_path / "ws"
    for d in ("inbox2", "archive", "failed", "out/xml"):
        (ws / d).mkdir(parents=True, exist_ok=True)
    config = table_config(ws, through, pac, batch=10, workers=4, extra=NEW_SOURCE)
    # the engine's statement timeout, and how long a call may go unanswered (+ a margin)
    head, tail = config.read_text("utf-8").rsplit("timeout_seconds = 10", 1)  # the table's
    config.write_text(f"{head}timeout_seconds = 2{tail}", "utf-8")
    return conn, pac, ws, config


def test_a_black_holed_database_pauses_its_source_and_folders_keep_flowing(
    proxied: tuple[Db, Db, BlackHoleProxy], tmp_path: Path
) -> None:
    direct, through, proxy = proxied
    conn, pac, ws, config = _workspace(tmp_path, direct, through)
    proc = start(config)
    try:
        assert until(lambda: all_final(conn, FIRST), 90, 0.2), stderr_text(config)[-3000:]
        proxy.black_hole()  # the network is cut: the next call of the source waits forever
        for i in range(FIRST + 1, FIRST + MORE + 1):  # the ERP keeps writing (not cut off)
            insert_invoice(conn, direct, i, **RECEPTOR)
        assert until(lambda: '"table_source_paused"' in log_text(config), 60), (
            stderr_text(config)[-3000:]
        )
        # the folder source keeps flowing while the table source's calls hang
        _drop(ws / "inbox2", "lote1.dat", dat_file("F", list(range(1, 11))))
        assert until(lambda: len(list((ws / "out" / "xml").glob("*.xml"))) == 10, 90), (
            stderr_text(config)[-3000:]
        )
        assert until(lambda: list((ws / "archive").rglob("lote1.dat")), 30)
        # status says the source is paused, with the coded reason in Spanish
        assert until(lambda: "en pausa" in json.dumps(status_json(config, 200)), 30)
        st = status_json(config, 200)
        table_state = st["daemon"]["tables"]["erp"]
        assert table_state["estado"] == "en pausa", table_state
        assert table_state["codigo"] == "CONN-BD-SIN-RESPUESTA", table_state
        assert "no responde" in table_state["mensaje"]
        assert "PWD" not in table_state["mensaje"]
        notes = [f for f in st["recent_failures"] if f["source"] == "erp"]
        assert any(f["code"] == "CONN-BD-SIN-RESPUESTA" and "queda en pausa" in f["message"]
                   for f in notes), notes  # fmt: skip
        assert {v[0] for k, v in rows(conn, "estado").items() if k > FIRST} == {"PENDIENTE"}
        proxy.relay()  # the network heals: the source resumes by itself
        assert until(lambda: all_final(conn, FIRST + MORE), 120, 0.3), (
            rows(conn, "estado"),
            stderr_text(config)[-3000:],
        )
        assert '"table_source_resumed"' in log_text(config)
    finally:
        proxy.relay()
        code = stop(proc)
    assert code == 0, stderr_text(config)[-3000:]
    try:
        check_stamped_once(conn, pac, FIRST + MORE)
    finally:
        pac.close()
        conn.close()


def test_a_daemon_stopped_while_its_database_is_black_holed_stops_and_loses_nothing(
    proxied: tuple[Db, Db, BlackHoleProxy], tmp_path: Path
) -> None:
    """SIGTERM while a call hangs in the cut: the daemon stops cleanly (exit 0) without waiting
    for the network; started again once it is back, every row is stamped once."""
    direct, through, proxy = proxied
    conn, pac, ws, config = _workspace(tmp_path, direct, through)
    proc = start(config)
    try:
        assert until(lambda: all_final(conn, FIRST), 90, 0.2), stderr_text(config)[-3000:]
        proxy.black_hole()
        for i in range(FIRST + 1, FIRST + MORE + 1):
            insert_invoice(conn, direct, i, **RECEPTOR)
        assert until(lambda: '"table_source_paused"' in log_text(config), 60), (
            stderr_text(config)[-3000:]
        )
    finally:
        code = stop(proc)  # still black-holed
    assert code == 0, stderr_text(config)[-3000:]
    assert '"stopped"' in log_text(config)
    proxy.relay()
    proc = start(config)
    try:
        assert until(lambda: all_final(conn, FIRST + MORE), 120, 0.3), (
            rows(conn, "estado"),
            stderr_text(config)[-3000:],
        )
        _drop(ws / "inbox2", "lote1.dat", dat_file("F", list(range(1, 11))))
        assert until(lambda: list((ws / "archive").rglob("lote1.dat")), 90)
    finally:
        code = stop(proc)
    assert code == 0, stderr_text(config)[-3000:]
    try:
        check_stamped_once(conn, pac, FIRST + MORE)
    finally:
        pac.close()
        conn.close()


def test_a_reload_while_the_database_is_black_holed_does_not_hold_the_folders(
    proxied: tuple[Db, Db, BlackHoleProxy], tmp_path: Path
) -> None:
    """SIGHUP changing the black-holed source (its batch): checking the new configuration
    connects to that database, which does not answer; the reload is refused with
    ``CONN-BD-SIN-RESPUESTA`` (as with a database that refuses connections: the running
    configuration stays), the folders keep flowing meanwhile, and a SIGHUP once the network
    is back applies it."""
    import signal

    direct, through, proxy = proxied
    conn, pac, ws, config = _workspace(tmp_path, direct, through)
    proc = start(config)
    try:
        assert until(lambda: all_final(conn, FIRST), 90, 0.2), stderr_text(config)[-3000:]
        proxy.black_hole()
        for i in range(FIRST + 1, FIRST + MORE + 1):
            insert_invoice(conn, direct, i, **RECEPTOR)
        assert until(lambda: '"table_source_paused"' in log_text(config), 60)
        text = config.read_text("utf-8")
        assert "batch = 10\n" in text
        config.write_text(text.replace("batch = 10\n", "batch = 7\n"), "utf-8")
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: '"reload_failed"' in log_text(config), 60), (
            stderr_text(config)[-3000:]
        )
        assert '"CONN-BD-SIN-RESPUESTA"' in log_text(config)
        _drop(ws / "inbox2", "lote1.dat", dat_file("F", list(range(1, 11))))
        assert until(lambda: len(list((ws / "out" / "xml").glob("*.xml"))) == 10, 90), (
            stderr_text(config)[-3000:]
        )
        assert {v[0] for k, v in rows(conn, "estado").items() if k > FIRST} == {"PENDIENTE"}
        proxy.relay()
        proc.send_signal(signal.SIGHUP)
        assert until(lambda: '"reloaded"' in log_text(config), 60), stderr_text(config)[-3000:]
        assert until(lambda: all_final(conn, FIRST + MORE), 120, 0.3), (
            rows(conn, "estado"),
            stderr_text(config)[-3000:],
        )
    finally:
        proxy.relay()
        code = stop(proc)
    assert code == 0, stderr_text(config)[-3000:]
    try:
        check_stamped_once(conn, pac, FIRST + MORE)
    finally:
        pac.close()
        conn.close()
