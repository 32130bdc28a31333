"""Table sources under the daemon as real processes (``cfdi-connector run``), with the sandbox
PAC over real HTTP and the engines over real ODBC drivers (issue 11, "tested for real"):

- two daemons, each with its own workspace and journal (two instances), on the same tables of
  300 rows: every row claimed once, stamped once (the sandbox's own store says so), written
  back ``TIMBRADO`` with its UUID; no UUID twice;
- one daemon SIGKILLed at random moments ten times over 300 rows arriving meanwhile, restarted
  after each kill: nothing lost, nothing stamped twice, every row ``TIMBRADO`` or a coded
  ``ERROR``.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import stamps_by_key

from .conftest import Db, insert_invoice
from .daemon_procs import all_final, final_states, log_text, start, stderr_text, stop, until
from .daemon_support import RECEPTOR, rows, table_config

ROWS = 300


def _check_stamped_once(conn: Any, sandbox: Any, ids: set[int]) -> dict[int, tuple[Any, ...]]:
    """Every row in ``ids`` TIMBRADO with the one UUID the sandbox gave its folio; returns the
    final rows."""
    got = {i: v for i, v in final_states(conn).items() if i in ids}
    assert set(got) == ids
    not_stamped = {i: v[:4] for i, v in got.items() if v[0] != "TIMBRADO"}
    assert not not_stamped
    uuids = [v[1] for v in got.values()]
    assert all(uuids) and len(set(uuids)) == len(uuids)  # 0 duplicate UUIDs
    stamps = stamps_by_key(sandbox.store)
    twice = {k: v for k, v in stamps.items() if len(v) != 1}
    assert not twice  # every folio stamped exactly once at the PAC
    assert {k: v[0] for k, v in stamps.items()} == {("A", str(i)): got[i][1] for i in ids}
    for v in got.values():
        assert v[1] in v[4]  # the stamped XML written back carries the row's UUID
    return got


def _insert(db: Db, conn: Any, ids: range) -> None:
    for i in ids:
        insert_invoice(conn, db, i, **RECEPTOR)


def _delivered(config: Path) -> set[str]:
    """The folios a daemon's own journal says it stamped and delivered."""
    db = sqlite3.connect(config.parent / "var" / "journal.sqlite")
    try:
        found = db.execute("SELECT folio FROM invoices WHERE state = 'delivered'").fetchall()
    finally:
        db.close()
    return {f for (f,) in found}


def test_two_daemons_on_the_same_300_rows_stamp_each_row_exactly_once(
    db: Db, sandbox: Any, tmp_path: Path
) -> None:
    conn = db.connect()
    for i in range(1, ROWS + 1):  # written by the ERP, not ready yet
        insert_invoice(conn, db, i, estado=None, **RECEPTOR)
    # small batches so both instances keep coming back for more while the other holds rows
    configs = [
        table_config(tmp_path / name, db, sandbox, batch=10, workers=6) for name in ("a", "b")
    ]
    procs = [start(c) for c in configs]
    try:
        for c, p in zip(configs, procs, strict=True):  # both running before any row is ready
            assert until(lambda c=c, p=p: '"ready"' in log_text(c) or p.poll() is not None, 60)
            assert p.poll() is None, stderr_text(c)[-3000:]
        conn.execute("UPDATE cfdi_factura SET estado = 'PENDIENTE'")  # all ready at once
        assert until(lambda: all_final(conn, ROWS), 240, 0.2), rows(conn, "estado")
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0, 0], [stderr_text(c)[-3000:] for c in configs]
    _check_stamped_once(conn, sandbox, set(range(1, ROWS + 1)))
    # each row was claimed once, by one of the two instances, and both took part
    claims = rows(conn, "intentos", "reclamado_por")
    assert {v[0] for v in claims.values()} == {1}
    assert len({v[1] for v in claims.values()}) == 2
    # each daemon's journal holds the rows it claimed: together all of them, none in both
    a, b = (_delivered(c) for c in configs)
    assert a and b and not a & b and a | b == {str(i) for i in range(1, ROWS + 1)}
    conn.close()


KILLS = 10
SEED = 20261207


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_never_stamps_twice(
    _databases: dict[str, Db], tmp_path: Path
) -> None:
    from connector.pac.sandbox import SandboxPac

    from .conftest import fresh_tables

    db = fresh_tables(_databases["postgresql"])
    rng = random.Random(SEED)
    pac = SandboxPac.demo(tmp_path / "pac.db", latency=0.02)
    pac.start()
    # a few replies lost after the stamp is stored (the ambiguous case) on top of the kills
    pac.faults.add(
        "reply_lost", times=None, probability=0.03, operations={"TimbrarCFDI"}, seed=SEED
    )
    conn = db.connect()
    try:
        config = table_config(tmp_path / "ws", db, pac, batch=10, workers=6)
        bad = {37, 150, 251}  # rows SAT rejects: they end ERROR, coded, the others flow
        per_round = ROWS // (KILLS + 1) + 1
        next_id = 1

        def arrive(n: int) -> None:
            nonlocal next_id
            for i in range(next_id, min(ROWS, next_id + n - 1) + 1):
                uso = "X99" if i in bad else RECEPTOR["uso_cfdi"]
                insert_invoice(conn, db, i, **{**RECEPTOR, "uso_cfdi": uso})
            next_id = min(ROWS, next_id + n - 1) + 1

        arrive(per_round * 2)
        for kill in range(KILLS):
            proc = start(config)
            # a random moment after the pipeline started (it has taken back its rows)
            started = until(
                lambda k=kill, p=proc: log_text(config).count('"pipeline_started"') > k
                or p.poll() is not None,
                60,
                0.05,
            )
            assert started and proc.poll() is None, stderr_text(config)[-3000:]
            arrive(per_round // 2)
            time.sleep(rng.uniform(0.05, 1.5))
            arrive(per_round - per_round // 2)  # rows keep arriving while it works
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
        arrive(ROWS)  # the rest
        assert next_id == ROWS + 1
        proc = start(config)
        try:
            # the last daemon has started (the rows may all be final already: the killed ones
            # can have finished them) before it is asked to stop
            until(lambda: log_text(config).count('"pipeline_started"') > KILLS, 120)
            done = until(lambda: all_final(conn, ROWS), 180, 0.2)
            in_progress = {i: v for i, v in rows(conn, "estado").items() if v[0] != "TIMBRADO"}
            assert done, (in_progress, stderr_text(config)[-3000:])
        finally:
            assert stop(proc) == 0
        got = final_states(conn)
        errors = {i for i, v in got.items() if v[0] == "ERROR"}
        assert errors == bad  # only the rows SAT rejects
        for i in bad:
            _, uuid, code, message, _ = got[i]
            assert uuid is None and code and "CFDI40160" in code and message
        _check_stamped_once(conn, pac, set(range(1, ROWS + 1)) - bad)
        # the kills did interrupt rows in flight: rows taken back after a restart
        events = log_text(config)
        assert events.count('"pipeline_started"') == KILLS + 1
        assert events.count('"rows_taken_back"') >= 1
    finally:
        conn.close()
        pac.close()


def test_run_once_counts_every_row_written_by_concurrent_workers(
    _databases: dict[str, Db], sandbox: Any, tmp_path: Path
) -> None:
    """``run --once`` says how many rows it wrote back: workers deliver at the same time, and
    none of their counts is lost (it said 28 of 150 when they were added without a lock)."""
    import subprocess
    import sys

    from .conftest import fresh_tables
    from .daemon_support import REPO

    db = fresh_tables(_databases["postgresql"])
    conn = db.connect()
    _insert(db, conn, range(1, 151))
    insert_invoice(conn, db, 151, **{**RECEPTOR, "uso_cfdi": "X99"})  # SAT rejects it
    config = table_config(tmp_path, db, sandbox, batch=50, workers=8)
    r = subprocess.run(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config), "--once"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr[-3000:]
    assert "150 fila(s) timbrada(s), 1 fila(s) con error." in r.stdout, r.stdout
    assert sum(v[0] == "TIMBRADO" for v in rows(conn, "estado").values()) == 150
    conn.close()
