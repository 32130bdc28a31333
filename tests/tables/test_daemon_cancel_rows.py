"""Issue 13 from tables: cancellation requests the ERP writes into ``cfdi_cancelacion`` go
through the tracked cancellation flow and where each stands is written into its row. The
SQLite ODBC driver, the daemon's loop, the sandbox PAC and its SAT status service over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from connector.config import check_config
from connector.pipeline import Pipeline

from .conftest import Db, insert_invoice
from .daemon_support import RECEPTOR, rows, table_config


def _requests(conn: Any) -> dict[int, tuple[Any, ...]]:
    got = conn.execute(
        "SELECT id, estado, estatus_sat, es_cancelable, error_codigo, error_mensaje, acuse "
        "FROM cfdi_cancelacion ORDER BY id"
    ).fetchall()
    return {int(r[0]): tuple(r[1:]) for r in got}


def _cancel_calls(sandbox: Any) -> int:
    return sum(r.operation.lower().startswith("cancel") for r in sandbox.store.requests_log)


def test_cancellation_rows_are_claimed_sent_and_their_outcome_written_back(
    sqlite_db: Db, sandbox, tmp_path: Path
) -> None:
    db = sqlite_db
    conn = db.connect()
    for i in (1, 2, 3, 4, 5):
        insert_invoice(conn, db, i, **RECEPTOR)
    config = table_config(
        tmp_path, db, sandbox,
        extra='cancelaciones = "cfdi_cancelacion"\n',
        daemon_extra=f'sat_status_url = "{sandbox.sat_status_url}"\ncancel_poll_seconds = 0.2',
    )  # fmt: skip
    cfg, problems = check_config(config)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        assert pipe.run_until_idle(120)
        uuids = {k: v[0] for k, v in rows(conn, "uuid").items()}
        uuid1, uuid3, uuid4 = uuids[1], uuids[3], uuids[4]
        sandbox.engine.con_aceptacion.update({uuid3, uuid4})  # the receptor must accept these
        sandbox.engine.no_cancelable.add(uuids[5])  # one with related documents
        ins = ("INSERT INTO cfdi_cancelacion (uuid, factura_id, motivo, folio_sustitucion, "
               "estado) VALUES (?, ?, ?, ?, 'PENDIENTE')")  # fmt: skip
        conn.execute(ins, uuid1, None, "02", None)  # by UUID
        conn.execute(ins, None, 2, "01", None)  # by the invoice's row; 01 needs a folio
        conn.execute(ins, "00000000-0000-4000-8000-000000000000", None, "02", None)  # not ours
        conn.execute(ins, None, 99, "02", None)  # a factura_id no stamped invoice has
        conn.execute(ins, None, 3, "02", None)  # con aceptación: waits for the receptor
        conn.execute(ins, None, 4, "02", None)  # con aceptación: the receptor accepts
        conn.execute(ins, None, 5, "02", None)  # not cancellable

        def settle(*waiting: str) -> dict[int, tuple[Any, ...]]:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pipe.poll_once()
                got = _requests(conn)
                if all(r[0] not in waiting for r in got.values()):
                    break
                time.sleep(0.2)
            return got

        got = settle("PENDIENTE", "EN_PROCESO", "SOLICITADA", "ENVIADA")
        assert got[5][0] == "EN_ESPERA" and "aceptación" in (got[5][2] or "")
        assert got[6][0] == "EN_ESPERA"
        sandbox.engine.answer_cancellation(uuid3, "rechazada")  # the receptor says no
        sandbox.engine.answer_cancellation(uuid4, "aceptada")
        settle("PENDIENTE", "EN_PROCESO", "SOLICITADA", "ENVIADA", "EN_ESPERA")
        # a row whose outcome could not be written stays claimed; taken again after its
        # lease, it only gets where its request stands: never a second request
        sent = _cancel_calls(sandbox)
        conn.execute("UPDATE cfdi_cancelacion SET estado = 'EN_PROCESO', "
                     "reclamado_hasta = '2000-01-01 00:00:00' WHERE id = 5")  # fmt: skip
        settle("EN_PROCESO")
        assert _cancel_calls(sandbox) == sent  # rejected by the receptor: not asked again
    finally:
        pipe.close()
    got = _requests(conn)
    estado, estatus, _, code, _, acuse = got[1]
    assert (estado, code) == ("CANCELADA", None)
    assert estatus and acuse  # SAT's words and the acuse de cancelación
    assert got[2][0] == "ERROR" and "CONN-CANCEL" in got[2][3]  # motivo 01 without folio
    assert "01" in got[2][4] or "sustitu" in got[2][4].lower()
    assert got[3][0] == "ERROR" and got[3][3]  # a UUID this connector did not stamp
    assert got[4][0] == "ERROR" and got[4][3] == "CONN-CANCEL-UUID"
    assert got[5][0] == "RECHAZADA" and "rechaz" in (got[5][1] or "").lower()  # followed at SAT
    assert got[6][0] == "CANCELADA" and "aceptación" in (got[6][1] or "")
    assert got[7][0] == "NO_CANCELABLE" and "No cancelable" in (got[7][2] or "")
    conn.close()
